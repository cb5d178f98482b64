package alarms

import (
	"fmt"
	"time"
)

// byCondition stands, in the table, for "back to where the condition puts it": Unacked if the
// alarm is active, Normal if not.
const byCondition AlarmState = 0

// transitions is the ISA-18.2 lifecycle table: state × cause → next state (the causes are in
// cause.go). A process cause not in the table for a state only updates whether the alarm is
// active; an operator cause not in it is an ErrIllegalTransition and changes nothing.
var transitions = map[AlarmState]map[Cause]AlarmState{
	Normal:             {CauseActivate: Unacked, CauseShelve: Shelved, CauseOutOfService: OutOfService, CauseSuppress: SuppressedByDesign},
	Unacked:            {CauseClear: RTNUnacked, CauseAck: Acked, CauseEscalate: Unacked, CauseShelve: Shelved, CauseOutOfService: OutOfService, CauseSuppress: SuppressedByDesign},
	Acked:              {CauseClear: Normal, CauseEscalate: Unacked, CauseShelve: Shelved, CauseOutOfService: OutOfService, CauseSuppress: SuppressedByDesign},
	RTNUnacked:         {CauseActivate: Unacked, CauseAck: Normal, CauseShelve: Shelved, CauseOutOfService: OutOfService, CauseSuppress: SuppressedByDesign},
	Shelved:            {CauseUnshelve: byCondition, CauseOutOfService: OutOfService},
	SuppressedByDesign: {CauseUnsuppress: byCondition, CauseOutOfService: OutOfService},
	OutOfService:       {CauseReturnToService: byCondition},
}

// raise is what a process cause says about its alarm: what it is, and what it reads now.
type raise struct {
	device, point, zone, detector string
	stage                         Stage
	value                         float64
	unit, text                    string
}

// book is the ISA-18.2 lifecycle of every alarm: its state, its events in order, what an operator
// shelved or the logic suppressed, and what a snapshot restored. Process causes (activate,
// escalate, clear) cannot fail: a condition is a fact, and the book records it whatever the state.
// Operator causes can: an unknown alarm or a transition the state does not allow is an error that
// changes nothing. Alarms of the daemon itself (the drain protocol's, the HA pair's, state_dir's)
// are raised here directly by their owners (Protocol), never as detector conditions.
type book struct {
	alarms map[string]*Alarm
	// held are the alarms shelved or suppressed by design: lifecycleTick watches them.
	held map[string]bool
	// restored holds active alarms loaded from a snapshot, until fresh data confirms or clears them.
	restored map[string]time.Time
	// protocol are the active alarms raised through Protocol, by id.
	protocol map[string]raise
	seq      uint64
	events   []AlarmEvent // not yet taken into Ready
}

func newBook() *book {
	return &book{alarms: map[string]*Alarm{}, held: map[string]bool{}, restored: map[string]time.Time{}, protocol: map[string]raise{}}
}

// activate records a condition that became true. An alarm restored active (after a restart or a
// reload) whose condition comes back is the same alarm: not announced again, only a higher stage
// is, as an escalation.
func (b *book) activate(id string, r raise, now time.Time) {
	a := b.alarms[id]
	if _, restored := b.restored[id]; restored && a != nil && a.Active {
		delete(b.restored, id)
		if r.stage > a.Stage {
			b.apply(id, CauseEscalate, r, nil, now)
			return
		}
		a.Value, a.Stage, a.Text = r.value, r.stage, r.text
		return
	}
	b.apply(id, CauseActivate, r, nil, now)
}

// escalate records a condition that rose to a higher stage.
func (b *book) escalate(id string, r raise, now time.Time) { b.apply(id, CauseEscalate, r, nil, now) }

// update records what a condition reads now, at the same stage or a lower one: no event.
func (b *book) update(id string, r raise) {
	if a := b.alarms[id]; a != nil {
		a.Value, a.Stage, a.Text = r.value, r.stage, r.text
	}
}

// own raises, escalates, updates or (at StageNormal) clears an alarm that no condition stands
// for: the daemon's own (Engine.Protocol) and the zone's room_warm. The book keeps what it says.
func (b *book) own(id string, r raise, now time.Time) {
	old, active := b.protocol[id]
	switch {
	case r.stage == StageNormal && !active:
	case r.stage == StageNormal:
		delete(b.protocol, id)
		b.clear(id, r.value, now)
	case !active:
		b.protocol[id] = r
		b.activate(id, r, now)
	case r.stage > old.stage:
		b.protocol[id] = r
		b.escalate(id, r, now)
	default:
		b.protocol[id] = r
		b.update(id, r)
	}
}

// clear records a condition that is no longer true.
func (b *book) clear(id string, value float64, now time.Time) {
	if a := b.alarms[id]; a != nil {
		b.apply(id, CauseClear, raise{stage: a.Stage, value: value, unit: a.Unit, text: a.Text}, nil, now)
	}
}

// operate performs an operator's cause (ack, shelve, unshelve, out_of_service, return_to_service); until is a
// shelve's end.
func (b *book) operate(id string, cause Cause, until *time.Time, now time.Time) error {
	a := b.alarms[id]
	if a == nil {
		return fmt.Errorf("%w: %s", ErrUnknownAlarm, id)
	}
	if _, ok := transitions[a.State][cause]; !ok {
		return fmt.Errorf("%w: %s %s while %s", ErrIllegalTransition, cause, id, a.State)
	}
	b.apply(id, cause, raise{stage: a.Stage, value: a.Value, unit: a.Unit, text: a.Text}, until, now)
	return nil
}

