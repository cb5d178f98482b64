package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/testenv"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// TestRestartWithSmallerConfigLeavesNoGhost: a daemon runs a fire to its drain (stage 3 and more
// retained, every device online, Home Assistant discovery on), stops, and starts again on the same
// state_dir and the same broker with two devices fewer, in a quiet room. A fresh subscriber to
// everything then finds exactly the new config's topics, every payload of this boot: the zone's
// risk as it stands now, no availability, alarm or discovery config of the removed devices.
func TestRestartWithSmallerConfigLeavesNoGhost(t *testing.T) {
	t.Parallel()
	broker := testenv.Mosquitto(t)
	fire := hiltest.NewRoom(t, "ghost", "sudden-fire", broker)
	fire.Cfg.MQTT.HomeAssist = config.HomeAssistant{Enabled: true, Prefix: "ha-ghost"}
	p := fire.Prefix()
	rec := hiltest.Record(t, broker, "ghost-watch", false, p+"/drain/+", p+"/risk/+")
	run := func(r *hiltest.Room, until func() bool, what string) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return r.Sim.Run(gctx) })
		g.Go(func() error {
			return daemon.Run(gctx, daemon.Options{Config: r.Cfg, Clock: r.Clk, Log: zap.NewNop(), Version: "test",
				SigningKey: fire.Key, ShutdownGrace: 2 * time.Second})
		})
		hiltest.WaitFor(t, 2*time.Minute, what, until)
		cancel()
		if err := g.Wait(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	run(fire, func() bool {
		got, _ := rec.Snapshot()
		return len(got[p+"/drain/b3-battery"]) > 0 && maxStage(got[p+"/risk/b3-battery"]) >= 3
	}, "the first boot's drain")
	first := retainedNow(t, broker, p+"/#", "ha-ghost/#")
	for _, topic := range []string{p + "/dev/rack-04/availability", p + "/dev/gas-1/availability"} {
		if _, ok := first[topic]; !ok {
			t.Fatalf("the first boot left no %s; the test proves nothing", topic)
		}
	}

	// The second boot: the same site, state_dir and key, a quiet room, rack-04 and gas-1 gone. It
	// runs at 5x, not the scenario's 50x: it only has to start and state its picture, and at 50x
	// a start that takes 0.6 s on a loaded machine is 30 s without data, a real stage-1 alarm (it
	// happened beside a CPU hog) instead of the quiet zone the test looks at.
	quiet := hiltest.NewRoomAt(t, "ghost", "normal", broker, 5)
	quiet.Cfg.StateDir = fire.Cfg.StateDir
	quiet.Cfg.MQTT.HomeAssist = fire.Cfg.MQTT.HomeAssist
	var kept []config.Device
	for _, d := range quiet.Cfg.Devices {
		if d.Name != "rack-04" && d.Name != "gas-1" {
			kept = append(kept, d)
		}
	}
	quiet.Cfg.Devices = kept
	var now map[string]json.RawMessage
	run(quiet, func() bool {
		now = retainedNow(t, broker, p+"/#", "ha-ghost/#")
		return ghostFree(now, p, quiet.Cfg) == ""
	}, "a retained picture of this boot only")
	if why := ghostFree(now, p, quiet.Cfg); why != "" {
		t.Fatal(why)
	}
	var risk wire.RiskPayload
	if err := json.Unmarshal(now[p+"/risk/b3-battery"], &risk); err != nil || risk.Change != nil {
		t.Errorf("the retained risk after the restart: %v %s (want the zone stated, no change)", err, now[p+"/risk/b3-battery"])
	}
	t.Logf("retained after the restart: %d topics, the zone at stage %d (%s)", len(now), risk.Stage, risk.Reason)
}

// ghostFree says what is wrong with a retained picture ("" when nothing): every topic is the
// config's, every payload with an envelope is this boot's (the node status's boot), every device
// has its availability and the zone its risk, and no discovery config names a removed device.
func ghostFree(ret map[string]json.RawMessage, p string, cfg *config.Config) string {
	var st wire.StatusPayload
	if err := json.Unmarshal(ret[p+"/node/"+cfg.Instance+"/status"], &st); err != nil || st.State != "online" {
		return fmt.Sprintf("no online node status: %v %s", err, ret[p+"/node/"+cfg.Instance+"/status"])
	}
	devices := map[string]bool{}
	for _, d := range cfg.Devices {
		devices[d.Name] = true
		if _, ok := ret[p+"/dev/"+d.Name+"/availability"]; !ok {
			return "no availability of " + d.Name
		}
	}
	for _, z := range cfg.Zones {
		if _, ok := ret[p+"/risk/"+z.Name]; !ok {
			return "no risk of zone " + z.Name
		}
	}
	var bad []string
	for topic, payload := range ret {
		if strings.HasPrefix(topic, "ha-ghost/") {
			if strings.Contains(topic, "rack_04") || strings.Contains(topic, "gas_1") {
				bad = append(bad, topic+": discovery of a removed device")
			}
			continue
		}
		var env wire.Envelope
		if err := json.Unmarshal(payload, &env); err != nil || env.BootID != st.BootID {
			bad = append(bad, fmt.Sprintf("%s: boot %q, not this boot's %q", topic, env.BootID, st.BootID))
		}
		if strings.Contains(topic, "/dev/") {
			name := strings.Split(strings.TrimPrefix(topic, p+"/dev/"), "/")[0]
			if !devices[name] {
				bad = append(bad, topic+": a removed device")
			}
		}
		if strings.Contains(topic, "/alarm/rack-04.") || strings.Contains(topic, "/alarm/gas-1.") {
			bad = append(bad, topic+": an alarm of a removed device")
		}
	}
	sort.Strings(bad)
	return strings.Join(bad, "; ")
}

// retainedNow is what a fresh subscriber to filters gets retained: it subscribes, and takes what
// arrives flagged retained until a marker it publishes itself after subscribing comes back. The
// broker queues a subscription's retained messages before it routes the client's next PUBLISH,
// so the marker comes after all of them, however slowly a busy machine delivers them.
func retainedNow(t *testing.T, broker string, filters ...string) map[string]json.RawMessage {
	t.Helper()
	id := fmt.Sprintf("fresh-%d", time.Now().UnixNano())
	marker := "fresh-marker/" + id
	var mu sync.Mutex
	out := map[string]json.RawMessage{}
	done := make(chan struct{})
	handler := func(_ paho.Client, m paho.Message) {
		if m.Topic() == marker {
			close(done)
			return
		}
		if !m.Retained() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		out[m.Topic()] = append(json.RawMessage(nil), m.Payload()...)
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID(id).SetCleanSession(true).SetOrderMatters(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("fresh subscriber: %v", tok.Error())
	}
	defer c.Disconnect(50)
	subs := map[string]byte{marker: 1}
	for _, f := range filters {
		subs[f] = 1
	}
	if tok := c.SubscribeMultiple(subs, handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("fresh subscriber: %v", tok.Error())
	}
	if tok := c.Publish(marker, 1, false, "end"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("fresh subscriber's marker: %v", tok.Error())
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("fresh subscriber: its marker never came back")
	}
	mu.Lock()
	defer mu.Unlock()
	return out
}

func maxStage(msgs []json.RawMessage) int {
	top := 0
	for _, m := range msgs {
		var r wire.RiskPayload
		if json.Unmarshal(m, &r) == nil {
			top = max(top, r.Stage)
		}
	}
	return top
}
