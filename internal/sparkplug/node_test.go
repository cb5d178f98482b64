package sparkplug

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/sparkplug/spb"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func testModel() Model {
	pts := []Point{
		{Name: "cell_temp_1", Unit: "°C", Role: sample.CellTemperature, Deadband: 0.5},
		{Name: "cell_v_1", Unit: "V", Role: sample.CellVoltage},
		{Name: "smoke", Role: sample.Smoke, Binary: true},
	}
	return Model{Group: "g", Node: "n1", Version: "v1", BootID: "b", Instance: "i", Zones: []string{"z"},
		Devices: []Device{{Name: "rack-1", Zone: "z", Points: pts, Alarms: AlarmsOf(pts)}, {Name: "rack-2", Zone: "z", Points: pts, Alarms: AlarmsOf(pts)}}}
}

func batch(dev string, at time.Time, temp, volt float64) sample.Batch {
	return sample.Batch{Device: dev, At: at, Samples: []sample.Sample{
		{Device: dev, Point: "cell_temp_1", Value: temp, Quality: sample.Good, At: at},
		{Device: dev, Point: "cell_v_1", Value: volt, Quality: sample.Good, At: at},
		{Device: dev, Point: "smoke", Value: 0, Quality: sample.Good, At: at},
	}}
}

func metricsByName(p *spb.Payload) map[string]*spb.Payload_Metric {
	out := map[string]*spb.Payload_Metric{}
	for _, m := range p.Metrics {
		out[m.GetName()] = m
	}
	return out
}

func prop(m *spb.Payload_Metric, key string) *spb.Payload_PropertyValue {
	for i, k := range m.GetProperties().GetKeys() {
		if k == key {
			return m.GetProperties().GetValues()[i]
		}
	}
	return nil
}

// TestBirthCarriesEveryMetric: the NBIRTH has bdSeq and Node Control/Rebirth (false, no alias)
// and the zones; a device is born on its first good poll with every point and alarm metric
// (name, alias, datatype, unit and role), and aliases are unique across the node.
func TestBirthCarriesEveryMetric(t *testing.T) {
	n := NewNode(testModel())
	outs := n.Birth(t0, 7)
	if len(outs) != 1 || outs[0].Kind != NBIRTH {
		t.Fatalf("birth before any poll: %v, want the NBIRTH alone", outs)
	}
	nb := metricsByName(outs[0].Payload)
	if m := nb[MetricBdSeq]; m.GetLongValue() != 7 || m.GetDatatype() != Int64 {
		t.Errorf("bdSeq %v", m)
	}
	if m := nb[MetricRebirth]; m == nil || m.Alias != nil || m.GetBooleanValue() || m.GetDatatype() != Boolean {
		t.Errorf("rebirth metric %v", m)
	}
	for _, name := range []string{"Zones/z/Stage", "Zones/z/Drain/Action", "Zones/z/Drain/Signal ID", "Node Info/Version"} {
		if m := nb[name]; m == nil || m.Alias == nil || m.Datatype == nil {
			t.Errorf("%s: %v", name, m)
		}
	}
	outs = n.Batch(batch("rack-1", t0.Add(time.Second), 25, 3.9))
	if len(outs) != 1 || outs[0].Kind != DBIRTH || outs[0].Device != "rack-1" {
		t.Fatalf("first poll: %v, want rack-1's DBIRTH", outs)
	}
	db := metricsByName(outs[0].Payload)
	temp := db["cell_temp_1"]
	if temp.GetDoubleValue() != 25 || temp.GetDatatype() != Double || prop(temp, "engUnit").GetStringValue() != "°C" || prop(temp, "role").GetStringValue() != "cell_temperature" {
		t.Errorf("cell_temp_1 in DBIRTH: %v", temp)
	}
	if m := db["smoke"]; m.GetDatatype() != Boolean || m.GetBooleanValue() {
		t.Errorf("smoke: %v", m)
	}
	for _, name := range []string{"Alarms/temp_high/cell_temp_1/State", "Alarms/temp_high/cell_temp_1/Active", "Alarms/temp_high/cell_temp_1/Stage", "Alarms/comm_lost/State"} {
		if db[name] == nil {
			t.Errorf("DBIRTH lacks %s", name)
		}
	}
	seen := map[uint64]string{}
	for dev, ms := range n.Aliases() {
		for name, a := range ms {
			if other, dup := seen[a]; dup {
				t.Fatalf("alias %d of %s/%s is also %s's", a, dev, name, other)
			}
			seen[a] = dev + "/" + name
		}
	}
}

