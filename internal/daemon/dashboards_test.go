package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/firebreak-dc/firebreak/configs"
	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/testenv"
)

type dashboard struct {
	Annotations struct {
		List []struct{ Name, Query string }
	}
	Panels []struct {
		Title   string
		Targets []struct{ Query, Expr string }
	}
}

func loadDashboard(t *testing.T, name string) dashboard {
	t.Helper()
	raw, err := configs.FS.ReadFile("grafana/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}

// TestDashboardsShowAFire runs a real fire (the sudden-fire scenario over Modbus TCP) through the
// daemon into a real InfluxDB 1.8, with a real Prometheus (Debian's) scraping its /metrics, and runs
// every query of both shipped Grafana dashboards as Grafana would (its variables set to all):
// each must return the series its panel shows, by name and labels.
func TestDashboardsShowAFire(t *testing.T) {
	t.Parallel()
	broker := testenv.Mosquitto(t)
	influxURL := testenv.InfluxDB18(t, "firebreak")
	// The sudden fire, plus a cell-voltage sentinel on rack-01 for the panel of readings that were
	// not good.
	fire, err := configs.FS.ReadFile("scenarios/sudden-fire.yaml")
	if err != nil {
		t.Fatal(err)
	}
	scenario := filepath.Join(t.TempDir(), "sudden-fire-sentinel.yaml")
	fire = bytes.Replace(fire, []byte("events:\n"), []byte("events:\n  - {at: 1m, kind: sensor_raw, device: rack-01, point: cell_v_min_2, raw: 0xFFFF, duration: 2m}\n"), 1)
	if err := os.WriteFile(scenario, fire, 0o600); err != nil {
		t.Fatal(err)
	}
	r := hiltest.NewRoom(t, "dash", scenario, broker)
	r.Cfg.Influx.URL, r.Cfg.Influx.Bucket = influxURL, "firebreak/autogen"
	p := r.Prefix()
	rec := hiltest.Record(t, broker, "dash-watch", false, p+"/drain/+")
	start := time.Now()
	addr := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.Sim.Run(gctx) })
	g.Go(func() error {
		return daemon.Run(gctx, daemon.Options{Config: r.Cfg, Clock: r.Clk, Log: zap.NewNop(), Version: "test",
			SigningKey: r.Key, ShutdownGrace: 5 * time.Second, OnMetrics: func(a string) { addr <- a }})
	})
	prom := testenv.Prometheus(t, <-addr)
	promQuery := func(q string) ([]map[string]string, error) {
		resp, err := http.Get(prom + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var res struct {
			Status string
			Error  string
			Data   struct {
				Result []struct{ Metric map[string]string }
			}
		}
		if err := json.Unmarshal(body, &res); err != nil || res.Status != "success" {
			return nil, fmt.Errorf("%s: %v %s", q, err, body)
		}
		var out []map[string]string
		for _, s := range res.Data.Result {
			out = append(out, s.Metric)
		}
		return out, nil
	}
	hiltest.WaitFor(t, 2*time.Minute, "the drain, scraped by Prometheus", func() bool {
		got, _ := rec.Snapshot()
		s, err := promQuery(`firebreak_drain_action >= 2`)
		return len(got[p+"/drain/b3-battery"]) > 0 && err == nil && len(s) > 0
	})
	hiltest.WaitFor(t, time.Minute, "a few scrapes since", func() bool {
		s, err := promQuery(`count_over_time(firebreak_zone_stage[1m]) >= 5`)
		return err == nil && len(s) > 0
	})

	// Prometheus: while the daemon runs (a stopped target's series go stale at once).
	want := map[string]map[string]string{
		"Zone stage":                       {"zone": "b3-battery"},
		"Drain action":                     {"zone": "b3-battery"},
		"Drain acks per consumer":          {"zone": "b3-battery", "consumer": "control-plane"},
		"Unacknowledged alarms by stage":   {"stage": "4"},
		"Hottest cell per rack":            {"device": "rack-01"},
		"Devices up":                       {"device": "rack-01"},
		"Seconds since the last good poll": {"device": "rack-01"},
		"Failed polls per second":          {"device": "rack-01"},
		"Poll duration p99":                {"device": "rack-01"},
		"Outbox (critical messages not yet acknowledged by the broker)": {"job": "firebreak"},
		"Publish latency p99 (hand-over to PUBACK)":                     {},
		"Telemetry messages per second":                                 {"result": "published"},
		"InfluxDB points per second":                                    {"result": "written"},
		"Config and build":                                              {"version": "test"},
	}
	vars := strings.NewReplacer(`"$zone"`, `".*"`, `"$device"`, `".*"`, "$__rate_interval", "30s")
	for _, pn := range loadDashboard(t, "firebreak-prometheus.json").Panels {
		labels, ok := want[pn.Title]
		if !ok {
			t.Errorf("panel %q has no expectation in this test", pn.Title)
			continue
		}
		for _, tg := range pn.Targets {
			series, err := promQuery(vars.Replace(tg.Expr))
			if err != nil {
				t.Errorf("%s: %v", pn.Title, err)
				continue
			}
			if !hasSeries(series, labels) {
				t.Errorf("%s: no series with %v for %s; got %v", pn.Title, labels, tg.Expr, series)
			}
		}
	}

	cancel() // the daemon flushes what InfluxDB has not taken yet
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	timeFilter := fmt.Sprintf("time >= %dms AND time <= %dms", start.Add(-time.Hour).UnixMilli(), time.Now().Add(24*time.Hour).UnixMilli())
	ivars := strings.NewReplacer("$timeFilter", timeFilter, "$__interval", "10s", "/^$site$/", "/^dash$/", "/^$zone$/", "/^.*$/", "/^$device$/", "/^.*$/")
	iwant := map[string]map[string]string{
		"Zone stage":            {"zone": "b3-battery"},
		"Hottest cell per rack": {"device": "rack-01"},
		"Module temperature spread per rack (max - min)":                        {"device": "rack-01"},
		"Rack × module temperature heatmap":                                     {"device": "rack-01", "point": "module_temp_8"},
		"Cell voltage spread per rack (max - min)":                              {"device": "rack-01"},
		"Lowest cell voltage per rack":                                          {"device": "rack-01"},
		"Off-gas, CO and H2":                                                    {"device": "gas-1", "point": "co"},
		"String current (negative: charging)":                                   {"device": "rack-01"},
		"UPS runtime left":                                                      {"device": "ups-a"},
		"Readings that were not good (invalid, out of range, stale, comm lost)": {"device": "rack-01"},
		"Alarms":        {"column": "alarm_id"},
		"Drain signals": {"column": "action"},
	}
	d := loadDashboard(t, "firebreak-influxdb.json")
	for _, pn := range d.Panels {
		labels, ok := iwant[pn.Title]
		if !ok {
			t.Errorf("panel %q has no expectation in this test", pn.Title)
			continue
		}
		for _, tg := range pn.Targets {
			q := ivars.Replace(tg.Query)
			series, err := influxSeries(influxURL, q)
			if err != nil {
				t.Errorf("%s: %v", pn.Title, err)
				continue
			}
			if !hasSeries(series, labels) {
				t.Errorf("%s: no series with %v for\n%s\ngot %v", pn.Title, labels, q, series)
			}
		}
	}
	for _, a := range d.Annotations.List {
		if series, err := influxSeries(influxURL, ivars.Replace(a.Query)); err != nil || len(series) == 0 {
			t.Errorf("annotation %s: %v %v", a.Name, err, series)
		}
	}
}

// influxSeries runs an InfluxQL query on 1.8 and returns each series' tags, plus "column" for each
// of its columns (a table panel's).
func influxSeries(base, q string) ([]map[string]string, error) {
	body, err := testenv.Influx18Query(base, "firebreak", q)
	if err != nil {
		return nil, err
	}
	var res struct {
		Results []struct {
			Error  string
			Series []struct {
				Tags    map[string]string
				Columns []string
				Values  [][]any
			}
		}
	}
	if err := json.Unmarshal(body, &res); err != nil || len(res.Results) == 0 {
		return nil, fmt.Errorf("%v %s", err, body)
	}
	if e := res.Results[0].Error; e != "" {
		return nil, fmt.Errorf("%s", e)
	}
	var out []map[string]string
	for _, s := range res.Results[0].Series {
		if len(s.Values) == 0 {
			continue
		}
		for _, c := range s.Columns {
			m := map[string]string{"column": c}
			for k, v := range s.Tags {
				m[k] = v
			}
			out = append(out, m)
		}
	}
	return out, nil
}

func hasSeries(series []map[string]string, labels map[string]string) bool {
next:
	for _, s := range series {
		for k, v := range labels {
			if s[k] != v {
				continue next
			}
		}
		return true
	}
	return false
}
