package sim

import (
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
