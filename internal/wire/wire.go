// Package wire turns engine and planner output into docs/design.md's MQTT messages: topics, QoS, retain
// flags and JSON payloads. It is pure, so the live daemon and `firebreak replay` print the same
// bytes for the same inputs. Every payload carries ts, instance, boot_id and seq.
package wire

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/sample"
)

// Message is one MQTT publish.
type Message struct {
	Topic   string          `json:"topic"`
	QoS     byte            `json:"-"`
	Retain  bool            `json:"-"`
	Payload json.RawMessage `json:"payload"`
	// Critical messages (alarms, risk, drain) are never dropped; telemetry may be under load.
	Critical bool `json:"-"`
	// State marks a retained current state (node status, alarm state, risk, availability): a
	// newer message on the same topic makes it obsolete. Drain signals and events are not.
	State bool `json:"-"`
	// Event and Signal are what an alarm event or a drain signal says, for the daemon's log: it
	// logs what it sent from the values, never by decoding its own payloads. Neither is stored.
	Event  *EventPayload   `json:"-"`
	Signal *cutover.Signal `json:"-"`
	Risk   *RiskPayload    `json:"-"` // a risk change (not a restatement of the zone)
}

// Encoder numbers and stamps messages for one daemon boot.
type Encoder struct {
	T        Topics // under <topic_prefix>/<site>
	Instance string
	BootID   string
	seq      uint64
	tel      map[string]*telCache // by device
	keys     map[string]*telKey   // every point's JSON key, shared by the devices that name it
}

// NewEncoder returns an encoder for topic prefix P = prefix/site.
func NewEncoder(prefix, site, instance, bootID string) *Encoder {
	return &Encoder{T: Topics{P: prefix + "/" + site}, Instance: instance, BootID: bootID}
}

// Envelope is what every payload carries: when, from which daemon and boot, in which order.
type Envelope struct {
	TS       time.Time `json:"ts"`
	Instance string    `json:"instance"`
	BootID   string    `json:"boot_id"`
	Seq      uint64    `json:"seq"`
}

func (e *Encoder) env(ts time.Time) Envelope {
	e.seq++
	return Envelope{TS: ts.UTC(), Instance: e.Instance, BootID: e.BootID, Seq: e.seq}
}

func (e *Encoder) state(topic string, v any) Message {
	m := e.msg(topic, 1, true, true, v)
	m.State = true
	return m
}

func (e *Encoder) msg(topic string, qos byte, retain, critical bool, v any) Message {
	b, err := json.Marshal(v)
	if err != nil {
		// Every payload here is built from plain structs; a failure is a programming error, and
		// the message still goes out saying so rather than vanishing.
		b, _ = json.Marshal(map[string]string{"error": fmt.Sprintf("encode %s: %v", topic, err)})
	}
	return Message{Topic: topic, QoS: qos, Retain: retain, Payload: b, Critical: critical}
}

// Status is P/node/<instance>/status (retained; the last will says offline).
func (e *Encoder) Status(state, version string, at time.Time) Message {
	return e.state(e.StatusTopic(), StatusPayload{e.env(at), state, version})
}

// StatusPayload is P/node/<instance>/status.
type StatusPayload struct {
	Envelope
	State   string `json:"state"` // online, offline, stopping
	Version string `json:"version"`
}

// StatusTopic is where Status goes, for the last will.
func (e *Encoder) StatusTopic() string { return e.T.Status(e.Instance) }

// Offline is the last-will payload: it cannot carry a ts or seq of its own moment, so it carries
// the boot's.
func (e *Encoder) Offline(version string, at time.Time) []byte {
	b, _ := json.Marshal(StatusPayload{Envelope{TS: at.UTC(), Instance: e.Instance, BootID: e.BootID}, "offline", version})
	return b
}

