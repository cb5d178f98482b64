package wire

import (
	"strings"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/sample"
)

// Home Assistant MQTT discovery, following Home Assistant's own schemas (homeassistant/components/
// mqtt: schemas.py for availability, device and origin; sensor.py, binary_sensor.py and event.py
// per component; sensor/const.py for the units each device class takes). The test validates every
// config against those rules (discovery_test.go).

// haClass maps a role to Home Assistant's component, device class and unit.
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

// disabledByDefault are the roles of which a rack has many points (128 cell voltages on a 8x16
// rack): their entities exist but start disabled, so a room does not flood Home Assistant's
// recorder; the rack's temperatures, gas, smoke and every alarm start enabled.
var disabledByDefault = map[sample.Role]bool{sample.CellVoltage: true}

// Device is one device as discovery announces it: where it is, what it is, its points.
type Device struct {
	Name, Zone string
	Model      string // its profile
	Points     []collectors.Point
	// ExpireAfterS: a telemetry entity with no new reading for this long is unavailable (a dead
	// daemon, or both of an HA pair); 0 for none.
	ExpireAfterS int
}

// Site is what discovery announces: the devices, the zones with their consumers, the daemon.
type Site struct {
	Version   string
	Devices   []Device
	Zones     []string
	Consumers []string
	// Instances are the daemons that report the site: one, or both of an HA pair. Their node
	// status is an entity each; a lone daemon's is also every entity's availability.
	Instances []string
}

type haDevice struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model,omitempty"`
	SWVersion    string   `json:"sw_version,omitempty"`
}

type haOrigin struct {
	Name      string `json:"name"`
	SWVersion string `json:"sw_version,omitempty"`
}

type haAvailability struct {
	Topic         string `json:"topic"`
	ValueTemplate string `json:"value_template,omitempty"`
}

type haConfig struct {
	Name              *string          `json:"name"` // null: the entity is the device itself
	UniqueID          string           `json:"unique_id"`
	StateTopic        string           `json:"state_topic"`
	ValueTemplate     string           `json:"value_template,omitempty"`
	DeviceClass       string           `json:"device_class,omitempty"`
	UnitOfMeasurement string           `json:"unit_of_measurement,omitempty"`
	StateClass        string           `json:"state_class,omitempty"`
	Options           []string         `json:"options,omitempty"`
	EventTypes        []string         `json:"event_types,omitempty"`
	PayloadOn         string           `json:"payload_on,omitempty"`
	PayloadOff        string           `json:"payload_off,omitempty"`
	Availability      []haAvailability `json:"availability,omitempty"`
	AvailabilityMode  string           `json:"availability_mode,omitempty"`
	ExpireAfter       int              `json:"expire_after,omitempty"`
	JSONAttrsTopic    string           `json:"json_attributes_topic,omitempty"`
	JSONAttrsTemplate string           `json:"json_attributes_template,omitempty"`
	EntityCategory    string           `json:"entity_category,omitempty"`
	EnabledByDefault  *bool            `json:"enabled_by_default,omitempty"`
	QoS               int              `json:"qos"`
	Device            haDevice         `json:"device"`
	Origin            haOrigin         `json:"origin"`
}

// StageNames are the five risk stages' names, the options of a zone's stage entity.
func StageNames() []string {
	var out []string
	for s := alarms.StageNormal; s <= alarms.StageFire; s++ {
		out = append(out, s.String())
	}
	return out
}

// drainOptions are a zone's drain action entity's states: none, or the action of its signal.
var drainOptions = []string{"none", string(cutover.Prepare), string(cutover.Drain), string(cutover.Evacuate), string(cutover.Cancel)}

// ackOptions are a consumer's ack entity's states: none, or the status of its ack.
var ackOptions = []string{"none", string(cutover.AckReceived), string(cutover.AckDraining), string(cutover.AckDrained), string(cutover.AckFailed)}

