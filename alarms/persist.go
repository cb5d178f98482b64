package alarms

import (
	"fmt"
	"time"
)

// Snapshot is what must survive a crash: every alarm that is not plainly normal (unacknowledged,
// acknowledged, latched, shelved, suppressed, out of service). Conditions are not in it: they are
// rebuilt from fresh samples after a restart.
type Snapshot struct {
	Seq    uint64  `json:"seq"`
	Alarms []Alarm `json:"alarms"`
}

// Snapshot returns the engine's alarm state.
func (e *Engine) Snapshot() Snapshot {
	s := Snapshot{Seq: e.seq}
	for _, id := range sortedKeys(e.alarms) {
		if a := e.alarms[id]; a.State != Normal || a.Latched {
			s.Alarms = append(s.Alarms, *a)
		}
	}
	return s
}

// Restore loads a snapshot into a fresh engine, at now. An alarm that was active stays so until
// the first samples after the restart have had their chance to confirm it: if its condition has
// not come back within restoreGrace, it clears (and, unacknowledged, waits for its ack).
func (e *Engine) Restore(s Snapshot, now time.Time) error {
	if len(e.alarms) > 0 {
		return fmt.Errorf("restore: the engine already has alarms")
	}
	e.seq = s.Seq
	for _, a := range s.Alarms {
		if _, ok := alarmStateNames[a.State]; !ok {
			return fmt.Errorf("restore: alarm %s has state %d, which is not a state", a.ID, a.State)
		}
		a := a
		e.alarms[a.ID] = &a
		if a.State == Shelved || a.State == SuppressedByDesign {
			e.held[a.ID] = true
		}
		if a.Active {
			e.restored[a.ID] = now
		}
	}
	return nil
}

// restoreGrace is how long a restored active alarm waits for its condition to be seen again.
func (e *Engine) restoreGrace() time.Duration {
	var longest time.Duration
	for _, d := range e.devices {
		longest = max(longest, d.info.Interval)
	}
	return time.Duration(e.th.StaleAfterIntervals)*longest + e.th.SettleFor
}

// confirmRestored clears restored alarms whose condition did not come back in time.
func (e *Engine) confirmRestored(now time.Time) {
	if len(e.restored) == 0 {
		return
	}
	for _, id := range sortedKeys(e.restored) {
		if e.conds[id] != nil {
			delete(e.restored, id) // confirmed by fresh data
			continue
		}
		if now.Sub(e.restored[id]) < e.restoreGrace() {
			continue
		}
		delete(e.restored, id)
		a := e.alarms[id]
		if a == nil || !a.Active {
			continue
		}
		_ = e.transition(id, "clear", now, &cond{id: id, device: a.Device, point: a.Point, zone: a.Zone, detector: a.Detector, stage: a.Stage}, a.Value)
	}
}
