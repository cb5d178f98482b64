package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/agent"
	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/sim"
	"github.com/firebreak-dc/firebreak/internal/testenv"
)

// TestSuddenFireEndToEnd runs the sudden-fire scenario at speed 1 (its first 4 min 40 s, before
// the fire, computed at once): simulator over Modbus TCP → daemon → real Mosquitto →
// firebreak-agent, whose hook runs on the drain and whose acks come back, until the daemon records
// the drain as done. It prints the time from the first fire-panel signal to the hook starting
// (the target: 2 s at speed 1). A second configured consumer never acks: the daemon must
// raise its escalation alarm within ack_timeout.
func TestSuddenFireEndToEnd(t *testing.T) {
	t.Parallel()
	broker := testenv.Mosquitto(t)
	r := hiltest.NewRoomAt(t, "e2e", "sudden-fire", broker, 1)
	r.Cfg.Cutover.Consumers = []string{"control-plane", "never-acks"}
	r.Sim.Skip(4*time.Minute + 40*time.Second)
	p := r.Prefix()
	rec := hiltest.Record(t, broker, "e2e-watch", false, p+"/drain/+/status", p+"/events", p+"/drain/+")

	dir := t.TempDir()
	marker := filepath.Join(dir, "hook-ran")
	cfg, err := agent.ParseConfig([]byte(fmt.Sprintf(`brokers: [%s]
topic_prefix: %s
consumer: control-plane
public_keys: [%s]
state_dir: %s
actions:
  - name: move-traffic
    targets: ["*"]
    on: [drain, evacuate]
    exec: {command: [sh, -c, 'echo "$FIREBREAK_ACTION $FIREBREAK_TARGETS" >> %s']}
`, broker, p, base64.StdEncoding.EncodeToString(r.Pub), filepath.Join(dir, "agent"), marker)), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ag := agent.New(cfg, zap.NewNop())
	var mu sync.Mutex
	var hookAt time.Time
	ag.OnHookStart = func(_, _ string, _ time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if hookAt.IsZero() {
			hookAt = r.Clk.Now()
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.Sim.Run(gctx) })
	g.Go(func() error {
		return daemon.Run(gctx, daemon.Options{Config: r.Cfg, Clock: r.Clk, Log: zap.NewNop(), Version: "test", SigningKey: r.Key, ShutdownGrace: 2 * time.Second})
	})
	g.Go(func() error { return ag.Run(gctx) })

	var done cutover.Progress
	hiltest.WaitFor(t, 4*time.Minute, "the daemon to record the control plane's drained ack", func() bool {
		got, _ := rec.Snapshot()
		for _, raw := range got[p+"/drain/b3-battery/status"] {
			var pr cutover.Progress
			if json.Unmarshal(raw, &pr) == nil && (pr.Action == cutover.Drain || pr.Action == cutover.Evacuate) &&
				pr.Consumers["control-plane"].Status == cutover.AckDrained {
				done = pr
				return true
			}
		}
		return false
	})
	var escalated struct {
		At    time.Time
		Alarm struct{ Stage int }
	}
	hiltest.WaitFor(t, time.Minute, "the never-acking consumer's escalation alarm", func() bool {
		got, _ := rec.Snapshot()
		for _, raw := range got[p+"/events"] {
			var ev struct {
				Cause string
				At    time.Time
				Alarm struct {
					ID    string
					Stage int
				}
			}
			if json.Unmarshal(raw, &ev) == nil && ev.Alarm.ID == "cutover.b3-battery.never-acks.no_ack" && ev.Cause == "activate" {
				escalated.At, escalated.Alarm.Stage = ev.At, ev.Alarm.Stage
				return true
			}
		}
		return false
	})
	cancel()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	// The first sample that showed the fire: the first fire-panel alarm's time is its sample's.
	var firstSample time.Time
	got, _ := rec.Snapshot()
	for _, raw := range got[p+"/events"] {
		var ev struct {
			Cause string
			At    time.Time
			Alarm struct{ Device, Detector string }
		}
		if json.Unmarshal(raw, &ev) == nil && ev.Cause == "activate" && ev.Alarm.Device == "panel-1" && firstSample.IsZero() {
			firstSample = ev.At
		}
	}

	var firstPanel time.Time
	var kind sim.TruthKind
	for _, e := range r.Sim.Truth() {
		switch e.Kind {
		case sim.TruthSmoke, sim.TruthHeat, sim.TruthSuppression, sim.TruthFireAlarm:
			if firstPanel.IsZero() {
				firstPanel, kind = e.At, e.Kind
			}
		}
	}
	mu.Lock()
	latency, physical := hookAt.Sub(firstSample), hookAt.Sub(firstPanel)
	mu.Unlock()
	if firstPanel.IsZero() || firstSample.IsZero() || hookAt.IsZero() {
		t.Fatalf("first panel signal %v, first panel sample %v, hook start %v", firstPanel, firstSample, hookAt)
	}
	took := *done.Consumers["control-plane"].TookS
	t.Logf("E2E sudden-fire at speed 1: first fire-panel sample (%s) at T+%s; the agent's hook started %s after it (target 2s), %s after the event in the simulator (which steps its physics each second; the panel is polled each second); the daemon recorded %s drained %.2fs after its signal; never-acks escalated %s after it (ack_timeout %s)",
		kind, firstSample.Sub(r.Sim.Start()).Round(time.Second), latency.Round(time.Millisecond), physical.Round(time.Millisecond),
		done.Action, took, escalated.At.Sub(done.IssuedAt).Round(time.Millisecond), r.Cfg.Cutover.AckTimeout)
	if latency > 2*time.Second || latency < 0 {
		t.Errorf("hook started %s after the first fire-panel sample, target is within 2s", latency)
	}
	if b, err := os.ReadFile(marker); err != nil || len(b) == 0 {
		t.Errorf("the hook left no trace: %v", err)
	}
	if late := escalated.At.Sub(done.IssuedAt); late > r.Cfg.Cutover.AckTimeout+time.Second || late < r.Cfg.Cutover.AckTimeout {
		t.Errorf("no_ack raised %s after the signal, want at ack_timeout %s (tick resolution 1s)", late, r.Cfg.Cutover.AckTimeout)
	}
	if escalated.Alarm.Stage < 3 {
		t.Errorf("a drain nobody acknowledged is a stage %d alarm, want at least 3", escalated.Alarm.Stage)
	}
}
