package cutover

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	// CancelHold is how long a zone must have been at stage 0 before an operator may cancel.
	CancelHold time.Duration
	// Consumers must each acknowledge every signal within AckTimeout of its action's first
	// issue; one that does not is escalated and the signal is sent again.
	Consumers  []string
	AckTimeout time.Duration
	// EpisodeWindow, if set, names an episode opened at t after t floored to the window, so
	// that two instances watching one room, opening it a poll apart, name it alike; 0 names it
	// after t to the millisecond (one instance, or tests that want every episode distinct).
	EpisodeWindow time.Duration
}

type zoneState struct {
	z         Zone
	action    Action
	stage     alarms.Stage
	episode   string
	episodeAt time.Time
	fireAt    time.Time
	lastSent  time.Time
	zeroSince time.Time // when the zone last fell to stage 0; zero while above it
	reason    string
	evidence  []EvidenceItem
	// The drain protocol: the current action's first issue, when its acks are due, each
	// consumer's progress on it, and UPS readings for power_loss_eta_s.
	actionAt    time.Time
	ackDeadline time.Time
	consumers   map[string]*consumerState
	ups         map[string]upsState
	// lastEpisode is the zone's previous episode, so a new one in the same window gets its own
	// id; peer is the episode the HA peer has open for the zone, if any.
	lastEpisode string
	peer        peerEpisode
}

type peerEpisode struct {
	episode string
	until   time.Time // its last signal's valid_until
}

type consumerState struct {
	ConsumerProgress
	escalated map[string]bool // kind → raised
}

type upsState struct {
	onBattery bool
	runtime   time.Duration
	at        time.Time
}

// Planner is the pure drain planner: zone risk changes and ticks in, signals out (Ready), the
// caller signs, persists the seq, publishes, then Advances.
type Planner struct {
	o     Options
	zones map[string]*zoneState
	seq   uint64
	ready Ready
}

// Ready is what the caller must now perform, in order: sign each signal (its seq durable first)
// and publish it, raise or clear each escalation's alarm, publish each zone's progress.
type Ready struct {
	Signals     []Signal
	Escalations []Escalation // alarms about consumers: no ack in time, a failed drain
	Progress    []Progress   // zones whose consumers' acknowledgements changed
}

// Empty says there is nothing to perform.
func (r Ready) Empty() bool {
	return len(r.Signals) == 0 && len(r.Escalations) == 0 && len(r.Progress) == 0
}

