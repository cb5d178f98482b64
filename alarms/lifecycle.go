package alarms

import (
	"fmt"
	"time"
)

// byCondition stands, in the table, for "back to where the condition puts it": Unacked if the
// alarm is active, Normal if not.
const byCondition AlarmState = 0

// transitions is the ISA-18.2 lifecycle table: state × cause → next state. Process causes
// (activate, escalate, clear) come from the detectors, the others from operators (ack, shelve,
// unshelve, remove, restore) or the alarm logic (suppress, unsuppress). A process cause not in the
// table for a state only updates whether the alarm is active; an operator cause not in it is an
// ErrIllegalTransition and changes nothing.
var transitions = map[AlarmState]map[string]AlarmState{
	Normal:             {"activate": Unacked, "shelve": Shelved, "remove": OutOfService, "suppress": SuppressedByDesign},
	Unacked:            {"clear": RTNUnacked, "ack": Acked, "escalate": Unacked, "shelve": Shelved, "remove": OutOfService, "suppress": SuppressedByDesign},
	Acked:              {"clear": Normal, "escalate": Unacked, "shelve": Shelved, "remove": OutOfService, "suppress": SuppressedByDesign},
	RTNUnacked:         {"activate": Unacked, "ack": Normal, "shelve": Shelved, "remove": OutOfService, "suppress": SuppressedByDesign},
	Shelved:            {"unshelve": byCondition, "remove": OutOfService},
	SuppressedByDesign: {"unsuppress": byCondition, "remove": OutOfService},
	OutOfService:       {"restore": byCondition},
}

func processCause(c string) bool { return c == "activate" || c == "escalate" || c == "clear" }

func (e *Engine) transition(id, cause string, now time.Time, c *cond, v float64) error {
	a := e.alarms[id]
	if a == nil {
		if !processCause(cause) {
			return fmt.Errorf("%w: %s", ErrUnknownAlarm, id)
		}
		a = &Alarm{ID: id, Device: c.device, Point: c.point, Zone: c.zone, Detector: c.detector, State: Normal}
		e.alarms[id] = a
	}
	from := a.State
	next, ok := transitions[a.State][cause]
	switch {
	case !ok && !processCause(cause):
		return fmt.Errorf("%w: %s %s while %s", ErrIllegalTransition, cause, id, a.State)
	case !ok:
		next = a.State // shelved, suppressed or out of service: the state holds, activity is recorded
	}
	switch cause {
	case "activate", "escalate":
		a.Active = true
		a.Stage, a.Value, a.Unit, a.Text = c.stage, v, c.unit, c.text
		if c.stage >= StageCritical {
			a.Latched = true
		}
	case "clear":
		a.Active = false
	}
	if next == byCondition {
		next = Normal
		if a.Active {
			next = Unacked
		}
	}
	// A latched alarm needs an acknowledgement after it clears, even if acknowledged before.
	if cause == "clear" && a.Latched && next == Normal {
		next = RTNUnacked
	}
	if cause == "ack" && next == Normal {
		a.Latched = false
	}
	a.State = next
	if next != Shelved {
		a.ShelvedUntil = nil
	}
	if next == Shelved || next == SuppressedByDesign {
		e.held[id] = true
	} else {
		delete(e.held, id)
	}
	a.Since = now
	e.seq++
	e.ready.Events = append(e.ready.Events, AlarmEvent{Seq: e.seq, From: from, Cause: cause, At: now, Alarm: *a})
	return nil
}

// operator performs an operator's cause on an alarm.
func (e *Engine) operator(id, cause string, now time.Time) error {
	a := e.alarms[id]
	if a == nil {
		return fmt.Errorf("%w: %s", ErrUnknownAlarm, id)
	}
	c := e.conds[id]
	if c == nil {
		c = &cond{id: id, device: a.Device, point: a.Point, zone: a.Zone, detector: a.Detector, stage: a.Stage}
	}
	return e.transition(id, cause, now, c, a.Value)
}

// Ack acknowledges an alarm.
func (e *Engine) Ack(id string, now time.Time) error { return e.operator(id, "ack", now) }

// Shelve hides an alarm until until; it still counts towards risk, and comes back by itself.
func (e *Engine) Shelve(id string, until, now time.Time) error {
	if !until.After(now) {
		return fmt.Errorf("%w: shelve %s until %s, which is not in the future", ErrIllegalTransition, id, until.Format(time.RFC3339))
	}
	if err := e.operator(id, "shelve", now); err != nil {
		return err
	}
	u := until.UTC()
	e.alarms[id].ShelvedUntil = &u
	e.ready.Events[len(e.ready.Events)-1].Alarm.ShelvedUntil = &u
	return nil
}

// Unshelve returns a shelved alarm before its time.
func (e *Engine) Unshelve(id string, now time.Time) error { return e.operator(id, "unshelve", now) }

// RemoveFromService takes an alarm out of service (its sensor is under maintenance): it is not
// annunciated and its evidence no longer counts towards risk, until ReturnToService.
func (e *Engine) RemoveFromService(id string, now time.Time) error {
	return e.operator(id, "remove", now)
}

// ReturnToService puts an alarm back in service.
func (e *Engine) ReturnToService(id string, now time.Time) error {
	return e.operator(id, "restore", now)
}

// lifecycleTick returns shelved alarms whose time is up, and suppresses by design a BMS-max alarm
// that only repeats what an alarm of one of the rack's own NTCs already says. It looks only at the
// alarms it may change (the active conditions, and alarms shelved or suppressed): it runs per Step.
func (e *Engine) lifecycleTick(now time.Time) {
	if len(e.held) > 0 {
		for _, id := range sortedKeys(e.held) {
			a := e.alarms[id]
			if a.State == Shelved && a.ShelvedUntil != nil && !now.Before(*a.ShelvedUntil) {
				_ = e.operator(id, "unshelve", now)
			}
			if a.State == SuppressedByDesign && !e.duplicate(id) {
				_ = e.operator(id, "unsuppress", now)
			}
		}
	}
	// In id order, not map order: the events this makes must come out the same in replay as live.
	for _, id := range sortedKeys(e.conds) {
		c := e.conds[id]
		if !e.isTmax(c) {
			continue
		}
		if a := e.alarms[id]; a != nil && a.State != SuppressedByDesign && a.State != Shelved && a.State != OutOfService && e.duplicate(id) {
			_ = e.operator(id, "suppress", now)
		}
	}
}
