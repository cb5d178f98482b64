package alarms

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

func TestTwoModalitiesConfirm(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 30; i++ {
		r.quiet()
		r.rack("rack-1", 2, 56)
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageWarning {
		t.Fatalf("before gas: %v", r.zone())
	}
	r.rack("rack-2", -1, 0)
	r.rack("rack-1", 2, 56)
	r.one("gas", "offgas", "offgas_ppm", 25, sample.Good)
	if r.zone() != StageCritical {
		t.Fatalf("hot module + off-gas: zone %v, want critical", r.zone())
	}
	if r.e.racks["rack-1"].stage != StageWarning {
		t.Errorf("rack-1 stage %v: the room's gas is zone evidence, not the rack's", r.e.racks["rack-1"].stage)
	}
}

func TestFirePanelSignals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		role string
		want Stage
	}{{"smoke", StageCritical}, {"suppression_released", StageCritical}, {"fire_alarm", StageFire}} {
		r := newRig(t)
		r.quiet()
		r.one("panel", tc.role, sample.Role(tc.role), 1, sample.Good)
		if r.zone() != tc.want {
			t.Errorf("%s: zone %v, want %v", tc.role, r.zone(), tc.want)
		}
	}
}

func TestStageFallsOnlyAfterHold(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.quiet()
	r.one("panel", "smoke", "smoke", 1, sample.Good)
	if r.zone() != StageCritical {
		t.Fatal("smoke did not stage")
	}
	hold := DefaultThresholds().StageHold
	fellAt, fell := time.Duration(0), false
	for el := time.Duration(0); el <= hold+5*time.Second; el += time.Second {
		r.advance(time.Second)
		r.quiet()
		r.rack("rack-1", -1, 0)
		r.tick()
		if r.zone() == StageNormal && !fell {
			fellAt, fell = el, true
		}
	}
	if !fell || fellAt < hold-2*time.Second || fellAt > hold+2*time.Second {
		t.Fatalf("fell after %v, want after the hold of %v", fellAt, hold)
	}
}

