package daemon

import (
	"cmp"
	"crypto/ed25519"
	"fmt"
	"strings"
	"time"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// Pipeline is detection and cutover as one synchronous step: samples and ticks in, the MQTT
// messages for alarms, risk and drain out, in order. The live daemon and `firebreak replay` both
// drive it, so replay prints exactly what the daemon would publish for the same samples.
type Pipeline struct {
	eng        *alarms.Engine
	plan       *cutover.Planner
	enc        *wire.Encoder
	key        ed25519.PrivateKey
	persistSeq func(uint64) error
	persistAlm func(alarms.Snapshot) error
	persistPln func(cutover.PlannerState) error
	persistSD  func([]byte)
	upsZone    map[string]string // UPS device → its zone, for power_loss_eta_s
	maxShelve  time.Duration
	// OnRisk, if set, sees every risk change (the daemon logs them).
	OnRisk func(alarms.RiskChange)
	// OnDrain, if set, sees every signal after it is signed.
	OnDrain func(cutover.Signal)
}

// PipelineOptions are what a pipeline needs beyond the config.
type PipelineOptions struct {
	BootID     string
	Key        ed25519.PrivateKey
	SeqStart   uint64
	PersistSeq func(uint64) error // called before a signal with that seq leaves; nil for none
	// PersistAlarms is called with the alarm state whenever an alarm changed, before the messages
	// that announce the change leave; nil for none.
	PersistAlarms func(alarms.Snapshot) error
	// PersistPlanner is called with the drain planner's state whenever it changed (a signal, an
	// ack), before the messages leave; nil for none.
	PersistPlanner func(cutover.PlannerState) error
	// PersistSelfDischarge is called with self_discharge's hourly history whenever an hour of it
	// closed (alarms.Engine.SelfDischargeState); nil for none.
	PersistSelfDischarge func([]byte)
	// Live says a poller feeds the pipeline (see alarms.LivePoller); replay leaves it false.
	Live bool
	// Encoder, if set, is used instead of a new one (a reload goes on with its envelope seq).
	Encoder *wire.Encoder
}

// Topology is the engine's view of the configured site.
func Topology(cfg *config.Config) alarms.Topology {
	var topo alarms.Topology
	for _, z := range cfg.Zones {
		topo.Zones = append(topo.Zones, z.Name)
	}
	// Devices of one profile on links with the same limits share their maps (read only): a hall
	// of 500 racks has one set, not 500.
	type key struct {
		prof   *collectors.Resolved
		limits collectors.Limits
	}
	type maps struct {
		units          map[string]string
		modules, block map[string]int
	}
	shared := map[key]maps{}
	for _, d := range cfg.Devices {
		r := cfg.Points(d)
		k := key{prof: r}
		cn, planned := cfg.Connection(d.Connection)
		planned = planned && r != nil && !r.HasSunSpec()
		if planned {
			k.limits = collectors.Limits{MaxRegisters: cn.MaxRegistersPerRequest, MaxGap: cn.MaxGap}
		}
		m, ok := shared[k]
		if !ok {
			m = maps{units: map[string]string{}, modules: map[string]int{}, block: map[string]int{}}
			if r != nil {
				for _, p := range r.Points {
					m.units[p.Name] = p.Unit
					if p.Module > 0 {
						m.modules[p.Name] = p.Module
					}
				}
				// The register blocks the collector will read (a SunSpec device's are known
				// only once its model chain is: it is judged as a whole).
				if planned {
					for i, req := range collectors.Plan(r.Points, k.limits) {
						for _, p := range req.Points {
							m.block[r.Points[p].Name] = i
						}
					}
				}
			}
			shared[k] = m
		}
		var battery *alarms.Battery
		if b := d.Battery; b != nil {
			battery = &alarms.Battery{CapacityAh: b.CapacityAh, OCVSlopeMVPerPct: b.OCVSlopeMVPerPct}
		}
		topo.Devices = append(topo.Devices, alarms.DeviceInfo{Name: d.Name, Zone: d.Zone, Kind: d.Profile, Interval: d.Interval,
			Units: m.units, Modules: m.modules, Blocks: m.block, Battery: battery})
	}
	for _, r := range cfg.Rules {
		dev, pt, _ := strings.Cut(r.Point, ".")
		topo.Rules = append(topo.Rules, alarms.Rule{Name: r.Name, Device: dev, Point: pt, Above: r.Above, Below: r.Below,
			RatePerMin: r.RatePerMin, For: r.For, Stage: alarms.Stage(r.Stage)})
	}
	return topo
}

// NewPipeline builds the engine, planner and encoder for a site.
func NewPipeline(cfg *config.Config, o PipelineOptions) *Pipeline {
	var zones []cutover.Zone
	for _, z := range cfg.Zones {
		zones = append(zones, cutover.Zone{Name: z.Name, Domains: z.CutScope, Targets: cfg.Targets(z.CutScope)})
	}
	persist := o.PersistSeq
	if persist == nil {
		persist = func(uint64) error { return nil }
	}
	var eopts []alarms.Option
	if o.Live {
		eopts = append(eopts, alarms.LivePoller())
	}
	enc := o.Encoder
	if enc == nil {
		enc = wire.NewEncoder(cfg.MQTT.TopicPrefix, cfg.Site, cfg.Instance, o.BootID)
	}
	return &Pipeline{
		maxShelve: cmp.Or(cfg.Commands.MaxShelve, 72*time.Hour),
		eng:       alarms.New(Topology(cfg), cfg.Detection, eopts...),
		plan: cutover.NewPlanner(cutover.Options{Site: cfg.Site, Instance: cfg.Instance, BootID: o.BootID,
			Heartbeat: cfg.Cutover.Heartbeat, Validity: cfg.Cutover.Validity, FireToPowerCut: cfg.Cutover.FireToPowerCut,
			DryRun: cfg.Cutover.Mode == "dry-run", SeqStart: o.SeqStart, CancelHold: cfg.Cutover.CancelHold,
			Consumers: cfg.Cutover.Consumers, AckTimeout: cfg.Cutover.AckTimeout, EpisodeWindow: cfg.Cutover.EpisodeWindow}, zones),
		upsZone:    upsZones(cfg),
		enc:        enc,
		key:        o.Key,
		persistSeq: persist,
		persistAlm: o.PersistAlarms,
		persistPln: o.PersistPlanner,
		persistSD:  o.PersistSelfDischarge,
	}
}

// Restore loads the alarm state saved before a restart.
func (p *Pipeline) Restore(s alarms.Snapshot, now time.Time) error { return p.eng.Restore(s, now) }

// RestoreSelfDischarge loads self_discharge's hourly history saved before a restart.
func (p *Pipeline) RestoreSelfDischarge(b []byte, now time.Time) error {
	return p.eng.RestoreSelfDischarge(b, now)
}

// RestorePlanner loads the drain planner's state saved before a restart.
func (p *Pipeline) RestorePlanner(s cutover.PlannerState, now time.Time) { p.plan.Restore(s, now) }

// Encoder is the pipeline's encoder, for the messages the pipeline does not make (status,
// availability, telemetry), so that one seq numbers them all.
func (p *Pipeline) Encoder() *wire.Encoder { return p.enc }

// upsZones maps every device with an ups_on_battery point to its zone.
func upsZones(cfg *config.Config) map[string]string {
	out := map[string]string{}
	for _, d := range cfg.Devices {
		if r := cfg.Points(d); r != nil {
			for _, pt := range r.Points {
				if pt.Role == sample.UPSOnBattery {
					out[d.Name] = d.Zone
				}
			}
		}
	}
	return out
}

// Step feeds one device poll.
func (p *Pipeline) Step(b sample.Batch) ([]wire.Message, error) {
	p.eng.Step(b)
	if p.persistSD != nil && p.eng.SelfDischargeDirty() {
		p.persistSD(p.eng.SelfDischargeState())
	}
	if zone, ok := p.upsZone[b.Device]; ok {
		p.plan.StepUPS(zone, b)
	}
	return p.flush()
}

// Ack takes a consumer's acknowledgement of a drain signal. An ack that does not fit (unknown
// consumer, an older signal) is an error that changed nothing.
func (p *Pipeline) Ack(a cutover.Ack, now time.Time) ([]wire.Message, error) {
	if err := p.plan.StepAck(a, now); err != nil {
		return nil, err
	}
	return p.flush()
}

// Tick moves time on: comm loss, stage holds and drain heartbeats.
func (p *Pipeline) Tick(now time.Time) ([]wire.Message, error) {
	p.eng.Tick(now)
	p.plan.Tick(now)
	return p.flush()
}

// Command performs a verified operator command. A refusal (an unknown alarm, a transition the
// alarm's state does not allow, a cancel before stage 0 has held) is an error that changed nothing.
func (p *Pipeline) Command(c cutover.Command, now time.Time) ([]wire.Message, error) {
	var err error
	cause, isAlarm := alarms.ParseOperatorCause(c.Command)
	switch {
	case isAlarm && cause == alarms.CauseShelve && c.ShelveFor() > p.maxShelve:
		err = fmt.Errorf("a shelve may last at most %s (commands.max_shelve), this one %s", p.maxShelve, c.ShelveFor())
	case isAlarm:
		err = p.eng.Operate(cause, c.Alarm, now.Add(c.ShelveFor()), now)
	case c.Command == cutover.VerbDrain:
		a := c.Action
		if a == "" {
			a = cutover.Drain
		}
		err = p.plan.Manual(c.Zone, a, c.Operator, c.Reason, now)
	case c.Command == cutover.VerbCancel:
		err = p.plan.Cancel(c.Zone, c.Operator, c.Reason, now)
	default:
		err = fmt.Errorf("unknown command %q", c.Command)
	}
	if err != nil {
		return nil, err
	}
	return p.flush()
}

// flush performs one Ready of each core. The engine's risk changes go to the planner first, and
// the planner's escalations (a consumer that did not acknowledge, a failed drain) into the alarm
// book, so one engine Ready holds every alarm event of the cycle: the alarm state is made durable
// once, then the messages go in order: alarm events, risk, drain signals (each seq durable before
// its signal), drain progress.
func (p *Pipeline) flush() ([]wire.Message, error) {
	if !p.eng.HasReady() && p.plan.Ready().Empty() {
		return nil, nil
	}
	for _, rc := range p.eng.Ready().Risk {
		p.plan.StepRisk(rc)
	}
	prd := p.plan.Ready()
	for _, e := range prd.Escalations {
		p.eng.Protocol(e.Source(), e.Kind, e.Zone, e.Stage, e.Text, e.At)
	}
	rd := p.eng.Ready()
	if len(rd.Events) > 0 && p.persistAlm != nil {
		if err := p.persistAlm(p.eng.Snapshot()); err != nil {
			return nil, fmt.Errorf("persist alarm state: %w", err)
		}
	}
	var out []wire.Message
	for _, ev := range rd.Events {
		out = append(out, p.enc.AlarmEvent(ev)...)
	}
	for _, r := range rd.Restated {
		out = append(out, p.enc.AlarmState(r.Alarm, r.At))
	}
	for _, rc := range rd.Risk {
		out = append(out, p.enc.Risk(rc))
		if p.OnRisk != nil {
			p.OnRisk(rc)
		}
	}
	p.eng.Advance()
	for _, s := range prd.Signals {
		// The seq is durable before the signal leaves, so a restart never reuses one.
		if err := p.persistSeq(s.Seq); err != nil {
			return out, err
		}
		if err := cutover.Sign(&s, p.key); err != nil {
			return out, fmt.Errorf("sign drain signal: %w", err)
		}
		out = append(out, p.enc.Drain(s))
		if p.OnDrain != nil {
			p.OnDrain(s)
		}
	}
	if p.persistPln != nil && (len(prd.Signals) > 0 || len(prd.Progress) > 0) {
		if err := p.persistPln(p.plan.State()); err != nil {
			return out, fmt.Errorf("persist drain state: %w", err)
		}
	}
	p.plan.Advance()
	for _, pr := range prd.Progress {
		out = append(out, p.enc.DrainProgress(pr, p.now(pr)))
	}
	return out, nil
}

func (p *Pipeline) now(pr cutover.Progress) time.Time {
	t := pr.IssuedAt
	for _, c := range pr.Consumers {
		if c.At.After(t) {
			t = c.At
		}
	}
	return t
}

// Alarms are the alarms that are not plainly normal.
func (p *Pipeline) Alarms() []alarms.Alarm { return p.eng.Alarms() }

// ZoneStages is each zone's stage as last announced.
func (p *Pipeline) ZoneStages() map[string]alarms.Stage { return p.eng.ZoneStages() }

// Actions is each configured zone's drain action ("" for none).
func (p *Pipeline) Actions() map[string]cutover.Action {
	out := map[string]cutover.Action{}
	for _, z := range p.plan.Zones() {
		out[z] = p.plan.Active(z)
	}
	return out
}

// Acks is each active zone's consumers' acknowledgements of its current signal.
func (p *Pipeline) Acks() map[string]map[string]cutover.AckStatus {
	out := map[string]map[string]cutover.AckStatus{}
	for _, z := range p.plan.State().Zones {
		cs := map[string]cutover.AckStatus{}
		for n, c := range z.Consumers {
			cs[n] = c.Status
		}
		out[z.Zone] = cs
	}
	return out
}