// NewPlanner returns a planner for the zones.
func NewPlanner(o Options, zones []Zone) *Planner {
	p := &Planner{o: o, zones: map[string]*zoneState{}, seq: o.SeqStart}
	for _, z := range zones {
		zs := &zoneState{z: z, consumers: map[string]*consumerState{}, ups: map[string]upsState{}}
		for _, c := range o.Consumers {
			zs.consumers[c] = &consumerState{escalated: map[string]bool{}}
		}
		p.zones[z.Name] = zs
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
	if rc.To == alarms.StageNormal {
		zs.zeroSince = rc.At
	} else {
		zs.zeroSince = time.Time{}
	}
	if rc.To >= alarms.StageFire && zs.fireAt.IsZero() {
		zs.fireAt = rc.At
	}
	want := ActionFor(rc.To)
	if want.rank() <= zs.action.rank() {
		return // falling or steady: a drain is never withdrawn automatically, only cancelled by an operator
	}
	var ev []EvidenceItem
	for _, e := range rc.Evidence {
		ev = append(ev, EvidenceItem{Alarm: e.Alarm, Value: e.Value, Unit: e.Unit})
	}
	p.raise(zs, want, rc.Reason, ev, rc.At)
}

func (p *Planner) raise(zs *zoneState, a Action, reason string, ev []EvidenceItem, at time.Time) {
	if zs.action == "" {
		zs.episodeAt = at
		zs.episode = p.episodeID(zs, at)
	}
	zs.action = a
	zs.actionAt = at
	zs.ackDeadline = at.Add(p.o.AckTimeout)
	for _, cs := range zs.consumers {
		cs.ConsumerProgress = ConsumerProgress{} // a new signal: every consumer owes an ack again
	}
	zs.reason = reason
	zs.evidence = append(zs.evidence[:0], ev...)
	p.emit(zs, at)
	if len(zs.consumers) > 0 {
		p.report(zs)
	}
}

// Why the planner refuses an operator's drain or cancel.
var (
	ErrUnknownZone = errors.New("unknown zone")
	ErrNoEscalate  = errors.New("no escalation")
	ErrNotActive   = errors.New("no drain is active")
	ErrNotHeld     = errors.New("stage 0 has not held long enough")
)

// Manual raises a zone's action by an operator's decision. It only escalates: asking for what
// is already active, or less, is ErrNoEscalate.
func (p *Planner) Manual(zone string, a Action, operator, reason string, now time.Time) error {
	zs := p.zones[zone]
	if zs == nil {
		return fmt.Errorf("%w %q", ErrUnknownZone, zone)
	}
	if a.rank() == 0 || a.rank() <= zs.action.rank() {
		return fmt.Errorf("%w: zone %s is already at %q, asked for %q", ErrNoEscalate, zone, zs.action, a)
	}
	why := "manual " + string(a) + " by " + operator
	if reason != "" {
		why += ": " + reason
	}
	p.raise(zs, a, why, nil, now)
	return nil
}

// Cancel sends the all-clear for a zone whose stage has been 0 for CancelHold, and ends its
// episode. It is only ever an operator's decision.
func (p *Planner) Cancel(zone, operator, reason string, now time.Time) error {
	zs := p.zones[zone]
	if zs == nil {
		return fmt.Errorf("%w %q", ErrUnknownZone, zone)
	}
	if zs.action == "" {
		return fmt.Errorf("%w in zone %s", ErrNotActive, zone)
	}
	if zs.stage != alarms.StageNormal || zs.zeroSince.IsZero() {
		return fmt.Errorf("%w: zone %s is at stage %d", ErrNotHeld, zone, zs.stage)
	}
	if held := now.Sub(zs.zeroSince); held < p.o.CancelHold {
		return fmt.Errorf("%w: zone %s has been at stage 0 for %s of cutover.cancel_hold %s", ErrNotHeld, zone,
			held.Round(time.Second), p.o.CancelHold)
	}
	why := "cancelled by " + operator
	if reason != "" {
		why += ": " + reason
	}
	zs.action, zs.reason, zs.evidence = Cancel, why, nil
	p.emit(zs, now)
	for _, name := range sortedNames(zs.consumers) {
		cs := zs.consumers[name]
		for _, kind := range []string{EscalationNoAck, EscalationFailed} {
			if cs.escalated[kind] {
				p.escalate(zs, name, kind, alarms.StageNormal, "", now)
			}
		}
		cs.ConsumerProgress = ConsumerProgress{}
	}
	zs.lastEpisode = zs.episode
	zs.action, zs.episode, zs.fireAt = "", "", time.Time{}
	return nil
}

// episodeID names a new episode of zs opened at at. If the HA peer already has one open for the
// zone (its signal verified and still valid), it is the same fire: its id is taken. Otherwise
// the id is <site>.<zone>.<at floored to EpisodeWindow, Unix s>, with -2, -3 … when the zone's
// previous episode had that name.
func (p *Planner) episodeID(zs *zoneState, at time.Time) string {
	if pe := zs.peer; pe.episode != "" && at.Before(pe.until) && pe.episode != zs.lastEpisode {
		return pe.episode
	}
	id := fmt.Sprintf("%s.%s.%d", p.o.Site, zs.z.Name, at.UnixMilli())
	if w := int64(p.o.EpisodeWindow / time.Second); w > 0 {
		t := at.Unix()
		id = fmt.Sprintf("%s.%s.%d", p.o.Site, zs.z.Name, t-((t%w)+w)%w)
	}
	if last := zs.lastEpisode; last == id || strings.HasPrefix(last, id+"-") {
		n, _ := strconv.Atoi(strings.TrimPrefix(last, id+"-"))
		id = fmt.Sprintf("%s-%d", id, max(n, 1)+1)
	}
	return id
}

// PeerSignal takes a drain signal the HA peer published (the caller has verified its signature
// and expiry): an episode it has open is the one this instance joins if the zone's risk rises
// here too; its cancel ends that.
func (p *Planner) PeerSignal(s Signal) {
	zs := p.zones[s.Zone]
	if zs == nil || s.Site != p.o.Site || s.Instance == p.o.Instance {
		return
	}
	if s.Action == Cancel {
		if zs.peer.episode == s.Episode {
			zs.peer = peerEpisode{}
		}
		return
	}
	zs.peer = peerEpisode{episode: s.Episode, until: s.ValidUntil}
}

// Episode is the zone's open episode ("" for none).
func (p *Planner) Episode(zone string) string {
	if zs := p.zones[zone]; zs != nil {
		return zs.episode
	}
	return ""
}

// PeerEpisode is the episode the HA peer has open for zone ("" for none known).
func (p *Planner) PeerEpisode(zone string) string {
	if zs := p.zones[zone]; zs != nil {
		return zs.peer.episode
	}
	return ""
}

// Tick re-sends every active signal whose heartbeat is due.
func (p *Planner) Tick(now time.Time) {
	for _, n := range sortedNames(p.zones) {
		zs := p.zones[n]
		if zs.action == "" {
			continue
		}
		if p.o.AckTimeout > 0 && !now.Before(zs.ackDeadline) && p.overdue(zs, now) {
			zs.ackDeadline = now.Add(p.o.AckTimeout)
			p.emit(zs, now) // sent again at once: the consumer may have missed it
			p.report(zs)
			continue
		}
		if now.Sub(zs.lastSent) >= p.o.Heartbeat {
			p.emit(zs, now)
		}
	}
}

// Zones lists the planner's zones, sorted.
func (p *Planner) Zones() []string { return sortedNames(p.zones) }

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
	}
	// On battery, the power goes when the UPS runs out, whatever the brigade does.
	for _, u := range zs.ups {
		if u.onBattery && u.runtime > 0 {
			eta = min(eta, u.runtime-now.Sub(u.at))
		}
	}
	eta = max(eta, 0)
	ev := append([]EvidenceItem{}, zs.evidence...)
	p.ready.Signals = append(p.ready.Signals, Signal{
		V: 1, ID: zs.episode + "." + string(zs.action), Episode: zs.episode, Site: p.o.Site, Zone: zs.z.Name,
		Action: zs.action, Stage: int(zs.stage), Domains: append([]string{}, zs.z.Domains...),
		Targets: append([]string{}, zs.z.Targets...), Reason: zs.reason, Evidence: ev,
		PowerLossETAS: int64(eta / time.Second), IssuedAt: now.UTC(), ValidUntil: now.Add(p.o.Validity).UTC(),
		DryRun: p.o.DryRun, Instance: p.o.Instance, BootID: p.o.BootID, TS: now.UTC(), Seq: p.seq,
	})
}

// Ready returns what changed since the last Advance.
func (p *Planner) Ready() Ready { return p.ready }

// Advance acknowledges that the last Ready was performed.
func (p *Planner) Advance() { p.ready = Ready{} }

// Seq is the last seq issued.
func (p *Planner) Seq() uint64 { return p.seq }
