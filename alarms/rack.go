package alarms

import (
	"fmt"
	"math"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

// stuckMove is how far a rack's median must move for a sensor that did not follow it to be stuck:
// a steady, quantised reading in a steady room is not a fault, however long it lasts.
var stuckMove = map[sample.Role]float64{sample.ModuleTemperature: 1.0, sample.CellVoltage: 0.02}

// stuck raises a sensor whose reading has not changed for StuckFor while its rack's median moved
// by stuckMove: a frozen ADC or a cached value, not a steady cell.
func (e *Engine) stuck(d *devState, now time.Time) {
	for _, role := range stuckRoles {
		rs := d.members(role)
		vals := d.scr.vals[:0]
		for _, p := range rs.ps {
			if p.hasPrev {
				vals = append(vals, p.last)
			}
		}
		d.scr.vals = vals
		if len(vals) < 3 {
			continue
		}
		med := d.median(vals)
		for i, p := range rs.ps {
			if !p.hasPrev {
				continue
			}
			if p.lastChange == toNanos(now) {
				p.medianAtChng = med
			}
			// Over stuck_for, and over at least frozenPolls polls: a reading polled every 10 minutes
			// that happens to repeat once while a discharge moves its rack has not stuck.
			stuck := now.Sub(p.lastChangeAt()) >= max(e.th.StuckFor, frozenPolls*d.info.Interval) && math.Abs(med-p.medianAtChng) >= stuckMove[role]
			if stuck == p.stuck {
				continue
			}
			n := rs.names[i]
			p.stuck = stuck
			st := StageNormal
			if stuck {
				st = StageWatch
				e.clearDetectors(d, n, now)
			}
			e.setCond(d, n, Stuck, st, p.last, p.unit, func() string {
				return fmt.Sprintf("%s.%s has read %g for %s while its rack moved from %g to %g; excluded from detection",
					d.info.Name, n, p.last, now.Sub(p.lastChangeAt()).Round(time.Second), round3(p.medianAtChng), round3(med))
			}, now)
		}
	}
}

// stuckRoles are the roles stuck looks at.
var stuckRoles = []sample.Role{sample.ModuleTemperature, sample.CellVoltage}

// dischargeCurrentA: above this string current a rack warms from its own load, not a fault.
const dischargeCurrentA = 20

// peers compares each module temperature with the median of its rack.
func (e *Engine) peers(d *devState, now time.Time) {
	names, vals, pss := d.goodByRole(sample.ModuleTemperature)
	if len(vals) < 3 {
		return
	}
	med := d.median(vals)
	dev := d.scr.med[:0]
	for _, v := range vals {
		dev = append(dev, math.Abs(v-med))
	}
	sigma := math.Max(1.4826*medianInPlace(dev), e.th.PeerSigmaFloorC)
	for i, n := range names {
		ps := pss[i]
		delta := vals[i] - med
		z := delta / sigma
		ps.peerDelta, ps.peerKnown = delta, true
		lvl := StageNormal
		switch {
		case z < e.th.PeerZMin:
		case delta >= e.th.PeerDeltaWarnC:
			lvl = StageWarning
		case delta >= e.th.PeerDeltaWatchC:
			lvl = StageWatch
		}
		thr := e.th.PeerDeltaWatchC
		if ps.peerLevel == StageWarning {
			thr = e.th.PeerDeltaWarnC
		}
		if ps.peerLevel > lvl && delta >= thr-e.th.TempDeadbandC {
			lvl = ps.peerLevel
		}
		if !ps.lastJumpAt.IsZero() && now.Sub(ps.lastJumpAt) < e.th.SettleFor && lvl > ps.peerLevel {
			lvl = ps.peerLevel
		}
		ps.peerLevel = lvl
		e.setCond(d, n, PeerDelta, lvl, delta, "°C", func() string {
			return fmt.Sprintf("%s.%s %.1f °C above the rack median %.1f °C (z %.1f)", d.info.Name, n, delta, med, z)
		}, now)
	}
}

// voltages: deviation from the rack's median at rest, and a collapse (with heat: runaway).
func (e *Engine) voltages(d *devState, now time.Time) {
	names, vals, _ := d.goodByRole(sample.CellVoltage)
	if len(vals) < 3 {
		return
	}
	med := d.median(vals)
	hot := false
	for _, c := range e.conds {
		if c.device == d.info.Name && c.modality == Temperature && c.stage >= StageWatch {
			hot = true
		}
	}
	rest := math.Abs(d.currentA) < dischargeCurrentA
	for i, n := range names {
		v := vals[i]
		collapse := v < (1-e.th.VoltageDropFrac)*med
		lvl := StageNormal
		text := ""
		switch {
		case collapse && hot:
			lvl, text = StageFire, fmt.Sprintf("%s.%s collapsed to %.2f V (median %.2f V) with heat", d.info.Name, n, v, med)
		case collapse:
			lvl, text = StageWatch, fmt.Sprintf("%s.%s collapsed to %.2f V (median %.2f V)", d.info.Name, n, v, med)
		case rest && math.Abs(v-med)*1000 >= e.th.CellVDeltaWatchMV:
			lvl, text = StageWatch, fmt.Sprintf("%s.%s %.0f mV from the rack median at rest", d.info.Name, n, (v-med)*1000)
		}
		e.setCond(d, n, CellVoltageDev, lvl, v, "V", func() string { return text }, now)
	}
}