// TestDataByException: a poll that moves nothing sends nothing; a move within the deadband
// neither; one beyond it a DDATA of that metric alone, by alias, without name or datatype.
func TestDataByException(t *testing.T) {
	n := NewNode(testModel())
	n.Birth(t0, 0)
	n.Batch(batch("rack-1", t0, 25, 3.9))
	if outs := n.Batch(batch("rack-1", t0.Add(time.Second), 25.4, 3.9)); len(outs) != 0 {
		t.Fatalf("within the 0.5 deadband and the same voltage: %v", outs)
	}
	outs := n.Batch(batch("rack-1", t0.Add(2*time.Second), 25.6, 3.9))
	if len(outs) != 1 || outs[0].Kind != DDATA || len(outs[0].Payload.Metrics) != 1 {
		t.Fatalf("0.6 above the last reported: %v", outs)
	}
	m := outs[0].Payload.Metrics[0]
	if m.Name != nil || m.GetDatatype() != Double || m.GetAlias() != n.Aliases()["rack-1"]["cell_temp_1"] || m.GetDoubleValue() != 25.6 {
		t.Errorf("DDATA metric %v", m)
	}
	if m.GetTimestamp() != uint64(t0.Add(2*time.Second).UnixMilli()) {
		t.Errorf("timestamp %d", m.GetTimestamp())
	}
	// A point without a deadband reports any change.
	if outs := n.Batch(batch("rack-1", t0.Add(3*time.Second), 25.6, 3.901)); len(outs) != 1 || len(outs[0].Payload.Metrics) != 1 {
		t.Fatalf("a 1 mV move: %v", outs)
	}
}

// TestQualityProperty: a value that is not good carries Quality (stale 500, invalid 0), with the
// last good value, and good again sends the value without it.
func TestQualityProperty(t *testing.T) {
	n := NewNode(testModel())
	n.Birth(t0, 0)
	n.Batch(batch("rack-1", t0, 25, 3.9))
	b := batch("rack-1", t0.Add(time.Second), 0, 0)
	b.Samples[0].Quality, b.Samples[1].Quality = sample.Stale, sample.Invalid
	outs := n.Batch(b)
	if len(outs) != 1 {
		t.Fatalf("%v", outs)
	}
	got := map[uint64]*spb.Payload_Metric{}
	for _, m := range outs[0].Payload.Metrics {
		got[m.GetAlias()] = m
	}
	al := n.Aliases()["rack-1"]
	if m := got[al["cell_temp_1"]]; prop(m, "Quality").GetIntValue() != uint32(QualityStale) || m.GetDoubleValue() != 25 {
		t.Errorf("stale temperature: %v", m)
	}
	if m := got[al["cell_v_1"]]; prop(m, "Quality").GetIntValue() != uint32(QualityBad) {
		t.Errorf("invalid voltage: %v", m)
	}
	outs = n.Batch(batch("rack-1", t0.Add(2*time.Second), 25, 3.9))
	for _, m := range outs[0].Payload.Metrics {
		if prop(m, "Quality") != nil {
			t.Errorf("good again but %v", m)
		}
	}
}

// TestDeviceDeathAndRebirth: a failed poll is the device's DDEATH, once; the next good poll its
// DBIRTH with the current values.
func TestDeviceDeathAndRebirth(t *testing.T) {
	n := NewNode(testModel())
	n.Birth(t0, 0)
	n.Batch(batch("rack-2", t0, 25, 3.9))
	fail := sample.Batch{Device: "rack-2", At: t0.Add(time.Second), Err: errors.New("timeout")}
	if outs := n.Batch(fail); len(outs) != 1 || outs[0].Kind != DDEATH || outs[0].Device != "rack-2" {
		t.Fatalf("failed poll: %v", outs)
	}
	if outs := n.Batch(fail); len(outs) != 0 {
		t.Fatalf("second failed poll: %v", outs)
	}
	if outs := n.Birth(t0.Add(2*time.Second), 0); len(outs) != 1 {
		t.Fatalf("a rebirth while rack-2 is offline has its DBIRTH: %v", outs)
	}
	outs := n.Batch(batch("rack-2", t0.Add(3*time.Second), 26, 3.8))
	if len(outs) != 1 || outs[0].Kind != DBIRTH || metricsByName(outs[0].Payload)["cell_temp_1"].GetDoubleValue() != 26 {
		t.Fatalf("back: %v", outs)
	}
}

