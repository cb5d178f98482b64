package influx_test

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/influx"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/sim"
	"github.com/firebreak-dc/firebreak/internal/testenv"
)

var t0 = time.Date(2022, 10, 15, 15, 0, 0, 0, time.UTC)

func TestPointsNeverCarryBadValues(t *testing.T) {
	t.Parallel()
	b := sample.Batch{Device: "rack-01", At: t0, Samples: []sample.Sample{
		{Device: "rack-01", Point: "a", Role: "cell_temperature", Value: 25.5, Quality: sample.Good, At: t0},
		{Device: "rack-01", Point: "b", Value: math.NaN(), Quality: sample.Good, At: t0},
		{Device: "rack-01", Point: "c", Value: 6553.5, Quality: sample.OutOfRange, At: t0},
		{Device: "rack-01", Point: "d", Quality: sample.CommLost, At: t0},
		{Device: "rack-01", Point: "e", Text: "SN123", Quality: sample.Good, At: t0},
	}}
	pts := influx.Points(influx.Meta{Site: "s", Instance: "fb-1", Zones: map[string]string{"rack-01": "z1"}}, b)
	if len(pts) != 4 {
		t.Fatalf("%d points, want 4 (strings are not series)", len(pts))
	}
	for _, p := range pts {
		var hasValue, good bool
		for _, f := range p.FieldList() {
			if f.Key == "value" {
				hasValue = true
			}
			if f.Key == "good" {
				good, _ = f.Value.(bool)
			}
		}
		tags := map[string]string{}
		for _, tg := range p.TagList() {
			tags[tg.Key] = tg.Value
		}
		point := tags["point"]
		if hasValue != (point == "a") || good != (point == "a") {
			t.Errorf("point %s: value written = %v, good = %v", point, hasValue, good)
		}
		if tags["quality"] == "" || tags["zone"] != "z1" || tags["instance"] != "fb-1" || tags["site"] != "s" {
			t.Errorf("point %s: tags %v, want quality, zone, instance and site", point, tags)
		}
	}
}

// TestReadBackFromInfluxDB18 polls the simulator over real Modbus TCP, writes through the sink to a
// real InfluxDB 1.8 via /api/v2/write, and reads every point back.
func TestReadBackFromInfluxDB18(t *testing.T) {
	t.Parallel()
	url := testenv.InfluxDB18(t, "firebreak")

	s, rd, cfg := demoRoom(t)
	p := &collectors.Poller{Reader: rd, Clock: clock.NewManual(t0), Log: zap.NewNop()}
	dev, _ := cfg.Collector(cfg.Devices[0])
	b := p.Poll(dev)
	if b.Err != nil {
		t.Fatal(b.Err)
	}
	// What went over Modbus is what the simulator served: its own read of the same registers.
	served, err := s.Read(dev.Name, b.At)
	if err != nil {
		t.Fatal(err)
	}
	if len(served.Samples) != len(b.Samples) {
		t.Fatalf("polled %d points, simulator serves %d", len(b.Samples), len(served.Samples))
	}
	for i := range b.Samples {
		if served.Samples[i].Point != b.Samples[i].Point || served.Samples[i].Value != b.Samples[i].Value {
			t.Fatalf("polled %s = %v, simulator served %s = %v", b.Samples[i].Point, b.Samples[i].Value, served.Samples[i].Point, served.Samples[i].Value)
		}
	}
	b.Samples[0].Quality = sample.Invalid // as a sentinel reading would be

	sink := influx.New(influx.Options{URL: url, Bucket: "firebreak/autogen", Meta: influx.Meta{Site: "s1", Instance: "fb-1"}}, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sink.Run(ctx) }()
	sink.Offer(b)
	cancel() // Run flushes what it holds before it returns
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if sink.Failed() != 0 || sink.Dropped() != 0 {
		t.Fatalf("failed %d, dropped %d", sink.Failed(), sink.Dropped())
	}

	body, err := testenv.Influx18Query(url, "firebreak", `SELECT "point", "quality", "value", "good" FROM telemetry WHERE "device" = 'rack-01'`)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Results []struct {
			Series []struct {
				Columns []string `json:"columns"`
				Values  [][]any  `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &res); err != nil || len(res.Results) == 0 || len(res.Results[0].Series) == 0 {
		t.Fatalf("query result %s: %v", body, err)
	}
	got := map[string][]any{}
	for _, row := range res.Results[0].Series[0].Values {
		got[row[1].(string)] = row
	}
	if len(got) != len(b.Samples) {
		t.Fatalf("%d points read back, %d written", len(got), len(b.Samples))
	}
	for i, smp := range b.Samples {
		row := got[smp.Point]
		if row == nil {
			t.Errorf("%s not read back", smp.Point)
			continue
		}
		if row[2] != smp.Quality.String() {
			t.Errorf("%s: quality %v, want %v", smp.Point, row[2], smp.Quality)
		}
		if i == 0 {
			if row[3] != nil {
				t.Errorf("%s: an invalid sample was written with value %v", smp.Point, row[3])
			}
			continue
		}
		if v, ok := row[3].(float64); !ok || math.Abs(v-smp.Value) > 1e-9 {
			t.Errorf("%s: read back %v, served %v", smp.Point, row[3], smp.Value)
		}
	}
}

// demoRoom serves the demo site's normal scenario over real Modbus TCP and returns a reader on it.
func demoRoom(t *testing.T) (*sim.Simulator, collectors.Reader, *config.Config) {
	t.Helper()
	cfg := hiltest.DemoSite(t)
	sc, _ := sim.LoadScenario("normal")
	s, err := sim.New(cfg, sc, clock.NewManual(t0))
	if err != nil {
		t.Fatal(err)
	}
	return s, hiltest.Serve(t, s, "gw-1"), cfg
}
