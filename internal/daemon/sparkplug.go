package daemon

import (
	"context"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/mqttx"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/sparkplug"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// sparkplugModel is what the Sparkplug edge node publishes for a config: each device with its
// points (a bit register or a binary role is a Boolean) and every alarm it may raise.
func sparkplugModel(cfg *config.Config, version, bootID string) sparkplug.Model {
	m := sparkplug.Model{Group: cfg.Sparkplug.GroupID, Node: cfg.Sparkplug.EdgeNodeID, Version: version, BootID: bootID, Instance: cfg.Instance}
	for _, z := range cfg.Zones {
		m.Zones = append(m.Zones, z.Name)
	}
	for _, d := range cfg.Devices {
		dv := sparkplug.Device{Name: d.Name, Zone: d.Zone}
		// self_discharge is raised on each module's first cell voltage, and only on a rack with
		// a battery: not one metric set for each of a BMS's 128 cells.
		leakOn := map[string]bool{}
		if r := cfg.Points(d); r != nil {
			modules := map[int]bool{}
			for _, p := range r.Points {
				dv.Points = append(dv.Points, sparkplug.Point{Name: p.Name, Unit: p.Unit, Role: p.Role, Deadband: p.Deadband, Binary: p.Kind.IsBit()})
				if p.Role == sample.CellVoltage && d.Battery != nil && (p.Module == 0 || !modules[p.Module]) {
					leakOn[p.Name], modules[p.Module] = true, true
				}
			}
		}
		for _, k := range sparkplug.AlarmsOf(dv.Points) {
			if k.Detector != string(alarms.SelfDischarge) || leakOn[k.Point] {
				dv.Alarms = append(dv.Alarms, k)
			}
		}
		m.Devices = append(m.Devices, dv)
	}
	return m
}

// newSparkplug makes the Sparkplug session of the config, nil when it is off. It has its own MQTT
// connection (its will is the NDEATH, the JSON contract's is the node status) to the same
// brokers with the same credentials, client id <client id>-spb.
func newSparkplug(cfg *config.Config, base mqttx.Options, version, bootID string, log *zap.Logger) (*sparkplug.Session, error) {
	if !cfg.Sparkplug.Enabled {
		return nil, nil
	}
	o := base
	o.ClientID = base.ClientID + "-spb"
	o.WillTopic, o.WillPayload, o.Subscriptions = "", nil, nil
	return sparkplug.New(sparkplug.Options{Model: sparkplugModel(cfg, version, bootID), MQTT: o, PrimaryHost: cfg.Sparkplug.PrimaryHostID,
		StateDir: cfg.StateDir, StoreMax: max(cfg.MQTT.OutboxMax, 100000), Log: log})
}

// sparkplugSink is the session as a sink: it takes every poll, and runs until the sinks stop.
type sparkplugSink struct{ s *sparkplug.Session }

func (k sparkplugSink) Offer(b sample.Batch)          { k.s.Offer(b) }
func (k sparkplugSink) Run(ctx context.Context) error { return k.s.Run(ctx) }

// sparkplugState hands the session the engine's state after msgs were written: every alarm,
// the zones' stages and actions, and the signals among msgs (their id and seq).
func (l *engineLoop) sparkplugState(msgs []wire.Message) {
	if l.spb == nil || len(msgs) == 0 {
		return
	}
	st := sparkplug.State{At: l.clk.Now(), Alarms: l.pipe.Alarms(), Zones: l.pipe.ZoneStages(), Actions: l.pipe.Actions()}
	for _, m := range msgs {
		if m.Signal != nil {
			st.Signals = append(st.Signals, *m.Signal)
		}
	}
	l.spb.OfferState(st)
}
