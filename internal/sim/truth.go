package sim

// TruthKind is what a ground-truth event says happened in the room. The names are the physics
// and the panel's, spelled here once; some read like the detectors that should see them (smoke,
// runaway), and that is the point of a ground truth: the HIL tests compare the two.
type TruthKind string

const (
	TruthUtilityFail       TruthKind = "utility_fail"
	TruthHVACFail          TruthKind = "hvac_fail"
	TruthArcFire           TruthKind = "arc_fire"
	TruthInternalShort     TruthKind = "internal_short"
	TruthMicroShort        TruthKind = "micro_short"
	TruthFloatChange       TruthKind = "float_change"
	TruthVent              TruthKind = "vent"
	TruthSeparatorCollapse TruthKind = "separator_collapse"
	TruthRunaway           TruthKind = "runaway"
	TruthNeighbourRunaway  TruthKind = "neighbour_runaway"
	TruthSmoke             TruthKind = "smoke"
	TruthHeat              TruthKind = "heat"
	TruthFireAlarm         TruthKind = "fire_alarm"
	TruthSuppression       TruthKind = "suppression_released"
)
