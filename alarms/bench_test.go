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

// BenchmarkStepRoom is the engine's share of the daemon benchmark: a room of 500 racks of 200
// points (string voltage, current, SoC, a cell temperature, 8 module temperatures, 128 cell
// voltages on 8 modules, 60 plain registers: the map of cmd/firebreak-sim's BenchmarkDaemon500x200)
// polled once a second in turn, every reading a quiet float with sensor noise. One op is one rack
// poll; it reports samples/s and, with -benchmem, the allocations of one poll.
func BenchmarkStepRoom(b *testing.B) {
	const racks = 500
	topo := Topology{Zones: []string{"z"}}
	var names []string
	var roles []sample.Role
	info := DeviceInfo{Zone: "z", Kind: "bms-200", Interval: time.Second, Modules: map[string]int{}, Blocks: map[string]int{}}
	add := func(name string, role sample.Role, module int) {
		info.Blocks[name] = len(names) / 125
		if module > 0 {
			info.Modules[name] = module
		}
		names, roles = append(names, name), append(roles, role)
	}
	add("string_voltage", "string_voltage", 0)
	add("string_current", "string_current", 0)
	add("soc", "soc", 0)
	add("cell_temp_max", "cell_temperature", 0)
	for m := 1; m <= 8; m++ {
		add(fmt.Sprintf("module_temp_%d", m), "module_temperature", m)
	}
	for c := 0; c < 128; c++ {
		add(fmt.Sprintf("cell_v_%d", c+1), "cell_voltage", c/16+1)
	}
	for i := 0; i < 60; i++ {
		add(fmt.Sprintf("aux_%d", i+1), "", 0)
	}
	batches := make([]sample.Batch, racks)
	for r := range batches {
		di := info
		di.Name = fmt.Sprintf("rack-%03d", r+1)
		topo.Devices = append(topo.Devices, di)
		ss := make([]sample.Sample, len(names))
		for i := range ss {
			ss[i] = sample.Sample{Device: di.Name, Point: names[i], Role: roles[i], Quality: sample.Good}
		}
		batches[r] = sample.Batch{Device: di.Name, Samples: ss}
	}
	e := New(topo, DefaultThresholds())
	rng := uint64(1)
	noise := func() float64 { // xorshift: ±0.5 of a unit, the same sequence every run
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		return float64(rng%1000)/1000 - 0.5
	}
	poll := func(r int, at time.Time) {
		bt := &batches[r]
		bt.At = at
		for i := range bt.Samples {
			s := &bt.Samples[i]
			s.At = at
			switch s.Role {
			case "string_voltage":
				s.Value = 844.8 + noise()*0.2
			case "string_current":
				s.Value = noise() * 0.2
			case "soc":
				s.Value = 100
			case "cell_temperature", "module_temperature":
				s.Value = 25 + noise()*0.2
			case "cell_voltage":
				s.Value = 3.3 + noise()*0.002
			default:
				s.Value = float64(i)
			}
		}
		e.Step(*bt)
		e.Advance()
	}
	// Ten minutes of polls first: baselines set, histories full, as in a daemon that has run.
	at := t0
	for s := 0; s < 600; s++ {
		at = at.Add(time.Second)
		for r := range batches {
			poll(r, at.Add(time.Duration(r)*time.Second/racks))
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	n, r := 0, 0
	for b.Loop() {
		poll(r, at.Add(time.Duration(r)*time.Second/racks))
		n += len(names)
		if r++; r == racks {
			r, at = 0, at.Add(time.Second)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "samples/s")
}
