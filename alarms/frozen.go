package alarms

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"
)

// frozenEvery is how often a device is looked at for standing still.
const frozenEvery = 10 * time.Second

// frozenPolls: standing still (frozen, stuck) counts only over at least this many polls' worth
// of time. A device polled every 10 minutes whose few 0.1 °C readings happen to repeat once has
// not frozen; FrozenFor and StuckFor are the bounds for the usual second-scale polls.
const frozenPolls = 6

// frozenAfter is how long a device's readings must stand still to be frozen.
func (e *Engine) frozenAfter(d *devState) time.Duration {
	return max(e.th.FrozenFor, frozenPolls*d.info.Interval)
}

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
	// Standing still is judged over minutes: a look every frozenEvery is enough, and it walks
	// every point of the device, which is not for every poll. A device frozen (or with a block
	// frozen) is looked at every poll: its readings count again the moment they move.
	if now.Sub(d.frozenAt) < frozenEvery {
		return
	}
	d.frozenAt = now
	defer func() {
		if d.suspect == Frozen || d.anyHeld() {
			d.frozenAt = time.Time{}
		}
	}()
	moved, n := d.lastMoved(false)
	if n < frozenMinPoints {
		return
	}
	still := now.Sub(moved)
	var mover string
	if still >= e.frozenAfter(d) {
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
		e.frozenBlocks(d, now)
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
		at := p.lastChangeAt()
		if onlyMoves {
			at = p.movedAt()
		}
		if at.After(last) {
			last = at
		}
	}
	return last, n
}

// anyHeld says whether a block of the device is frozen.
func (d *devState) anyHeld() bool {
	for _, p := range d.points {
		if p.held {
			return true
		}
	}
	return false
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

// frozenBlockMin: a register block is judged on its own only if it carries at least this many
// analogue readings (a BMS's block of module temperatures or cell voltages): a short block of
// currents and set points may rest for long without anything being wrong.
const frozenBlockMin = 8

// frozenBlocks finds a device partly frozen: one register block (one request of the collector's
// plan) whose every analogue reading has stood still for FrozenFor while the device's other
// blocks moved, a gateway that caches one block and reads the rest. The block's readings are no
// evidence while it holds (its points are held); the alarm is on its first point and, like the
// whole device's, counts as silence.
func (e *Engine) frozenBlocks(d *devState, now time.Time) {
	if d.suspect != "" || len(d.info.Blocks) == 0 {
		return
	}
	// One pass over the device's points (this runs after every batch): per block, how many
	// analogue readings it has, when one last changed, when one not held last moved.
	type block struct {
		n           int
		moved, live time.Time
		held        bool
	}
	blocks := map[int32]*block{}
	for _, p := range d.points {
		if p.block < 0 || !p.hasPrev || p.role.Binary() {
			continue
		}
		b := blocks[p.block]
		if b == nil {
			b = &block{}
			blocks[p.block] = b
		}
		b.n++
		b.held = b.held || p.held
		if at := p.lastChangeAt(); at.After(b.moved) {
			b.moved = at
		}
		if at := p.movedAt(); !p.held && at.After(b.live) {
			b.live = at
		}
	}
	if len(blocks) < 2 {
		return
	}
	for _, id := range slices.Sorted(maps.Keys(blocks)) {
		b := blocks[id]
		if b.n < frozenBlockMin {
			continue
		}
		var other time.Time
		for oid, o := range blocks {
			if oid != id && o.live.After(other) {
				other = o.live
			}
		}
		still := now.Sub(b.moved)
		is := still >= e.frozenAfter(d) && other.After(b.moved)
		if is == b.held {
			continue
		}
		var names []string
		for _, p := range d.points {
			if p.block == id && p.hasPrev && !p.role.Binary() {
				names = append(names, p.name)
				p.held = is
			}
		}
		// In the profile's order for repeated points: module_temp_9 before module_temp_10.
		sort.Slice(names, func(i, j int) bool {
			if len(names[i]) != len(names[j]) {
				return len(names[i]) < len(names[j])
			}
			return names[i] < names[j]
		})
		st := StageNormal
		if is {
			st = StageWatch
		}
		e.setCond(d, names[0], Frozen, st, still.Seconds(), "s", func() string {
			return fmt.Sprintf("%s's register block of %s … %s (%d readings) has stood still for %s while its other readings moved (a gateway caching one block?)",
				d.info.Name, names[0], names[len(names)-1], len(names), still.Round(time.Second))
		}, now)
	}
}