// TestAlarmsAndZones: an alarm raised is a DDATA of its three metrics; one its device's birth did
// not name is a new DBIRTH of the device; a zone's stage and drain are an NDATA with the
// signal's id and seq; an alarm gone from the engine is normal again.
func TestAlarmsAndZones(t *testing.T) {
	n := NewNode(testModel())
	n.Birth(t0, 0)
	n.Batch(batch("rack-1", t0, 25, 3.9))
	a := alarms.Alarm{ID: "x", Device: "rack-1", Point: "cell_temp_1", Zone: "z", Detector: string(alarms.TempHigh), State: alarms.Unacked, Active: true, Stage: alarms.StageWarning}
	sig := cutover.Signal{ID: "sig-1", Zone: "z", Seq: 42, Action: cutover.Drain}
	outs := n.Apply(State{At: t0.Add(time.Second), Alarms: []alarms.Alarm{a}, Zones: map[string]alarms.Stage{"z": alarms.StageWarning},
		Actions: map[string]cutover.Action{"z": cutover.Drain}, Signals: []cutover.Signal{sig}})
	if len(outs) != 2 || outs[0].Kind != NDATA || outs[1].Kind != DDATA {
		t.Fatalf("%v", outs)
	}
	al := n.Aliases()
	nd := map[uint64]*spb.Payload_Metric{}
	for _, m := range outs[0].Payload.Metrics {
		nd[m.GetAlias()] = m
	}
	if nd[al[""]["Zones/z/Stage"]].GetIntValue() != uint32(alarms.StageWarning) || nd[al[""]["Zones/z/Drain/Action"]].GetStringValue() != "drain" ||
		nd[al[""]["Zones/z/Drain/Signal ID"]].GetStringValue() != "sig-1" || nd[al[""]["Zones/z/Drain/Signal Seq"]].GetLongValue() != 42 {
		t.Errorf("NDATA %v", outs[0].Payload.Metrics)
	}
	dd := map[uint64]*spb.Payload_Metric{}
	for _, m := range outs[1].Payload.Metrics {
		dd[m.GetAlias()] = m
	}
	base := "Alarms/temp_high/cell_temp_1"
	if dd[al["rack-1"][base+"/State"]].GetStringValue() != "unacknowledged" || !dd[al["rack-1"][base+"/Active"]].GetBooleanValue() ||
		dd[al["rack-1"][base+"/Stage"]].GetIntValue() != uint32(alarms.StageWarning) {
		t.Errorf("DDATA %v", outs[1].Payload.Metrics)
	}
	// An alarm of a detector the birth did not name (a rule): the device is born again with it.
	r := alarms.Alarm{Device: "rack-1", Point: "cell_v_1", Detector: "rule:low", State: alarms.Unacked, Active: true, Stage: alarms.StageWatch}
	outs = n.Apply(State{At: t0.Add(2 * time.Second), Alarms: []alarms.Alarm{a, r}, Zones: map[string]alarms.Stage{"z": alarms.StageWarning}, Actions: map[string]cutover.Action{"z": cutover.Drain}})
	if len(outs) != 1 || outs[0].Kind != DBIRTH || metricsByName(outs[0].Payload)["Alarms/rule:low/cell_v_1/State"].GetStringValue() != "unacknowledged" {
		t.Fatalf("a new alarm: %v", outs)
	}
	// Both gone: normal again.
	outs = n.Apply(State{At: t0.Add(3 * time.Second), Zones: map[string]alarms.Stage{}, Actions: map[string]cutover.Action{}})
	var dev *Out
	for i := range outs {
		if outs[i].Kind == DDATA {
			dev = &outs[i]
		}
	}
	if dev == nil || len(dev.Payload.Metrics) != 6 {
		t.Fatalf("cleared: %v", outs)
	}
}

