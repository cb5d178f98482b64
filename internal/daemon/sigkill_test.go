package daemon_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/testenv"
)

// TestMain lets a test start the daemon as a child process of its own binary (to SIGKILL it).
func TestMain(m *testing.M) {
	if spec := os.Getenv("FIREBREAK_TEST_CHILD"); spec != "" {
		if err := runChild(spec); err != nil {
			fmt.Fprintln(os.Stderr, "child daemon:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childSpec is what a child daemon needs to join a room's test: the same config and, through
// the clock's origin, the same scaled time as the simulator in the parent.
type childSpec struct {
	Site, Scenario, Broker, StateDir string
	Conns                            map[string]string
	Epoch, RealStart                 time.Time
	Speed                            float64
	KeyPEM                           []byte
	// An HA pair's member sets these: its own instance name and its peer's.
	Instance, Peer, PeerPub string
	HAHeartbeat, HAStale    time.Duration
	// Sparkplug, when set, turns on the Sparkplug edge node.
	Sparkplug *config.Sparkplug
}

func runChild(spec string) error {
	var cs childSpec
	if err := json.Unmarshal([]byte(spec), &cs); err != nil {
		return err
	}
	cfg, _, err := hiltest.RoomConfig(cs.Site, cs.Scenario, cs.Broker, cs.StateDir)
	if err != nil {
		return err
	}
	for i, cn := range cfg.Connections {
		cfg.Connections[i].URL = cs.Conns[cn.Name]
	}
	if cs.Instance != "" {
		cfg.Instance = cs.Instance
		cfg.HA.Peer, cfg.HA.PeerPublicKey = cs.Peer, cs.PeerPub
		cfg.HA.Heartbeat, cfg.HA.StaleAfter = cs.HAHeartbeat, cs.HAStale
	}
	if cs.Sparkplug != nil {
		cfg.Sparkplug = *cs.Sparkplug
	}
	key, err := cutover.ParseKey(cs.KeyPEM)
	if err != nil {
		return err
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(os.Stderr), zapcore.DebugLevel)) // the heartbeat re-sends of a signal are logged at debug: the test counts them
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return daemon.Run(ctx, daemon.Options{Config: cfg, Clock: clock.NewScaledFrom(cs.Epoch, cs.RealStart, cs.Speed),
		Log: log, Version: "test", SigningKey: key, ShutdownGrace: 5 * time.Second})
}

func startChild(t *testing.T, r *hiltest.Room) *hiltest.Process {
	t.Helper()
	return startChildWith(t, r, r.Key, func(*childSpec) {})
}

// startChildWith starts a child daemon of the room signing with key, its spec changed by edit.
func startChildWith(t *testing.T, r *hiltest.Room, key ed25519.PrivateKey, edit func(*childSpec)) *hiltest.Process {
	t.Helper()
	epoch, realStart := r.Clk.Origin()
	pemKey, err := cutover.MarshalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cs := childSpec{Site: r.Cfg.Site, Scenario: r.Sc.Name, Broker: r.Cfg.MQTT.Brokers[0], StateDir: r.Cfg.StateDir,
		Conns: map[string]string{}, Epoch: epoch, RealStart: realStart, Speed: r.Clk.Speed(), KeyPEM: pemKey}
	for _, cn := range r.Cfg.Connections {
		cs.Conns[cn.Name] = cn.URL
	}
	edit(&cs)
	spec, _ := json.Marshal(cs)
	return hiltest.StartProcess(t, []string{"FIREBREAK_TEST_CHILD=" + string(spec)}, "-test.run=^$")
}

// since keeps the lines whose "at" is not before t.
func since(lines []map[string]any, t time.Time) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(l["at"]))
		if err == nil && !at.Before(t) {
			out = append(out, l)
		}
	}
	return out
}

