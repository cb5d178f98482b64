package alarms

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

type scopeState struct {
	scope      Scope
	name, zone string
	stage      Stage
	since      time.Time
	lowerSince time.Time
	// reason and evidence of the change to the present stage, for a picture of the zone.
	reason   string
	evidence []Evidence
}

// sourceOf is a condition's independence key: two signals with one source are one sensor's word.
// The BMS's max temperature is one of its NTCs, not a sensor of its own; and a temperature that
// is high only because the whole room is warm (it stands out from no peer) is one zone-wide
// signal, however many sensors show it: HVAC failure and heavy discharge warm every rack together.
func (e *Engine) sourceOf(d *devState, point string, det DetectorID) string {
	if point == "" {
		return d.info.Name + "." + string(det)
	}
	p := d.point(point)
	if p == nil || det != TempHigh {
		return d.info.Name + "." + point
	}
	switch p.role {
	case sample.ModuleTemperature:
		if p.peerKnown && p.peerDelta < e.th.PeerDeltaWatchC {
			return "uniform:" + d.info.Zone
		}
	case sample.CellTemperature:
		// The room's warming only if the rack's NTCs say so: known, and none standing out. A rack
		// whose BMS gives only its max is not the room.
		standsOut, known := false, 0
		for _, o := range d.points {
			if o.role == sample.ModuleTemperature && o.peerKnown && !o.excluded() {
				known++
				standsOut = standsOut || o.peerDelta >= e.th.PeerDeltaWatchC
			}
		}
		if !standsOut && known >= 3 {
			return "uniform:" + d.info.Zone
		}
		return d.info.Name + ".tmax"
	}
	return d.info.Name + "." + point
}

func (e *Engine) isTmax(c *cond) bool {
	d := e.devices[c.device]
	if d == nil {
		return false
	}
	p := d.point(c.point)
	return p != nil && p.role == sample.CellTemperature
}

// duplicate says an NTC of the same rack has the same detector active at least as high.
func (e *Engine) duplicate(id string) bool {
	c := e.conds[id]
	if c == nil {
		return false
	}
	d := e.devices[c.device]
	for _, o := range e.conds {
		if o.device == c.device && o.detector == c.detector && o.point != c.point && o.stage >= c.stage {
			if op := d.point(o.point); op != nil && op.role == sample.ModuleTemperature {
				return true
			}
		}
	}
	return false
}

// restage recomputes every rack's and zone's stage and records the changes.
func (e *Engine) restage(now time.Time) {
	byScope := map[*scopeState][]*cond{}
	zoneGas := map[string][]*cond{}
	// In id order: which signal is named as evidence must be the same live and in replay.
	for _, id := range sortedKeys(e.conds) {
		c := e.conds[id]
		// Independence is judged now, with this batch's peer statistics, not when the condition
		// was raised: a sample seen before its rack's median cannot know if it stands out.
		c.source = e.sourceOf(e.devices[c.device], c.point, c.detector)
		if a := e.book.alarms[id]; a != nil && a.State == OutOfService {
			continue // under maintenance: its evidence does not count
		}
		if z := e.zones[c.zone]; z != nil {
			byScope[z] = append(byScope[z], c)
		}
		if r := e.racks[c.device]; r != nil {
			byScope[r] = append(byScope[r], c)
		}
		if c.detector.info().ZoneGas && c.stage >= StageWarning {
			zoneGas[c.zone] = append(zoneGas[c.zone], c)
		}
	}
	// A quiet rack (no condition, no gas in its zone, at stage 0 and no hold running) is left
	// alone: apply would assess it normal and change nothing. Without gas the racks to look at
	// are those with a condition or not yet quiet, a handful in a room of hundreds.
	racks := e.rackList
	if len(zoneGas) == 0 {
		racks = e.scrRacks[:0]
		for sc := range byScope {
			if sc.scope == ScopeRack {
				racks = append(racks, sc)
			}
		}
		for r := range e.unquiet {
			if len(byScope[r]) == 0 {
				racks = append(racks, r)
			}
		}
		slices.SortFunc(racks, func(a, b *scopeState) int { return strings.Compare(a.name, b.name) })
		e.scrRacks = racks
	}
	for _, r := range racks {
		cs, gas := byScope[r], zoneGas[r.zone]
		if len(cs) == 0 && len(gas) == 0 && r.stage == StageNormal && r.lowerSince.IsZero() {
			continue
		}
		e.apply(r, cs, gas, now)
	}
	for _, name := range e.zoneNames {
		z := e.zones[name]
		e.apply(z, byScope[z], zoneGas[z.name], now)
	}
}

