package influx

import (
	"github.com/influxdata/influxdb-client-go/v2/api/write"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// EventPoints are the events measurement's points for what the daemon published: one per alarm
// transition, risk change and drain signal, so a dashboard can draw a stage timeline, an alarm
// table and drain annotations from the same database as the telemetry.
func EventPoints(m Meta, msgs []wire.Message) []*write.Point {
	var out []*write.Point
	tags := func(kind, zone string) map[string]string {
		return map[string]string{"site": m.Site, "instance": m.Instance, "zone": zone, "kind": kind}
	}
	for _, msg := range msgs {
		switch {
		case msg.Event != nil:
			out = append(out, alarmPoint(tags, msg.Event.AlarmEvent))
		case msg.Risk != nil && msg.Risk.Change != nil:
			r := msg.Risk
			t := tags("risk", r.Zone)
			t["scope"] = r.Change.Scope
			out = append(out, write.NewPoint(Events, t, map[string]any{"stage": r.Stage, "stage_name": r.StageName,
				"name": r.Change.Name, "from": r.Change.From, "to": r.Change.To, "reason": r.Reason}, r.TS))
		case msg.Signal != nil:
			s := msg.Signal
			t := tags("drain", s.Zone)
			t["action"] = string(s.Action)
			out = append(out, write.NewPoint(Events, t, map[string]any{"signal_id": s.ID, "episode": s.Episode, "seq": int64(s.Seq),
				"stage": s.Stage, "reason": s.Reason}, s.IssuedAt))
		}
	}
	return out
}

func alarmPoint(tags func(kind, zone string) map[string]string, ev alarms.AlarmEvent) *write.Point {
	a := ev.Alarm
	t := tags("alarm", a.Zone)
	t["device"], t["detector"], t["cause"] = a.Device, a.Detector, ev.Cause.String()
	return write.NewPoint(Events, t, map[string]any{"alarm_id": a.ID, "stage": int(a.Stage), "state": a.State.String(),
		"active": a.Active, "value": a.Value, "text": a.Text}, ev.At)
}
