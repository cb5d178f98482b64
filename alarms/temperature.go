package alarms

import (
	"fmt"
	"math"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

// plausibility tracks steps and changes of an analogue reading and raises a flapping sensor.
func (e *Engine) plausibility(d *devState, s sample.Sample, ps *pointState) {
	if !ps.hasPrev || s.Value != ps.last {
		ps.lastChange = toNanos(s.At)
		if ps.hasPrev {
			ps.moved = ps.lastChange
		}
	}
	if !s.Role.RackTemperature() {
		return
	}
	cut := 0
	for cut < len(ps.jumps) && s.At.Sub(ps.jumps[cut].t) > e.th.FlapWindow {
		cut++
	}
	ps.jumps = ps.jumps[cut:]
	if ps.hasPrev && math.Abs(s.Value-ps.last) >= e.th.MaxStepC {
		j := jump{s.At, s.Value > ps.last}
		// A step that goes on the way the last one went is one climb (a runaway seen by a slowly
		// polled BMS rises 15 °C a poll), not a new spike: the reading settles from the climb's
		// first step, so a fast real rise is not held back for ever.
		if n := len(ps.jumps); n == 0 || ps.jumps[n-1].up != j.up {
			ps.lastJumpAt = s.At
		}
		ps.jumps = append(ps.jumps, j)
	}
	// A runaway rises in steps too, but in one direction: flapping needs steps both ways.
	flapping := len(ps.jumps) >= e.th.FlapJumps && bothWays(ps.jumps)
	if flapping {
		_, runaway := sustainedRise(ps.hist, s.At, e.th.RunawayFor, e.th.RunawayCPerS)
		flapping = !runaway
	}
	if flapping != ps.flapping {
		ps.flapping = flapping
		st := StageNormal
		if flapping {
			st = StageWatch
		}
		e.setCond(d, s.Point, Flapping, st, s.Value, ps.unit, func() string {
			return fmt.Sprintf("%s.%s is flapping: %d steps over %.0f °C within %s; excluded from detection", d.info.Name, s.Point, len(ps.jumps), e.th.MaxStepC, e.th.FlapWindow)
		}, s.At)
	}
}

// bothWays says the steps went up and down: a flapping sensor, not a climb.
func bothWays(js []jump) bool {
	for _, j := range js[1:] {
		if j.up != js[0].up {
			return true
		}
	}
	return false
}

// clearDetectors clears every process condition of a point that is known bad.
func (e *Engine) clearDetectors(d *devState, point string, now time.Time) {
	for _, det := range excludedClears {
		e.setCond(d, point, det, StageNormal, 0, "", noText, now)
	}
}

func (e *Engine) temperature(d *devState, s sample.Sample, ps *pointState, unit string) {
	v, th := s.Value, e.th
	lvl := StageNormal
	switch {
	case v >= th.CellTempWarnC:
		lvl = StageWarning
	case v >= th.CellTempWatchC:
		lvl = StageWatch
	}
	thr := th.CellTempWatchC
	if ps.tempLevel == StageWarning {
		thr = th.CellTempWarnC
	}
	if ps.tempLevel > lvl && ps.tempLevel <= StageWarning && v >= thr-th.TempDeadbandC {
		lvl = ps.tempLevel
	}
	// After an implausible step the reading must settle before it may raise anything.
	unsettled := !ps.lastJumpAt.IsZero() && s.At.Sub(ps.lastJumpAt) < th.SettleFor
	if unsettled && lvl > ps.tempLevel {
		lvl = ps.tempLevel
	}
	slope, n := ps.fit.slopePerMin()
	text := func() string { return fmt.Sprintf("%s.%s at %.1f °C", d.info.Name, s.Point, v) }
	// Critical: hot and still rising over the window, which a spike or a stuck sensor is not, and
	// confirmed by a second sensor that moves with it (agreement.go): a reading that climbs alone
	// is one sensor, at most a warning, whatever its value or slope.
	if !unsettled && v >= th.CellTempCritC && n >= trendMin && slope > 0.1 && persisted(ps.hist, 3, th.CellTempWarnC) {
		if why, ok := e.confirmation(d, ps); ok {
			lvl = StageCritical
			text = func() string {
				return fmt.Sprintf("%s.%s at %.1f °C, rising %.1f °C/min; %s", d.info.Name, s.Point, v, slope, why)
			}
		} else {
			text = func() string {
				return fmt.Sprintf("%s.%s at %.1f °C, rising %.1f °C/min; no other sensor moves with it", d.info.Name, s.Point, v, slope)
			}
		}
	}
	if lvl < StageCritical {
		ps.tempLevel = lvl
	} else {
		ps.tempLevel = StageWarning
	}
	e.setCond(d, s.Point, TempHigh, lvl, v, unit, text, s.At)

	// Sustained rate of rise, outside discharge.
	rising := n >= trendMin && slope >= th.RiseWatchCPerMin && math.Abs(d.currentA) < dischargeCurrentA
	rl := StageNormal
	if heldFor(rising, &ps.riseSince, s.At, th.RiseWatchFor) {
		rl = StageWatch
	}
	e.setCond(d, s.Point, Rise, rl, slope, "°C/min", func() string { return fmt.Sprintf("%s.%s rising %.1f °C/min", d.info.Name, s.Point, slope) }, s.At)

	// Runaway: every step of the last RunawayFor rose at least RunawayCPerS.
	rs := StageNormal
	if r, ok := sustainedRise(ps.hist, s.At, th.RunawayFor, th.RunawayCPerS); ok {
		rs = StageFire
		e.setCond(d, s.Point, Runaway, rs, r, "°C/s", func() string { return fmt.Sprintf("%s.%s thermal runaway: %.1f °C/s", d.info.Name, s.Point, r) }, s.At)
	} else {
		e.setCond(d, s.Point, Runaway, rs, 0, "°C/s", noText, s.At)
	}
}
