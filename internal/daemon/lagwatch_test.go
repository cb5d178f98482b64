package daemon_test

import (
	"errors"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/sample"
)

// TestLagWatchFailedPolls: a failed poll is no lag by default (a scenario may fail polls on
// purpose); with FailedPollsLag it is, and says why; a regular run is not.
func TestLagWatchFailedPolls(t *testing.T) {
	t.Parallel()
	cfg := hiltest.DemoSite(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, strict := range []bool{false, true} {
		clk := clock.NewManual(t0)
		w := daemon.NewLagWatch(cfg, clk)
		if strict {
			w.FailedPollsLag()
		}
		w.Observe(sample.Batch{Device: "rack-01", At: t0})
		if why := w.Lagged(); why != "" {
			t.Fatalf("strict %v: a regular poll lagged: %s", strict, why)
		}
		clk.Advance(time.Second)
		w.Observe(sample.Batch{Device: "rack-01", At: clk.Now(), Err: errors.New("i/o timeout")})
		if why := w.Lagged(); (why != "") != strict {
			t.Fatalf("strict %v: after a failed poll Lagged says %q", strict, why)
		}
	}
}
