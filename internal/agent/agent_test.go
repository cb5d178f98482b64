package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sync/errgroup"

	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/testenv"
)

const prefix = "firebreak/t"

func signal(t *testing.T, key ed25519.PrivateKey, zone, episode string, action cutover.Action, seq uint64, targets []string, valid time.Duration) []byte {
	t.Helper()
	now := time.Now().UTC()
	s := cutover.Signal{V: 1, ID: episode + "." + string(action), Episode: episode, Site: "t", Zone: zone, Action: action, Stage: 3,
		Domains: []string{"ups-a"}, Targets: targets, Reason: "test", IssuedAt: now, ValidUntil: now.Add(valid), Instance: "fb-a1", Seq: seq}
	if err := cutover.Sign(&s, key); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(s)
	return b
}

func testConfig(t *testing.T, broker string, pub ed25519.PublicKey, actions string) *Config {
	t.Helper()
	y := fmt.Sprintf(`brokers: [%s]
topic_prefix: %s
consumer: control-plane
public_keys: [%s]
state_dir: %s
actions:
%s`, broker, prefix, base64.StdEncoding.EncodeToString(pub), t.TempDir(), actions)
	cfg, err := ParseConfig([]byte(y), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestConfigErrorsNameTheField(t *testing.T) {
	t.Parallel()
	_, err := ParseConfig([]byte(`brokers: []
topic_prefix: "a/#"
consumer: Control Plane
public_keys: [nope]
state_dir: ""
actions:
  - {name: a, targets: [], exec: {command: []}}
  - {name: a, targets: ["*"], on: [panic], webhook: {url: "ftp://x"}}
  - {name: c, targets: ["*"]}
`), "agent.yaml")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"brokers: must list a broker", `topic_prefix: must be`, `consumer: must match`, "public_keys[0]: must be the base64",
		"state_dir: must be set", "actions[0].targets", "actions[0].exec.command", "actions[1].name: must be a unique name", `actions[1].on: must be prepare`,
		"actions[1].webhook.url", "actions[2]: must have exactly one of exec and webhook"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

// TestRefusedSignalsRunNothing: forged, expired, tampered and replayed signals start nothing and
// leave no record (checked without a broker: a refusal happens before any ack).
func TestRefusedSignalsRunNothing(t *testing.T) {
	t.Parallel()
	pub, key, _ := ed25519.GenerateKey(nil)
	_, mallory, _ := ed25519.GenerateKey(nil)
	marker := filepath.Join(t.TempDir(), "ran")
	cfg := testConfig(t, "tcp://127.0.0.1:1", pub, fmt.Sprintf(`  - {name: mark, targets: ["*"], exec: {command: [sh, -c, "echo x >> %s"]}}`, marker))
	a := New(cfg, zap.NewNop())
	if err := a.load(); err != nil {
		t.Fatal(err)
	}
	a.recv = cutover.Receiver{Keys: cfg.keys(), LastSeq: map[string]uint64{"fb-a1": 10}}
	good := signal(t, key, "z1", "e1", cutover.Drain, 11, []string{"hall-1"}, time.Minute)
	for name, payload := range map[string][]byte{
		"forged":               signal(t, mallory, "z1", "e1", cutover.Drain, 12, []string{"hall-1"}, time.Minute),
		"expired":              signal(t, key, "z1", "e1", cutover.Drain, 13, []string{"hall-1"}, -time.Second),
		"replayed":             signal(t, key, "z1", "e1", cutover.Drain, 10, []string{"hall-1"}, time.Minute),
		"tampered":             []byte(strings.Replace(string(good), `"hall-1"`, `"hall-9"`, 1)),
		"zone not its topic's": signal(t, key, "z2", "e1", cutover.Drain, 14, []string{"hall-1"}, time.Minute),
	} {
		var g errgroup.Group
		if err := a.signal(context.Background(), &g, inbound{topic: prefix + "/drain/z1", payload: payload}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(a.st.Signals) != 0 {
			t.Fatalf("%s: a record was made: %+v", name, a.st.Signals)
		}
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("a refused signal ran a hook")
	}
}

// acks records the agent's acks as a control plane's daemon would see them.
type acks struct {
	mu  sync.Mutex
	all []cutover.Ack
}

func (a *acks) last(id string) (cutover.Ack, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out cutover.Ack
	n := 0
	for _, x := range a.all {
		if x.SignalID == id {
			out = x
			n++
		}
	}
	return out, n
}

func watchAcks(t *testing.T, broker string) *acks {
	t.Helper()
	rec := &acks{}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("ack-watch-%d", time.Now().UnixNano())).SetOrderMatters(true))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	if tok := c.Subscribe(prefix+"/drain/+/ack/+", 1, func(_ paho.Client, m paho.Message) {
		var a cutover.Ack
		if json.Unmarshal(m.Payload(), &a) == nil {
			rec.mu.Lock()
			rec.all = append(rec.all, a)
			rec.mu.Unlock()
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	return rec
}

func publish(t *testing.T, broker, topic string, payload []byte) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("pub-%d", time.Now().UnixNano())))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, true, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
}

func lines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

// TestRestartMidDrainRunsTheHookOnce: the agent is stopped while its hook runs, and a new one
// starts on the same state: the hook is not started again, its outcome is found and acked; a
// heartbeat of the same signal is acked again without running anything; a failing hook is acked
// failed with its exit code; a webhook gets the signal with an Idempotency-Key.
func TestRestartMidDrainRunsTheHookOnce(t *testing.T) {
	t.Parallel()
	broker := testenv.Mosquitto(t)
	pub, key, _ := ed25519.GenerateKey(nil)
	dir := t.TempDir()
	count, gate := filepath.Join(dir, "count"), filepath.Join(dir, "gate")
	var hookMu sync.Mutex
	var hookBodies []string
	var hookKeys []string
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hookMu.Lock()
		hookBodies = append(hookBodies, string(b))
		hookKeys = append(hookKeys, r.Header.Get("Idempotency-Key"))
		hookMu.Unlock()
	}))
	defer web.Close()
	// The hook counts its runs, checks its stdin is the signal, and waits for the test's gate.
	cfg := testConfig(t, broker, pub, fmt.Sprintf(`  - name: drain-halls
    targets: [hall-1, hall-2]
    exec: {command: [sh, -c, 'grep -q "\"id\":\"$FIREBREAK_SIGNAL_ID\"" || exit 9; echo "$FIREBREAK_ACTION $FIREBREAK_TARGETS" >> %s; while [ ! -e %s ]; do sleep 0.05; done']}
  - name: broken
    targets: [hall-9]
    exec: {command: [sh, -c, 'exit 3']}
  - name: lb
    targets: [hall-w]
    webhook: {url: %s}
`, count, gate, web.URL))
	seen := watchAcks(t, broker)

	run := func() (context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- New(cfg, zap.NewNop()).Run(ctx) }()
		return cancel, done
	}
	stop1, done1 := run()
	publish(t, broker, prefix+"/drain/z1", signal(t, key, "z1", "e1", cutover.Drain, 1, []string{"hall-1", "hall-3"}, time.Minute))
	hiltest.WaitFor(t, 10*time.Second, "the hook to start", func() bool { return lines(count) == 1 })
	hiltest.WaitFor(t, 5*time.Second, "the draining ack", func() bool { a, _ := seen.last("e1.drain"); return a.Status == cutover.AckDraining })
	stop1()
	if err := <-done1; err != nil {
		t.Fatal(err)
	}

	stop2, done2 := run()
	defer func() { stop2(); <-done2 }()
	if err := os.WriteFile(gate, nil, 0o600); err != nil { // the hook, still running, may now end
		t.Fatal(err)
	}
	hiltest.WaitFor(t, 10*time.Second, "the resumed signal's drained ack", func() bool { a, _ := seen.last("e1.drain"); return a.Status == cutover.AckDrained })
	_, before := seen.last("e1.drain")
	publish(t, broker, prefix+"/drain/z1", signal(t, key, "z1", "e1", cutover.Drain, 2, []string{"hall-1", "hall-3"}, time.Minute))
	hiltest.WaitFor(t, 10*time.Second, "the heartbeat's ack", func() bool {
		a, n := seen.last("e1.drain")
		return n > before && a.Seq == 2 && a.Status == cutover.AckDrained
	})
	if n := lines(count); n != 1 {
		t.Fatalf("the hook ran %d times", n)
	}
	if b, _ := os.ReadFile(count); string(b) != "drain hall-1\n" {
		t.Fatalf("the hook saw %q, want its action and only its own targets", b)
	}

	publish(t, broker, prefix+"/drain/z2", signal(t, key, "z2", "e2", cutover.Evacuate, 3, []string{"hall-9"}, time.Minute))
	hiltest.WaitFor(t, 10*time.Second, "the failed ack", func() bool { a, _ := seen.last("e2.evacuate"); return a.Status == cutover.AckFailed })
	if a, _ := seen.last("e2.evacuate"); !strings.Contains(a.Detail, "broken exited with 3") {
		t.Fatalf("failed ack detail %q", a.Detail)
	}

	publish(t, broker, prefix+"/drain/z3", signal(t, key, "z3", "e3", cutover.Prepare, 4, []string{"hall-w"}, time.Minute))
	hiltest.WaitFor(t, 10*time.Second, "the webhook's drained ack", func() bool { a, _ := seen.last("e3.prepare"); return a.Status == cutover.AckDrained })
	hookMu.Lock()
	defer hookMu.Unlock()
	if len(hookBodies) != 1 || hookKeys[0] != "e3.prepare.lb" || !strings.Contains(hookBodies[0], `"id":"e3.prepare"`) {
		t.Fatalf("webhook got %v with keys %v", hookBodies, hookKeys)
	}
}

