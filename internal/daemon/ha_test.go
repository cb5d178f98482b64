package daemon_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/agent"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/testenv"
)

// TestHAPairSurvivesAKill: two daemons (fb-1, fb-2) watch the same room through a fire, both
// polling the simulator's gateways and both publishing to one Mosquitto. fb-1 is SIGKILLed once
// both have signalled. The drain still goes out (from fb-2, issued after the kill), fb-2 raises
// ha.fb-1.redundancy_lost, and a control-plane subscriber that dedupes on the episode id sees
// one episode: both daemons named it alike. A firebreak-agent with both daemons' keys runs its
// hook once per signal id, whichever daemon sent it, and fb-2 takes its acks.
func TestHAPairSurvivesAKill(t *testing.T) {
	t.Parallel()
	broker := testenv.StartMosquitto(t, false)
	r := hiltest.NewRoom(t, "ha", "internal-short", broker.URL)
	p := r.Prefix()
	rec := hiltest.Record(t, broker.URL, "cp-ha", true, p+"/drain/+", p+"/alarm/+", p+"/drain/+/status")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	simDone := make(chan error, 1)
	go func() { simDone <- r.Sim.Run(ctx) }()
	defer func() { cancel(); <-simDone }()

	pubB, keyB, _ := ed25519.GenerateKey(nil)
	speed := time.Duration(r.Clk.Speed())
	member := func(self, peer string, peerPub ed25519.PublicKey) func(*childSpec) {
		return func(cs *childSpec) {
			cs.Instance, cs.Peer, cs.PeerPub = self, peer, base64.StdEncoding.EncodeToString(peerPub)
			cs.StateDir = t.TempDir()
			// Scenario time: one heartbeat per real second, lost after five silent ones.
			cs.HAHeartbeat, cs.HAStale = speed*time.Second, 5*speed*time.Second
		}
	}
	a := startChildWith(t, r, r.Key, member("fb-1", "fb-2", pubB))
	b := startChildWith(t, r, keyB, member("fb-2", "fb-1", r.Pub))
	keys := map[string]ed25519.PublicKey{"fb-1": r.Pub, "fb-2": pubB}

	// The control plane's agent trusts both daemons; its hook logs each signal id it runs for.
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	acfg, err := agent.ParseConfig([]byte(fmt.Sprintf(`brokers: [%s]
topic_prefix: %s
consumer: control-plane
public_keys: [%s, %s]
state_dir: %s
actions:
  - {name: move-traffic, targets: ["*"], on: [prepare, drain, evacuate], exec: {command: [sh, -c, 'echo "$FIREBREAK_SIGNAL_ID" >> %s']}}
`, broker.URL, p, base64.StdEncoding.EncodeToString(r.Pub), base64.StdEncoding.EncodeToString(pubB), filepath.Join(dir, "agent"), ran)), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	agentCtx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan error, 1)
	go func() { agentDone <- agent.New(acfg, zap.NewNop()).Run(agentCtx) }()
	defer func() { stopAgent(); <-agentDone }()

	signals := func() []cutover.Signal {
		got, _ := rec.Snapshot()
		var out []cutover.Signal
		for _, raw := range got[p+"/drain/b3-battery"] {
			var s cutover.Signal
			_ = json.Unmarshal(raw, &s)
			if _, err := cutover.Verify(raw, keys[s.Instance], time.Time{}); err != nil {
				t.Errorf("signal from %q does not verify with its key: %v", s.Instance, err)
			}
			out = append(out, s)
		}
		return out
	}
	from := func(instance string) []cutover.Signal {
		var out []cutover.Signal
		for _, s := range signals() {
			if s.Instance == instance {
				out = append(out, s)
			}
		}
		return out
	}
	hiltest.WaitFor(t, 2*time.Minute, "a drain signal from each daemon", func() bool {
		return len(from("fb-1")) > 0 && len(from("fb-2")) > 0
	})
	killedAt := r.Clk.Now()
	a.Signal(syscall.SIGKILL)
	<-a.Exited
	t.Logf("fb-1 killed at scenario %s, after %d signals from it", killedAt.Sub(r.Sim.Start()).Round(time.Second), len(from("fb-1")))

	hiltest.WaitFor(t, 2*time.Minute, "a drain or evacuate signal from fb-2 issued after the kill", func() bool {
		for _, s := range from("fb-2") {
			if s.IssuedAt.After(killedAt) && (s.Action == cutover.Drain || s.Action == cutover.Evacuate) {
				return true
			}
		}
		return false
	})
	hiltest.WaitFor(t, time.Minute, "fb-2 to raise ha.fb-1.redundancy_lost", func() bool {
		got, _ := rec.Snapshot()
		msgs := got[p+"/alarm/ha.fb-1.redundancy_lost"]
		if len(msgs) == 0 {
			return false
		}
		var al struct {
			Instance string `json:"instance"`
			State    string `json:"state"`
		}
		_ = json.Unmarshal(msgs[len(msgs)-1], &al)
		return al.Instance == "fb-2" && al.State == "unacknowledged"
	})
	// The control plane dedupes on the episode id: one fire, one episode, whichever daemon spoke.
	episodes := map[string]map[string]int{}
	for _, s := range signals() {
		if episodes[s.Episode] == nil {
			episodes[s.Episode] = map[string]int{}
		}
		episodes[s.Episode][s.Instance]++
	}
	if len(episodes) != 1 {
		t.Fatalf("the control plane saw %d episodes, want 1: %v", len(episodes), episodes)
	}
	// The agent ran its hook once per signal id, though both daemons sent most of them.
	hiltest.WaitFor(t, 30*time.Second, "fb-2 to record the agent's drained ack", func() bool {
		got, _ := rec.Snapshot()
		for _, raw := range got[p+"/drain/b3-battery/status"] {
			var pr struct {
				Instance string `json:"instance"`
				cutover.Progress
			}
			if json.Unmarshal(raw, &pr) == nil && pr.Instance == "fb-2" && pr.Consumers["control-plane"].Status == cutover.AckDrained &&
				(pr.Action == cutover.Drain || pr.Action == cutover.Evacuate) {
				return true
			}
		}
		return false
	})
	body, err := os.ReadFile(ran)
	if err != nil {
		t.Fatal(err)
	}
	runs := map[string]int{}
	for _, id := range strings.Fields(string(body)) {
		runs[id]++
	}
	for id, n := range runs {
		if n != 1 {
			t.Errorf("the agent ran its hook %d times for %s", n, id)
		}
	}
	if len(runs) == 0 {
		t.Error("the agent's hook never ran")
	}
	b.Signal(syscall.SIGTERM)
	select {
	case <-b.Exited:
	case <-time.After(20 * time.Second):
		t.Fatal("fb-2 did not stop within 20 s of SIGTERM")
	}
	t.Logf("HIL HA pair: fb-1 SIGKILLed mid-fire; fb-2 drained on, raised redundancy_lost; the control plane saw one episode %v; the agent ran its hook once for each of %v", episodes, runs)
}