// logic performs a cause of the alarm logic (suppress, unsuppress, or unshelve when a shelve's
// time is up); lifecycleTick calls it only where the table allows it.
func (b *book) logic(id string, cause Cause, now time.Time) {
	if a := b.alarms[id]; a != nil {
		if _, ok := transitions[a.State][cause]; ok {
			b.apply(id, cause, raise{stage: a.Stage, value: a.Value, unit: a.Unit, text: a.Text}, nil, now)
		}
	}
}

// apply moves an alarm by one cause and records the event. The caller has checked that an
// operator or logic cause is in the table; a process cause always applies.
func (b *book) apply(id string, cause Cause, r raise, until *time.Time, now time.Time) {
	a := b.alarms[id]
	if a == nil {
		a = &Alarm{ID: id, Device: r.device, Point: r.point, Zone: r.zone, Detector: r.detector, State: Normal}
		b.alarms[id] = a
	}
	from := a.State
	next, ok := transitions[a.State][cause]
	if !ok {
		next = a.State // a process cause while shelved, suppressed or out of service: the state holds, activity is recorded
	}
	switch cause {
	case CauseActivate, CauseEscalate:
		a.Active = true
		a.Stage, a.Value, a.Unit, a.Text = r.stage, r.value, r.unit, r.text
		if r.stage >= StageCritical {
			a.Latched = true
		}
	case CauseClear:
		a.Active = false
	}
	if next == byCondition {
		next = Normal
		if a.Active {
			next = Unacked
		}
	}
	// A latched alarm needs an acknowledgement after it clears, even if acknowledged before.
	if cause == CauseClear && a.Latched && next == Normal {
		next = RTNUnacked
	}
	if cause == CauseAck && next == Normal {
		a.Latched = false
	}
	a.State = next
	switch {
	case next != Shelved:
		a.ShelvedUntil = nil
	case until != nil: // the shelve itself: its end is in the event it makes
		u := until.UTC()
		a.ShelvedUntil = &u
	}
	if next == Shelved || next == SuppressedByDesign {
		b.held[id] = true
	} else {
		delete(b.held, id)
	}
	a.Since = now
	b.seq++
	b.events = append(b.events, AlarmEvent{Seq: b.seq, From: from, Cause: cause, At: now, Alarm: *a})
}

// take hands over the events recorded since the last take.
func (b *book) take() []AlarmEvent {
	ev := b.events
	b.events = nil
	return ev
}

// Operate performs an operator's cause on an alarm (the alarm commands); until is a shelve's
// end and is ignored for the others.
func (e *Engine) Operate(c Cause, id string, until, now time.Time) error {
	switch c {
	case CauseAck:
		return e.Ack(id, now)
	case CauseShelve:
		return e.Shelve(id, until, now)
	case CauseUnshelve:
		return e.Unshelve(id, now)
	case CauseOutOfService:
		return e.OutOfService(id, now)
	case CauseReturnToService:
		return e.ReturnToService(id, now)
	}
	return fmt.Errorf("%w: %s is not an operator's cause", ErrIllegalTransition, c)
}

// Ack acknowledges an alarm.
func (e *Engine) Ack(id string, now time.Time) error {
	err := e.book.operate(id, CauseAck, nil, now)
	e.collect()
	return err
}

// Shelve hides an alarm until until; it still counts towards risk, and comes back by itself.
func (e *Engine) Shelve(id string, until, now time.Time) error {
	if !until.After(now) {
		return fmt.Errorf("%w: shelve %s until %s, which is not in the future", ErrIllegalTransition, id, until.Format(time.RFC3339))
	}
	err := e.book.operate(id, CauseShelve, &until, now)
	e.collect()
	return err
}

// Unshelve returns a shelved alarm before its time.
func (e *Engine) Unshelve(id string, now time.Time) error {
	err := e.book.operate(id, CauseUnshelve, nil, now)
	e.collect()
	return err
}

// OutOfService takes an alarm out of service (its sensor is under maintenance): it is not
// annunciated and its evidence no longer counts towards risk, until ReturnToService.
func (e *Engine) OutOfService(id string, now time.Time) error {
	err := e.book.operate(id, CauseOutOfService, nil, now)
	e.collect()
	return err
}

// ReturnToService puts an alarm back in service.
func (e *Engine) ReturnToService(id string, now time.Time) error {
	err := e.book.operate(id, CauseReturnToService, nil, now)
	e.collect()
	return err
}

// lifecycleTick returns shelved alarms whose time is up, and suppresses by design what only repeats
// or follows from an alarm already annunciated (grouping.go), and lifts that once it no longer
// does. It looks only at the alarms it may change (the active conditions, and alarms shelved or
// suppressed): it runs per Step.
func (e *Engine) lifecycleTick(now time.Time) {
	b := e.book
	if len(b.held) > 0 {
		for _, id := range sortedKeys(b.held) {
			a := b.alarms[id]
			if a.State == Shelved && a.ShelvedUntil != nil && !now.Before(*a.ShelvedUntil) {
				b.logic(id, CauseUnshelve, now)
			}
			if a.State == SuppressedByDesign && !e.byDesign(id) {
				b.logic(id, CauseUnsuppress, now)
			}
		}
	}
	e.roomWarmth(now)
	// In id order, not map order: the events this makes must come out the same in replay as live.
	for _, id := range sortedKeys(e.conds) {
		if a := b.alarms[id]; a != nil && a.State != SuppressedByDesign && a.State != Shelved && a.State != OutOfService && e.byDesign(id) {
			b.logic(id, CauseSuppress, now)
		}
	}
	e.collect()
}

// collect moves the book's events into Ready.
func (e *Engine) collect() { e.ready.Events = append(e.ready.Events, e.book.take()...) }
