package wire_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// Home Assistant's rules for the discovery configs we send, written from its source
// (home-assistant/core, homeassistant/components/mqtt: discovery.py's topic matcher, schemas.py
// for availability, device and origin, sensor.py, binary_sensor.py and event.py per component, and
// sensor/const.py's DEVICE_CLASS_UNITS for the classes we use). Discovery drops keys it does not
// know without a word; here an unknown key is an error, since it would be a setting HA ignores.
var (
	haTopic   = regexp.MustCompile(`^[^/]+/(sensor|binary_sensor|event)/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)/config$`)
	haCommon  = []string{"availability", "availability_mode", "availability_topic", "availability_template", "payload_available", "payload_not_available", "device", "origin", "enabled_by_default", "entity_category", "icon", "json_attributes_topic", "json_attributes_template", "object_id", "default_entity_id", "unique_id", "name", "qos", "encoding", "state_topic", "value_template"}
	haKeys    = map[string][]string{"sensor": {"device_class", "expire_after", "force_update", "last_reset_value_template", "options", "suggested_display_precision", "state_class", "unit_of_measurement"}, "binary_sensor": {"device_class", "expire_after", "force_update", "off_delay", "payload_on", "payload_off"}, "event": {"device_class", "event_types"}}
	haBinary  = []string{"battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power", "presence", "problem", "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window"}
	haUnits   = map[string][]string{"temperature": {"°C", "°F", "K"}, "voltage": {"µV", "mV", "V", "kV", "MV"}, "current": {"mA", "A"}, "battery": {"%"}, "carbon_monoxide": {"ppm", "mg/m³", "µg/m³"}, "volatile_organic_compounds_parts": {"ppb", "ppm"}, "duration": {"d", "h", "min", "s", "ms"}, "enum": nil}
	haStates  = []string{"measurement", "total", "total_increasing"}
	haModes   = []string{"all", "any", "latest"}
	haCats    = []string{"config", "diagnostic"}
	haEvents  = []string{"button", "doorbell", "motion"}
	haWildcat = regexp.MustCompile(`[#+]`)
)

// haValid says what Home Assistant would refuse (or silently drop) in one config.
func haValid(topic string, c map[string]any) []string {
	var bad []string
	m := haTopic.FindStringSubmatch(topic)
	if m == nil {
		return []string{"topic " + topic + " is not <prefix>/<component>/<node_id>/<object_id>/config with ids of [a-zA-Z0-9_-]"}
	}
	component := m[1]
	allowed := append(slices.Clone(haCommon), haKeys[component]...)
	for k := range c {
		if !slices.Contains(allowed, k) {
			bad = append(bad, "unknown key "+k)
		}
	}
	str := func(k string) string { s, _ := c[k].(string); return s }
	if st := str("state_topic"); st == "" || haWildcat.MatchString(st) {
		bad = append(bad, fmt.Sprintf("state_topic %q: required, no wildcards", st))
	}
	if _, ok := c["availability"]; ok && c["availability_topic"] != nil {
		bad = append(bad, "availability and availability_topic together")
	}
	if av, ok := c["availability"].([]any); ok {
		for _, a := range av {
			e, _ := a.(map[string]any)
			if t, _ := e["topic"].(string); t == "" || haWildcat.MatchString(t) {
				bad = append(bad, "an availability entry without a valid topic")
			}
		}
	}
	if mode := str("availability_mode"); mode != "" && !slices.Contains(haModes, mode) {
		bad = append(bad, "availability_mode "+mode)
	}
	if cat := str("entity_category"); cat != "" && !slices.Contains(haCats, cat) {
		bad = append(bad, "entity_category "+cat)
	}
	dev, _ := c["device"].(map[string]any)
	if ids, _ := dev["identifiers"].([]any); len(ids) == 0 {
		bad = append(bad, "a device without identifiers")
	}
	if org, _ := c["origin"].(map[string]any); org == nil || org["name"] == nil {
		bad = append(bad, "no origin name")
	}
	if q, ok := c["qos"].(float64); !ok || q != 1 {
		bad = append(bad, fmt.Sprintf("qos %v, want 1", c["qos"]))
	}
	dc, unit, sc := str("device_class"), str("unit_of_measurement"), str("state_class")
	_, hasOptions := c["options"]
	switch component {
	case "sensor":
		units, known := haUnits[dc]
		switch {
		case dc != "" && !known:
			bad = append(bad, "sensor device_class "+dc+" (not one we checked against HA's list)")
		case dc == "enum" && (unit != "" || sc != "" || !hasOptions):
			bad = append(bad, "an enum sensor takes options and neither unit nor state_class")
		case dc != "" && dc != "enum" && !slices.Contains(units, unit):
			bad = append(bad, fmt.Sprintf("unit %q is not one of %v for device class %s", unit, units, dc))
		}
		if hasOptions && dc != "enum" {
			bad = append(bad, "options without device_class enum")
		}
		if sc != "" && !slices.Contains(haStates, sc) {
			bad = append(bad, "state_class "+sc)
		}
	case "binary_sensor":
		if dc != "" && !slices.Contains(haBinary, dc) {
			bad = append(bad, "binary_sensor device_class "+dc)
		}
	case "event":
		if ts, _ := c["event_types"].([]any); len(ts) == 0 {
			bad = append(bad, "an event without event_types")
		}
		if dc != "" && !slices.Contains(haEvents, dc) {
			bad = append(bad, "event device_class "+dc)
		}
	}
	return bad
}

