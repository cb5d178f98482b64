package sim

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func runScenario(t *testing.T, name string) *Room {
	t.Helper()
	sc, err := LoadScenario(name)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := LoadChemistry(sc.Chemistry)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := LoadRoom(sc.Room)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRoom(sc, ch, rm, []string{"rack-01", "rack-02", "rack-03", "rack-04"})
	for r.Elapsed() < sc.Duration {
		r.Step(time.Second)
	}
	return r
}

func truthAt(r *Room, kind TruthKind) (time.Duration, bool) {
	for _, e := range r.Truth() {
		if e.Kind == kind {
			return e.At, true
		}
	}
	return 0, false
}

// TestInternalShortTimeline holds the NMC internal short to the timeline battery engineers know
// from abuse tests: about 30 min from 50 °C to runaway, venting about 8 min before it, the
// neighbour following 5–10 min after, and a peak of several hundred degrees.
func TestInternalShortTimeline(t *testing.T) {
	t.Parallel()
	sc, err := LoadScenario("internal-short")
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := LoadChemistry(sc.Chemistry)
	rm, err := LoadRoom(sc.Room)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRoom(sc, ch, rm, []string{"rack-01", "rack-02", "rack-03", "rack-04"})
	ev := sc.Events[0]
	short := &r.byNm[ev.Device].cells[ev.Module-1][ev.Cell-1]
	var at50 time.Duration
	peak := 0.0
	for r.Elapsed() < sc.Duration {
		r.Step(time.Second)
		if at50 == 0 && short.T >= 50 {
			at50 = r.Elapsed()
		}
		peak = max(peak, short.T)
	}
	vent, okV := truthAt(r, "vent")
	run, okR := truthAt(r, "runaway")
	nb, okN := truthAt(r, "neighbour_runaway")
	smoke, okS := truthAt(r, "smoke")
	if !okV || !okR || !okN || !okS || at50 == 0 {
		t.Fatalf("missing events: %+v (50 °C at %v)", r.Truth(), at50)
	}
	t.Logf("50 °C at %v, vent %v, runaway %v, neighbour %v, smoke %v, peak %.0f °C", at50, vent, run, nb, smoke, peak)
	if d := run - at50; d < 25*time.Minute || d > 35*time.Minute {
		t.Errorf("50 °C to runaway took %v, want about 30 min", d)
	}
	if lead := run - vent; lead < 6*time.Minute || lead > 10*time.Minute {
		t.Errorf("vent leads runaway by %v, want about 8 min", lead)
	}
	if d := nb - run; d < 5*time.Minute || d > 10*time.Minute {
		t.Errorf("the neighbour runs away %v after, want 5–10 min", d)
	}
	if smoke < run {
		t.Errorf("smoke at %v before runaway at %v", smoke, run)
	}
	if peak < 600 || peak > 1200 {
		t.Errorf("peak %.0f °C, want 600–1200 °C for NMC", peak)
	}
}

// TestAdiabaticOnsetNMC finds where a fresh NMC cell's own reactions heat it at 0.02 °C/min, the
// detection threshold of an accelerating-rate calorimeter: near 85–90 °C for NMC.
func TestAdiabaticOnsetNMC(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		chem   string
		lo, hi float64
	}{{"nmc", 83, 92}, {"lfp", 83, 95}} {
		ch, err := LoadChemistry(tc.chem)
		if err != nil {
			t.Fatal(err)
		}
		r := &Room{chem: ch}
		onset := 0.0
		for temp := 40.0; temp < 200; temp += 0.1 {
			rx := ch.Reactions
			c := cell{T: temp, cSEI: rx.SEI.C0, cNeg: rx.Anode.C0, zSEI: 0.033, alpha: rx.Cathode.C0, cE: rx.Electrolyte.C0}
			perMin := r.reactionHeat(&c) / (ch.CellMassKg * ch.CellCpJPerKgK) * 60
			if perMin >= 0.02 {
				onset = temp
				break
			}
		}
		t.Logf("%s: self-heating onset %.1f °C", tc.chem, onset)
		if onset < tc.lo || onset > tc.hi {
			t.Errorf("%s onset %.1f °C, want %.0f–%.0f °C", tc.chem, onset, tc.lo, tc.hi)
		}
	}
}

// TestLFPBurnsLaterAndCooler compares the two presets under the same abuse.
func TestLFPBurnsLaterAndCooler(t *testing.T) {
	t.Parallel()
	peak := map[string]float64{}
	runAt := map[string]time.Duration{}
	for _, chem := range []string{"nmc", "lfp"} {
		sc, _ := LoadScenario("internal-short")
		sc.Chemistry = chem
		sc.Duration = 100 * time.Minute
		ch, _ := LoadChemistry(chem)
		rm, err := LoadRoom(sc.Room)
		if err != nil {
			t.Fatal(err)
		}
		r := NewRoom(sc, ch, rm, []string{"rack-01", "rack-02", "rack-03", "rack-04"})
		for r.Elapsed() < sc.Duration {
			r.Step(time.Second)
			peak[chem] = max(peak[chem], r.HottestCell())
		}
		runAt[chem], _ = truthAt(r, "runaway")
	}
	t.Logf("runaway: NMC %v, LFP %v; peak: NMC %.0f °C, LFP %.0f °C", runAt["nmc"], runAt["lfp"], peak["nmc"], peak["lfp"])
	if runAt["nmc"] == 0 || !(runAt["lfp"] == 0 || runAt["lfp"] > runAt["nmc"]) {
		t.Errorf("LFP ran away at %v, NMC at %v: LFP should need more", runAt["lfp"], runAt["nmc"])
	}
	if runAt["lfp"] != 0 && peak["lfp"] >= peak["nmc"] {
		t.Errorf("LFP peak %.0f °C not below NMC's %.0f °C", peak["lfp"], peak["nmc"])
	}
}

