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
	b := e.book
	s := Snapshot{Seq: b.seq}
	for _, id := range sortedKeys(b.alarms) {
		if a := b.alarms[id]; a.State != Normal || a.Latched {
			s.Alarms = append(s.Alarms, *a)
		}
	}
	return s
}

// Restore loads a snapshot into a fresh engine, at now. An alarm that was active stays so until
// the first samples after the restart have had their chance to confirm it: if its condition has
// not come back within restoreGrace, it clears (and, unacknowledged, waits for its ack).
func (e *Engine) Restore(s Snapshot, now time.Time) error {
	b := e.book
	if len(b.alarms) > 0 {
		return fmt.Errorf("restore: the engine already has alarms")
	}
	b.seq = s.Seq
	for _, a := range s.Alarms {
		if _, ok := alarmStateNames[a.State]; !ok {
			return fmt.Errorf("restore: alarm %s has state %d, which is not a state", a.ID, a.State)
		}
		if !e.Owns(a) {
			continue // its device or zone is no longer configured
		}
		a := a
		b.alarms[a.ID] = &a
		if a.State == Shelved || a.State == SuppressedByDesign {
			b.held[a.ID] = true
		}
		if a.Active {
			b.restored[a.ID] = now
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
	b := e.book
	if len(b.restored) == 0 {
		return
	}
	for _, id := range sortedKeys(b.restored) {
		if _, raised := b.protocol[id]; e.conds[id] != nil || raised {
			delete(b.restored, id) // confirmed by fresh data
			continue
		}
		if now.Sub(b.restored[id]) < e.restoreGrace() {
			continue
		}
		delete(b.restored, id)
		if a := b.alarms[id]; a != nil && a.Active {
			b.clear(id, a.Value, now)
		}
	}
	e.collect()
}

// Owns says whether an alarm belongs to this engine's topology: a detector's alarm to a
// configured device, any other (the zone's room_warm, the daemon's own protocol and state alarms)
// to a configured zone or to no zone. An alarm it does not own is not restored, and its retained
// topic is no longer the daemon's.
func (e *Engine) Owns(a Alarm) bool {
	if _, isDevice := e.devices[a.Device]; isDevice {
		return true
	}
	if _, isDetector := detectorByID[DetectorID(a.Detector)]; isDetector {
		return false // a device's alarm, and the device is gone
	}
	_, zone := e.zones[a.Zone]
	return a.Zone == "" || zone
}
