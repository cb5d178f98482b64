package cutover

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/internal/sample"
)

// AckStatus is a consumer's progress on a drain signal.
type AckStatus string

const (
	AckReceived AckStatus = "received" // verified and accepted; work about to start
	AckDraining AckStatus = "draining" // its actions are running
	AckDrained  AckStatus = "drained"  // its actions completed (for cancel: undone)
	AckFailed   AckStatus = "failed"   // an action failed; Detail says which and why
)

func (s AckStatus) rank() int {
	switch s {
	case AckReceived:
		return 1
	case AckDraining:
		return 2
	case AckDrained, AckFailed:
		return 3
	}
	return 0
}

// Ack is what a consumer publishes (QoS 1, retained) on P/drain/<zone>/ack/<consumer>.
type Ack struct {
	V        int       `json:"v"`
	Consumer string    `json:"consumer"`
	Zone     string    `json:"zone"`
	SignalID string    `json:"signal_id"` // the signal's id: <episode>.<action>
	Seq      uint64    `json:"seq"`       // the seq of the signal it answers (any re-send of the id)
	Status   AckStatus `json:"status"`
	Detail   string    `json:"detail,omitempty"`
	TS       time.Time `json:"ts"`
}

// Escalation kinds: the alarm a consumer gets.
const (
	EscalationNoAck  = "no_ack"
	EscalationFailed = "drain_failed"
)

// Escalation asks the caller to raise (Stage above 0) or clear (Stage 0) the alarm
// "cutover.<zone>.<consumer>.<kind>".
type Escalation struct {
	Zone, Consumer, Kind string
	Stage                alarms.Stage
	Text                 string
	At                   time.Time
}

// Source is the alarm source an escalation concerns.
func (e Escalation) Source() string { return "cutover." + e.Zone + "." + e.Consumer }

// ConsumerProgress is one consumer's word on the zone's current signal.
type ConsumerProgress struct {
	Status   AckStatus `json:"status,omitempty"` // empty: nothing heard yet
	SignalID string    `json:"signal_id,omitempty"`
	At       time.Time `json:"at,omitzero"`
	Detail   string    `json:"detail,omitempty"`
	// TookS is, once drained, the seconds from the action's first signal to the drained ack.
	TookS *float64 `json:"took_s,omitempty"`
}

// Progress is a zone's drain protocol state, published (retained) on P/drain/<zone>/status.
type Progress struct {
	Zone      string                      `json:"zone"`
	Episode   string                      `json:"episode"`
	SignalID  string                      `json:"signal_id"`
	Action    Action                      `json:"action"`
	IssuedAt  time.Time                   `json:"issued_at"`
	Consumers map[string]ConsumerProgress `json:"consumers"`
}

// Why an ack is not taken.
var (
	ErrUnknownConsumer = errors.New("unknown consumer")
	ErrStaleAck        = errors.New("ack for a signal that is not the zone's current one")
	ErrBadAck          = errors.New("malformed ack")
)

// ParseAck reads an ack received on P/drain/<zone>/ack/<consumer>: strictly (unknown fields are
// an error), and only when the payload names the zone and consumer its topic does.
func ParseAck(payload []byte, zone, consumer string) (Ack, error) {
	var a Ack
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return a, fmt.Errorf("%w: %v", ErrBadAck, err)
	}
	if a.Zone != zone || a.Consumer != consumer {
		return a, fmt.Errorf("%w: topic names zone %q consumer %q, payload %q %q", ErrBadAck, zone, consumer, a.Zone, a.Consumer)
	}
	return a, nil
}

func stageOf(a Action) alarms.Stage {
	switch a {
	case Prepare:
		return alarms.StageWarning
	case Drain:
		return alarms.StageCritical
	case Evacuate:
		return alarms.StageFire
	}
	return alarms.StageWatch
}