// TestDaemonSIGKILLRestoresAndDelivers runs the daemon as its own process through a fire. While
// the broker is dead the daemon goes on issuing alarm events and drain signals (each logged once
// it is durable); then the daemon is killed with SIGKILL, the broker comes back, and a new daemon
// process starts on the same state_dir. It must restore the alarm states and deliver every event
// and signal the dead one had issued, in order, and re-publish the retained alarm states.
func TestDaemonSIGKILLRestoresAndDelivers(t *testing.T) {
	broker := testenv.StartMosquitto(t, true)
	r := hiltest.NewRoom(t, "sigkill", "internal-short", broker.URL)
	p := r.Prefix()
	rec := hiltest.Record(t, broker.URL, "cp-sigkill", true, p+"/drain/+", p+"/events")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	simDone := make(chan error, 1)
	go func() { simDone <- r.Sim.Run(ctx) }()
	defer func() { cancel(); <-simDone }()

	first := startChild(t, r)
	hiltest.WaitFor(t, 2*time.Minute, "the first drain signal at the control plane", func() bool {
		got, _ := rec.Snapshot()
		return len(got[p+"/drain/b3-battery"]) > 0
	})
	killedAt := r.Clk.Now()
	broker.Kill()
	hiltest.WaitFor(t, time.Minute, "drain signals and alarm events issued while the broker is dead", func() bool {
		return len(since(first.Logged("drain signal"), killedAt)) >= 2 && len(since(first.Logged("alarm event"), killedAt)) >= 1
	})
	first.Signal(syscall.SIGKILL)
	<-first.Exited
	owed := append(since(first.Logged("drain signal"), killedAt), since(first.Logged("alarm event"), killedAt)...)
	broker.Start()

	second := startChild(t, r)
	hiltest.WaitFor(t, 30*time.Second, "the new daemon to restore alarm state and find the outbox", func() bool {
		return len(second.Logged("alarm state restored")) == 1 && len(second.Logged("outbox holds messages from before the restart; they go out first")) == 1
	})
	restored := second.Logged("alarm state restored")[0]["alarms"].(float64)
	if restored == 0 {
		t.Fatal("no alarm state restored in the middle of a fire")
	}
	var missing []string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("missing: %v", missing)
			got, _ := rec.Snapshot()
			for topic, msgs := range got {
				for _, raw := range msgs {
					var env struct {
						BootID string `json:"boot_id"`
						Seq    uint64 `json:"seq"`
						Action string `json:"action"`
						TS     string `json:"ts"`
					}
					_ = json.Unmarshal(raw, &env)
					t.Logf("received %s %s/%d %s %s", topic, env.BootID, env.Seq, env.Action, env.TS)
				}
			}
			for _, l := range second.Lines() {
				if !strings.Contains(l, `"msg":"alarm event"`) && !strings.Contains(l, `"msg":"drain signal"`) {
					t.Logf("second daemon: %s", l)
				}
			}
		}
	})
	hiltest.WaitFor(t, time.Minute, fmt.Sprintf("the control plane to receive the %d events and signals the killed daemon owed", len(owed)), func() bool {
		got, _ := rec.Snapshot()
		have := map[string]bool{}
		for _, raw := range got[p+"/events"] {
			var ev struct {
				EventID string `json:"event_id"`
			}
			_ = json.Unmarshal(raw, &ev)
			have[ev.EventID] = true
		}
		for _, raw := range got[p+"/drain/b3-battery"] {
			var s cutover.Signal
			if _, err := cutover.Verify(raw, r.Pub, time.Time{}); err != nil {
				t.Errorf("drain signal refused: %v", err)
			}
			_ = json.Unmarshal(raw, &s)
			have[fmt.Sprintf("%s/%d", s.BootID, s.Seq)] = true
		}
		missing = nil
		for _, l := range owed {
			id := fmt.Sprint(l["event_id"])
			if l["msg"] == "drain signal" {
				id = fmt.Sprintf("%s/%v", l["boot_id"], l["seq"])
			}
			if !have[id] {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0
	})
	// In order: per daemon boot, envelope seq rises on P/events and drain seq on P/drain.
	got, dupes := rec.Snapshot()
	for _, topic := range []string{p + "/events", p + "/drain/b3-battery"} {
		last := map[string]uint64{}
		for _, raw := range got[topic] {
			var env struct {
				BootID string `json:"boot_id"`
				Seq    uint64 `json:"seq"`
			}
			_ = json.Unmarshal(raw, &env)
			if env.Seq <= last[env.BootID] {
				t.Fatalf("%s out of order: seq %d after %d (boot %s)", topic, env.Seq, last[env.BootID], env.BootID)
			}
			last[env.BootID] = env.Seq
		}
	}
	// The new process goes on with the same episode: a consumer must not see a second incident.
	episodes := map[string]map[string]bool{} // boot → episodes
	for _, raw := range got[p+"/drain/b3-battery"] {
		var sig cutover.Signal
		_ = json.Unmarshal(raw, &sig)
		if episodes[sig.BootID] == nil {
			episodes[sig.BootID] = map[string]bool{}
		}
		episodes[sig.BootID][sig.Episode] = true
	}
	if len(episodes) != 2 {
		t.Fatalf("drain signals from %d daemon boots, want 2: %v", len(episodes), episodes)
	}
	var all []string
	for _, eps := range episodes {
		for e := range eps {
			all = append(all, e)
		}
	}
	if len(all) != 2 || all[0] != all[1] {
		t.Fatalf("the restarted daemon started a new episode: %v", episodes)
	}
	// A dashboard that connects now sees the alarm states, whichever daemon last published them.
	fresh := hiltest.Record(t, broker.URL, "dashboard-sigkill", false, p+"/alarm/+")
	hiltest.WaitFor(t, 10*time.Second, "retained alarm states", func() bool {
		got, _ := fresh.Snapshot()
		return len(got) >= int(restored)
	})
	second.Signal(syscall.SIGTERM)
	select {
	case err := <-second.Exited:
		if err != nil {
			t.Fatalf("the daemon did not shut down cleanly on SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the daemon did not stop within 15 s of SIGTERM")
	}
	t.Logf("HIL daemon SIGKILLed mid-fire with the broker dead: %d alarms restored; %d events and drain signals it owed delivered by the next process, in order (%d duplicates removed by id)",
		int(restored), len(owed), dupes)
}
