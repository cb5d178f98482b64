package daemon

import (
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/sample"
)

func TestStaleAfterThreeIntervals(t *testing.T) {
	t.Parallel()
	cfg := hiltest.DemoSite(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := newStaleTracker(cfg, t0)
	for _, d := range cfg.Devices {
		st.seen(sample.Batch{Device: d.Name, At: t0})
	}
	// Every device polls each second but rack-02, which goes silent.
	for s := 1; s <= 5; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		for _, d := range cfg.Devices {
			if d.Name != "rack-02" {
				st.seen(sample.Batch{Device: d.Name, At: now})
			}
		}
		due := st.due(now)
		switch {
		case s < 3 && len(due) != 0:
			t.Fatalf("at %ds: %d stale batches before three intervals", s, len(due))
		case s == 3 && (len(due) != 1 || due[0].Device != "rack-02"):
			t.Fatalf("at 3s: %+v, want rack-02 stale", due)
		case s > 3 && len(due) != 0:
			t.Fatalf("at %ds: rack-02 marked stale again", s)
		}
		if s == 3 {
			for _, smp := range due[0].Samples {
				if smp.Quality != sample.Stale || smp.Value != 0 {
					t.Fatalf("%s: %v %v, want stale with no value", smp.Point, smp.Quality, smp.Value)
				}
			}
			if len(due[0].Samples) != len(cfg.Points(cfg.Devices[1]).Points) {
				t.Fatalf("%d stale samples, want every point", len(due[0].Samples))
			}
		}
	}
	// It comes back: the next silence is reported again.
	back := t0.Add(6 * time.Second)
	for _, d := range cfg.Devices {
		st.seen(sample.Batch{Device: d.Name, At: back})
	}
	if due := st.due(back.Add(2 * time.Second)); len(due) != 0 {
		t.Fatalf("right after coming back: %d stale batches", len(due))
	}
	if due := st.due(back.Add(3 * time.Second)); len(due) != len(cfg.Devices) {
		t.Fatalf("all silent for three intervals: %d stale batches, want %d", len(due), len(cfg.Devices))
	}
}