// Discovery returns Home Assistant MQTT discovery configs (retained) under prefix. Per device: a
// sensor or binary sensor for every point with a role (unavailable while the daemon, the device or
// the point's quality says so), and a binary sensor per detector that may raise an alarm on it
// (from P/dev/<device>/alarms, published while normal too). Per zone: its stage (an enum of the
// five stage names), its drain action, and each consumer's ack. Per daemon: its status, and an
// event entity on P/events. Ids derive from the site, not the instance, so both daemons of an HA
// pair feed the same entities.
func Discovery(prefix string, e *Encoder, site Site) []Message {
	node := strings.ReplaceAll(e.T.P, "/", "_")
	origin := haOrigin{Name: "Firebreak", SWVersion: site.Version}
	var nodeAvail []haAvailability
	if len(site.Instances) == 1 {
		// A lone daemon: when it dies the broker says so (its last will), and every entity it
		// feeds is unavailable. An HA pair's entities live while either daemon does: they rely on
		// the device's availability and on expire_after instead.
		nodeAvail = []haAvailability{{Topic: e.T.Status(site.Instances[0]), ValueTemplate: "{{ value_json.state }}"}}
	}
	var out []Message
	add := func(component, objectID string, c haConfig) {
		c.UniqueID = node + "_" + objectID
		c.QoS, c.Origin = 1, origin
		if len(c.Availability) > 0 {
			c.AvailabilityMode = "all"
		}
		m := e.msg(DiscoveryConfig(prefix, component, node, objectID), 1, true, true, c)
		m.State = true
		out = append(out, m)
	}
	name := func(s string) *string { return &s }
	for _, d := range site.Devices {
		dev := haDevice{Identifiers: []string{node + "_" + d.Name}, Name: d.Name, Manufacturer: "Firebreak", Model: d.Model}
		devAvail := append(append([]haAvailability(nil), nodeAvail...), haAvailability{Topic: e.T.Availability(d.Name), ValueTemplate: "{{ value_json.state }}"})
		var roles []sample.Role
		for _, p := range d.Points {
			roles = append(roles, p.Role)
			cls, ok := haClass[p.Role]
			if !ok {
				continue
			}
			id := objectID(d.Name + "_" + p.Name)
			// Unavailable unless the point's own quality is good: an NTC burnt open reads nothing,
			// not its last value; smoke during comm loss is unknown, not OFF.
			quality := haAvailability{Topic: e.T.Telemetry(d.Name),
				ValueTemplate: "{{ 'online' if value_json.quality['" + p.Name + "'] == 'good' else 'offline' }}"}
			c := haConfig{Name: name(p.Name), StateTopic: e.T.Telemetry(d.Name), DeviceClass: cls.class,
				Availability: append(append([]haAvailability(nil), devAvail...), quality), ExpireAfter: d.ExpireAfterS, Device: dev}
			has := "'" + p.Name + "' in value_json['values']"
			if cls.component == "sensor" {
				c.ValueTemplate = "{{ value_json['values']['" + p.Name + "'] if " + has + " else 'None' }}"
				c.UnitOfMeasurement = cls.unit
				if p.Unit != "" && cls.class == "" {
					c.UnitOfMeasurement = p.Unit
				}
				c.StateClass = "measurement"
			} else {
				c.ValueTemplate = "{{ ('ON' if value_json['values']['" + p.Name + "'] else 'OFF') if " + has + " else 'None' }}"
				c.PayloadOn, c.PayloadOff = "ON", "OFF"
			}
			if disabledByDefault[p.Role] {
				c.EnabledByDefault = new(bool)
			}
			add(cls.component, id, c)
		}
		for _, det := range alarms.DetectorsFor(roles) {
			info, _ := alarms.Detector(det)
			id := objectID(d.Name + "_alarm_" + string(det))
			c := haConfig{Name: name(string(det) + " alarm"), StateTopic: e.T.DeviceAlarms(d.Name),
				ValueTemplate: "{{ 'ON' if value_json.detectors['" + string(det) + "'].active else 'OFF' }}", PayloadOn: "ON", PayloadOff: "OFF",
				DeviceClass: alarmClass(info), JSONAttrsTopic: e.T.DeviceAlarms(d.Name),
				JSONAttrsTemplate: "{{ value_json.detectors['" + string(det) + "'] | tojson }}",
				Availability:      nodeAvail, Device: dev}
			if info.Modality == alarms.Comms || info.Modality == alarms.SensorHealth {
				c.EntityCategory = "diagnostic"
			}
			add("binary_sensor", id, c)
		}
	}
	for _, z := range site.Zones {
		dev := haDevice{Identifiers: []string{node + "_zone_" + z}, Name: z, Manufacturer: "Firebreak", Model: "zone", SWVersion: site.Version}
		id := objectID(z)
		add("sensor", id+"_stage", haConfig{Name: name("Stage"), StateTopic: e.T.Risk(z), DeviceClass: "enum", Options: StageNames(),
			ValueTemplate: "{{ value_json.stage_name }}", JSONAttrsTopic: e.T.Risk(z),
			JSONAttrsTemplate: "{{ {'stage': value_json.stage, 'since': value_json.since, 'reason': value_json.reason, 'racks': value_json.racks} | tojson }}",
			Availability:      nodeAvail, Device: dev})
		// A cleared drain topic (no episode) arrives as an empty message: none.
		add("sensor", id+"_drain", haConfig{Name: name("Drain action"), StateTopic: e.T.Drain(z), DeviceClass: "enum", Options: drainOptions,
			ValueTemplate: "{{ value_json.action if value_json is defined and value_json.action is defined else 'none' }}",
			Availability:  nodeAvail, Device: dev})
		for _, c := range site.Consumers {
			add("sensor", id+"_ack_"+objectID(c), haConfig{Name: name(c + " ack"), StateTopic: e.T.DrainStatus(z), DeviceClass: "enum", Options: ackOptions,
				ValueTemplate: "{{ value_json.consumers['" + c + "'].status if value_json is defined and value_json.consumers is defined and '" + c + "' in value_json.consumers and value_json.consumers['" + c + "'].status else 'none' }}",
				Availability:  nodeAvail, Device: dev})
		}
	}
	for _, inst := range site.Instances {
		dev := haDevice{Identifiers: []string{node + "_node_" + inst}, Name: "Firebreak " + inst, Manufacturer: "Firebreak", Model: "daemon", SWVersion: site.Version}
		id := objectID("node_" + inst)
		add("binary_sensor", id+"_status", haConfig{Name: name("Status"), StateTopic: e.T.Status(inst), DeviceClass: "connectivity",
			ValueTemplate: "{{ 'ON' if value_json.state == 'online' else 'OFF' }}", PayloadOn: "ON", PayloadOff: "OFF",
			EntityCategory: "diagnostic", Device: dev})
		var causes []string
		for _, c := range alarms.Causes() {
			causes = append(causes, c.String())
		}
		add("event", id+"_alarm_events", haConfig{Name: name("Alarm events"), StateTopic: e.T.Events(), EventTypes: causes,
			ValueTemplate: "{{ {'event_type': value_json.cause, 'alarm': value_json.alarm.id, 'stage': value_json.alarm.stage, 'state': value_json.alarm.state, 'text': value_json.alarm.text} | tojson }}",
			Device:        dev})
	}
	return out
}

// alarmClass is a detector's alarm entity's binary sensor device class.
func alarmClass(d alarms.DetectorInfo) string {
	switch {
	case d.ZoneGas:
		return "gas"
	case d.Modality == alarms.Smoke && d.Reads(sample.Heat):
		return "heat"
	case d.Modality == alarms.Smoke:
		return "smoke"
	case d.Modality == alarms.Fire:
		return "safety"
	}
	return "problem"
}

// objectID is a name as Home Assistant's discovery topics and ids take it: [a-zA-Z0-9_].
func objectID(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
