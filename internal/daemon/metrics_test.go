package daemon_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/testenv"
)

// TestMetricsAndHealth runs the daemon through the sudden fire and scrapes /metrics with the
// Prometheus text parser: polls and their duration per device, samples by quality, alarms by
// stage, the zone's stage and drain action, outbox depth, publish latency, process figures.
// /healthz answers 200 while the engine turns; /readyz 503 with its reasons until every device
// has been polled and the broker is connected, then 200.
func TestMetricsAndHealth(t *testing.T) {
	t.Parallel()
	broker := testenv.Mosquitto(t)
	r := hiltest.NewRoom(t, "metrics", "sudden-fire", broker)
	p := r.Prefix()
	rec := hiltest.Record(t, broker, "cp-metrics", false, p+"/drain/+")
	addr := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.Sim.Run(gctx) })
	g.Go(func() error {
		return daemon.Run(gctx, daemon.Options{Config: r.Cfg, Clock: r.Clk, Log: zap.NewNop(), Version: "test",
			SigningKey: r.Key, ShutdownGrace: 2 * time.Second, OnMetrics: func(a string) { addr <- a }})
	})
	base := "http://" + <-addr
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code == http.StatusOK {
		t.Logf("/readyz was ready at once (%s)", strings.TrimSpace(body))
	} else if !strings.Contains(body, "no poll yet of") && !strings.Contains(body, "broker") {
		t.Errorf("/readyz before the first polls: %d %q, want its reasons", code, body)
	}
	hiltest.WaitFor(t, 30*time.Second, "/readyz 200", func() bool { code, _ := get("/readyz"); return code == http.StatusOK })
	if code, body := get("/healthz"); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	hiltest.WaitFor(t, time.Minute, "a drain signal", func() bool {
		got, _ := rec.Snapshot()
		return len(got[p+"/drain/b3-battery"]) > 0
	})
	hiltest.WaitFor(t, 10*time.Second, "the drain in /metrics", func() bool {
		_, body := get("/metrics")
		return strings.Contains(body, `firebreak_drain_action{zone="b3-battery"} 2`) || strings.Contains(body, `firebreak_drain_action{zone="b3-battery"} 3`)
	})
	_, body := get("/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	sum := func(name string, match map[string]string) (float64, int) {
		f := fams[name]
		if f == nil {
			t.Errorf("no %s", name)
			return 0, 0
		}
		total, n := 0.0, 0
	next:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range match {
				if labels[k] != v {
					continue next
				}
			}
			n++
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				total += m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				total += m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				total += float64(m.GetHistogram().GetSampleCount())
			}
		}
		return total, n
	}
	for _, d := range r.Cfg.Devices {
		if v, _ := sum("firebreak_polls_total", map[string]string{"device": d.Name, "result": "ok"}); v < 1 {
			t.Errorf("firebreak_polls_total{device=%q,result=ok} = %v", d.Name, v)
		}
		if v, _ := sum("firebreak_poll_duration_seconds", map[string]string{"device": d.Name}); v < 1 {
			t.Errorf("firebreak_poll_duration_seconds{device=%q} has %v observations", d.Name, v)
		}
	}
	checks := []struct {
		name  string
		match map[string]string
		min   float64
	}{
		{"firebreak_samples_total", map[string]string{"quality": "good"}, 100},
		{"firebreak_alarms", nil, 1},
		{"firebreak_zone_stage", map[string]string{"zone": "b3-battery"}, 3},
		{"firebreak_drain_action", map[string]string{"zone": "b3-battery"}, 2},
		{"firebreak_publish_latency_seconds", nil, 1},
		{"process_resident_memory_bytes", nil, 1e6},
	}
	for _, c := range checks {
		if v, _ := sum(c.name, c.match); v < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.match, v, c.min)
		}
	}
	if _, n := sum("firebreak_outbox_messages", nil); n != 1 {
		t.Errorf("firebreak_outbox_messages: %d series", n)
	}
	if v, _ := sum("firebreak_config_reloads_total", nil); v != 0 {
		t.Errorf("firebreak_config_reloads_total = %v before any reload", v)
	}
	cancel()
	_ = g.Wait()
	t.Logf("/metrics: %d families, %d bytes, parsed", len(fams), len(body))
}
