package alarms

import (
	"fmt"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

func (e *Engine) detect(d *devState, s sample.Sample, ps *pointState) {
	unit := d.info.Units[s.Point]
	switch s.Role {
	case "cell_temperature", "module_temperature":
		e.temperature(d, s, ps, unit)
	case "string_current":
		d.currentA = s.Value
	case "offgas_ppm":
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
		e.level(d, s, on, "offgas", Gas, StageWarning, unit, func() string { return fmt.Sprintf("off-gas %.1f ppm (baseline %.1f ppm)", s.Value, ps.baseline) })
	case "co_ppm":
		e.level(d, s, s.Value >= e.th.COWarnPPM, "co_high", Gas, StageWarning, unit, func() string { return fmt.Sprintf("CO %.0f ppm", s.Value) })
	case "h2_ppm":
		lim := e.th.H2FireLFLFrac * e.th.H2LFLPPM
		e.level(d, s, s.Value >= lim, "h2_lfl", Gas, StageFire, unit, func() string {
			return fmt.Sprintf("H2 %.0f ppm, %.0f %% of its LFL", s.Value, 100*s.Value/e.th.H2LFLPPM)
		})
	case "smoke":
		e.level(d, s, s.Value != 0, "smoke", Smoke, StageCritical, "", constText("smoke detected in the room"))
	case "heat":
		e.level(d, s, s.Value != 0, "heat", Smoke, StageCritical, "", constText("heat detector in alarm"))
	case "suppression_released":
		e.level(d, s, s.Value != 0, "suppression_released", Fire, StageCritical, "", constText("gas suppression released"))
	case "fire_alarm":
		e.level(d, s, s.Value != 0, "fire_alarm", Fire, StageFire, "", constText("fire panel in alarm"))
	case "bms_alarm":
		e.level(d, s, s.Value != 0, "bms_alarm", BMS, StageWatch, "", func() string { return fmt.Sprintf("BMS alarm word 0x%04X", uint16(s.Value)) })
	}
}

func (e *Engine) level(d *devState, s sample.Sample, on bool, det string, m Modality, st Stage, unit string, text func() string) {
	if !on {
		st = StageNormal
	}
	e.setCond(d, s.Point, det, m, st, s.Value, unit, text, s.At)
}
