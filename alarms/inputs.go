package alarms

import (
	"fmt"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

func (e *Engine) detect(d *devState, s sample.Sample, ps *pointState) {
	unit := ps.unit
	switch s.Role {
	case sample.CellTemperature, sample.ModuleTemperature:
		e.temperature(d, s, ps, unit)
	case sample.StringCurrent:
		d.currentA, d.currentAt = s.Value, s.At
	case sample.OffgasPPM:
		thr := e.th.OffgasWarnPPM
		rel := ps.baseline > 0 && s.Value >= e.th.OffgasBaselineMult*ps.baseline && s.Value >= 2
		on := s.Value >= thr || rel
		if ps.gasOn && !on && s.Value >= 0.8*thr {
			on = true // hysteresis: a decaying plume does not flap the alarm
		}
		if !on {
			if ps.baseline == 0 {
				ps.baseline = s.Value
			}
			ps.baseline += 0.01 * (s.Value - ps.baseline)
		}
		ps.gasOn = on
		e.level(d, s, on, Offgas, StageWarning, unit, func() string { return fmt.Sprintf("off-gas %.1f ppm (baseline %.1f ppm)", s.Value, ps.baseline) })
	case sample.COPPM:
		e.level(d, s, s.Value >= e.th.COWarnPPM, COHigh, StageWarning, unit, func() string { return fmt.Sprintf("CO %.0f ppm", s.Value) })
	case sample.H2PPM:
		lim := e.th.H2FireLFLFrac * e.th.H2LFLPPM
		e.level(d, s, s.Value >= lim, H2LFL, StageFire, unit, func() string {
			return fmt.Sprintf("H2 %.0f ppm, %.0f %% of its LFL", s.Value, 100*s.Value/e.th.H2LFLPPM)
		})
	case sample.Smoke:
		e.level(d, s, s.Value != 0, SmokeDetected, StageCritical, "", constText("smoke detected in the room"))
	case sample.Heat:
		e.level(d, s, s.Value != 0, HeatDetected, StageCritical, "", constText("heat detector in alarm"))
	case sample.SuppressionReleased:
		e.level(d, s, s.Value != 0, Suppression, StageCritical, "", constText("gas suppression released"))
	case sample.FireAlarm:
		e.level(d, s, s.Value != 0, FirePanel, StageFire, "", constText("fire panel in alarm"))
	case sample.BMSAlarm:
		e.level(d, s, s.Value != 0, BMSAlarmWord, StageWatch, "", func() string { return fmt.Sprintf("BMS alarm word 0x%04X", uint16(s.Value)) })
	}
}

func (e *Engine) level(d *devState, s sample.Sample, on bool, det DetectorID, st Stage, unit string, text func() string) {
	if !on {
		st = StageNormal
	}
	e.setCond(d, s.Point, det, st, s.Value, unit, text, s.At)
}
