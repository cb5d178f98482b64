// Package sparkplug is Firebreak's Sparkplug B edge node (Eclipse Sparkplug 3.0), an option
// beside the plain JSON topics: every configured device is a Sparkplug device with its points and
// alarms as metrics, the zones' stages and drain actions are node metrics. docs/sparkplug.md says
// what a host sees.
//
// Node is the pure core: it turns polls and the engine's state into births, data and deaths,
// reporting by exception (a point's deadband), with aliases. Session (session.go) owns a Node and
// the MQTT side: the NDEATH will and its bdSeq, the sequence numbers, rebirth commands, the
// primary host's STATE and store and forward.
package sparkplug

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/sparkplug/spb"
)

// Namespace is the first level of every Sparkplug B topic.
const Namespace = "spBv1.0"

// Sparkplug datatypes (the specification's table; only those Firebreak sends).
const (
	Int32   uint32 = 3
	Int64   uint32 = 4
	UInt64  uint32 = 8
	Double  uint32 = 10
	Boolean uint32 = 11
	String  uint32 = 12
)

// Quality codes of the Quality property: sent on every value that is not good.
const (
	QualityBad   int32 = 0
	QualityGood  int32 = 192
	QualityStale int32 = 500
)

// Kinds of messages.
const (
	NBIRTH = "NBIRTH"
	NDEATH = "NDEATH"
	NDATA  = "NDATA"
	NCMD   = "NCMD"
	DBIRTH = "DBIRTH"
	DDEATH = "DDEATH"
	DDATA  = "DDATA"
)

// Names of node metrics the specification fixes.
const (
	MetricRebirth = "Node Control/Rebirth"
	MetricBdSeq   = "bdSeq"
)

// Model is what the node publishes: its ids, its devices and their points, its zones.
type Model struct {
	Group, Node string
	Version     string // Node Info/Version
	BootID      string // Node Info/Boot ID
	Instance    string // Node Info/Instance
	Devices     []Device
	Zones       []string
}

// Device is a configured device: its points in profile order and the alarms it may raise.
type Device struct {
	Name   string
	Zone   string
	Points []Point
	Alarms []AlarmKey
}

// Point is a polled point as a metric.
type Point struct {
	Name     string
	Unit     string
	Role     sample.Role
	Deadband float64
	Binary   bool
}

// AlarmKey is one alarm a device may have: a detector on a point ("" for the device itself).
type AlarmKey struct {
	Detector string
	Point    string
}

// Name is the alarm's metric folder: Alarms/<detector>/<point>, or Alarms/<detector> for an
// alarm of the device itself.
func (k AlarmKey) Name() string {
	if k.Point == "" {
		return "Alarms/" + k.Detector
	}
	return "Alarms/" + k.Detector + "/" + k.Point
}

// State is the engine's truth after a change: every alarm, each zone's stage and drain action,
// the signals just sent.
type State struct {
	At      time.Time
	Alarms  []alarms.Alarm
	Zones   map[string]alarms.Stage
	Actions map[string]cutover.Action
	Signals []cutover.Signal
}

// Out is a message to send: its kind, its device ("" for the node's own) and its payload, whose
// seq the session sets when it sends it.
type Out struct {
	Kind    string
	Device  string
	Payload *spb.Payload
}

// value is a metric's current value: a number, a flag or a text, with its quality.
type value struct {
	num     float64
	text    string
	quality int32
	at      time.Time
	known   bool
}

func (v value) same(o value, deadband float64) bool {
	if v.known != o.known || v.quality != o.quality || v.text != o.text {
		return false
	}
	if deadband > 0 {
		return math.Abs(v.num-o.num) <= deadband
	}
	return v.num == o.num || (math.IsNaN(v.num) && math.IsNaN(o.num))
}

// metric is one metric of the node or a device.
type metric struct {
	name     string
	alias    uint64
	datatype uint32
	deadband float64
	props    *spb.Payload_PropertySet // birth-only properties (unit, role)
	cur      value                    // the latest
	sent     value                    // the last reported in this session (or stored for it)
}

