package daemon

import (
	"fmt"
	"sync"
	"time"

	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/sample"
)

// LagWatch watches a daemon on a scaled clock (the demo, the HIL tests) for the machine falling
// behind it: a device's polls further apart, or a batch reaching the engine later, than half the
// live no-data limit (past which the daemon rightly says "no data"). A run that lagged says
// nothing about the detectors at that speed; its Observe goes in Options.Observe.
type LagWatch struct {
	mu    sync.Mutex
	clk   clock.Clock
	limit time.Duration
	last  map[string]time.Time
	what  string
	worst time.Duration // the longest a batch took to reach the engine (scenario time)
	// failsLag: a failed poll counts as lagging too (FailedPollsLag).
	failsLag bool
}

// NewLagWatch watches a run of cfg on clk.
func NewLagWatch(cfg *config.Config, clk clock.Clock) *LagWatch {
	var longest time.Duration
	for _, d := range cfg.Devices {
		longest = max(longest, d.Interval)
	}
	limit := max(time.Duration(cfg.Detection.StaleAfterIntervals)*longest, cfg.Detection.NoDataGrace)
	return &LagWatch{clk: clk, limit: limit / 2, last: map[string]time.Time{}}
}

// FailedPollsLag makes a failed poll count as the run lagging: for a run whose links have no fault
// of their own, a poll fails only if the machine could not serve the device within the
// connection's timeout (real time), however regular the batches that do come.
func (w *LagWatch) FailedPollsLag() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failsLag = true
}

// Observe takes each batch the engine loop takes.
func (w *LagWatch) Observe(b sample.Batch) {
	w.mu.Lock()
	defer w.mu.Unlock()
	lag := w.clk.Now().Sub(b.At)
	w.worst = max(w.worst, lag)
	if w.what != "" {
		return
	}
	if prev, ok := w.last[b.Device]; ok && b.At.Sub(prev) > w.limit {
		w.what = fmt.Sprintf("%s polled %s apart (scenario time), the limit is %s", b.Device, b.At.Sub(prev).Round(time.Second), w.limit)
	}
	if lag > w.limit {
		w.what = fmt.Sprintf("a poll of %s reached the engine %s after it was taken (scenario time), the limit is %s", b.Device, lag.Round(time.Second), w.limit)
	}
	if w.failsLag && b.Err != nil && w.what == "" {
		w.what = fmt.Sprintf("a poll failed in a run with no link fault (%v)", b.Err)
	}
	w.last[b.Device] = b.At
}

// WorstDelivery is the longest a batch took from its poll to the engine (scenario time). Past a
// second (the engine loop's tick fallback) a tick may be performed before a batch stamped before
// it: right for the live run, but not the order a replay of its trace sees.
func (w *LagWatch) WorstDelivery() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.worst
}

// Lagged says how the run fell behind ("" if it never did).
func (w *LagWatch) Lagged() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.what
}
