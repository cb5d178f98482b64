package daemon_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/firebreak-dc/firebreak/alarms"
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
	// An InfluxDB 2.x that refuses every write (a token without write permission): the daemon
	// counts the refused points and /readyz says so, while it goes on watching the room.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"code":"unauthorized","message":"unauthorized access"}`)
	}))
	defer refusing.Close()
	r.Cfg.Influx.URL, r.Cfg.Influx.Bucket, r.Cfg.Influx.Org = refusing.URL, "firebreak", "facilities"
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
	// Before anything happened: every configured zone, device and consumer has its series.
	early := scrape(t, get)
	for _, z := range r.Cfg.Zones {
		for _, name := range []string{"firebreak_zone_stage", "firebreak_drain_action"} {
			if _, n := series(early, name, map[string]string{"zone": z.Name}); n != 1 {
				t.Errorf("%s{zone=%q}: %d series at start, want 1 (an alert rule needs a value after a restart)", name, z.Name, n)
			}
		}
		for _, c := range r.Cfg.Cutover.Consumers {
			if _, n := series(early, "firebreak_drain_ack_status", map[string]string{"zone": z.Name, "consumer": c}); n != 1 {
				t.Errorf("firebreak_drain_ack_status{zone=%q,consumer=%q}: %d series at start", z.Name, c, n)
			}
		}
	}
	for _, d := range r.Cfg.Devices {
		for _, name := range []string{"firebreak_device_up", "firebreak_device_last_success_timestamp_seconds"} {
			if _, n := series(early, name, map[string]string{"device": d.Name}); n != 1 {
				t.Errorf("%s{device=%q}: %d series at start, want 1", name, d.Name, n)
			}
		}
	}
	if v, n := series(early, "firebreak_build_info", map[string]string{"version": "test"}); n != 1 || v != 1 {
		t.Errorf("firebreak_build_info{version=test}: %d series, value %v", n, v)
	}
	if v, n := series(early, "firebreak_config_last_reload_successful", nil); n != 1 || v != 1 {
		t.Errorf("firebreak_config_last_reload_successful: %d series, value %v, want 1 before any reload", n, v)
	}
	hiltest.WaitFor(t, 30*time.Second, "/readyz 200", func() bool { code, _ := get("/readyz"); return code == http.StatusOK })
	hiltest.WaitFor(t, 30*time.Second, "/readyz saying the influx writes fail", func() bool {
		_, body := get("/readyz")
		return strings.Contains(body, "influx: writes fail") && strings.Contains(body, "unauthorized")
	})
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
	fams := parse(t, body)
	sum := func(name string, match map[string]string) (float64, int) {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
		return series(fams, name, match)
	}
	// Label values are names: an alert on firebreak_alarms{state="unacknowledged"} must match.
	states := map[string]bool{}
	for _, st := range []alarms.AlarmState{alarms.Unacked, alarms.Acked, alarms.RTNUnacked, alarms.Shelved, alarms.SuppressedByDesign, alarms.OutOfService} {
		states[st.String()] = true
	}
	for _, m := range fams["firebreak_alarms"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "state" && !states[l.GetValue()] {
				t.Errorf("firebreak_alarms has state=%q, which is no alarm state's name", l.GetValue())
			}
		}
	}
	if v, _ := sum("firebreak_alarms", map[string]string{"state": "unacknowledged"}); v < 1 {
		t.Errorf(`firebreak_alarms{state="unacknowledged"} = %v during a fire nobody acknowledged`, v)
	}
	for _, d := range []string{"rack-01", "rack-03"} {
		for _, role := range []string{"cell_temperature", "module_temperature"} {
			if v, n := sum("firebreak_rack_temperature_max_celsius", map[string]string{"device": d, "role": role}); n != 1 || v < 10 || v > 1000 {
				t.Errorf("firebreak_rack_temperature_max_celsius{device=%q,role=%q}: %d series, %v", d, role, n, v)
			}
		}
	}
	for _, d := range r.Cfg.Devices {
		if v, _ := sum("firebreak_device_last_success_timestamp_seconds", map[string]string{"device": d.Name}); v < float64(time.Now().Add(-24*time.Hour).Unix()) {
			t.Errorf("firebreak_device_last_success_timestamp_seconds{device=%q} = %v after it answered", d.Name, v)
		}
	}
	if v, _ := sum("firebreak_influx_points_total", map[string]string{"result": "failed"}); v < 1 {
		t.Errorf(`firebreak_influx_points_total{result="failed"} = %v while the server refuses every write`, v)
	}
	if v, _ := sum("firebreak_telemetry_messages_total", map[string]string{"result": "published"}); v < 10 {
		t.Errorf(`firebreak_telemetry_messages_total{result="published"} = %v`, v)
	}
	promtool(t, body)
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
		{"firebreak_device_up", map[string]string{"device": "rack-01"}, 1},
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

func scrape(t *testing.T, get func(string) (int, string)) map[string]*dto.MetricFamily {
	t.Helper()
	_, body := get("/metrics")
	return parse(t, body)
}

func parse(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// series sums the values of a family's series whose labels match, and counts them.
func series(fams map[string]*dto.MetricFamily, name string, match map[string]string) (float64, int) {
	f := fams[name]
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

// promtool runs Prometheus's own linter on the exposition (`promtool check metrics`): names,
// units, help texts, counters ending in _total. Debian's prometheus package has it.
func promtool(t *testing.T, body string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	testenv.Need(t, "promtool (apt-get install prometheus)", err)
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