func TestSilentBMSWithGasIsCritical(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 10; i++ {
		r.rack("rack-2", -1, 0)
		r.one("panel", "smoke", "smoke", 0, sample.Good)
		r.one("gas", "offgas", "offgas_ppm", 30, sample.Good) // rack-1 says nothing at all
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageCritical {
		t.Fatalf("zone %v, want critical", r.zone())
	}
	if !strings.Contains(r.risk[len(r.risk)-1].Reason, "no data from rack-1") {
		t.Errorf("reason does not name the silent rack: %s", r.risk[len(r.risk)-1].Reason)
	}
}

func TestWarningThenSilenceIsCritical(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 30; i++ {
		r.quiet()
		r.rack("rack-1", 2, 56) // warning
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageWarning {
		t.Fatalf("before the silence: %v", r.zone())
	}
	for i := 0; i < 10; i++ { // the BMS stops answering
		r.quiet()
		r.step(sample.Batch{Device: "rack-1", At: r.now, Err: errors.New("modbus exception 11")})
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageCritical {
		t.Fatalf("a warning rack gone silent: zone %v, want critical", r.zone())
	}
}

func TestLivePollerLateIsNotSilence(t *testing.T) {
	t.Parallel()
	live := &rig{t: t, e: New(topo(), DefaultThresholds(), LivePoller()), now: t0}
	for i := 0; i < 20; i++ { // rack-1 sends nothing for 20 s: the poller is behind, not the BMS silent
		live.rack("rack-2", -1, 0)
		live.one("gas", "offgas", "offgas_ppm", 0.4, sample.Good)
		live.one("panel", "smoke", "smoke", 0, sample.Good)
		live.tick()
		live.advance(time.Second)
	}
	if live.zone() != StageNormal {
		t.Fatalf("a late poller read as a silent BMS: zone %v", live.zone())
	}
	for i := 0; i < 20; i++ { // past the grace it is silence after all
		live.rack("rack-2", -1, 0)
		live.one("gas", "offgas", "offgas_ppm", 0.4, sample.Good)
		live.one("panel", "smoke", "smoke", 0, sample.Good)
		live.tick()
		live.advance(time.Second)
	}
	if live.zone() != StageWatch {
		t.Fatalf("no data for 40 s: zone %v, want watch", live.zone())
	}
}

func TestSiteRules(t *testing.T) {
	t.Parallel()
	limit, rate := 150.0, 2.0
	tp := topo()
	tp.Rules = []Rule{
		{Name: "hot-string", Device: "rack-1", Point: "string_power", Above: &limit, For: 30 * time.Second, Stage: StageWarning},
		{Name: "fast-soc", Device: "rack-2", Point: "soc", RatePerMin: &rate, Stage: StageWatch},
	}
	r := &rig{t: t, e: New(tp, DefaultThresholds()), now: t0}
	power := func(v float64) {
		r.one("rack-1", "string_power", "", v, sample.Good) // a point with no role: rules still see it
	}
	for i := 0; i < 20; i++ {
		r.quiet()
		power(160)
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageNormal {
		t.Fatalf("rule fired before its 30 s: zone %v", r.zone())
	}
	for i := 0; i < 15; i++ {
		r.quiet()
		power(160)
		r.tick()
		r.advance(time.Second)
	}
	if a := r.alarm("rack-1.string_power.rule:hot-string"); a.State != Unacked || a.Stage != StageWarning {
		t.Fatalf("rule alarm: %+v", a)
	}
	if r.zone() != StageWarning {
		t.Fatalf("zone %v, want warning from the rule", r.zone())
	}
	power(100)
	if a := r.alarm("rack-1.string_power.rule:hot-string"); a.Active {
		t.Fatalf("rule did not clear: %+v", a)
	}
	soc := 50.0
	for i := 0; i < 10; i++ {
		r.one("rack-2", "soc", "", soc, sample.Good)
		soc += 0.1 // 6 %/min
		r.advance(time.Second)
	}
	if a := r.alarm("rack-2.soc.rule:fast-soc"); !a.Active {
		t.Fatalf("rate rule: %+v", a)
	}
}

// TestLeakAndWarmthAreTwoSignals: a module that leaks (self_discharge, stage 1) and then warms to
// a temperature warning is two independent signals, critical; the leak alone stays at watch, and
// a warning on another module of the rack stays a warning.
func TestLeakAndWarmthAreTwoSignals(t *testing.T) {
	t.Parallel()
	leak := &cond{id: "rack-1.cell_v_33.self_discharge", device: "rack-1", point: "cell_v_33", detector: SelfDischarge, modality: Voltage,
		stage: StageWatch, module: 3, source: "rack-1.cell_v_33", text: "rack-1 module 3: leaking about 12 mA"}
	warm := func(module int) *cond {
		return &cond{id: "rack-1.module_temp_x.peer_delta", device: "rack-1", point: "module_temp_x", detector: PeerDelta, modality: Temperature,
			stage: StageWarning, module: module, source: "rack-1.module_temp_x", text: "module_temp_x 11 °C above the rack median"}
	}
	for _, tc := range []struct {
		name  string
		conds []*cond
		want  Stage
	}{
		{"the leak alone", []*cond{leak}, StageWatch},
		{"the leaking module warms", []*cond{leak, warm(3)}, StageCritical},
		{"the rack's max warms (module unknown)", []*cond{leak, warm(0)}, StageCritical},
		{"another module warms", []*cond{leak, warm(5)}, StageWarning},
		{"warmth alone", []*cond{warm(3)}, StageWarning},
	} {
		got, ev, reason := assess(tc.conds, nil, true)
		if got != tc.want {
			t.Errorf("%s: stage %v, want %v (%s)", tc.name, got, tc.want, reason)
		}
		if tc.want == StageCritical && (len(ev) != 2 || !strings.Contains(reason, "on a module that leaks")) {
			t.Errorf("%s: evidence %+v, reason %q: want both signals named", tc.name, ev, reason)
		}
	}
}