// TestAckOutlivesABrokerCrash: the drained ack of a hook that ends while the broker is down is
// sent when a broker is back, though nothing asks for it again: the broker lost its retained
// signal (no persistence) and no heartbeat comes.
func TestAckOutlivesABrokerCrash(t *testing.T) {
	t.Parallel()
	broker := testenv.StartMosquitto(t, false)
	pub, key, _ := ed25519.GenerateKey(nil)
	gate := filepath.Join(t.TempDir(), "gate")
	cfg := testConfig(t, broker.URL, pub, fmt.Sprintf(`  - name: halls
    targets: ["*"]
    exec: {command: [sh, -c, 'while [ ! -e %s ]; do sleep 0.05; done']}
`, gate))
	seen := watchAcks(t, broker.URL)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(cfg, zap.NewNop()).Run(ctx) }()
	defer func() { cancel(); <-done }()

	publish(t, broker.URL, prefix+"/drain/z1", signal(t, key, "z1", "e1", cutover.Drain, 1, []string{"hall-1"}, time.Minute))
	hiltest.WaitFor(t, 20*time.Second, "the draining ack", func() bool { a, _ := seen.last("e1.drain"); return a.Status == cutover.AckDraining })
	broker.Kill()
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	hiltest.WaitFor(t, 20*time.Second, "the agent to record the signal drained", func() bool {
		b, _ := os.ReadFile(filepath.Join(cfg.StateDir, "agent.json"))
		return strings.Contains(string(b), `"status":"drained"`)
	})
	broker.Start()
	again := watchAcks(t, broker.URL)
	hiltest.WaitFor(t, 30*time.Second, "the drained ack after the broker came back", func() bool {
		a, _ := again.last("e1.drain")
		return a.Status == cutover.AckDrained
	})
}

