package alarms

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

// TestOneFailingDeviceIsOneAlarm: a rack all of whose points read invalid at once raises one
// device sensor fault naming its points (issue 22: 31 alarms, a flood by itself); a rack with one
// bad point still raises that point's own alarm; the device alarm clears when the rack reads again.
func TestOneFailingDeviceIsOneAlarm(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	poll := func(bad int) {
		var ss []sample.Sample
		for i := 0; i < 31; i++ {
			q, v := sample.Good, 25.0
			if i < bad {
				q, v = sample.Invalid, 0
			}
			ss = append(ss, sample.Sample{Device: "rack-1", Point: fmt.Sprintf("module_temp_%d", i+1), Role: "module_temperature", Value: v, Quality: q, At: r.now})
		}
		r.step(sample.Batch{Device: "rack-1", At: r.now, Samples: ss})
	}
	activations := func() []string {
		var ids []string
		for _, ev := range r.events {
			if ev.Cause == CauseActivate {
				ids = append(ids, ev.Alarm.ID)
			}
		}
		return ids
	}
	for i := 0; i < 10; i++ {
		r.quiet()
		poll(31)
		r.advance(time.Second)
	}
	if got := activations(); len(got) != 1 || got[0] != "rack-1.sensor_fault" {
		t.Fatalf("a rack of 31 invalid points raised %v, want the one device alarm", got)
	}
	var text string
	for _, a := range r.e.Alarms() {
		if a.ID == "rack-1.sensor_fault" {
			text = a.Text
		}
	}
	if !strings.Contains(text, "31 of 31 points") || !strings.Contains(text, "module_temp_1") {
		t.Errorf("device alarm text: %q", text)
	}
	r.events = nil
	poll(0)
	cleared := false
	for _, ev := range r.events {
		cleared = cleared || (ev.Alarm.ID == "rack-1.sensor_fault" && ev.Cause == CauseClear)
	}
	if !cleared {
		t.Errorf("the device alarm did not clear when the rack read again: %+v", r.events)
	}
	r.events = nil
	poll(1)
	if got := activations(); len(got) != 1 || got[0] != "rack-1.module_temp_1.sensor_fault" {
		t.Fatalf("one invalid point raised %v, want its own alarm", got)
	}
}
