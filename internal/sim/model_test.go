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
	r := NewRoom(sc, ch, []string{"rack-01", "rack-02", "rack-03", "rack-04"})
	for r.Elapsed() < sc.Duration {
		r.Step(time.Second)
	}
	return r
}

func truthAt(r *Room, kind string) (time.Duration, bool) {
	for _, e := range r.Truth() {
		if e.Kind == kind {
			return e.At, true
		}
	}
	return 0, false
}

func TestInternalShortTimeline(t *testing.T) {
	t.Parallel()
	r := runScenario(t, "internal-short")
	vent, okV := truthAt(r, "vent")
	run, okR := truthAt(r, "runaway")
	nb, okN := truthAt(r, "neighbour_runaway")
	smoke, okS := truthAt(r, "smoke")
	if !okV || !okR || !okN || !okS {
		t.Fatalf("missing events: %+v", r.Truth())
	}
	t.Logf("vent %v, runaway %v, neighbour %v, smoke %v", vent, run, nb, smoke)
	if run < 50*time.Minute || run > 72*time.Minute {
		t.Errorf("runaway at %v, want about an hour after the short starts", run)
	}
	if lead := run - vent; lead < 4*time.Minute || lead > 12*time.Minute {
		t.Errorf("vent leads runaway by %v, want about 8 min", lead)
	}
	if d := nb - run; d < 2*time.Minute || d > 12*time.Minute {
		t.Errorf("neighbour runs away %v after, want minutes", d)
	}
	if smoke < run {
		t.Errorf("smoke at %v before runaway at %v", smoke, run)
	}
	if r.HottestCell() < 500 {
		t.Errorf("hottest cell %.0f °C after runaway, want hundreds", r.HottestCell())
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
