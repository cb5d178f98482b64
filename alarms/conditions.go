package alarms

import "time"

// cond is an active detector condition; each is one alarm.
type cond struct {
	id, device, point, zone string
	detector                DetectorID
	modality                Modality
	stage                   Stage
	value                   float64
	unit, text              string
	source                  string    // independence key: signals with the same source are one sensor
	module                  int       // the point's battery module (1-based), 0 unknown
	raisedAt                time.Time // when it became active: the rack's first-out is its earliest
}

func noText() string { return "" }

// constText is a text that needs no formatting.
func constText(s string) func() string { return func() string { return s } }

// raise is what the condition says to its alarm.
func (c *cond) raise() raise {
	return raise{device: c.device, point: c.point, zone: c.zone, detector: string(c.detector), stage: c.stage, value: c.value, unit: c.unit, text: c.text}
}

// setCond raises, updates or clears one condition and drives its alarm's lifecycle.
func (e *Engine) setCond(d *devState, point string, det DetectorID, st Stage, v float64, unit string, textFn func() string, now time.Time) {
	if !finite(v) {
		v = 0 // an alarm's value goes into JSON and into drain signals: it is always a number
	}
	if st == StageNormal && d.nconds == 0 {
		return // nothing active on the device: nothing to clear (the hot path of a quiet room)
	}
	id := d.id(point, det)
	c := e.conds[id]
	if st == StageNormal {
		if c != nil {
			if e.holdOff(id, now) {
				return // chattering: the alarm stays as it was until the off-delay has passed
			}
			delete(e.conds, id)
			d.nconds--
			e.book.clear(id, v, now)
			e.collect()
		}
		return
	}
	if c == nil && st < StageCritical && e.holdOn(id, now) {
		return // chattering: the condition must hold its on-delay before the alarm comes back
	}
	text := textFn()
	if c == nil {
		// Its independence key (source) is set when the stage is assessed.
		c = &cond{id: id, device: d.info.Name, point: point, zone: d.info.Zone, detector: det, modality: det.info().Modality, raisedAt: now,
			module: d.info.Modules[point]}
		c.source = e.sourceOf(d, point, det) // restage judges it again; grouping needs it now
		e.conds[id] = c
		d.nconds++
		c.stage, c.value, c.unit, c.text = st, v, unit, text
		e.book.activate(id, c.raise(), now)
		e.activated(id, now)
		e.collect()
		return
	}
	e.seenOn(id)
	escalate := st > c.stage
	c.stage, c.value, c.unit, c.text = st, v, unit, text
	if escalate {
		e.book.escalate(id, c.raise(), now)
		e.collect()
	} else {
		e.book.update(id, c.raise())
	}
}

// Protocol raises, escalates, updates or (with StageNormal) clears an alarm that no detector
// owns: the drain protocol's (a consumer that did not acknowledge a drain signal in time), the HA
// pair's, state_dir's. It goes straight into the book, never through a condition: it has the
// whole ISA-18.2 lifecycle (annunciated, acknowledged, shelved, latched at stage 3 and above) and
// its stage is its priority, but it is never evidence of a fire, so no risk stage moves for it.
// Its id is "<source>.<kind>"; source is what it concerns ("cutover.<zone>.<consumer>").
func (e *Engine) Protocol(source, kind, zone string, st Stage, text string, now time.Time) {
	e.book.own(source+"."+kind, raise{device: source, zone: zone, detector: kind, stage: st, text: text}, now)
	e.collect()
}