// device is a device's metrics and whether it is born in the session.
type device struct {
	name    string
	zone    string
	metrics []*metric
	byName  map[string]*metric
	points  int  // metrics[:points] are its points, the alarms' come after
	online  bool // its last poll answered
	polled  bool // it has been polled since the start
	born    bool // a DBIRTH of it went out in this session
}

// Node turns polls and state into Sparkplug messages. It is owned by one goroutine.
type Node struct {
	m         Model
	node      []*metric
	nodeBy    map[string]*metric
	devs      []*device
	devBy     map[string]*device
	nextAlias uint64
	raised    map[*metric]*device // alarm metrics the last state set (an alarm that is not normal)
	live      bool                // a session is established: births went out
	store     bool                // data while not live is kept for store and forward (Out still made)
	signals   map[string]cutover.Signal
}

// NewNode makes the node of a model: every metric with its alias, in a stable order (node
// metrics, then each device's points and alarms in the config's order).
func NewNode(m Model) *Node {
	n := &Node{m: m, nodeBy: map[string]*metric{}, devBy: map[string]*device{}, nextAlias: 1, signals: map[string]cutover.Signal{},
		raised: map[*metric]*device{}}
	n.addNode("Node Info/Version", String, value{text: m.Version, quality: QualityGood, known: true})
	n.addNode("Node Info/Boot ID", String, value{text: m.BootID, quality: QualityGood, known: true})
	n.addNode("Node Info/Instance", String, value{text: m.Instance, quality: QualityGood, known: true})
	for _, z := range m.Zones {
		n.addNode("Zones/"+z+"/Stage", Int32, value{quality: QualityGood, known: true})
		n.addNode("Zones/"+z+"/Stage Name", String, value{text: alarms.StageNormal.String(), quality: QualityGood, known: true})
		n.addNode("Zones/"+z+"/Drain/Action", String, value{text: "none", quality: QualityGood, known: true})
		n.addNode("Zones/"+z+"/Drain/Signal ID", String, value{quality: QualityGood, known: true})
		n.addNode("Zones/"+z+"/Drain/Signal Seq", UInt64, value{quality: QualityGood, known: true})
	}
	for _, d := range m.Devices {
		dv := &device{name: d.Name, zone: d.Zone, byName: map[string]*metric{}}
		for _, p := range d.Points {
			mt := &metric{name: p.Name, datatype: Double, deadband: p.Deadband, props: pointProps(p)}
			if p.Binary || p.Role.Binary() {
				mt.datatype = Boolean
			}
			n.addDev(dv, mt)
		}
		dv.points = len(dv.metrics)
		for _, k := range d.Alarms {
			n.addAlarm(dv, k)
		}
		n.devs = append(n.devs, dv)
		n.devBy[d.Name] = dv
	}
	return n
}

func pointProps(p Point) *spb.Payload_PropertySet {
	ps := &spb.Payload_PropertySet{}
	if p.Unit != "" {
		ps.Keys = append(ps.Keys, "engUnit")
		ps.Values = append(ps.Values, stringProp(p.Unit))
	}
	if p.Role != "" {
		ps.Keys = append(ps.Keys, "role")
		ps.Values = append(ps.Values, stringProp(string(p.Role)))
	}
	if p.Deadband > 0 {
		ps.Keys = append(ps.Keys, "deadband")
		ps.Values = append(ps.Values, &spb.Payload_PropertyValue{Type: proto.Uint32(Double), Value: &spb.Payload_PropertyValue_DoubleValue{DoubleValue: p.Deadband}})
	}
	if len(ps.Keys) == 0 {
		return nil
	}
	return ps
}

func stringProp(s string) *spb.Payload_PropertyValue {
	return &spb.Payload_PropertyValue{Type: proto.Uint32(String), Value: &spb.Payload_PropertyValue_StringValue{StringValue: s}}
}

func (n *Node) addNode(name string, dt uint32, v value) {
	mt := &metric{name: name, alias: n.nextAlias, datatype: dt, cur: v}
	n.nextAlias++
	n.node = append(n.node, mt)
	n.nodeBy[name] = mt
}

