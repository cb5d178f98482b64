// Package hiltest sets up hardware-in-loop rooms for tests: the demo site's config, a simulator
// served over real Modbus TCP on a scaled clock, and a recording MQTT subscriber. Tests only.
package hiltest

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/configs"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/sim"
)

// Room is a simulated power room served over real Modbus TCP, on a scaled clock, with the
// demo site's config pointed at it and at a broker.
type Room struct {
	Cfg *config.Config
	Sc  *sim.Scenario
	Clk *clock.Scaled
	Sim *sim.Simulator
	Key ed25519.PrivateKey
	Pub ed25519.PublicKey
}

// RoomConfig is the demo site set up for a scenario's HIL run (no servers yet).
func RoomConfig(site, scenario, broker, stateDir string) (*config.Config, *sim.Scenario, error) {
	sc, err := sim.LoadScenario(scenario)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := sim.SiteConfig(sc)
	if err != nil {
		return nil, nil, err
	}
	cfg.Site = site
	cfg.StateDir = stateDir
	cfg.Metrics.Listen = "127.0.0.1:0" // rooms run side by side: each its own port
	cfg.MQTT.Brokers = []string{broker}
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

func NewRoom(t *testing.T, site, scenario, broker string) *Room {
	t.Helper()
	return NewRoomAt(t, site, scenario, broker, 0)
}

// NewRoomAt is NewRoom at a speed of its own (0: the scenario's hil.speed).
func NewRoomAt(t *testing.T, site, scenario, broker string, speed float64) *Room {
	t.Helper()
	cfg, sc, err := RoomConfig(site, scenario, broker, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if speed == 0 {
		speed = sc.HIL.Speed
	}
	cfg.Cutover.Validity = max(cfg.Cutover.Validity, time.Duration(speed*5)*time.Second)
	clk := clock.NewScaled(time.Now().UTC(), speed)
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
	return &Room{Cfg: cfg, Sc: sc, Clk: clk, Sim: s, Key: key, Pub: pub}
}

// Prefix is P, the room's topic prefix.
func (r *Room) Prefix() string { return r.Cfg.MQTT.TopicPrefix + "/" + r.Cfg.Site }

// Recorder is a subscriber that keeps, per topic and in arrival order, every distinct message the
// daemon published: a message sent twice (at-least-once delivery after an outage) is counted as
// a duplicate once, keyed by what makes it unique (boot_id and seq; a drain signal's own seq).
type Recorder struct {
	mu      sync.Mutex
	Client  paho.Client
	seen    map[string]bool
	byTopic map[string][]json.RawMessage
	dupes   int
	onMsg   func(topic string, payload []byte)
}

// OnMessage sets a function called (under the recorder's lock) with every distinct message.
func (r *Recorder) OnMessage(f func(topic string, payload []byte)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onMsg = f
}

// Record subscribes to filters. A persistent recorder keeps its session across its own and the
// broker's restarts, so what is published while it is away waits for it.
func Record(t *testing.T, broker, id string, persistent bool, filters ...string) *Recorder {
	t.Helper()
	rec := &Recorder{seen: map[string]bool{}, byTopic: map[string][]json.RawMessage{}}
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
	rec.Client = paho.NewClient(opts)
	if tok := rec.Client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("recorder connect: %v", tok.Error())
	}
	t.Cleanup(func() { rec.Client.Disconnect(100) })
	// The subscription is made in OnConnect; wait until the broker has it.
	if tok := rec.Client.SubscribeMultiple(subs, handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("recorder subscribe: %v", tok.Error())
	}
	return rec
}

func (r *Recorder) handle(topic string, payload []byte) {
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

// Snapshot copies what has arrived so far.
func (r *Recorder) Snapshot() (map[string][]json.RawMessage, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]json.RawMessage{}
	for k, v := range r.byTopic {
		out[k] = append([]json.RawMessage(nil), v...)
	}
	return out, r.dupes
}

// WaitFor polls cond every 50 ms of real time until it holds or limit passes.
func WaitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
}

// DemoSite is the demo site's config (configs/sites/demo.yaml), parsed.
func DemoSite(t testing.TB) *config.Config {
	t.Helper()
	data, err := configs.FS.ReadFile("sites/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(data, "demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Serve serves one connection of s over Modbus TCP and returns a reader on it; both close when
// the test ends.
func Serve(t testing.TB, s *sim.Simulator, conn string) collectors.Reader {
	t.Helper()
	srv, err := s.Serve(conn, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ep, _ := collectors.ParseEndpoint("tcp://" + srv.Addr)
	rd, err := collectors.NewReader(ep, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	return rd
}
