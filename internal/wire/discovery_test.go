package wire_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

func TestHomeAssistantDiscovery(t *testing.T) {
	t.Parallel()
	cfg := hiltest.DemoSite(t)
	enc := wire.NewEncoder("firebreak", cfg.Site, cfg.Instance, "boot")
	var devices []wire.Device
	for _, d := range cfg.Devices {
		devices = append(devices, wire.Device{Name: d.Name, Zone: d.Zone, Model: d.Profile, Points: cfg.Points(d).Points})
	}
	msgs := wire.Discovery("homeassistant", enc, devices)

	points := map[string]bool{} // device/point
	for _, d := range cfg.Devices {
		for _, p := range cfg.Points(d).Points {
			points[d.Name+"/"+p.Name] = true
		}
	}
	valueRef := regexp.MustCompile(`value_json\['values'\]\['([^']+)'\]`)
	classes := map[string]int{}
	var gasTopics []string
	ids := map[string]bool{}
	for _, m := range msgs {
		if !m.Retain || m.QoS != 1 || !strings.HasPrefix(m.Topic, "homeassistant/") || !strings.HasSuffix(m.Topic, "/config") {
			t.Fatalf("discovery message %s: retain %v qos %d", m.Topic, m.Retain, m.QoS)
		}
		var c map[string]any
		if err := json.Unmarshal(m.Payload, &c); err != nil {
			t.Fatalf("%s: %v", m.Topic, err)
		}
		id := c["unique_id"].(string)
		if ids[id] {
			t.Fatalf("unique_id %s used twice", id)
		}
		ids[id] = true
		state := c["state_topic"].(string)
		if !strings.HasPrefix(state, enc.T.P+"/") {
			t.Fatalf("%s: state topic %s is not one the daemon publishes", m.Topic, state)
		}
		if strings.HasSuffix(state, "/telemetry") {
			dev := strings.TrimSuffix(strings.TrimPrefix(state, enc.T.P+"/dev/"), "/telemetry")
			ref := valueRef.FindStringSubmatch(c["value_template"].(string))
			if ref == nil || !points[dev+"/"+ref[1]] {
				t.Fatalf("%s: template %q names no point of %s", m.Topic, c["value_template"], dev)
			}
		}
		cls, _ := c["device_class"].(string)
		classes[strings.Split(m.Topic, "/")[1]+":"+cls]++
		if cls == "gas" {
			gasTopics = append(gasTopics, state)
		}
	}
	for _, want := range []string{"sensor:temperature", "sensor:voltage", "binary_sensor:smoke", "binary_sensor:gas", "binary_sensor:problem"} {
		if classes[want] == 0 {
			t.Errorf("no %s entity; have %v", want, classes)
		}
	}
	// The gas sensors follow alarm topics: the engine must raise exactly those alarm ids.
	eng := alarms.New(daemon.Topology(cfg), cfg.Detection)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	eng.Step(sample.Batch{Device: "gas-1", At: at, Samples: []sample.Sample{
		{Device: "gas-1", Point: "offgas", Role: "offgas_ppm", Value: 500, Quality: sample.Good, At: at},
		{Device: "gas-1", Point: "co", Role: "co_ppm", Value: 500, Quality: sample.Good, At: at},
		{Device: "gas-1", Point: "h2", Role: "h2_ppm", Value: 40000, Quality: sample.Good, At: at},
	}})
	raised := map[string]bool{}
	for _, ev := range eng.Ready().Events {
		raised[enc.T.P+"/alarm/"+ev.Alarm.ID] = true
	}
	if len(gasTopics) != 3 {
		t.Fatalf("gas binary sensors on %v, want one per gas point", gasTopics)
	}
	for _, g := range gasTopics {
		if !raised[g] {
			t.Errorf("gas sensor follows %s, but the engine raised %v", g, raised)
		}
	}
}
