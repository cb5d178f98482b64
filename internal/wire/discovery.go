package wire

import (
	"strings"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/internal/sample"
)

// haClass maps a role to Home Assistant's component and device class (the classes are Home
// Assistant's lists for sensor and binary_sensor).
var haClass = map[sample.Role]struct{ component, class, unit string }{
	sample.CellTemperature:       {"sensor", "temperature", "°C"},
	sample.ModuleTemperature:     {"sensor", "temperature", "°C"},
	sample.AmbientTemperature:    {"sensor", "temperature", "°C"},
	sample.UPSBatteryTemperature: {"sensor", "temperature", "°C"},
	sample.CellVoltage:           {"sensor", "voltage", "V"},
	sample.StringVoltage:         {"sensor", "voltage", "V"},
	sample.StringCurrent:         {"sensor", "current", "A"},
	sample.SoC:                   {"sensor", "battery", "%"},
	sample.COPPM:                 {"sensor", "carbon_monoxide", "ppm"},
	sample.OffgasPPM:             {"sensor", "volatile_organic_compounds_parts", "ppm"},
	sample.H2PPM:                 {"sensor", "", "ppm"},
	sample.UPSRuntime:            {"sensor", "duration", "s"},
	sample.UPSLoad:               {"sensor", "", "%"},
	sample.Smoke:                 {"binary_sensor", "smoke", ""},
	sample.Heat:                  {"binary_sensor", "heat", ""},
	sample.FireAlarm:             {"binary_sensor", "safety", ""},
	sample.SuppressionReleased:   {"binary_sensor", "safety", ""},
	sample.BMSAlarm:              {"binary_sensor", "problem", ""},
	sample.ContactorOpen:         {"binary_sensor", "opening", ""},
	sample.UPSOnBattery:          {"binary_sensor", "", ""},
}

// gasDetector is the alarm a gas role raises (the detector table's zone-gas rows): its retained
// state drives a "gas" binary sensor.
func gasDetector(r sample.Role) (alarms.DetectorID, bool) {
	for _, d := range alarms.Detectors() {
		if d.ZoneGas && d.Reads(r) {
			return d.ID, true
		}
	}
	return "", false
}

// Device is one device as discovery announces it: where it is, what it is, its points.
type Device struct {
	Name, Zone string
	Model      string // its profile
	Points     []collectors.Point
}

type haDevice struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model,omitempty"`
}

type haConfig struct {
	Name              string   `json:"name"`
	UniqueID          string   `json:"unique_id"`
	StateTopic        string   `json:"state_topic"`
	ValueTemplate     string   `json:"value_template"`
	DeviceClass       string   `json:"device_class,omitempty"`
	UnitOfMeasurement string   `json:"unit_of_measurement,omitempty"`
	StateClass        string   `json:"state_class,omitempty"`
	PayloadOn         string   `json:"payload_on,omitempty"`
	PayloadOff        string   `json:"payload_off,omitempty"`
	AvailabilityTopic string   `json:"availability_topic,omitempty"`
	AvailabilityTmpl  string   `json:"availability_template,omitempty"`
	Device            haDevice `json:"device"`
}

// Discovery returns Home Assistant MQTT discovery configs (retained) under prefix: a sensor or
// binary sensor for every point with a role, a "gas" binary sensor per gas point (on while its
// alarm is active), and a "problem" binary sensor per zone (on at risk stage 1 or more). States
// come from the topics the daemon publishes anyway; availability from the device's.
func Discovery(prefix string, e *Encoder, devices []Device) []Message {
	node := strings.ReplaceAll(e.T.P, "/", "_") + "_" + e.Instance
	var out []Message
	add := func(component, objectID string, c haConfig) {
		m := e.msg(DiscoveryConfig(prefix, component, node, objectID), 1, true, true, c)
		m.State = true
		out = append(out, m)
	}
	zones := map[string]bool{}
	for _, d := range devices {
		dev := haDevice{Identifiers: []string{node + "_" + d.Name}, Name: d.Name, Manufacturer: "Firebreak", Model: d.Model}
		avail := e.T.Availability(d.Name)
		for _, p := range d.Points {
			cls, ok := haClass[p.Role]
			if !ok {
				continue
			}
			id := strings.ReplaceAll(d.Name+"_"+p.Name, "-", "_")
			c := haConfig{Name: p.Name, UniqueID: node + "_" + id, StateTopic: e.T.Telemetry(d.Name),
				DeviceClass: cls.class, AvailabilityTopic: avail, AvailabilityTmpl: "{{ value_json.state }}", Device: dev}
			if cls.component == "sensor" {
				c.ValueTemplate = "{{ value_json['values']['" + p.Name + "'] }}"
				c.UnitOfMeasurement = cls.unit
				if p.Unit != "" && cls.class == "" {
					c.UnitOfMeasurement = p.Unit
				}
				c.StateClass = "measurement"
			} else {
				c.ValueTemplate = "{{ 'ON' if value_json['values']['" + p.Name + "'] else 'OFF' }}"
				c.PayloadOn, c.PayloadOff = "ON", "OFF"
			}
			add(cls.component, id, c)
			if det, ok := gasDetector(p.Role); ok {
				add("binary_sensor", id+"_gas", haConfig{Name: p.Name + " gas alarm", UniqueID: node + "_" + id + "_gas",
					StateTopic:    e.T.Alarm(alarms.AlarmID(d.Name, p.Name, det)),
					ValueTemplate: "{{ 'ON' if value_json.active else 'OFF' }}", PayloadOn: "ON", PayloadOff: "OFF",
					DeviceClass: "gas", Device: dev})
			}
		}
		zones[d.Zone] = true
	}
	for _, d := range devices {
		if !zones[d.Zone] {
			continue
		}
		delete(zones, d.Zone)
		id := strings.ReplaceAll(d.Zone, "-", "_") + "_risk"
		add("binary_sensor", id, haConfig{Name: d.Zone + " battery fire risk", UniqueID: node + "_" + id,
			StateTopic:    e.T.Risk(d.Zone),
			ValueTemplate: "{{ 'ON' if value_json.stage >= 1 else 'OFF' }}",
			PayloadOn:     "ON", PayloadOff: "OFF", DeviceClass: "problem",
			Device: haDevice{Identifiers: []string{node + "_zone_" + d.Zone}, Name: d.Zone, Manufacturer: "Firebreak", Model: "zone"}})
	}
	return out
}