// TestAgentBadDay: a signal with 8,000 targets reaches its exec hook (through FIREBREAK_SIGNAL_FILE
// and FIREBREAK_TARGETS_FILE; in the environment it was beyond Linux's limit for one variable);
// a valid signal first published on another zone's topic is still taken on its own; and 2,000
// garbage payloads of 100 KB on P/drain/+ around a real signal do not cost it, and are logged as
// one rate-limited line, not 2,000 (issue 22).
func TestAgentBadDay(t *testing.T) {
	t.Parallel()
	broker := testenv.Mosquitto(t)
	pub, key, _ := ed25519.GenerateKey(nil)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	cfg := testConfig(t, broker, pub, fmt.Sprintf(`  - name: halls
    targets: ["*"]
    exec: {command: [sh, -c, 'n=$(wc -l < "$FIREBREAK_TARGETS_FILE"); grep -q "\"id\":\"$FIREBREAK_SIGNAL_ID\"" "$FIREBREAK_SIGNAL_FILE" || exit 9; echo "$FIREBREAK_SIGNAL_ID $n" >> %s']}
`, out))
	core, logs := observer.New(zap.InfoLevel)
	seen := watchAcks(t, broker)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(cfg, zap.New(core)).Run(ctx) }()
	defer func() { cancel(); <-done }()

	many := make([]string, 8000)
	for i := range many {
		many[i] = fmt.Sprintf("hall-%04d", i)
	}
	publish(t, broker, prefix+"/drain/z1", signal(t, key, "z1", "big", cutover.Drain, 1, many, time.Minute))
	hiltest.WaitFor(t, 20*time.Second, "the hook of the 8,000-target signal", func() bool {
		b, _ := os.ReadFile(out)
		return strings.Contains(string(b), "big.drain 8000")
	})

	wrong := signal(t, key, "z2", "moved", cutover.Drain, 2, []string{"hall-1"}, time.Minute)
	publish(t, broker, prefix+"/drain/z1", wrong) // z2's signal on z1's topic: refused, its seq not spent
	publish(t, broker, prefix+"/drain/z2", wrong)
	hiltest.WaitFor(t, 20*time.Second, "the signal taken on its own zone's topic", func() bool { a, _ := seen.last("moved.drain"); return a.Status == cutover.AckDrained })

	flooder := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("flooder"))
	if tok := flooder.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer flooder.Disconnect(100)
	junk := []byte(`{"v":1,"junk":"` + strings.Repeat("x", 100<<10) + `"}`)
	start := time.Now()
	var last paho.Token
	for i := 0; i < 2000; i++ {
		if i == 1000 {
			publish(t, broker, prefix+"/drain/z3", signal(t, key, "z3", "real", cutover.Evacuate, 3, []string{"hall-1"}, time.Minute))
		}
		last = flooder.Publish(prefix+"/drain/z3", 0, false, junk)
	}
	last.Wait()
	// The agent reads the 200 MB the broker sends it at what this machine can move: its margin is
	// 30 s plus three times what the flood took to leave the flooder (seconds on a quiet machine,
	// more beside a CPU hog), not a fixed budget.
	flood := time.Since(start)
	t.Logf("flood left in %v", flood)
	defer func() {
		if t.Failed() {
			for _, e := range logs.All() {
				line := fmt.Sprintf("%s %s %v", e.Time.Format("15:04:05.000"), e.Message, e.ContextMap())
				t.Log(line[:min(len(line), 300)])
			}
		}
	}()
	hiltest.WaitFor(t, 30*time.Second+3*flood, "the real signal amid the flood", func() bool { a, _ := seen.last("real.evacuate"); return a.Status == cutover.AckDrained })
	took := time.Since(start)
	t.Logf("real signal after %v", took)
	// At most one line each 10 s (and the first at once), however long this machine took.
	most := 2 + int(took/(10*time.Second))
	if n := logs.FilterMessage("messages on the drain topics refused: not signed by a configured key, or too large").Len(); n == 0 || n > most {
		t.Errorf("%d log lines for 2,000 garbage messages in %v: want a few, rate limited (at most %d)", n, took.Round(time.Second), most)
	}
}