// AlarmEvent is the retained alarm state on P/alarm/<id> and the transition on P/events.
func (e *Encoder) AlarmEvent(ev alarms.AlarmEvent) []Message {
	state := e.state(e.T.Alarm(ev.Alarm.ID), AlarmPayload{e.env(ev.At), ev.Alarm})
	env := e.env(ev.At)
	p := EventPayload{env, fmt.Sprintf("%s.%s.%d", e.Instance, e.BootID, env.Seq), ev}
	event := e.msg(e.T.Events(), 1, false, true, p)
	event.Event = &p
	return []Message{state, event}
}

// AlarmState is P/alarm/<id> stating an alarm as it stands, with no transition: at a start.
func (e *Encoder) AlarmState(a alarms.Alarm, at time.Time) Message {
	return e.state(e.T.Alarm(a.ID), AlarmPayload{e.env(at), a})
}

// Clear is an empty retained message on topic: MQTT's delete of the broker's retained message,
// for a topic the daemon no longer owns (a device or zone removed from the config).
func Clear(topic string) Message {
	return Message{Topic: topic, QoS: 1, Retain: true, Critical: true, State: true}
}

// DeviceAlarms is P/dev/<device>/alarms (retained): for every detector that may raise an alarm on
// the device, whether one is active, so a dashboard (Home Assistant's binary sensors) has one
// state per device and detector, normal included, instead of one per possible alarm.
func (e *Encoder) DeviceAlarms(device string, detectors []alarms.DetectorID, all []alarms.Alarm, at time.Time) Message {
	p := DeviceAlarmsPayload{Envelope: e.env(at), Device: device, Detectors: map[string]DetectorAlarms{}}
	worst := map[string]alarms.AlarmState{}
	for _, d := range detectors {
		p.Detectors[string(d)] = DetectorAlarms{Alarms: []string{}}
		worst[string(d)] = alarms.Normal
	}
	for _, a := range all {
		da, ok := p.Detectors[a.Detector]
		if a.Device != device || !ok || a.State == alarms.Normal {
			continue
		}
		da.Active = da.Active || a.Active
		da.Stage = max(da.Stage, int(a.Stage))
		if urgency(a.State) > urgency(worst[a.Detector]) {
			worst[a.Detector] = a.State
		}
		da.Alarms = append(da.Alarms, a.ID)
		p.Detectors[a.Detector] = da
	}
	for d, st := range worst {
		da := p.Detectors[d]
		da.State = st.String()
		p.Detectors[d] = da
	}
	return e.state(e.T.DeviceAlarms(device), p)
}

// urgency orders alarm states by what an operator must do first: an unacknowledged alarm above
// one returned to normal unacknowledged, above an acknowledged one, above hidden ones.
func urgency(s alarms.AlarmState) int {
	switch s {
	case alarms.Unacked:
		return 6
	case alarms.RTNUnacked:
		return 5
	case alarms.Acked:
		return 4
	case alarms.Shelved:
		return 3
	case alarms.SuppressedByDesign:
		return 2
	case alarms.OutOfService:
		return 1
	}
	return 0
}

// DeviceAlarmsPayload is P/dev/<device>/alarms.
type DeviceAlarmsPayload struct {
	Envelope
	Device    string                    `json:"device"`
	Detectors map[string]DetectorAlarms `json:"detectors"`
}

// DetectorAlarms is one detector's alarms on a device: whether any is active, the highest stage,
// the most urgent ISA-18.2 state (normal when none), and the ids of those not normal.
type DetectorAlarms struct {
	Active bool     `json:"active"`
	Stage  int      `json:"stage"`
	State  string   `json:"state"`
	Alarms []string `json:"alarms"`
}

// AlarmPayload is P/alarm/<id>, an alarm's retained state.
type AlarmPayload struct {
	Envelope
	alarms.Alarm
}

// EventPayload is one transition on P/events.
type EventPayload struct {
	Envelope
	EventID string `json:"event_id"` // <instance>.<boot_id>.<seq>: unique across boots and HA peers
	alarms.AlarmEvent
}

