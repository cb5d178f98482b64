package alarms

import "time"

// cond is an active detector condition; each is one alarm.
type cond struct {
	id, device, point, zone, detector string
	modality                          Modality
	stage                             Stage
	value                             float64
	unit, text                        string
	source                            string // independence key: signals with the same source are one sensor
}

func noText() string { return "" }

// constText is a text that needs no formatting.
func constText(s string) func() string { return func() string { return s } }

// setCond raises, updates or clears one condition and drives its alarm's lifecycle.
func (e *Engine) setCond(d *devState, point, det string, m Modality, st Stage, v float64, unit string, textFn func() string, now time.Time) {
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
			delete(e.conds, id)
			d.nconds--
			_ = e.transition(id, "clear", now, c, v)
		}
		return
	}
	text := textFn()
	if c == nil {
		// Its independence key (source) is set when the stage is assessed.
		c = &cond{id: id, device: d.info.Name, point: point, zone: d.info.Zone, detector: det, modality: m}
		e.conds[id] = c
		d.nconds++
		c.stage, c.value, c.unit, c.text = st, v, unit, text
		if !e.confirmRestoredActive(id, c, v, now) {
			_ = e.transition(id, "activate", now, c, v)
		}
		return
	}
	escalate := st > c.stage
	c.stage, c.value, c.unit, c.text = st, v, unit, text
	if escalate {
		_ = e.transition(id, "escalate", now, c, v)
	} else if a := e.alarms[id]; a != nil {
		a.Value, a.Stage, a.Text = v, st, text
	}
}

// confirmRestoredActive takes a condition that comes back for an alarm restored active (after
// a restart or a config reload): the alarm is the same one, still active, so it is not
// announced again; only a higher stage is, as an escalation. It says whether it took it.
func (e *Engine) confirmRestoredActive(id string, c *cond, v float64, now time.Time) bool {
	a := e.alarms[id]
	if _, restored := e.restored[id]; !restored || a == nil || !a.Active {
		return false
	}
	delete(e.restored, id)
	if c.stage > a.Stage {
		_ = e.transition(id, "escalate", now, c, v)
		return true
	}
	a.Value, a.Stage, a.Text = v, c.stage, c.text
	return true
}

// SetProtocolAlarm raises, escalates or (with StageNormal) clears an alarm that no detector owns:
// the drain protocol's, e.g. a consumer that did not acknowledge a drain signal in time. It has
// the whole ISA-18.2 lifecycle (annunciated, acknowledged, shelved, latched at stage 3 and above)
// and its stage is its priority; it is never evidence of a fire, so no risk stage moves for it.
// Its id is "<source>.<detector>"; source is what it concerns ("cutover.<zone>.<consumer>").
func (e *Engine) SetProtocolAlarm(source, detector, zone string, st Stage, text string, now time.Time) {
	id := source + "." + detector
	c := e.conds[id]
	switch {
	case st == StageNormal && c == nil:
		return
	case st == StageNormal:
		delete(e.conds, id)
		_ = e.transition(id, "clear", now, c, 0)
	case c == nil:
		c = &cond{id: id, device: source, zone: zone, detector: detector, modality: Protocol, stage: st, text: text}
		e.conds[id] = c
		if !e.confirmRestoredActive(id, c, 0, now) {
			_ = e.transition(id, "activate", now, c, 0)
		}
	default:
		escalate := st > c.stage
		c.stage, c.text = st, text
		if escalate {
			_ = e.transition(id, "escalate", now, c, 0)
		} else if a := e.alarms[id]; a != nil {
			a.Stage, a.Text = st, text
		}
	}
}