// TestHooksAreCheckedAtStart: an exec hook that does not exist, or is not executable, or a
// webhook token that cannot be read, is refused before the agent starts (exit 2, with the path),
// not discovered when the prepare comes.
func TestHooksAreCheckedAtStart(t *testing.T) {
	t.Parallel()
	pub, _, _ := ed25519.GenerateKey(nil)
	dir := t.TempDir()
	plain := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil { // not executable
		t.Fatal(err)
	}
	for _, c := range []struct{ actions, want string }{
		{"  - {name: a, targets: ['*'], exec: {command: [/no/such/hook.sh]}}", "/no/such/hook.sh: no such file or directory"},
		{"  - {name: a, targets: ['*'], exec: {command: [" + plain + "]}}", "is not an executable file"},
		{"  - {name: a, targets: ['*'], exec: {command: [no-such-program-anywhere]}}", `"no-such-program-anywhere": executable file not found`},
		{"  - {name: a, targets: ['*'], webhook: {url: 'http://127.0.0.1:1/x', token_file: /no/such/token}}", "webhook.token_file: open /no/such/token"},
	} {
		err := testConfig(t, "tcp://127.0.0.1:1", pub, c.actions).CheckHooks()
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.actions, err, c.want)
		}
	}
	if err := testConfig(t, "tcp://127.0.0.1:1", pub, "  - {name: a, targets: ['*'], exec: {command: [/bin/true]}}").CheckHooks(); err != nil {
		t.Errorf("/bin/true refused: %v", err)
	}
}