func (n *Node) addDev(d *device, mt *metric) {
	mt.alias = n.nextAlias
	n.nextAlias++
	d.metrics = append(d.metrics, mt)
	d.byName[mt.name] = mt
}

// addAlarm adds an alarm's three metrics: State, Active, Stage (normal until it is raised).
func (n *Node) addAlarm(d *device, k AlarmKey) {
	base := k.Name()
	if d.byName[base+"/State"] != nil {
		return
	}
	n.addDev(d, &metric{name: base + "/State", datatype: String, cur: value{text: alarms.Normal.String(), quality: QualityGood, known: true}})
	n.addDev(d, &metric{name: base + "/Active", datatype: Boolean, cur: value{quality: QualityGood, known: true}})
	n.addDev(d, &metric{name: base + "/Stage", datatype: Int32, cur: value{quality: QualityGood, known: true}})
}

// Topic is the topic of a message of this node.
func (n *Node) Topic(kind, device string) string {
	if device == "" {
		return Namespace + "/" + n.m.Group + "/" + kind + "/" + n.m.Node
	}
	return Namespace + "/" + n.m.Group + "/" + kind + "/" + n.m.Node + "/" + device
}

// Live says whether a session is established (its births went out).
func (n *Node) Live() bool { return n.live }

// Birth starts a session (or a rebirth within one): the NBIRTH with bdSeq, then a DBIRTH for
// each device whose last poll answered. Data held for store and forward stays with the session.
func (n *Node) Birth(now time.Time, bdSeq uint64) []Out {
	n.live = true
	ms := []*spb.Payload_Metric{
		{Name: proto.String(MetricBdSeq), Timestamp: millis(now), Datatype: proto.Uint32(Int64), Value: &spb.Payload_Metric_LongValue{LongValue: bdSeq}},
		{Name: proto.String(MetricRebirth), Timestamp: millis(now), Datatype: proto.Uint32(Boolean), Value: &spb.Payload_Metric_BooleanValue{BooleanValue: false}},
	}
	for _, mt := range n.node {
		mt.sent = mt.cur
		ms = append(ms, birthMetric(mt, now))
	}
	out := []Out{{Kind: NBIRTH, Payload: &spb.Payload{Timestamp: millis(now), Metrics: ms}}}
	for _, d := range n.devs {
		d.born = false
		if d.online {
			out = append(out, n.deviceBirth(d, now))
		}
	}
	return out
}

// End says the session is over (the connection is lost, or the primary host went away): nothing
// is born any more. With store, the data made until the next birth is kept (Out still made) for
// store and forward; without, it is not made.
func (n *Node) End(store bool) {
	n.live, n.store = false, store
	for _, d := range n.devs {
		d.born = false
	}
}

func (n *Node) deviceBirth(d *device, now time.Time) Out {
	d.born = true
	var ms []*spb.Payload_Metric
	for _, mt := range d.metrics {
		mt.sent = mt.cur
		ms = append(ms, birthMetric(mt, now))
	}
	return Out{Kind: DBIRTH, Device: d.name, Payload: &spb.Payload{Timestamp: millis(now), Metrics: ms}}
}

func birthMetric(mt *metric, now time.Time) *spb.Payload_Metric {
	m := &spb.Payload_Metric{Name: proto.String(mt.name), Alias: proto.Uint64(mt.alias), Datatype: proto.Uint32(mt.datatype)}
	setValue(m, mt, mt.cur, now)
	if mt.props != nil || mt.cur.quality != QualityGood {
		m.Properties = props(mt.props, mt.cur)
	}
	return m
}

// dataMetric is a metric of an NDATA or DDATA: its alias, datatype and value, no name. The
// specification says a DATA metric SHOULD NOT carry its datatype (the host has it from the
// birth); it is sent anyway, two bytes a metric, because decoders that read values by the
// datatype alone, as Eclipse Tahu's JavaScript decoder (the base of Node-RED's Sparkplug nodes)
// does, read no value without it.
func dataMetric(mt *metric, v value, now time.Time) *spb.Payload_Metric {
	m := &spb.Payload_Metric{Alias: proto.Uint64(mt.alias), Datatype: proto.Uint32(mt.datatype)}
	setValue(m, mt, v, now)
	if v.quality != QualityGood {
		m.Properties = props(nil, v)
	}
	return m
}