// Risk is P/risk/<zone> (retained) after a change; rack changes go out on the same topic as
// part of the zone's picture, so a dashboard needs one subscription per zone. stage is always the
// zone's; what changed (a rack, or the zone) is under change, every rack's stage under racks, so
// the retained message never needs an earlier one to be read.
func (e *Encoder) Risk(rc alarms.RiskChange) Message {
	p := RiskPayload{Envelope: e.env(rc.At), Zone: rc.Zone, Stage: int(rc.ZoneStage),
		StageName: rc.ZoneStage.String(), Since: sinceOf(rc.ZoneSince), Reason: rc.Reason, Evidence: nonNil(rc.Evidence),
		Racks: racks(rc.Racks), Change: &RiskChangeOf{Scope: rc.Scope.String(), Name: rc.Name, From: int(rc.From), To: int(rc.To)}}
	m := e.state(e.T.Risk(rc.Zone), p)
	m.Risk = &p
	return m
}

// RiskState is P/risk/<zone> (retained) stating the zone's risk as it stands, with no change: at
// a start and after a reload, so the retained message is this boot's truth.
func (e *Encoder) RiskState(pic alarms.ZonePicture, at time.Time) Message {
	return e.state(e.T.Risk(pic.Zone), RiskPayload{Envelope: e.env(at), Zone: pic.Zone, Stage: int(pic.Stage),
		StageName: pic.Stage.String(), Since: sinceOf(pic.Since), Reason: pic.Reason, Evidence: nonNil(pic.Evidence),
		Racks: racks(pic.Racks)})
}

func racks(in map[string]alarms.Stage) map[string]int {
	out := map[string]int{}
	for k, v := range in {
		out[k] = int(v)
	}
	return out
}

