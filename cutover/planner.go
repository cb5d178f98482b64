package cutover

import (
	"fmt"
	"sort"
	"time"

	"github.com/firebreak-dc/firebreak/alarms"
)

// Zone is what the planner needs to know of a zone.
type Zone struct {
	Name    string
	Domains []string // cut scope
	Targets []string // what the control plane calls the things those domains feed
}

// Options are the planner's settings.
type Options struct {
	Site, Instance, BootID string
	Heartbeat              time.Duration
	Validity               time.Duration
	FireToPowerCut         time.Duration
	DryRun                 bool
	// SeqStart is the last seq issued before this boot (persisted by the caller), so seq stays
	// monotonic across restarts.
	SeqStart uint64
}

type zoneState struct {
	z         Zone
	action    Action
	stage     alarms.Stage
	episode   string
	episodeAt time.Time
	fireAt    time.Time
	lastSent  time.Time
	reason    string
	evidence  []EvidenceItem
}

// Planner is the pure drain planner: zone risk changes and ticks in, signals out (Ready), the
// caller signs, persists the seq, publishes, then Advances.
type Planner struct {
	o     Options
	zones map[string]*zoneState
	seq   uint64
	ready []Signal
}

// NewPlanner returns a planner for the zones.
func NewPlanner(o Options, zones []Zone) *Planner {
	p := &Planner{o: o, zones: map[string]*zoneState{}, seq: o.SeqStart}
	for _, z := range zones {
		p.zones[z.Name] = &zoneState{z: z}
	}
	return p
}

// StepRisk takes a risk change; only zone changes matter.
func (p *Planner) StepRisk(rc alarms.RiskChange) {
	if rc.Scope != alarms.ScopeZone {
		return
	}
	zs := p.zones[rc.Name]
	if zs == nil {
		return
	}
	zs.stage = rc.To
	if rc.To >= alarms.StageFire && zs.fireAt.IsZero() {
		zs.fireAt = rc.At
	}
	want := ActionFor(rc.To)
	if want.rank() <= zs.action.rank() {
		return // falling or steady: a drain is never withdrawn automatically, only cancelled by an operator
	}
	if zs.action == "" {
		zs.episodeAt = rc.At
		zs.episode = fmt.Sprintf("%s.%s.%d", p.o.Site, zs.z.Name, rc.At.UnixMilli())
	}
	zs.action = want
	zs.reason = rc.Reason
	zs.evidence = zs.evidence[:0]
	for _, e := range rc.Evidence {
		zs.evidence = append(zs.evidence, EvidenceItem{Alarm: e.Alarm, Value: e.Value, Unit: e.Unit})
	}
	p.emit(zs, rc.At)
}

// Tick re-sends every active signal whose heartbeat is due.
func (p *Planner) Tick(now time.Time) {
	names := make([]string, 0, len(p.zones))
	for n := range p.zones {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		zs := p.zones[n]
		if zs.action != "" && now.Sub(zs.lastSent) >= p.o.Heartbeat {
			p.emit(zs, now)
		}
	}
}

// Active is the zone's present action ("" for none).
func (p *Planner) Active(zone string) Action {
	if zs := p.zones[zone]; zs != nil {
		return zs.action
	}
	return ""
}

func (p *Planner) emit(zs *zoneState, now time.Time) {
	p.seq++
	zs.lastSent = now
	eta := p.o.FireToPowerCut
	if !zs.fireAt.IsZero() {
		eta -= now.Sub(zs.fireAt)
		if eta < 0 {
			eta = 0
		}
	}
	ev := append([]EvidenceItem{}, zs.evidence...)
	p.ready = append(p.ready, Signal{
		V: 1, ID: zs.episode + "." + string(zs.action), Episode: zs.episode, Site: p.o.Site, Zone: zs.z.Name,
		Action: zs.action, Stage: int(zs.stage), Domains: append([]string{}, zs.z.Domains...),
		Targets: append([]string{}, zs.z.Targets...), Reason: zs.reason, Evidence: ev,
		PowerLossETAS: int64(eta / time.Second), IssuedAt: now.UTC(), ValidUntil: now.Add(p.o.Validity).UTC(),
		DryRun: p.o.DryRun, Instance: p.o.Instance, BootID: p.o.BootID, TS: now.UTC(), Seq: p.seq,
	})
}

// Ready returns the signals to sign and publish, in order.
func (p *Planner) Ready() []Signal { return p.ready }

// Advance acknowledges the last Ready.
func (p *Planner) Advance() { p.ready = nil }

// Seq is the last seq issued.
func (p *Planner) Seq() uint64 { return p.seq }