func setValue(m *spb.Payload_Metric, mt *metric, v value, now time.Time) {
	at := v.at
	if at.IsZero() {
		at = now
	}
	m.Timestamp = millis(at)
	if !v.known || (mt.datatype == Double && (math.IsNaN(v.num) || math.IsInf(v.num, 0))) {
		m.IsNull = proto.Bool(true)
		return
	}
	switch mt.datatype {
	case Double:
		m.Value = &spb.Payload_Metric_DoubleValue{DoubleValue: v.num}
	case Boolean:
		m.Value = &spb.Payload_Metric_BooleanValue{BooleanValue: v.num != 0}
	case Int32:
		m.Value = &spb.Payload_Metric_IntValue{IntValue: uint32(int32(v.num))}
	case UInt64, Int64:
		m.Value = &spb.Payload_Metric_LongValue{LongValue: uint64(v.num)}
	case String:
		m.Value = &spb.Payload_Metric_StringValue{StringValue: v.text}
	}
}

// props is a metric's properties: base (a birth's unit and role) and its quality when not good.
func props(base *spb.Payload_PropertySet, v value) *spb.Payload_PropertySet {
	ps := &spb.Payload_PropertySet{}
	if base != nil {
		ps.Keys = append(ps.Keys, base.Keys...)
		ps.Values = append(ps.Values, base.Values...)
	}
	if v.quality != QualityGood {
		ps.Keys = append(ps.Keys, "Quality")
		ps.Values = append(ps.Values, &spb.Payload_PropertyValue{Type: proto.Uint32(Int32), Value: &spb.Payload_PropertyValue_IntValue{IntValue: uint32(v.quality)}})
	}
	return ps
}

func millis(t time.Time) *uint64 { return proto.Uint64(uint64(t.UnixMilli())) }

// quality maps a sample's quality to Sparkplug's: good 192, stale 500, anything else bad (0).
func quality(q sample.Quality) int32 {
	switch q {
	case sample.Good:
		return QualityGood
	case sample.Stale:
		return QualityStale
	}
	return QualityBad
}

// Batch takes one poll: a failed poll is the device's DDEATH (when it was born); the first good
// poll after one, or the first ever, is its DBIRTH; otherwise a DDATA of what moved beyond its
// deadband (nothing when nothing did).
func (n *Node) Batch(b sample.Batch) []Out {
	d := n.devBy[b.Device]
	if d == nil {
		return nil
	}
	if b.Err != nil {
		d.online, d.polled = false, true
		if d.born && n.live {
			d.born = false
			return []Out{{Kind: DDEATH, Device: d.name, Payload: &spb.Payload{Timestamp: millis(b.At)}}}
		}
		return nil
	}
	for _, s := range b.Samples {
		mt := d.byName[s.Point]
		if mt == nil {
			continue
		}
		v := value{num: s.Value, text: s.Text, quality: quality(s.Quality), at: s.At, known: true}
		if s.Quality != sample.Good {
			// The last good value (null when there was none), marked not good.
			v.num, v.text, v.known = mt.cur.num, mt.cur.text, mt.cur.known
		}
		mt.cur = v
	}
	d.online, d.polled = true, true
	if n.live && !d.born {
		return []Out{n.deviceBirth(d, b.At)}
	}
	// A poll moves its points only: the alarm metrics after them change in Apply, which reports them.
	return n.deviceDataOf(d, d.metrics[:d.points], b.At)
}

// deviceData is a DDATA of d's metrics that moved since they were last reported (none when
// nothing did, or when it would be neither sent nor stored).
func (n *Node) deviceData(d *device, now time.Time) []Out { return n.deviceDataOf(d, d.metrics, now) }

