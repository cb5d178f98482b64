package alarms

import (
	"fmt"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

// BenchmarkStepRack feeds one rack poll (16 NTCs, 8 cell voltages, current) per op, one second
// apart, and reports samples per second through the engine.
func BenchmarkStepRack(b *testing.B) {
	e := New(Topology{Zones: []string{"z"}, Devices: []DeviceInfo{{Name: "r", Zone: "z", Interval: time.Second}}}, DefaultThresholds())
	var ss []sample.Sample
	for i := 0; i < 16; i++ {
		ss = append(ss, sample.Sample{Device: "r", Point: fmt.Sprintf("module_temp_%d", i+1), Role: "module_temperature", Value: 25, Quality: sample.Good})
	}
	for i := 0; i < 8; i++ {
		ss = append(ss, sample.Sample{Device: "r", Point: fmt.Sprintf("cell_v_min_%d", i+1), Role: "cell_voltage", Value: 4.1, Quality: sample.Good})
	}
	ss = append(ss, sample.Sample{Device: "r", Point: "string_current", Role: "string_current", Value: 0, Quality: sample.Good})
	at := t0
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		at = at.Add(time.Second)
		for i := range ss {
			ss[i].At = at
			ss[i].Value += 0.001
		}
		e.Step(sample.Batch{Device: "r", At: at, Samples: ss})
		e.Advance()
		n += len(ss)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "samples/s")
}
