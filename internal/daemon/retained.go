package daemon

import (
	"encoding/json"
	"time"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// notPolledYet is a device's availability until its first poll of this boot (or after the reload
// that added it): offline, because nothing this daemon knows says it answers.
const notPolledYet = "not polled yet since the daemon started (or since the reload that added it)"

// restate is the retained truth of the daemon's topics, made at a start (booting) and after a
// reload, from prev, the retained messages it published before (its outbox's table, which lasts
// across restarts), and fixed, the messages that must go first (node status, discovery):
//
//   - the risk of every configured zone, stage 0 included;
//   - every configured device's availability: offline until its first poll of this boot (a
//     reload restates only the devices it added: the others' are this boot's already);
//   - at a start, the state of every alarm the engine holds, and of every earlier alarm whose
//     device or zone is still configured, as normal (the engine would hold it otherwise);
//   - an empty retained message (MQTT's delete) for every earlier topic no longer owned: a
//     removed device's availability and alarms, a removed zone's risk and drain, discovery
//     configs no longer announced, another instance name's status, and at a start the drain
//     topics of zones with no open episode (a signal of an episode this boot does not know
//     must not stand as if it were current).
//
// A zone with an open episode keeps its drain topics: the planner re-sends its signal at the
// next tick.
func (l *engineLoop) restate(prev, fixed []wire.Message, now time.Time, booting bool) []wire.Message {
	out := append([]wire.Message(nil), fixed...)
	owned := map[string]bool{}
	for _, m := range fixed {
		owned[m.Topic] = true
	}
	add := func(m wire.Message) {
		if !owned[m.Topic] {
			owned[m.Topic] = true
			out = append(out, m)
		}
	}
	t := l.enc.T
	for _, z := range l.cfg.Zones {
		add(l.enc.RiskState(l.pipe.eng.Picture(z.Name), now))
	}
	held := l.pipe.Alarms()
	for _, d := range l.cfg.Devices {
		if _, known := l.online[d.Name]; known {
			owned[t.Availability(d.Name)], owned[t.DeviceAlarms(d.Name)] = true, true
			continue
		}
		add(l.enc.Availability(d.Name, false, now, notPolledYet, now))
		add(l.enc.DeviceAlarms(d.Name, l.detectors[d.Name], held, now))
	}
	for _, a := range held {
		if booting {
			add(l.enc.AlarmState(a, now))
		} else {
			owned[t.Alarm(a.ID)] = true
		}
	}
	for zone, action := range l.pipe.Actions() {
		if action != "" || !booting {
			owned[t.Drain(zone)], owned[t.DrainStatus(zone)] = true, true
		}
	}
	for _, m := range prev {
		if owned[m.Topic] {
			continue
		}
		tp, ours := t.Parse(m.Topic)
		if ours && tp.Kind == wire.KindAlarm {
			var p wire.AlarmPayload
			if json.Unmarshal(m.Payload, &p) == nil && l.pipe.eng.Owns(p.Alarm) {
				if booting {
					add(l.enc.AlarmState(normalAgain(p.Alarm, now), now))
				} else {
					owned[m.Topic] = true // this boot's already
				}
				continue
			}
		}
		out = append(out, wire.Clear(m.Topic))
	}
	return out
}

// normalAgain is an earlier boot's alarm as this boot knows it: normal, since the engine holds
// every alarm that is not (an alarm whose state was lost with its file is raised again by its
// condition, if that still holds).
func normalAgain(a alarms.Alarm, now time.Time) alarms.Alarm {
	return alarms.Alarm{ID: a.ID, Device: a.Device, Point: a.Point, Zone: a.Zone, Detector: a.Detector,
		State: alarms.Normal, Stage: alarms.StageNormal, Unit: a.Unit, Since: now}
}