// deviceDataOf is deviceData for some of d's metrics.
func (n *Node) deviceDataOf(d *device, metrics []*metric, now time.Time) []Out {
	if !n.live && !n.store {
		return nil
	}
	if n.live && !d.born {
		return nil
	}
	ms := changed(metrics, now)
	if len(ms) == 0 {
		return nil
	}
	return []Out{{Kind: DDATA, Device: d.name, Payload: &spb.Payload{Timestamp: millis(now), Metrics: ms}}}
}

// changed is the DATA metrics of those that moved beyond their deadband since they were last
// reported, in chronological order; they count as reported from now on.
func changed(metrics []*metric, now time.Time) []*spb.Payload_Metric {
	var ms []*spb.Payload_Metric
	for _, mt := range metrics {
		if mt.cur.same(mt.sent, mt.deadband) {
			continue
		}
		mt.sent = mt.cur
		ms = append(ms, dataMetric(mt, mt.cur, now))
	}
	sortChrono(ms)
	return ms
}

// sortChrono keeps metrics in the order of their timestamps, as the specification asks.
func sortChrono(ms []*spb.Payload_Metric) {
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].GetTimestamp() < ms[j].GetTimestamp() })
}

// Apply takes the engine's state after a change: alarm metrics of the devices (DDATA, or a new
// DBIRTH of a device when an alarm appears that its birth did not have), zone stages and drain
// actions of the node (NDATA).
func (n *Node) Apply(st State) []Out {
	var out []Out
	for _, s := range st.Signals {
		n.signals[s.Zone] = s
	}
	for _, z := range n.m.Zones {
		stage := st.Zones[z]
		n.setNode("Zones/"+z+"/Stage", value{num: float64(stage), quality: QualityGood, at: st.At, known: true})
		n.setNode("Zones/"+z+"/Stage Name", value{text: stage.String(), quality: QualityGood, at: st.At, known: true})
		action := "none"
		if a := st.Actions[z]; a != "" {
			action = string(a)
		}
		n.setNode("Zones/"+z+"/Drain/Action", value{text: action, quality: QualityGood, at: st.At, known: true})
		if s, ok := n.signals[z]; ok {
			n.setNode("Zones/"+z+"/Drain/Signal ID", value{text: s.ID, quality: QualityGood, at: st.At, known: true})
			n.setNode("Zones/"+z+"/Drain/Signal Seq", value{num: float64(s.Seq), quality: QualityGood, at: st.At, known: true})
		}
	}
	if msg := n.nodeData(st.At); msg != nil {
		out = append(out, *msg)
	}
	// Every alarm's metrics, and normal for those the engine no longer has.
	seen := map[*metric]bool{}
	seenDev := map[*metric]*device{}
	touched := map[*device]bool{}
	reborn := map[*device]bool{}
	for _, a := range st.Alarms {
		d := n.devBy[a.Device]
		if d == nil {
			continue
		}
		k := AlarmKey{Detector: a.Detector, Point: a.Point}
		if d.byName[k.Name()+"/State"] == nil {
			n.addAlarm(d, k) // a birth must name every metric: this device is born again
			reborn[d] = true
		}
		touched[d] = true
		for _, mv := range []struct {
			suffix string
			v      value
		}{
			{"/State", value{text: a.State.String(), quality: QualityGood, at: st.At, known: true}},
			{"/Active", value{num: b2f(a.Active), quality: QualityGood, at: st.At, known: true}},
			{"/Stage", value{num: float64(a.Stage), quality: QualityGood, at: st.At, known: true}},
		} {
			mt := d.byName[k.Name()+mv.suffix]
			seen[mt], seenDev[mt] = true, d
			if !mt.cur.same(mv.v, 0) {
				mt.cur = mv.v
			}
		}
	}
	// Only the alarm metrics that were set by an earlier state can need setting back: a room's
	// devices have thousands of alarm metrics, and this runs after every outbox write.
	for mt, d := range n.raised {
		if seen[mt] {
			continue
		}
		normal := value{quality: QualityGood, at: st.At, known: true}
		if strings.HasSuffix(mt.name, "/State") {
			normal.text = alarms.Normal.String()
		}
		mt.cur = normal
		touched[d] = true
		delete(n.raised, mt)
	}
	for mt := range seen {
		n.raised[mt] = seenDev[mt]
	}
	for _, d := range n.devs {
		switch {
		case reborn[d] && n.live && d.born:
			out = append(out, n.deviceBirth(d, st.At))
		case touched[d]:
			out = append(out, n.deviceData(d, st.At)...)
		}
	}
	return out
}