// TestStoreWhileAway: once a session ends with store, polls still make DDATA (the session keeps
// them for the host); without, they make nothing; the next birth births the devices again.
func TestStoreWhileAway(t *testing.T) {
	n := NewNode(testModel())
	n.Birth(t0, 0)
	n.Batch(batch("rack-1", t0, 25, 3.9))
	n.End(true)
	outs := n.Batch(batch("rack-1", t0.Add(time.Second), 30, 3.9))
	if len(outs) != 1 || outs[0].Kind != DDATA {
		t.Fatalf("while the host is away: %v", outs)
	}
	n.End(false)
	if outs := n.Batch(batch("rack-1", t0.Add(2*time.Second), 35, 3.9)); len(outs) != 0 {
		t.Fatalf("without store: %v", outs)
	}
	outs = n.Birth(t0.Add(3*time.Second), 1)
	if len(outs) != 2 || outs[1].Kind != DBIRTH || metricsByName(outs[1].Payload)["cell_temp_1"].GetDoubleValue() != 35 {
		t.Fatalf("rebirth: %v", outs)
	}
}

// TestRebirthRequested reads NCMD payloads.
func TestRebirthRequested(t *testing.T) {
	for _, tc := range []struct {
		p    *spb.Payload
		want bool
	}{
		{&spb.Payload{Metrics: []*spb.Payload_Metric{{Name: strp(MetricRebirth), Value: &spb.Payload_Metric_BooleanValue{BooleanValue: true}}}}, true},
		{&spb.Payload{Metrics: []*spb.Payload_Metric{{Name: strp(MetricRebirth), Value: &spb.Payload_Metric_BooleanValue{BooleanValue: false}}}}, false},
		{&spb.Payload{Metrics: []*spb.Payload_Metric{{Name: strp("Node Control/Reboot"), Value: &spb.Payload_Metric_BooleanValue{BooleanValue: true}}}}, false},
	} {
		b, err := marshal(tc.p)
		if err != nil {
			t.Fatal(err)
		}
		if got := rebirthRequested(b); got != tc.want {
			t.Errorf("%v: %v", tc.p, got)
		}
	}
	if rebirthRequested([]byte("not protobuf \xff\xff")) {
		t.Error("garbage asked for a rebirth")
	}
}

func strp(s string) *string { return &s }

func marshal(p *spb.Payload) ([]byte, error) { return proto.Marshal(p) }

// TestRemodel: a reload's node keeps the values of the metrics both configs have, births the
// new device once it answers, and forgets the removed one.
func TestRemodel(t *testing.T) {
	n := NewNode(testModel())
	n.Birth(t0, 0)
	n.Batch(batch("rack-1", t0, 31, 3.9))
	m := testModel()
	m.Devices = append(m.Devices[:1], Device{Name: "rack-3", Zone: "z", Points: m.Devices[0].Points})
	nu := n.Remodel(m)
	outs := nu.Birth(t0.Add(time.Second), 0)
	if len(outs) != 2 || outs[1].Device != "rack-1" || metricsByName(outs[1].Payload)["cell_temp_1"].GetDoubleValue() != 31 {
		t.Fatalf("rebirth after the reload: %v", outs)
	}
	if outs := nu.Batch(batch("rack-2", t0.Add(2*time.Second), 25, 3.9)); outs != nil {
		t.Fatalf("a removed device: %v", outs)
	}
	if outs := nu.Batch(batch("rack-3", t0.Add(2*time.Second), 25, 3.9)); len(outs) != 1 || outs[0].Kind != DBIRTH {
		t.Fatalf("the new device: %v", outs)
	}
}

// TestRemodelKeepsRaisedAlarms: an alarm raised before a reload is set back to normal after it.
func TestRemodelKeepsRaisedAlarms(t *testing.T) {
	n := NewNode(testModel())
	n.Birth(t0, 0)
	n.Batch(batch("rack-1", t0, 25, 3.9))
	a := alarms.Alarm{Device: "rack-1", Point: "cell_temp_1", Detector: string(alarms.TempHigh), State: alarms.Unacked, Active: true, Stage: alarms.StageWarning}
	n.Apply(State{At: t0, Alarms: []alarms.Alarm{a}})
	nu := n.Remodel(testModel())
	nu.Birth(t0.Add(time.Second), 0)
	nu.Batch(batch("rack-1", t0.Add(time.Second), 25, 3.9))
	outs := nu.Apply(State{At: t0.Add(2 * time.Second)})
	if len(outs) != 1 || outs[0].Kind != DDATA || len(outs[0].Payload.Metrics) != 3 {
		t.Fatalf("the alarm gone after a reload: %v", outs)
	}
}
