package cutover

import (
	"time"

	"github.com/firebreak-dc/firebreak/alarms"
)

// PlannerState is what the planner must keep across a daemon restart: every active zone's
// episode, action and acks, so that a restart in the middle of a fire goes on with the same
// signal id (a consumer does not act twice) and still knows who has acknowledged.
type PlannerState struct {
	Seq   uint64      `json:"seq"`
	Zones []ZoneState `json:"zones"`
	// LastEpisodes is each zone's previous episode, so a new one never reuses its id.
	LastEpisodes map[string]string `json:"last_episodes,omitempty"`
}

// ZoneState is one active zone in a PlannerState.
type ZoneState struct {
	Zone      string                      `json:"zone"`
	Action    Action                      `json:"action"`
	Episode   string                      `json:"episode"`
	EpisodeAt time.Time                   `json:"episode_at"`
	ActionAt  time.Time                   `json:"action_at"`
	FireAt    time.Time                   `json:"fire_at,omitzero"`
	Reason    string                      `json:"reason"`
	Evidence  []EvidenceItem              `json:"evidence"`
	Consumers map[string]ConsumerProgress `json:"consumers"`
}

// State returns the planner's state to persist.
func (p *Planner) State() PlannerState {
	s := PlannerState{Seq: p.seq}
	for _, name := range sortedNames(p.zones) {
		zs := p.zones[name]
		if zs.lastEpisode != "" {
			if s.LastEpisodes == nil {
				s.LastEpisodes = map[string]string{}
			}
			s.LastEpisodes[name] = zs.lastEpisode
		}
		if zs.action == "" {
			continue
		}
		cs := map[string]ConsumerProgress{}
		for n, c := range zs.consumers {
			cs[n] = c.ConsumerProgress
		}
		s.Zones = append(s.Zones, ZoneState{Zone: name, Action: zs.action, Episode: zs.episode, EpisodeAt: zs.episodeAt,
			ActionAt: zs.actionAt, FireAt: zs.fireAt, Reason: zs.reason, Evidence: append([]EvidenceItem(nil), zs.evidence...), Consumers: cs})
	}
	return s
}

// Restore takes the state saved before a restart, at now. Zones no longer configured are dropped;
// consumers keep their acks. The zone's stage is unknown until the engine reports it, so it counts
// as 0 from now (a cancel still needs cancel_hold of it); the signal is re-sent at the next tick.
func (p *Planner) Restore(s PlannerState, now time.Time) {
	p.seq = max(p.seq, s.Seq)
	for name, last := range s.LastEpisodes {
		if zs := p.zones[name]; zs != nil {
			zs.lastEpisode = last
		}
	}
	for _, z := range s.Zones {
		zs := p.zones[z.Zone]
		if zs == nil {
			continue
		}
		zs.action, zs.episode, zs.episodeAt, zs.actionAt, zs.fireAt = z.Action, z.Episode, z.EpisodeAt, z.ActionAt, z.FireAt
		zs.reason, zs.evidence = z.Reason, append([]EvidenceItem(nil), z.Evidence...)
		zs.stage, zs.zeroSince, zs.lastSent = alarms.StageNormal, now, time.Time{}
		zs.ackDeadline = now.Add(p.o.AckTimeout)
		for name, c := range z.Consumers {
			if cs := zs.consumers[name]; cs != nil {
				cs.ConsumerProgress = c
			}
		}
	}
}
