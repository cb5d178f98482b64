package alarms

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

// leakRack is a rack of 8 modules whose BMS gives each module's lowest cell voltage, floating;
// volts gives module m's reading at elapsed time el, before noise and the BMS's 1 mV rounding.
type leakRack struct {
	e     *Engine
	start time.Time
	rng   *rand.Rand
	noise float64 // V, one σ
}

func newLeakRack(t *testing.T) *leakRack {
	t.Helper()
	modules := map[string]int{}
	units := map[string]string{"string_current": "A"}
	for m := 1; m <= 8; m++ {
		modules[fmt.Sprintf("cell_v_min_%d", m)] = m
		units[fmt.Sprintf("cell_v_min_%d", m)] = "V"
	}
	topo := Topology{Zones: []string{"z"}, Devices: []DeviceInfo{{Name: "rack-1", Zone: "z", Kind: "rack", Interval: 10 * time.Minute,
		Units: units, Modules: modules, Battery: &Battery{CapacityAh: 68, OCVSlopeMVPerPct: 10}}}}
	th := DefaultThresholds()
	th.NoDataGrace = 8 * time.Hour
	return &leakRack{e: New(topo, th), start: time.Date(2022, 10, 15, 0, 0, 0, 0, time.UTC), rng: rand.New(rand.NewPCG(7, 7)), noise: 0.001}
}

// run polls the rack every 10 minutes from..to (elapsed), with current(el) amperes.
func (r *leakRack) run(from, to time.Duration, volts func(m int, el time.Duration) float64, current func(el time.Duration) float64) {
	for el := from; el < to; el += 10 * time.Minute {
		at := r.start.Add(el)
		b := sample.Batch{Device: "rack-1", At: at}
		b.Samples = append(b.Samples, sample.Sample{Point: "string_current", Role: sample.StringCurrent, Value: current(el), Quality: sample.Good, At: at})
		for m := 1; m <= 8; m++ {
			v := math.Round((volts(m, el)+r.rng.NormFloat64()*r.noise)*1000) / 1000
			b.Samples = append(b.Samples, sample.Sample{Point: fmt.Sprintf("cell_v_min_%d", m), Role: sample.CellVoltage, Value: v, Quality: sample.Good, At: at})
		}
		r.e.Step(b)
		r.e.Tick(at)
		r.e.Advance()
	}
}

func (r *leakRack) leak() *Alarm {
	for _, a := range r.e.Alarms() {
		if a.Detector == string(SelfDischarge) {
			return &a
		}
	}
	return nil
}

func float(el time.Duration) float64 { return 0 }

// TestSelfDischargeCore: a module that falls 3.5 mV/day against the others (10 mA on 68 Ah at
// 10 mV/%) is raised within two days of the fall starting, valued near 10 mA, on its first
// point; a module 15 mV low all along, the whole rack rising 20 mV at once, a failed poll now and
// then and noisy 1 mV readings raise nothing.
func TestSelfDischargeCore(t *testing.T) {
	t.Parallel()
	base := func(m int, el time.Duration) float64 {
		v := 4.1 + 0.002*float64(m%3) // modules a little apart, as they are
		if m == 6 {
			v -= 0.015 // a calibration offset
		}
		if el >= 60*time.Hour {
			v += 0.020 // a float change: every module together
		}
		return v
	}
	quiet := newLeakRack(t)
	quiet.run(0, 7*24*time.Hour, base, float)
	if a := quiet.leak(); a != nil {
		t.Fatalf("a week of float with an offset module and a float change raised %s: %s", a.ID, a.Text)
	}
	falling := func(m int, el time.Duration) float64 {
		v := base(m, el)
		if m == 3 && el > 24*time.Hour {
			v -= 0.0035 * (el - 24*time.Hour).Hours() / 24
		}
		return v
	}
	r := newLeakRack(t)
	var raisedAt time.Duration
	for el := time.Duration(0); el < 5*24*time.Hour && raisedAt == 0; el += time.Hour {
		r.run(el, el+time.Hour, falling, float)
		if r.leak() != nil {
			raisedAt = el + time.Hour
		}
	}
	a := r.leak()
	if a == nil {
		t.Fatal("a module falling 3.5 mV/day for four days was never raised")
	}
	if a.ID != "rack-1.cell_v_min_3.self_discharge" || a.Stage != StageWatch {
		t.Errorf("raised %s at stage %d, want rack-1.cell_v_min_3.self_discharge at 1", a.ID, a.Stage)
	}
	if raisedAt > 72*time.Hour {
		t.Errorf("raised %s after the fall began, want within 2 days", raisedAt-24*time.Hour)
	}
	r.run(raisedAt, raisedAt+48*time.Hour, falling, float)
	a = r.leak()
	if a == nil || a.Value < 7 || a.Value > 13 || !strings.Contains(a.Text, "module 3: leaking about") {
		t.Fatalf("two days on: %+v, want about 10 mA", a)
	}
	t.Logf("raised %s after the fall began: %s", raisedAt-24*time.Hour, a.Text)
}