func sinceOf(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// RiskPayload is P/risk/<zone>: the zone's stage, since when and why, every rack's stage, and
// what changed (none when the message only states the picture: a start, a reload).
type RiskPayload struct {
	Envelope
	Zone      string            `json:"zone"`
	Stage     int               `json:"stage"` // the zone's
	StageName string            `json:"stage_name"`
	Since     *time.Time        `json:"since"` // when the zone's stage began; null: normal since the daemon started
	Reason    string            `json:"reason"`
	Evidence  []alarms.Evidence `json:"evidence"`
	Racks     map[string]int    `json:"racks"`
	Change    *RiskChangeOf     `json:"change,omitempty"`
}

// RiskChangeOf is what a risk message announces: a rack's or the zone's move from one stage to
// another.
type RiskChangeOf struct {
	Scope string `json:"scope"` // rack or zone
	Name  string `json:"name"`
	From  int    `json:"from"`
	To    int    `json:"to"`
}

func nonNil(e []alarms.Evidence) []alarms.Evidence {
	if e == nil {
		return []alarms.Evidence{}
	}
	return e
}

// Drain is P/drain/<zone> (retained): the signed signal as it is, envelope fields included.
func (e *Encoder) Drain(s cutover.Signal) Message {
	m := e.msg(e.T.Drain(s.Zone), 1, true, true, s)
	m.Signal = &s
	return m
}

// DrainProgress is P/drain/<zone>/status (retained): each consumer's acknowledgement of the zone's
// current signal, and how long the drain took.
func (e *Encoder) DrainProgress(pr cutover.Progress, at time.Time) Message {
	return e.state(e.T.DrainStatus(pr.Zone), DrainProgressPayload{e.env(at), pr})
}

// DrainProgressPayload is P/drain/<zone>/status.
type DrainProgressPayload struct {
	Envelope
	cutover.Progress
}

// DrainTopic is where a zone's signals go.
func (e *Encoder) DrainTopic(zone string) string { return e.T.Drain(zone) }

// Availability is P/dev/<device>/availability (retained).
func (e *Encoder) Availability(device string, online bool, since time.Time, lastErr string, at time.Time) Message {
	st := "offline"
	if online {
		st = "online"
	}
	return e.state(e.T.Availability(device), AvailabilityPayload{e.env(at), st, since.UTC(), lastErr})
}

// AvailabilityPayload is P/dev/<device>/availability.
type AvailabilityPayload struct {
	Envelope
	State     string    `json:"state"` // online or offline
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
}

// TelemetryPayload is P/dev/<device>/telemetry, for readers (Telemetry writes it by hand): a
// value per point whose quality is good (a number, or a string for string points), and every
// point's quality.
type TelemetryPayload struct {
	Envelope
	Values  map[string]any    `json:"values"`
	Quality map[string]string `json:"quality"`
}

// Telemetry is P/dev/<device>/telemetry (QoS 0): values only where the quality is good, so that
// no dashboard ever plots a sentinel or a NaN; the quality of every point is reported. It is the
// one message per poll, so it is written by hand, points in profile order, rather than through
// encoding/json's reflection and sorted maps (a third of the daemon's CPU at 500 devices).
func (e *Encoder) Telemetry(b sample.Batch) Message { return e.TelemetryInto(nil, b) }

// TelemetryInto is Telemetry with the payload appended to buf[:0] (a buffer of an earlier
// message, once it is written), so that a large room's telemetry needs no new buffer each poll.
func (e *Encoder) TelemetryInto(buf []byte, b sample.Batch) Message {
	tc := e.telemetryCache(b)
	env := e.env(b.At)
	if cap(buf) < tc.size {
		buf = make([]byte, 0, tc.size)
	}
	buf = buf[:0]
	buf = append(buf, `{"ts":"`...)
	buf = env.TS.AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, `","instance":`...)
	buf = appendJSONString(buf, env.Instance)
	buf = append(buf, `,"boot_id":`...)
	buf = appendJSONString(buf, env.BootID)
	buf = append(buf, `,"seq":`...)
	buf = strconv.AppendUint(buf, env.Seq, 10)
	buf = append(buf, `,"values":{`...)
	first := true
	for i, s := range b.Samples {
		if s.Quality != sample.Good || (s.Text == "" && (math.IsNaN(s.Value) || math.IsInf(s.Value, 0))) {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = tc.key(buf, i, s.Point)
		if s.Text != "" {
			buf = appendJSONString(buf, s.Text)
		} else {
			buf = appendFloat(buf, s.Value)
		}
	}
	buf = append(buf, `},"quality":{`...)
	for i, s := range b.Samples {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = tc.key(buf, i, s.Point)
		buf = append(buf, '"')
		buf = append(buf, s.Quality.String()...)
		buf = append(buf, '"')
	}
	buf = append(buf, "}}"...)
	tc.size = max(tc.size, len(buf)+len(buf)/8) // the next one of this device fits at once
	return Message{Topic: tc.topic, QoS: 0, Payload: buf}
}

// telCache is what every telemetry message of one device repeats: its topic and each point's
// JSON key (`"name":`), by the point's place in the batch. A key is made once per point name and
// shared by every device that has the point (a room of 500 racks of one profile holds 200 keys,
// not 100,000).
type telCache struct {
	prefix, topic string             // the topic, made under prefix (T.P)
	keys          []*telKey          // by place in the batch
	shared        map[string]*telKey // the encoder's keys
	size          int                // the buffer to start a message with
}

// telKey is a point's name and its JSON key.
type telKey struct {
	name string
	json []byte
}

func (e *Encoder) telemetryCache(b sample.Batch) *telCache {
	tc := e.tel[b.Device]
	if tc == nil || tc.prefix != e.T.P {
		if e.tel == nil {
			e.tel = map[string]*telCache{}
		}
		if e.keys == nil {
			e.keys = map[string]*telKey{}
		}
		tc = &telCache{prefix: e.T.P, topic: e.T.Telemetry(b.Device), shared: e.keys, size: 128 + 48*len(b.Samples),
			keys: make([]*telKey, 0, len(b.Samples))} // a poll has the same points every time
		e.tel[b.Device] = tc
	}
	return tc
}

// key appends the JSON key of the point at place i, made again if the batch names another point
// there than the last one did.
func (tc *telCache) key(buf []byte, i int, point string) []byte {
	for len(tc.keys) <= i {
		tc.keys = append(tc.keys, nil)
	}
	if k := tc.keys[i]; k == nil || k.name != point {
		k = tc.shared[point]
		if k == nil {
			k = &telKey{name: point, json: append(appendJSONString(nil, point), ':')}
			tc.shared[point] = k
		}
		tc.keys[i] = k
	}
	return append(buf, tc.keys[i].json...)
}

// appendFloat appends v as strconv.AppendFloat(buf, v, 'g', -1, 64) does (the shortest decimal
// that reads back as v), directly for what registers mostly hold: a number of at most six
// decimals between 0.001 and a million, a scaled integer. TestAppendFloat checks it against
// strconv; anything else goes to strconv.
func appendFloat(buf []byte, v float64) []byte {
	a := math.Abs(v)
	if v == 0 || a < 1e-3 || a >= 1e6 || math.IsNaN(v) {
		return strconv.AppendFloat(buf, v, 'g', -1, 64)
	}
	for k, p := range decimals {
		n := math.Round(v * p)
		if n/p != v {
			continue
		}
		i := int64(n)
		if k == 0 {
			return strconv.AppendInt(buf, i, 10)
		}
		if i < 0 {
			buf = append(buf, '-')
			i = -i
		}
		var digits [24]byte
		d := strconv.AppendInt(digits[:0], i, 10)
		if len(d) <= k { // 0.00ddd
			buf = append(buf, '0', '.')
			for z := len(d); z < k; z++ {
				buf = append(buf, '0')
			}
			return append(buf, d...)
		}
		buf = append(buf, d[:len(d)-k]...)
		buf = append(buf, '.')
		return append(buf, d[len(d)-k:]...)
	}
	return strconv.AppendFloat(buf, v, 'g', -1, 64)
}

// decimals are the powers of ten appendFloat tries, fewest decimals first.
var decimals = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6}