func TestHomeAssistantDiscovery(t *testing.T) {
	t.Parallel()
	cfg := hiltest.DemoSite(t)
	enc := wire.NewEncoder("firebreak", cfg.Site, cfg.Instance, "boot")
	msgs := wire.Discovery("homeassistant", enc, daemon.DiscoverySite(cfg, "v9"))

	points := map[string]bool{} // device/point
	for _, d := range cfg.Devices {
		for _, p := range cfg.Points(d).Points {
			points[d.Name+"/"+p.Name] = true
		}
	}
	valueRef := regexp.MustCompile(`value_json\['values'\]\['([^']+)'\]`)
	detRef := regexp.MustCompile(`value_json\.detectors\['([^']+)'\]`)
	classes := map[string]int{}
	ids := map[string]bool{}
	alarmEntities := map[string]bool{} // device/detector
	disabled := 0
	for _, m := range msgs {
		if !m.Retain || m.QoS != 1 || !strings.HasPrefix(m.Topic, "homeassistant/") {
			t.Fatalf("discovery message %s: retain %v qos %d", m.Topic, m.Retain, m.QoS)
		}
		var c map[string]any
		if err := json.Unmarshal(m.Payload, &c); err != nil {
			t.Fatalf("%s: %v", m.Topic, err)
		}
		if bad := haValid(m.Topic, c); len(bad) > 0 {
			t.Errorf("%s: Home Assistant would refuse or drop: %s\n%s", m.Topic, strings.Join(bad, "; "), m.Payload)
		}
		id := c["unique_id"].(string)
		if ids[id] {
			t.Fatalf("unique_id %s used twice", id)
		}
		ids[id] = true
		if strings.Contains(id, cfg.Instance) && !strings.Contains(m.Topic, "_node_") {
			t.Errorf("%s: unique_id %s names the instance: an HA pair would make two entities of one", m.Topic, id)
		}
		if c["enabled_by_default"] == false {
			disabled++
		}
		state := c["state_topic"].(string)
		tp, ok := enc.T.Parse(state)
		if !ok {
			t.Fatalf("%s: state topic %s is not one the daemon publishes", m.Topic, state)
		}
		switch tp.Kind {
		case wire.KindTelemetry:
			ref := valueRef.FindStringSubmatch(c["value_template"].(string))
			if ref == nil || !points[tp.Device+"/"+ref[1]] {
				t.Fatalf("%s: template %q names no point of %s", m.Topic, c["value_template"], tp.Device)
			}
			av, _ := c["availability"].([]any)
			if len(av) != 3 || c["availability_mode"] != "all" {
				t.Errorf("%s: availability %v (%v), want node status, device and the point's quality, all", m.Topic, av, c["availability_mode"])
			}
		case wire.KindDeviceAlarms:
			ref := detRef.FindStringSubmatch(c["value_template"].(string))
			if ref == nil {
				t.Fatalf("%s: template %q names no detector", m.Topic, c["value_template"])
			}
			alarmEntities[tp.Device+"/"+ref[1]] = true
		}
		cls, _ := c["device_class"].(string)
		classes[strings.Split(m.Topic, "/")[1]+":"+cls]++
	}
	for _, want := range []string{"sensor:temperature", "sensor:voltage", "sensor:enum", "binary_sensor:smoke", "binary_sensor:gas",
		"binary_sensor:problem", "binary_sensor:connectivity", "event:"} {
		if classes[want] == 0 {
			t.Errorf("no %s entity; have %v", want, classes)
		}
	}
	if disabled == 0 {
		t.Error("no entity disabled by default: every cell voltage of every rack starts enabled")
	}
	// Every detector has its entity on every device it may raise an alarm on, and the engine raises
	// alarms of exactly those detectors: fire the gas and a hot rack, and find each raised alarm's
	// device and detector among the entities.
	eng := alarms.New(daemon.Topology(cfg), cfg.Detection)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	eng.Step(sample.Batch{Device: "gas-1", At: at, Samples: []sample.Sample{
		{Device: "gas-1", Point: "offgas", Role: "offgas_ppm", Value: 500, Quality: sample.Good, At: at},
		{Device: "gas-1", Point: "co", Role: "co_ppm", Value: 500, Quality: sample.Good, At: at},
		{Device: "gas-1", Point: "h2", Role: "h2_ppm", Value: 40000, Quality: sample.Good, At: at},
	}})
	eng.Tick(at.Add(time.Hour)) // every device silent: comm alarms
	var missing []string
	evs := eng.Ready().Events
	for _, ev := range evs {
		if k := ev.Alarm.Device + "/" + ev.Alarm.Detector; !alarmEntities[k] {
			missing = append(missing, k)
		}
	}
	if len(evs) < 5 {
		t.Fatalf("the engine raised %d alarms; the check proves nothing", len(evs))
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("alarms raised with no entity: %v", slices.Compact(missing))
	}
	for _, want := range []string{"gas-1/offgas", "gas-1/co_high", "rack-01/temp_high", "rack-01/frozen", "panel-1/smoke"} {
		if !alarmEntities[want] {
			t.Errorf("no alarm entity %s", want)
		}
	}
}