// StepAck takes a consumer's ack. An ack for an older signal, or one that goes back (received
// after drained, as a retained message re-delivered can), changes nothing.
func (p *Planner) StepAck(a Ack, now time.Time) error {
	zs := p.zones[a.Zone]
	if zs == nil {
		return fmt.Errorf("%w %q", ErrUnknownZone, a.Zone)
	}
	cs := zs.consumers[a.Consumer]
	if cs == nil {
		return fmt.Errorf("%w %q (not in cutover.consumers)", ErrUnknownConsumer, a.Consumer)
	}
	if a.Status.rank() == 0 {
		return fmt.Errorf("%w: status %q", ErrBadAck, a.Status)
	}
	current := zs.episode + "." + string(zs.action)
	if zs.action == "" || zs.action == Cancel || a.SignalID != current {
		return fmt.Errorf("%w: %s acked %q, the zone's is %q", ErrStaleAck, a.Consumer, a.SignalID, current)
	}
	if a.Status.rank() <= cs.Status.rank() && cs.SignalID == a.SignalID {
		return nil
	}
	cs.Status, cs.SignalID, cs.At, cs.Detail, cs.TookS = a.Status, a.SignalID, now, a.Detail, nil
	if cs.escalated[EscalationNoAck] {
		p.escalate(zs, a.Consumer, EscalationNoAck, alarms.StageNormal, "", now)
	}
	switch a.Status {
	case AckFailed:
		p.escalate(zs, a.Consumer, EscalationFailed, stageOf(zs.action),
			fmt.Sprintf("%s failed to %s zone %s: %s", a.Consumer, zs.action, zs.z.Name, a.Detail), now)
	case AckDrained:
		took := now.Sub(zs.actionAt).Seconds()
		cs.TookS = &took
		fallthrough
	default:
		if cs.escalated[EscalationFailed] {
			p.escalate(zs, a.Consumer, EscalationFailed, alarms.StageNormal, "", now)
		}
	}
	p.report(zs)
	return nil
}

// overdue raises no_ack for every consumer that has not acknowledged the current signal, and
// says whether there was one.
func (p *Planner) overdue(zs *zoneState, now time.Time) bool {
	any := false
	for _, name := range sortedNames(zs.consumers) {
		cs := zs.consumers[name]
		if cs.Status != "" {
			continue
		}
		any = true
		p.escalate(zs, name, EscalationNoAck, stageOf(zs.action), fmt.Sprintf("%s has not acknowledged %s of zone %s for %s",
			name, zs.action, zs.z.Name, now.Sub(zs.actionAt).Round(time.Second)), now)
	}
	return any
}

func (p *Planner) escalate(zs *zoneState, consumer, kind string, st alarms.Stage, text string, now time.Time) {
	zs.consumers[consumer].escalated[kind] = st != alarms.StageNormal
	p.ready.Escalations = append(p.ready.Escalations, Escalation{Zone: zs.z.Name, Consumer: consumer, Kind: kind, Stage: st, Text: text, At: now})
}

// report records the zone's progress for publishing.
func (p *Planner) report(zs *zoneState) {
	pr := Progress{Zone: zs.z.Name, Episode: zs.episode, SignalID: zs.episode + "." + string(zs.action), Action: zs.action,
		IssuedAt: zs.actionAt.UTC(), Consumers: map[string]ConsumerProgress{}}
	for name, cs := range zs.consumers {
		pr.Consumers[name] = cs.ConsumerProgress
	}
	p.ready.Progress = append(p.ready.Progress, pr)
}

// StepUPS takes a poll of one of the zone's UPSs: a good reading of its ups_on_battery point (and
// of ups_runtime_s, if it has one) goes to StepPower. A failed poll, or one with no good
// on-battery reading, changes nothing: the last word stands.
func (p *Planner) StepUPS(zone string, b sample.Batch) {
	if b.Err != nil {
		return
	}
	on, runtime, seen := false, time.Duration(0), false
	for _, s := range b.Samples {
		if s.Quality != sample.Good {
			continue
		}
		switch s.Role {
		case sample.UPSOnBattery:
			on, seen = s.Value != 0, true
		case sample.UPSRuntime:
			runtime = time.Duration(s.Value * float64(time.Second))
		}
	}
	if seen {
		p.StepPower(zone, b.Device, on, runtime, b.At)
	}
}

// StepPower takes a UPS reading of a zone: on battery, its runtime bounds power_loss_eta_s.
func (p *Planner) StepPower(zone, device string, onBattery bool, runtime time.Duration, at time.Time) {
	zs := p.zones[zone]
	if zs == nil {
		return
	}
	zs.ups[device] = upsState{onBattery: onBattery, runtime: runtime, at: at}
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
