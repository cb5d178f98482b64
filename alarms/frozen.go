package alarms

import (
	"fmt"
	"time"
)

// frozenMinPoints: a device is judged frozen only if it has at least this many analogue points
// (temperatures, voltages, currents, …). A gas head reading a steady 0 ppm or a panel's quiet
// inputs stand still by nature; a BMS's cell voltages and temperatures never all do.
const frozenMinPoints = 3

// frozen raises a device that answers every poll, good quality, with every reading bit-for-bit
// unchanged for FrozenFor while another device of its kind in its zone moved: a gateway serving
// the registers it cached when the BMS behind it hung. Pangyo's BMS showed normal values until
// ignition. While frozen, the device's readings are no evidence (Step feeds them to no detector,
// its conditions stand as they were, like a silent device's), and the alarm counts as silence for
// staging: off-gas or smoke in the room while a rack is frozen is critical.
func (e *Engine) frozen(d *devState, now time.Time) {
	if d.lastErrAt.After(d.lastOK) {
		return // failing polls are comm_lost's
	}
	moved, n := d.lastMoved(false)
	if n < frozenMinPoints {
		return
	}
	still := now.Sub(moved)
	var mover string
	if still >= e.th.FrozenFor {
		for _, name := range e.kin(d) {
			o := e.devices[name]
			if om, on := o.lastMoved(true); on >= frozenMinPoints && om.After(moved) && !o.lastErrAt.After(o.lastOK) && o.suspect == "" {
				mover = name
				break
			}
		}
	}
	is := mover != ""
	if is == (d.suspect == Frozen) {
		return
	}
	if is {
		d.suspect = Frozen
		e.setCond(d, "", Frozen, StageWatch, still.Seconds(), "s", func() string {
			return fmt.Sprintf("%s has answered with the same %d readings for %s while %s moved (a gateway serving cached registers?)",
				d.info.Name, n, still.Round(time.Second), mover)
		}, now)
		return
	}
	d.suspect = ""
	e.setCond(d, "", Frozen, StageNormal, 0, "", noText, now)
}

// lastMoved is when any analogue reading of the device last changed, and how many it has; with
// only moves, a reading's first sighting is not a change (a device polled later than another has
// not moved for it).
func (d *devState) lastMoved(onlyMoves bool) (time.Time, int) {
	var last time.Time
	n := 0
	for _, p := range d.points {
		if !p.hasPrev || p.role.Binary() {
			continue
		}
		n++
		at := p.lastChangeAt
		if onlyMoves {
			at = p.movedAt
		}
		if at.After(last) {
			last = at
		}
	}
	return last, n
}

// kin is the other devices of d's kind (its profile) in d's zone, in name order.
func (e *Engine) kin(d *devState) []string {
	var out []string
	for _, name := range sortedKeys(e.devices) {
		o := e.devices[name]
		if o != d && o.info.Kind == d.info.Kind && o.info.Zone == d.info.Zone {
			out = append(out, name)
		}
	}
	return out
}
