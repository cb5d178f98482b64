package alarms

import (
	"fmt"
	"strings"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

// deviceFaultMin is how many points of a device must read nothing plausible at once (and at
// least half of those the detectors read) for it to be one device fault.
const deviceFaultMin = 4

// badPoints counts the points of a batch the detectors read (those with a role) that read
// nothing plausible, and how many such points the batch has. It is on the hot path: no lookups.
func (e *Engine) badPoints(b sample.Batch) (bad, named int) {
	for _, s := range b.Samples {
		if s.Quality == sample.CommLost || s.Role == "" {
			continue
		}
		named++
		if s.Quality == sample.Invalid || s.Quality == sample.OutOfRange || (s.Quality == sample.Good && s.Text == "" && !finite(s.Value)) {
			bad++
		}
	}
	return bad, named
}

// deviceHealth raises (or clears) the one sensor fault of a device most of whose points read
// nothing plausible.
func (e *Engine) deviceHealth(d *devState, b sample.Batch, bad, named int, whole bool) {
	st := StageNormal
	if whole {
		st = StageWatch
	}
	e.setCond(d, "", SensorFault, st, float64(bad), "points", func() string {
		var names []string
		for _, s := range b.Samples {
			if (s.Quality == sample.Invalid || s.Quality == sample.OutOfRange) && len(names) < 8 {
				names = append(names, s.Point)
			}
		}
		more := ""
		if bad > len(names) {
			more = fmt.Sprintf(" and %d more", bad-len(names))
		}
		return fmt.Sprintf("%s: %d of %d points read no plausible value (%s%s); one device fault, not one alarm each",
			d.info.Name, bad, named, strings.Join(names, ", "), more)
	}, b.At)
}

// sensorHealth raises a sensor fault for a point that reads a sentinel or an implausible value;
// when the whole device is at fault (deviceHealth), the point's own alarm stays quiet.
func (e *Engine) sensorHealth(d *devState, s sample.Sample, ps *pointState, wholeDevice bool) {
	bad := s.Quality == sample.Invalid || s.Quality == sample.OutOfRange
	st := StageNormal
	if bad {
		st = StageWatch
		ps.good = false
	}
	if wholeDevice {
		st = StageNormal
	}
	if st == StageNormal && d.nconds == 0 {
		return // the hot path: nothing to raise, nothing to clear
	}
	e.setCond(d, s.Point, SensorFault, st, s.Value, ps.unit, func() string {
		return fmt.Sprintf("%s.%s reads no plausible value (%s)", d.info.Name, s.Point, s.Quality)
	}, s.At)
}
