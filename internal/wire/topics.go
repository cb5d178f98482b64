package wire

import "strings"

// Topics builds and reads docs/design.md's topics under P (<topic_prefix>/<site>). Every topic of the
// project is spelled here: the daemon, the agent, the demo, `firebreak command` and the tests
// build theirs with it, so a topic changes in one place.
type Topics struct{ P string }

// Any is the single-level wildcard, for a filter over every zone, consumer or instance.
const Any = "+"

// Status is P/node/<instance>/status.
func (t Topics) Status(instance string) string { return t.P + "/node/" + instance + "/status" }

// Alarm is P/alarm/<id>, an alarm's retained state.
func (t Topics) Alarm(id string) string { return t.P + "/alarm/" + id }

// Events is P/events, every alarm transition.
func (t Topics) Events() string { return t.P + "/events" }

// Risk is P/risk/<zone>.
func (t Topics) Risk(zone string) string { return t.P + "/risk/" + zone }

// Drain is P/drain/<zone>, the zone's signed drain signal.
func (t Topics) Drain(zone string) string { return t.P + "/drain/" + zone }

// DrainStatus is P/drain/<zone>/status, the consumers' progress.
func (t Topics) DrainStatus(zone string) string { return t.Drain(zone) + "/status" }

// DrainAck is P/drain/<zone>/ack/<consumer>.
func (t Topics) DrainAck(zone, consumer string) string { return t.Drain(zone) + "/ack/" + consumer }

// Telemetry is P/dev/<device>/telemetry.
func (t Topics) Telemetry(device string) string { return t.P + "/dev/" + device + "/telemetry" }

// Availability is P/dev/<device>/availability.
func (t Topics) Availability(device string) string { return t.P + "/dev/" + device + "/availability" }

// DeviceAlarms is P/dev/<device>/alarms, per detector the state of the device's alarms.
func (t Topics) DeviceAlarms(device string) string { return t.P + "/dev/" + device + "/alarms" }

// Command is P/cmd/<instance>/<verb>.
func (t Topics) Command(instance, verb string) string { return t.P + "/cmd/" + instance + "/" + verb }

// CommandResult is P/cmd/result/<instance>.
func (t Topics) CommandResult(instance string) string { return t.P + "/cmd/result/" + instance }

// CommandResultLevel is the level of P/cmd/ that carries results, and so no instance may be named.
const CommandResultLevel = "result"

// DiscoveryConfig is Home Assistant's <discovery prefix>/<component>/<node>/<object>/config.
func DiscoveryConfig(prefix, component, node, object string) string {
	return prefix + "/" + component + "/" + node + "/" + object + "/config"
}

// Kind is what a topic under P carries.
type Kind uint8

const (
	KindStatus Kind = iota + 1
	KindAlarm
	KindEvents
	KindRisk
	KindDrain
	KindDrainStatus
	KindDrainAck
	KindTelemetry
	KindAvailability
	KindCommand
	KindCommandResult
	KindDeviceAlarms
)

var kindNames = [...]string{KindStatus: "status", KindAlarm: "alarm", KindEvents: "events", KindRisk: "risk",
	KindDrain: "drain", KindDrainStatus: "drain_status", KindDrainAck: "drain_ack", KindTelemetry: "telemetry",
	KindAvailability: "availability", KindCommand: "command", KindCommandResult: "command_result",
	KindDeviceAlarms: "device_alarms"}

func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Topic is a topic under P, read: its kind and the names in it (the ones its kind has).
type Topic struct {
	Kind     Kind
	Zone     string // risk, drain, drain status, drain ack
	Consumer string // drain ack
	Instance string // status, command, command result
	Verb     string // command
	Device   string // telemetry, availability, device alarms
	Alarm    string // alarm
}

// Parse reads a topic; ok is false for one that is not under P or not docs/design.md's.
func (t Topics) Parse(topic string) (Topic, bool) {
	rest, ok := strings.CutPrefix(topic, t.P+"/")
	if !ok {
		return Topic{}, false
	}
	l := strings.Split(rest, "/")
	for _, s := range l {
		if s == "" {
			return Topic{}, false
		}
	}
	switch {
	case len(l) == 1 && l[0] == "events":
		return Topic{Kind: KindEvents}, true
	case len(l) == 2 && l[0] == "alarm":
		return Topic{Kind: KindAlarm, Alarm: l[1]}, true
	case len(l) == 2 && l[0] == "risk":
		return Topic{Kind: KindRisk, Zone: l[1]}, true
	case len(l) == 3 && l[0] == "node" && l[2] == "status":
		return Topic{Kind: KindStatus, Instance: l[1]}, true
	case len(l) == 2 && l[0] == "drain":
		return Topic{Kind: KindDrain, Zone: l[1]}, true
	case len(l) == 3 && l[0] == "drain" && l[2] == "status":
		return Topic{Kind: KindDrainStatus, Zone: l[1]}, true
	case len(l) == 4 && l[0] == "drain" && l[2] == "ack":
		return Topic{Kind: KindDrainAck, Zone: l[1], Consumer: l[3]}, true
	case len(l) == 3 && l[0] == "dev" && l[2] == "telemetry":
		return Topic{Kind: KindTelemetry, Device: l[1]}, true
	case len(l) == 3 && l[0] == "dev" && l[2] == "availability":
		return Topic{Kind: KindAvailability, Device: l[1]}, true
	case len(l) == 3 && l[0] == "dev" && l[2] == "alarms":
		return Topic{Kind: KindDeviceAlarms, Device: l[1]}, true
	case len(l) == 3 && l[0] == "cmd" && l[1] == CommandResultLevel:
		return Topic{Kind: KindCommandResult, Instance: l[2]}, true
	case len(l) == 3 && l[0] == "cmd":
		return Topic{Kind: KindCommand, Instance: l[1], Verb: l[2]}, true
	}
	return Topic{}, false
}