// appendJSONString appends s as a JSON string: directly when it is plain printable ASCII (point
// names are), through encoding/json otherwise.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(buf, q...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// The largest payloads the daemon reads on the topics anyone with broker access can write to.
// A signed command is a few hundred bytes and an ack less; anything far larger is refused before
// it is parsed (a command is answered, an ack logged), so no payload can make the daemon grow.
const (
	MaxCommandBytes = 16 << 10
	MaxAckBytes     = 4 << 10
)

// CommandResult is P/cmd/result/<instance>: what became of an operator command. Err is empty
// when it was carried out; otherwise it is the reason it was refused, and nothing changed.
type CommandResult struct {
	Command  string `json:"command"`
	Operator string `json:"operator,omitempty"`
	Nonce    string `json:"nonce,omitempty"`
	Alarm    string `json:"alarm,omitempty"`
	Zone     string `json:"zone,omitempty"`
	OK       bool   `json:"ok"`
	Error    string `json:"error,omitempty"`
}

// Result encodes a command result (QoS 1, not retained, never dropped).
func (e *Encoder) Result(r CommandResult, at time.Time) Message {
	return e.msg(e.T.CommandResult(e.Instance), 1, false, true, ResultPayload{e.env(at), r})
}

// ResultPayload is P/cmd/result/<instance>.
type ResultPayload struct {
	Envelope
	CommandResult
}

// AckTopic is the filter for every consumer's acks of every zone's signals.
func (e *Encoder) AckTopic() string { return e.T.DrainAck(Any, Any) }

// CommandTopic is the filter a daemon subscribes to for its commands (one level per verb).
func (e *Encoder) CommandTopic() string { return e.T.Command(e.Instance, Any) }