func TestNormalStaysCool(t *testing.T) {
	t.Parallel()
	r := runScenario(t, "normal")
	if hot := r.HottestCell(); hot > 30 {
		t.Errorf("normal scenario reached %.1f °C", hot)
	}
	if len(r.Truth()) != 0 {
		t.Errorf("normal scenario had events: %+v", r.Truth())
	}
	if r.offgasPPM > 1 || r.smoke {
		t.Errorf("normal scenario: off-gas %.1f ppm, smoke %v", r.offgasPPM, r.smoke)
	}
}

func TestDeterministicForASeed(t *testing.T) {
	t.Parallel()
	a, b := runScenario(t, "normal"), runScenario(t, "normal")
	if a.racks[2].ntc != b.racks[2].ntc {
		t.Fatal("same seed gave different NTC readings")
	}
}

func TestScenarioErrorsNameTheField(t *testing.T) {
	t.Parallel()
	if _, err := LoadScenario("no-such-scenario"); err == nil {
		t.Fatal("unknown scenario accepted")
	}
}

// TestFloatEventsValidated: the float events' fields are checked, each error naming its field.
func TestFloatEventsValidated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ events, want string }{
		{"[{at: 1h, kind: micro_short, device: rack-01, module: 9, cell: 1, leak_ma: 10}]", "events[0].module: must be 1..8, got 9"},
		{"[{at: 1h, kind: micro_short, device: rack-01, module: 1, cell: 1, leak_ma: 0}]", "events[0].leak_ma: must be in (0, 10000] mA, got 0"},
		{"[{at: 1h, kind: micro_short, device: rack-01, module: 1, cell: 1, leak_ma: 10, max_ma: 5}]", "events[0].max_ma: must be >= leak_ma (10), got 5"},
		{"[{at: 1h, kind: micro_short, device: rack-01, module: 1, cell: 1, leak_ma: 10, growth_per_day: -1}]", "events[0].growth_per_day: must be >= 0, got -1"},
		{"[{at: 1h, kind: float_change}]", "events[0].value: must be a change of -500..500 mV per cell, not 0, got 0"},
		{"[{at: 1h, kind: voltage_offset, device: rack-01, module: 1, value: 5000}]", "events[0].value: must be an offset of -1000..1000 mV, not 0, got 5000"},
	} {
		f := filepath.Join(t.TempDir(), "s.yaml")
		body := "name: s\nduration: 2h\nstep: 1m\nevents: " + tc.events + "\n"
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadScenario(f); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.events, err, tc.want)
		}
	}
	f := filepath.Join(t.TempDir(), "s.yaml")
	if err := os.WriteFile(f, []byte("name: s\nduration: 2h\nstep: 90s500ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadScenario(f); err == nil || !strings.Contains(err.Error(), "step: must be whole seconds, 1s..5m") {
		t.Errorf("a fractional step: %v", err)
	}
}

// TestLeakAtFloat: at float a cell with a 10 mA leak loses 10 mA × t against its peers (the
// charger makes up the string's loss, spread over every cell), and its module's lowest cell falls
// against the other modules' by the OCV slope: 0.35 %/day, about 3.5 mV/day on NMC, once the cell
// is its module's lowest; a healthy rack beside it keeps its modules where they were.
func TestLeakAtFloat(t *testing.T) {
	t.Parallel()
	chem, err := LoadChemistry("nmc")
	if err != nil {
		t.Fatal(err)
	}
	rm, err := LoadRoom("battery-room")
	if err != nil {
		t.Fatal(err)
	}
	sc := &Scenario{Name: "leak", Duration: 120 * time.Hour, Seed: 21, AmbientC: 24, UPSLoadPct: 45, Step: time.Minute,
		Events: []Event{{At: 0, Kind: "micro_short", Device: "rack-02", Module: 3, Cell: 5, LeakMA: 10, MaxMA: 10}}}
	r := NewRoom(sc, chem, rm, []string{"rack-01", "rack-02"})
	leaky, peer := &r.byNm["rack-02"].cells[2][4], &r.byNm["rack-02"].cells[5][4]
	soc0, peer0 := leaky.soc, peer.soc
	for el := time.Duration(0); el < 96*time.Hour; el += time.Minute {
		r.Step(time.Minute)
	}
	lost := (peer.soc - peer0) - (leaky.soc - soc0) // against a peer, as a share of capacity
	want := 0.010 * 96 / chem.CapacityAh            // 10 mA for 96 h
	if math.Abs(lost-want) > 0.1*want {
		t.Errorf("the leaking cell lost %.4f of its charge against a peer in 4 days, want %.4f (10 mA)", lost, want)
	}
	for _, rk := range r.racks {
		if a := -rk.currentA; a < 0 || a > 0.5 {
			t.Errorf("%s at float draws %.3f A from the charger; want a float current, under 0.5 A", rk.Name, a)
		}
	}
}
