package alarms

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// TestNonFiniteReadingsNeverReachTheEngine: a NaN, an infinity or an absurd magnitude that
// reaches Step as a good reading (whatever fed it) is a sensor fault, never a number: no alarm
// carries it, every output encodes as JSON, and a real fire on the same rack still stages.
func TestNonFiniteReadingsNeverReachTheEngine(t *testing.T) {
	t.Parallel()
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), 1e300, -1e300} {
		r := newRig(t)
		for i := 0; i < 30; i++ {
			r.quiet()
			r.rack("rack-1", 2, v)
			r.tick()
			r.advance(time.Second)
		}
		faults := 0
		for _, ev := range r.events {
			if ev.Alarm.Detector == "sensor_fault" && ev.Alarm.Point == "module_temp_3" {
				faults++
			}
			if math.IsNaN(ev.Alarm.Value) || math.IsInf(ev.Alarm.Value, 0) {
				t.Errorf("%g: alarm %s carries %g", v, ev.Alarm.ID, ev.Alarm.Value)
			}
			if ev.Alarm.Stage > StageWatch {
				t.Errorf("%g: one bad reading raised %s to %s", v, ev.Alarm.ID, ev.Alarm.Stage)
			}
		}
		if faults == 0 {
			t.Errorf("%g: no sensor fault on module_temp_3: %+v", v, r.events)
		}
		for _, rc := range r.risk {
			if _, err := json.Marshal(rc); err != nil {
				t.Errorf("%g: risk change does not encode: %v", v, err)
			}
		}
		if _, err := json.Marshal(r.events); err != nil || strings.Contains(mustJSON(t, r.events), "NaN") {
			t.Errorf("%g: events do not encode: %v", v, err)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
