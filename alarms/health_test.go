package alarms

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

func TestFailedPollsAreNamedAsSuch(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 6; i++ {
		r.quiet()
		r.rack("rack-1", -1, 0)
		r.step(sample.Batch{Device: "rack-1", At: r.now, Err: errors.New("i/o timeout")})
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageNormal {
		t.Fatalf("a rack that answers between failures staged %v", r.zone())
	}
	for i := 0; i < 6; i++ {
		r.quiet()
		r.step(sample.Batch{Device: "rack-1", At: r.now, Err: errors.New("i/o timeout")})
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageWatch || !strings.Contains(r.risk[len(r.risk)-1].Reason, "rack-1 has not answered for 4s: i/o timeout") {
		t.Fatalf("zone %v, reason %q", r.zone(), r.risk[len(r.risk)-1].Reason)
	}
}

func TestBadSensorIsAFaultNotAFire(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 20; i++ {
		r.quiet()
		r.one("rack-1", "cell_temp_max", "cell_temperature", 6553.5, sample.OutOfRange)
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageWatch {
		t.Fatalf("zone %v, want watch", r.zone())
	}
	found := false
	for _, a := range r.e.Alarms() {
		found = found || a.Detector == "sensor_fault"
	}
	if !found {
		t.Fatal("no sensor_fault alarm")
	}
}

func TestFlappingSensorIsExcluded(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 180; i++ { // a loose connector: 25 ↔ 58 °C every 5 s for 3 minutes
		v := 25.0
		if (i/5)%2 == 1 {
			v = 58
		}
		r.quiet()
		r.rack("rack-1", 6, v)
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() > StageWatch {
		t.Fatalf("a flapping sensor staged the zone to %v", r.zone())
	}
	found := false
	for _, a := range r.e.Alarms() {
		found = found || a.ID == "rack-1.module_temp_7.flapping"
	}
	if !found {
		t.Fatalf("no flapping alarm among %+v", r.e.Alarms())
	}
}

func TestSteadyQuantisedSensorIsNotStuck(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 1800; i++ { // half an hour of a steady room: one sensor never leaves its bin
		var ss, other []sample.Sample
		for m := 0; m < 8; m++ {
			v := 23 + 0.1*float64((i+m)%3-1)
			// rack-2 is live too: its readings wander in their bins (a rack whose every reading
			// stood still while rack-1's moved would be frozen: testdata/frozen.txt)
			other = append(other, sample.Sample{Device: "rack-2", Point: fmt.Sprintf("module_temp_%d", m+1), Role: "module_temperature", Value: v, Quality: sample.Good, At: r.now})
			if m == 2 {
				v = 23
			}
			ss = append(ss, sample.Sample{Device: "rack-1", Point: fmt.Sprintf("module_temp_%d", m+1), Role: "module_temperature", Value: v, Quality: sample.Good, At: r.now})
		}
		r.one("gas", "offgas", "offgas_ppm", 0.4, sample.Good)
		r.one("panel", "smoke", "smoke", 0, sample.Good)
		r.step(sample.Batch{Device: "rack-2", At: r.now, Samples: other})
		r.step(sample.Batch{Device: "rack-1", At: r.now, Samples: ss})
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageNormal {
		t.Fatalf("a steady sensor in a steady room staged the zone to %v: %+v", r.zone(), r.e.Alarms())
	}
}

func TestStuckSensorIsRaised(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 400; i++ {
		var ss []sample.Sample
		for m := 0; m < 8; m++ {
			v := 25 + 0.1*float64(i%4) // peers wander with noise, and warm 3 °C over the run
			v += 3 * float64(i) / 400
			if m == 3 {
				v = 25.3 // frozen
			}
			ss = append(ss, sample.Sample{Device: "rack-1", Point: fmt.Sprintf("module_temp_%d", m+1), Role: "module_temperature", Value: v, Quality: sample.Good, At: r.now})
		}
		r.quiet()
		r.step(sample.Batch{Device: "rack-1", At: r.now, Samples: ss})
		r.tick()
		r.advance(time.Second)
	}
	var stuck *Alarm
	for _, a := range r.e.Alarms() {
		if a.ID == "rack-1.module_temp_4.stuck" {
			stuck = &a
		}
	}
	if stuck == nil || !stuck.Active {
		t.Fatalf("stuck sensor not raised: %+v", r.e.Alarms())
	}
	if r.zone() != StageWatch {
		t.Fatalf("zone %v, want watch", r.zone())
	}
}