func (e *Engine) apply(s *scopeState, conds, gas []*cond, now time.Time) {
	defer e.settled(s)
	target, ev, reason := assess(conds, gas, e.live)
	switch {
	case target > s.stage:
	case target == s.stage:
		s.lowerSince = time.Time{}
		return
	default:
		if s.lowerSince.IsZero() {
			s.lowerSince = now
		}
		if now.Sub(s.lowerSince) < e.th.StageHold {
			return
		}
		if reason == "" {
			reason = fmt.Sprintf("no evidence above %s for %s", target, e.th.StageHold)
		}
	}
	rc := RiskChange{Scope: s.scope, Name: s.name, Zone: s.zone, From: s.stage,
		To: target, At: now, Since: now, Reason: reason, Evidence: ev}
	s.stage, s.since, s.lowerSince, s.reason, s.evidence = target, now, time.Time{}, reason, ev
	pic := e.Picture(s.zone)
	rc.ZoneStage, rc.ZoneSince, rc.Racks = pic.Stage, pic.Since, pic.Racks
	e.ready.Risk = append(e.ready.Risk, rc)
}

// ZonePicture is a zone's risk as it stands: its stage, since when and why, and every rack's
// stage. What a retained P/risk/<zone> says when nothing has just changed (a start, a reload).
type ZonePicture struct {
	Zone     string
	Stage    Stage
	Since    time.Time // zero: normal since the engine started
	Reason   string
	Evidence []Evidence
	Racks    map[string]Stage
}

// Picture is a zone's risk as it stands.
func (e *Engine) Picture(zone string) ZonePicture {
	pic := ZonePicture{Zone: zone, Racks: map[string]Stage{}}
	if z := e.zones[zone]; z != nil {
		pic.Stage, pic.Since, pic.Reason, pic.Evidence = z.stage, z.since, z.reason, z.evidence
	}
	for _, r := range e.rackList {
		if r.zone == zone {
			pic.Racks[r.name] = r.stage
		}
	}
	return pic
}

// Stages is every zone's and rack's stage: what a reload carries from one engine to the next,
// so that the new one goes on from where the old one stood.
type Stages struct {
	Zones map[string]Stage
	Racks map[string]Stage
	// Why is each zone's reason and evidence for its stage, and since when.
	Why map[string]ZonePicture
}

// Stages returns every zone's and rack's present stage.
func (e *Engine) Stages() Stages {
	s := Stages{Zones: map[string]Stage{}, Racks: map[string]Stage{}, Why: map[string]ZonePicture{}}
	for n, z := range e.zones {
		s.Zones[n] = z.stage
		s.Why[n] = ZonePicture{Zone: n, Stage: z.stage, Since: z.since, Reason: z.reason, Evidence: z.evidence}
	}
	for n, r := range e.racks {
		s.Racks[n] = r.stage
	}
	return s
}

// ZoneStages is every zone's present stage.
func (e *Engine) ZoneStages() map[string]Stage { return e.Stages().Zones }

// RestoreStages takes the stages of an engine this one replaces (a reload), at now: zones and
// racks it also has go on at their stage, and fall only after StageHold without the evidence,
// as they would have in the old engine.
func (e *Engine) RestoreStages(s Stages, now time.Time) {
	for n, st := range s.Zones {
		if z := e.zones[n]; z != nil {
			z.stage, z.since = st, now
			if w, ok := s.Why[n]; ok && w.Stage == st {
				z.since, z.reason, z.evidence = w.Since, w.Reason, w.Evidence
			}
		}
	}
	for n, st := range s.Racks {
		d := e.devices[n]
		if d == nil || st == StageNormal {
			continue
		}
		r := e.rack(d)
		r.stage, r.since = st, now
		e.settled(r)
	}
}

// settled notes whether a rack is quiet (stage 0, no hold running) after its stage was set.
func (e *Engine) settled(s *scopeState) {
	if s.scope != ScopeRack {
		return
	}
	if s.stage == StageNormal && s.lowerSince.IsZero() {
		delete(e.unquiet, s)
	} else {
		e.unquiet[s] = true
	}
}

