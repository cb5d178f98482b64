package daemon_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/testenv"
)

// TestShutdownFlushesInflux: a daemon stopped in the middle of polling writes every sample it
// took to InfluxDB before it returns, the pollers' last batches (taken after the stop) included,
// and publishes offline.
func TestShutdownFlushesInflux(t *testing.T) {
	t.Parallel()
	url := testenv.InfluxDB18(t, "firebreak")
	broker := testenv.Mosquitto(t)
	r := hiltest.NewRoom(t, "flush", "normal", broker)
	r.Cfg.Influx.URL, r.Cfg.Influx.Bucket = url, "firebreak/autogen"
	status := hiltest.Record(t, broker, "flush-status", false, r.Prefix()+"/node/+/status")
	var mu sync.Mutex
	samples := 0
	observe := func(b sample.Batch) {
		mu.Lock()
		samples += len(b.Samples)
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	simCtx, stopSim := context.WithCancel(context.Background())
	defer stopSim()
	go func() { _ = r.Sim.Run(simCtx) }()
	g.Go(func() error {
		return daemon.Run(gctx, daemon.Options{Config: r.Cfg, Clock: r.Clk, Log: zap.NewNop(), Version: "test",
			SigningKey: r.Key, ShutdownGrace: 10 * time.Second, Observe: observe})
	})
	// Not a budget: a bound on a hang. Beside the HIL rooms of the package on two cores, the room
	// and its daemon have once taken longer than 30 s to poll their first thousands.
	hiltest.WaitFor(t, 3*time.Minute, "some thousands of samples", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return samples >= 5000
	})
	cancel()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	want := samples
	mu.Unlock()
	body, err := testenv.Influx18Query(url, "firebreak", `SELECT count("good") FROM telemetry WHERE "quality" != 'stale'`)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Results []struct {
			Series []struct {
				Values [][]any `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &res); err != nil || len(res.Results) == 0 || len(res.Results[0].Series) == 0 {
		t.Fatalf("query: %s %v", body, err)
	}
	got := int(res.Results[0].Series[0].Values[0][1].(float64))
	if want < 100 || got != want {
		t.Fatalf("InfluxDB holds %d points after the shutdown; the daemon took %d samples", got, want)
	}
	hiltest.WaitFor(t, 5*time.Second, "offline published", func() bool {
		got, _ := status.Snapshot()
		msgs := got[r.Prefix()+"/node/"+r.Cfg.Instance+"/status"]
		var st struct{ State string }
		return len(msgs) > 0 && json.Unmarshal(msgs[len(msgs)-1], &st) == nil && st.State == "offline"
	})
	t.Logf("shutdown: all %d samples taken were in InfluxDB when Run returned, and offline was published", got)
}
