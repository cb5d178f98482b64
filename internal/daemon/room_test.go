package daemon_test

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/firebreak-dc/firebreak/configs"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/sim"
)

// room is a simulated power room served over real Modbus TCP, on a scaled clock, with the
// demo site's config pointed at it and at a broker.
type room struct {
	cfg *config.Config
	sc  *sim.Scenario
	clk *clock.Scaled
	sim *sim.Simulator
	key ed25519.PrivateKey
	pub ed25519.PublicKey
}

// roomConfig is the demo site set up for a scenario's HIL run (no servers yet).
func roomConfig(site, scenario, broker, stateDir string) (*config.Config, *sim.Scenario, error) {
	data, err := configs.FS.ReadFile("sites/demo.yaml")
	if err != nil {
		return nil, nil, err
	}
	cfg, err := config.Parse(data, "demo.yaml")
	if err != nil {
		return nil, nil, err
	}
	cfg.Site = site
	cfg.StateDir = stateDir
	cfg.MQTT.Brokers = []string{broker}
	sc, err := sim.LoadScenario(scenario)
	if err != nil {
		return nil, nil, err
	}
	if sc.HIL.Interval > 0 {
		for i := range cfg.Devices {
			cfg.Devices[i].Interval = sc.HIL.Interval
		}
	}
	if sc.HIL.NoDataGrace > 0 {
		cfg.Detection.NoDataGrace = sc.HIL.NoDataGrace
	}
	// A signal's validity is scenario time, its delivery real time: at least 5 s of real time.
	cfg.Cutover.Validity = max(cfg.Cutover.Validity, time.Duration(sc.HIL.Speed*5)*time.Second)
	return cfg, sc, nil
}

func newRoom(t *testing.T, site, scenario, broker string) *room {
	t.Helper()
	cfg, sc, err := roomConfig(site, scenario, broker, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewScaled(time.Now().UTC(), sc.HIL.Speed)
	s, err := sim.New(cfg, sc, clk)
	if err != nil {
		t.Fatal(err)
	}
	for i, cn := range cfg.Connections {
		srv, err := s.Serve(cn.Name, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		cfg.Connections[i].URL = "tcp://" + srv.Addr
	}
	pub, key, _ := ed25519.GenerateKey(nil)
	return &room{cfg: cfg, sc: sc, clk: clk, sim: s, key: key, pub: pub}
}

func (r *room) prefix() string { return r.cfg.MQTT.TopicPrefix + "/" + r.cfg.Site }

// recorder is a subscriber that keeps, per topic and in arrival order, every distinct message the
// daemon published: a message sent twice (at-least-once delivery after an outage) is counted as
// a duplicate once, keyed by what makes it unique (boot_id and seq; a drain signal's own seq).
type recorder struct {
	mu      sync.Mutex
	client  paho.Client
	seen    map[string]bool
	byTopic map[string][]json.RawMessage
	dupes   int
	onMsg   func(topic string, payload []byte)
}

// record subscribes to filters. A persistent recorder keeps its session across its own and the
// broker's restarts, so what is published while it is away waits for it.
func record(t *testing.T, broker, id string, persistent bool, filters ...string) *recorder {
	t.Helper()
	rec := &recorder{seen: map[string]bool{}, byTopic: map[string][]json.RawMessage{}}
	subs := map[string]byte{}
	for _, f := range filters {
		subs[f] = 1
	}
	handler := func(_ paho.Client, m paho.Message) { rec.handle(m.Topic(), m.Payload()) }
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID(id).SetCleanSession(!persistent).
		SetOrderMatters(true).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(200 * time.Millisecond).SetMaxReconnectInterval(time.Second).
		SetDefaultPublishHandler(handler).
		SetOnConnectHandler(func(c paho.Client) { c.SubscribeMultiple(subs, handler) })
	rec.client = paho.NewClient(opts)
	if tok := rec.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("recorder connect: %v", tok.Error())
	}
	t.Cleanup(func() { rec.client.Disconnect(100) })
	// The subscription is made in OnConnect; wait until the broker has it.
	if tok := rec.client.SubscribeMultiple(subs, handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("recorder subscribe: %v", tok.Error())
	}
	return rec
}

func (r *recorder) handle(topic string, payload []byte) {
	var env struct {
		BootID string `json:"boot_id"`
		Seq    uint64 `json:"seq"`
	}
	_ = json.Unmarshal(payload, &env)
	key := fmt.Sprintf("%s|%s|%d", topic, env.BootID, env.Seq)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[key] {
		r.dupes++
		return
	}
	r.seen[key] = true
	r.byTopic[topic] = append(r.byTopic[topic], append(json.RawMessage(nil), payload...))
	if r.onMsg != nil {
		r.onMsg(topic, payload)
	}
}

// snapshot copies what has arrived so far.
func (r *recorder) snapshot() (map[string][]json.RawMessage, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]json.RawMessage{}
	for k, v := range r.byTopic {
		out[k] = append([]json.RawMessage(nil), v...)
	}
	return out, r.dupes
}

// waitFor polls cond every 50 ms of real time until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
}