// assess is docs/design.md's staging rule over a scope's active conditions: the highest single signal,
// where a lone stage-2 signal stays at 2 and two independent stage-2 signals make 3; a BMS gone
// silent while the zone has gas is evidence, not "unknown".
func assess(conds, zoneGas []*cond, live bool) (Stage, []Evidence, string) {
	// silent: the device failed its polls; or, in a trace (not live), left no rows (detectorTable).
	silent := func(c *cond) bool {
		s := c.detector.info().Silence
		return s == SilentAlways || (!live && s == SilentInTrace)
	}
	best := StageNormal
	for _, c := range conds {
		if c.stage > best {
			best = c.stage
		}
	}
	var support []*cond
	reason := ""
	if best < StageCritical {
		if pair := independentWarnings(conds); len(pair) >= 2 {
			best, support = StageCritical, pair
			reason = fmt.Sprintf("two independent warnings: %s; %s", pair[0].text, pair[1].text)
		}
	}
	// A module that leaks (self_discharge, electrical, over days) and then warms (a temperature
	// warning on it, or on the rack's max where the BMS does not say which module is hot): two
	// independent signals, whatever the leak's own stage.
	if best < StageCritical {
		for _, leak := range conds {
			if leak.detector != SelfDischarge {
				continue
			}
			for _, c := range conds {
				if c.device == leak.device && c.modality == Temperature && c.stage >= StageWarning && (c.module == 0 || c.module == leak.module) {
					best, support = StageCritical, []*cond{c, leak}
					reason = fmt.Sprintf("%s, on a module that leaks: %s", c.text, leak.text)
					break
				}
			}
			if best == StageCritical {
				break
			}
		}
	}
	// A rack already at warning that stops answering: its last word was bad news and it has gone
	// quiet, which is what a BMS cooking in its own rack does.
	if best < StageCritical {
		for _, lost := range conds {
			if !silent(lost) {
				continue
			}
			for _, c := range conds {
				if c.device == lost.device && c.stage >= StageWarning && c.modality != SensorHealth {
					best, support = StageCritical, []*cond{lost, c}
					reason = fmt.Sprintf("%s after %s", lost.text, c.text)
					break
				}
			}
			if best == StageCritical {
				break
			}
		}
	}
	if best < StageCritical && len(zoneGas) > 0 {
		for _, c := range conds {
			if silent(c) {
				best, support = StageCritical, []*cond{c, zoneGas[0]}
				reason = fmt.Sprintf("%s while %s", c.text, zoneGas[0].text)
				break
			}
		}
	}
	if support == nil {
		for _, c := range conds {
			if c.stage == best && best > StageNormal {
				support = append(support, c)
			}
		}
	}
	sort.SliceStable(support, func(i, j int) bool {
		if support[i].stage != support[j].stage {
			return support[i].stage > support[j].stage
		}
		return support[i].id < support[j].id
	})
	if len(support) > 8 {
		support = support[:8]
	}
	if reason == "" && len(support) > 0 {
		var parts []string
		for _, c := range support[:min(3, len(support))] {
			parts = append(parts, c.text)
		}
		reason = strings.Join(parts, "; ")
	}
	ev := make([]Evidence, len(support))
	for i, c := range support {
		ev[i] = Evidence{Alarm: c.id, Device: c.device, Point: c.point, Detector: string(c.detector), Modality: c.modality,
			Stage: c.stage, Value: round3(c.value), Unit: c.unit, Text: c.text}
	}
	return best, ev, reason
}

// independentWarnings returns stage-2 signals from different sensors (one per sensor); the BMS's
// own max temperature counts only when no NTC of that rack is among them.
func independentWarnings(conds []*cond) []*cond {
	bySource := map[string]*cond{}
	var order []string
	for _, c := range conds {
		if c.stage != StageWarning {
			continue
		}
		if _, ok := bySource[c.source]; !ok {
			order = append(order, c.source)
			bySource[c.source] = c
		}
	}
	var out []*cond
	for _, src := range order {
		c := bySource[src]
		if strings.HasSuffix(src, ".tmax") {
			shadowed := false
			for _, o := range bySource {
				if o.device == c.device && o.modality == Temperature && !strings.HasSuffix(o.source, ".tmax") {
					shadowed = true
				}
			}
			if shadowed {
				continue
			}
		}
		out = append(out, c)
	}
	return out
}
