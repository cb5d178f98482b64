package daemon

import (
	"sort"
	"time"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/sample"
)

// staleTracker notices devices whose polls have stopped arriving (a poller far behind, or stuck):
// after detection.stale_after_intervals of a device's interval without a batch, its telemetry
// says so once, every point stale and no value. Detection has its own view of silence (no_data);
// this is what dashboards and InfluxDB see, so that a last value is never mistaken for a live one.
type staleTracker struct {
	after   int
	devices map[string]*staleDevice
	names   []string
}

type staleDevice struct {
	interval time.Duration
	points   []collectors.Point
	last     time.Time
	marked   bool
}

func newStaleTracker(cfg *config.Config, start time.Time) *staleTracker {
	t := &staleTracker{after: cfg.Detection.StaleAfterIntervals, devices: map[string]*staleDevice{}}
	for _, d := range cfg.Devices {
		var pts []collectors.Point
		if r := cfg.Points(d); r != nil {
			pts = r.Points
		}
		t.devices[d.Name] = &staleDevice{interval: d.Interval, points: pts, last: start}
		t.names = append(t.names, d.Name)
	}
	sort.Strings(t.names)
	return t
}

// seen records a batch: the device is live again.
func (t *staleTracker) seen(b sample.Batch) {
	if d := t.devices[b.Device]; d != nil {
		d.last, d.marked = b.At, false
	}
}

// due returns, once per silence, a batch of stale samples for every device silent too long at now.
func (t *staleTracker) due(now time.Time) []sample.Batch {
	var out []sample.Batch
	for _, name := range t.names {
		d := t.devices[name]
		if d.marked || now.Sub(d.last) < time.Duration(t.after)*d.interval {
			continue
		}
		d.marked = true
		b := sample.Batch{Device: name, At: now, Samples: make([]sample.Sample, len(d.points))}
		for i, p := range d.points {
			b.Samples[i] = sample.Sample{Device: name, Point: p.Name, Role: p.Role, Quality: sample.Stale, At: now}
		}
		out = append(out, b)
	}
	return out
}
