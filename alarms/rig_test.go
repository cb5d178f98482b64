package alarms

import (
	"fmt"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

var t0 = time.Date(2022, 10, 15, 15, 0, 0, 0, time.UTC)

func topo() Topology {
	return Topology{
		Zones: []string{"z"},
		Devices: []DeviceInfo{
			{Name: "rack-1", Zone: "z", Interval: time.Second},
			{Name: "rack-2", Zone: "z", Interval: time.Second},
			{Name: "gas", Zone: "z", Interval: time.Second},
			{Name: "panel", Zone: "z", Interval: time.Second},
		},
	}
}

// rig feeds a scripted room to an engine, one second per step, collecting everything it emits.
type rig struct {
	t      *testing.T
	e      *Engine
	now    time.Time
	risk   []RiskChange
	events []AlarmEvent
}

func newRig(t *testing.T) *rig {
	return &rig{t: t, e: New(topo(), DefaultThresholds()), now: t0}
}

// rack sends one poll of a rack: 8 module temperatures, the hot one (index hot) at hotC.
func (r *rig) rack(name string, hot int, hotC float64) {
	var ss []sample.Sample
	for i := 0; i < 8; i++ {
		v := 25.0
		if i == hot {
			v = hotC
		}
		ss = append(ss, sample.Sample{Device: name, Point: fmt.Sprintf("module_temp_%d", i+1), Role: "module_temperature", Value: v, Quality: sample.Good, At: r.now})
	}
	r.step(sample.Batch{Device: name, At: r.now, Samples: ss})
}

func (r *rig) one(dev, point string, role sample.Role, v float64, q sample.Quality) {
	r.step(sample.Batch{Device: dev, At: r.now, Samples: []sample.Sample{{Device: dev, Point: point, Role: role, Value: v, Quality: q, At: r.now}}})
}

func (r *rig) step(b sample.Batch) {
	r.e.Step(b)
	r.collect()
}

func (r *rig) tick() {
	r.e.Tick(r.now)
	r.collect()
}

func (r *rig) collect() {
	rd := r.e.Ready()
	r.risk = append(r.risk, rd.Risk...)
	r.events = append(r.events, rd.Events...)
	r.e.Advance()
}

func (r *rig) advance(d time.Duration) { r.now = r.now.Add(d) }

// quiet keeps the other devices answering so that comm loss does not muddy a test.
func (r *rig) quiet() {
	r.rack("rack-2", -1, 0)
	r.one("gas", "offgas", "offgas_ppm", 0.4, sample.Good)
	r.one("panel", "smoke", "smoke", 0, sample.Good)
}

func (r *rig) zone() Stage { return r.e.ZoneStage("z") }

// racksAt sends one poll of both racks with every module at c (plus a little per-sensor spread).
func (r *rig) racksAt(c float64) {
	for _, name := range []string{"rack-1", "rack-2"} {
		var ss []sample.Sample
		for i := 0; i < 8; i++ {
			ss = append(ss, sample.Sample{Device: name, Point: fmt.Sprintf("module_temp_%d", i+1), Role: "module_temperature",
				Value: c + 0.1*float64(i%3), Quality: sample.Good, At: r.now})
		}
		r.step(sample.Batch{Device: name, At: r.now, Samples: ss})
	}
}

func (r *rig) alarm(id string) Alarm {
	r.t.Helper()
	a := r.e.book.alarms[id]
	if a == nil {
		r.t.Fatalf("no alarm %s", id)
	}
	return *a
}
