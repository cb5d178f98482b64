package daemon

import (
	"testing"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/internal/sim"
)

// TestSparkplugLeakMetrics: a rack with a battery births self_discharge on each module's first
// cell voltage only (8 for a BMS of 8 × 16 cells, not 128); a rack without one births none.
func TestSparkplugLeakMetrics(t *testing.T) {
	t.Parallel()
	sc, err := sim.LoadScenario("float-normal")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := sim.SiteConfig(sc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Devices[1].Battery = nil // rack-02 says nothing of its cells
	count := func(d string) (n int, points []string) {
		for _, dv := range sparkplugModel(cfg, "t", "b").Devices {
			for _, k := range dv.Alarms {
				if dv.Name == d && k.Detector == string(alarms.SelfDischarge) {
					n++
					points = append(points, k.Point)
				}
			}
		}
		return n, points
	}
	if n, pts := count("rack-01"); n != 8 || pts[0] != "cell_v_1" || pts[2] != "cell_v_33" {
		t.Errorf("rack-01 (8 modules of 16 cells) births %d self_discharge alarms %v, want one per module", n, pts)
	}
	if n, _ := count("rack-02"); n != 0 {
		t.Errorf("rack-02 has no battery: %d self_discharge alarms in its birth", n)
	}
}