// TestHomeAssistantRulesCatchMistakes: the validator refuses what Home Assistant refuses.
func TestHomeAssistantRulesCatchMistakes(t *testing.T) {
	t.Parallel()
	base := func() map[string]any {
		return map[string]any{"name": "t", "unique_id": "u", "state_topic": "p/dev/d/telemetry", "qos": 1.0,
			"device": map[string]any{"identifiers": []any{"d"}}, "origin": map[string]any{"name": "Firebreak"},
			"device_class": "temperature", "unit_of_measurement": "°C", "state_class": "measurement"}
	}
	for _, c := range []struct {
		name   string
		topic  string
		change func(map[string]any)
	}{
		{"unit of another class", "ha/sensor/n/o/config", func(c map[string]any) { c["unit_of_measurement"] = "V" }},
		{"enum with a unit", "ha/sensor/n/o/config", func(c map[string]any) { c["device_class"] = "enum"; c["options"] = []any{"a"} }},
		{"options without enum", "ha/sensor/n/o/config", func(c map[string]any) { c["options"] = []any{"a"} }},
		{"both availabilities", "ha/sensor/n/o/config", func(c map[string]any) {
			c["availability_topic"] = "x"
			c["availability"] = []any{map[string]any{"topic": "y"}}
		}},
		{"an unknown key", "ha/sensor/n/o/config", func(c map[string]any) { c["availabilty_mode"] = "all" }},
		{"a wildcard state topic", "ha/sensor/n/o/config", func(c map[string]any) { c["state_topic"] = "p/+/x" }},
		{"a bad object id", "ha/sensor/n/rack-03.x/config", func(map[string]any) {}},
		{"no device identifiers", "ha/sensor/n/o/config", func(c map[string]any) { c["device"] = map[string]any{"name": "d"} }},
		{"a binary class unknown", "ha/binary_sensor/n/o/config", func(c map[string]any) {
			delete(c, "unit_of_measurement")
			delete(c, "state_class")
			c["device_class"] = "fire"
		}},
		{"an event without types", "ha/event/n/o/config", func(c map[string]any) {
			delete(c, "unit_of_measurement")
			delete(c, "state_class")
			delete(c, "device_class")
		}},
	} {
		cfg := base()
		c.change(cfg)
		if bad := haValid(c.topic, cfg); len(bad) == 0 {
			t.Errorf("%s: passed", c.name)
		}
	}
	if bad := haValid("ha/sensor/n/o/config", base()); len(bad) > 0 {
		t.Errorf("a valid sensor refused: %v", bad)
	}
}
