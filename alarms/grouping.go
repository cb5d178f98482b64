package alarms

// Alarm rationalization (ISA-18.2, EEMUA 191): an operator facing a flood stops reading, so what
// only follows from an alarm already annunciated is suppressed by design. It stays an alarm (its
// retained state says suppressed_by_design, its evidence still counts towards risk) and comes
// back annunciated once the reason for its suppression is gone.

// byDesign says whether an alarm is to be suppressed by design now: the BMS's max temperature
// repeating one of its own NTCs (duplicate), or a consequential alarm of a rack in a developing
// fire (consequential).
func (e *Engine) byDesign(id string) bool {
	if c := e.conds[id]; c != nil && e.isTmax(c) && e.duplicate(id) {
		return true
	}
	return e.followsRoom(id) || e.consequential(id)
}

// followsRoom says that a condition only follows the room's warming: its zone's room_warm alarm
// is active and the condition's source is that uniform warming.
func (e *Engine) followsRoom(id string) bool {
	c := e.conds[id]
	if c == nil || c.source != "uniform:"+c.zone {
		return false
	}
	_, warm := e.book.protocol[c.zone+"."+string(RoomWarm)]
	return warm
}

// consequential says that a condition only follows from the first-out alarm of its rack while
// its zone is at warning or above: the rack already has an earlier active alarm, annunciated, at
// least as high. A developing fire in one rack raises its NTCs' rise, peer and temperature
// alarms, its cell voltages, its BMS word one after the other; the operator needs the first, the
// rack's risk stage (which all of them still raise) and every escalation: an alarm higher than
// any annunciated on its rack, and any stage 4 alarm, always annunciates.
func (e *Engine) consequential(id string) bool {
	c := e.conds[id]
	if c == nil || c.stage >= StageFire || c.modality == Comms || e.racks[c.device] == nil {
		return false // a stage 4 alarm, and a rack going silent or frozen, always annunciate
	}
	z := e.zones[c.zone]
	if z == nil || (z.stage < StageWarning && e.racks[c.device].stage < StageWarning) {
		return false
	}
	for _, o := range e.conds {
		if o == c || o.device != c.device || o.stage < c.stage || !o.raisedAt.Before(c.raisedAt) {
			continue
		}
		if a := e.book.alarms[o.id]; a != nil && a.Active && (a.State == Unacked || a.State == Acked) {
			return true
		}
	}
	return false
}