func (n *Node) setNode(name string, v value) {
	mt := n.nodeBy[name]
	if mt != nil && !mt.cur.same(v, 0) {
		mt.cur = v
	}
}

// nodeData is an NDATA of the node metrics that changed since they were last reported.
func (n *Node) nodeData(now time.Time) *Out {
	if !n.live && !n.store {
		return nil
	}
	ms := changed(n.node, now)
	if len(ms) == 0 {
		return nil
	}
	return &Out{Kind: NDATA, Payload: &spb.Payload{Timestamp: millis(now), Metrics: ms}}
}

// Born says whether a device is born in the session.
func (n *Node) Born(device string) bool {
	d := n.devBy[device]
	return d != nil && d.born
}

// Aliases is every metric's alias by device ("" for the node) and name, for tests and docs.
func (n *Node) Aliases() map[string]map[string]uint64 {
	out := map[string]map[string]uint64{"": {}}
	for _, mt := range n.node {
		out[""][mt.name] = mt.alias
	}
	for _, d := range n.devs {
		out[d.name] = map[string]uint64{}
		for _, mt := range d.metrics {
			out[d.name][mt.name] = mt.alias
		}
	}
	return out
}

func isAlarmMetric(name string) bool { return strings.HasPrefix(name, "Alarms/") }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// AlarmsOf is every alarm a device with these points may raise: each detector that reads a
// point's role, on that point; sensor health on every point with a role; the device's own
// (comm loss, no data, frozen) with no point.
func AlarmsOf(points []Point) []AlarmKey {
	var roles []sample.Role
	for _, p := range points {
		roles = append(roles, p.Role)
	}
	var out []AlarmKey
	for _, id := range alarms.DetectorsFor(roles) {
		info, ok := alarms.Detector(id)
		if !ok {
			continue
		}
		if info.Roles == nil {
			out = append(out, AlarmKey{Detector: string(id)})
			continue
		}
		for _, p := range points {
			if p.Role != "" && (id == alarms.SensorFault || info.Reads(p.Role)) {
				out = append(out, AlarmKey{Detector: string(id), Point: p.Name})
			}
		}
	}
	return slices.Clip(out)
}

// String names a message for logs: its kind and device.
func (o Out) String() string {
	if o.Device == "" {
		return o.Kind
	}
	return fmt.Sprintf("%s %s", o.Kind, o.Device)
}

// Remodel is a node of m that goes on from n: the values and device states of the metrics both
// have, the session's state (live, store) and the signals seen. Its births name what m has.
func (n *Node) Remodel(m Model) *Node {
	nu := NewNode(m)
	nu.live, nu.store, nu.signals = n.live, n.store, n.signals
	for name, mt := range n.nodeBy {
		if o := nu.nodeBy[name]; o != nil && name != "Node Info/Version" && name != "Node Info/Boot ID" && name != "Node Info/Instance" {
			o.cur = mt.cur
		}
	}
	for _, d := range n.devs {
		o := nu.devBy[d.name]
		if o == nil {
			continue
		}
		o.online, o.polled = d.online, d.polled
		for _, mt := range d.metrics {
			om := o.byName[mt.name]
			switch {
			case om != nil && om.datatype == mt.datatype:
				om.cur = mt.cur
			case om == nil && isAlarmMetric(mt.name):
				// An alarm metric added since the start (a rule's): kept, with its value.
				om = &metric{name: mt.name, datatype: mt.datatype, cur: mt.cur}
				nu.addDev(o, om)
			default:
				continue
			}
			if _, up := n.raised[mt]; up {
				nu.raised[om] = o // still to be set back to normal when its alarm goes
			}
		}
	}
	return nu
}