// TestSelfDischargeRestGate: only rest counts. The same fall with the rack discharging and
// recharging every 12 hours (an hour outside the float band each time) is judged only on the
// settled hours in between: found later, not on the moves of the discharges, and a batch without
// a current reading (a failed poll) neither rests nor breaks the rest.
func TestSelfDischargeRestGate(t *testing.T) {
	t.Parallel()
	cycling := func(el time.Duration) float64 {
		if h := math.Mod(el.Hours(), 12); h < 1 {
			return 40 // a discharge, then its recharge
		}
		return 0
	}
	// While it discharges every module reads 60 mV lower, and module 5 10 mV lower still (its
	// OCV slope at a lower charge): that must not look like a leak.
	moves := func(m int, el time.Duration) float64 {
		v := 4.1
		if cycling(el) != 0 {
			v -= 0.060
			if m == 5 {
				v -= 0.010
			}
		}
		return v
	}
	r := newLeakRack(t)
	r.run(0, 5*24*time.Hour, moves, cycling)
	if a := r.leak(); a != nil {
		t.Fatalf("discharges raised %s: %s", a.ID, a.Text)
	}
	// A failed poll every hour: no current reading in the batch.
	g := newLeakRack(t)
	for el := time.Duration(0); el < 4*24*time.Hour; el += time.Hour {
		g.run(el, el+50*time.Minute, func(m int, el time.Duration) float64 {
			v := 4.1
			if m == 2 && el > 12*time.Hour {
				v -= 0.005 * (el - 12*time.Hour).Hours() / 24
			}
			return v
		}, float)
		g.e.Step(sample.Batch{Device: "rack-1", At: g.start.Add(el + 50*time.Minute), Err: fmt.Errorf("timeout")})
	}
	if a := g.leak(); a == nil || a.ID != "rack-1.cell_v_min_2.self_discharge" {
		t.Fatalf("a failed poll an hour must not stop the rest from counting: %+v", a)
	}
}

// TestSelfDischargeHistoryRoundTrip: the history survives SelfDischargeState and
// RestoreSelfDischarge exactly, and a leak found before is raised again at the first reading
// after the restore.
func TestSelfDischargeHistoryRoundTrip(t *testing.T) {
	t.Parallel()
	falling := func(m int, el time.Duration) float64 {
		if m == 4 {
			return 4.1 - 0.005*el.Hours()/24
		}
		return 4.1
	}
	r := newLeakRack(t)
	r.run(0, 4*24*time.Hour, falling, float)
	if r.leak() == nil {
		t.Fatal("no leak to restore")
	}
	b := r.e.SelfDischargeState()
	again := newLeakRack(t)
	at := r.start.Add(4 * 24 * time.Hour)
	if err := again.e.RestoreSelfDischarge(b, at); err != nil {
		t.Fatal(err)
	}
	if got := again.e.SelfDischargeState(); string(got) != string(b) {
		t.Fatalf("round trip changed the history (%d bytes, %d back)", len(b), len(got))
	}
	again.run(4*24*time.Hour, 4*24*time.Hour+10*time.Minute, falling, float)
	if a := again.leak(); a == nil || a.ID != "rack-1.cell_v_min_4.self_discharge" {
		t.Fatalf("after the restore the leak was not raised at the first reading: %+v", a)
	}
	if err := again.e.RestoreSelfDischarge(b[:len(b)-1], at); err == nil || !strings.Contains(err.Error(), "ends early") {
		t.Errorf("a truncated history: %v", err)
	}
}

// TestSelfDischargeNoisyBMS: two weeks of a BMS whose readings scatter 3 mV (three counts) around
// a steady rack raise nothing: the hourly means and the robust trend, not single readings.
func TestSelfDischargeNoisyBMS(t *testing.T) {
	t.Parallel()
	r := newLeakRack(t)
	r.noise = 0.003
	r.run(0, 14*24*time.Hour, func(m int, el time.Duration) float64 { return 4.1 - 0.001*float64(m) }, float)
	if a := r.leak(); a != nil {
		t.Fatalf("noise raised %s: %s", a.ID, a.Text)
	}
}

// TestSelfDischargeHistorySize: a room of 40 racks of 16 modules, 30 days of hours kept
// (self_discharge_retain 720h), is under a megabyte on disk.
func TestSelfDischargeHistorySize(t *testing.T) {
	t.Parallel()
	var topo Topology
	for r := 1; r <= 40; r++ {
		topo.Devices = append(topo.Devices, DeviceInfo{Name: fmt.Sprintf("rack-%02d", r), Battery: &Battery{CapacityAh: 68, OCVSlopeMVPerPct: 10}})
	}
	th := DefaultThresholds()
	th.SelfDischargeRetain = 720 * time.Hour
	e := New(topo, th)
	for _, d := range e.devices {
		d.sd = &sdState{byName: map[string]*sdChan{}, hour: 500000}
		for m := 1; m <= 16; m++ {
			c := &sdChan{point: fmt.Sprintf("cell_v_min_%d", m), module: m}
			for h := int64(0); h < 800; h++ {
				c.put(500000-800+h, float32(h%7)-3, 720)
			}
			d.sd.chans = append(d.sd.chans, c)
		}
	}
	b := e.SelfDischargeState()
	t.Logf("40 racks × 16 modules × 720 hours: %d bytes", len(b))
	if len(b) > 1<<20 {
		t.Errorf("%d bytes: over a megabyte", len(b))
	}
	if n := len(e.devices["rack-01"].sd.chans[0].hist); n != 720 {
		t.Errorf("a channel keeps %d hours, want the 720 retained", n)
	}
}
