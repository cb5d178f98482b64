package alarms

import (
	"fmt"
	"time"
)

// Thresholds are the detector settings; DefaultThresholds gives the docs/design.md defaults and a site
// overrides any of them under `detection:`.
type Thresholds struct {
	CellTempWatchC  float64 `yaml:"cell_temp_watch_c"`
	CellTempWarnC   float64 `yaml:"cell_temp_warn_c"`
	CellTempCritC   float64 `yaml:"cell_temp_crit_c"` // and rising: confirmed by the rate detector
	TempDeadbandC   float64 `yaml:"temp_deadband_c"`
	PeerDeltaWatchC float64 `yaml:"peer_delta_watch_c"`
	PeerDeltaWarnC  float64 `yaml:"peer_delta_warn_c"`
	// PeerZMin: a peer deviation counts only if it is also this many robust standard deviations
	// (1.4826 × MAD, at least PeerSigmaFloorC) from the rack's median.
	PeerZMin          float64 `yaml:"peer_z_min"`
	PeerSigmaFloorC   float64 `yaml:"peer_sigma_floor_c"`
	CellVDeltaWatchMV float64 `yaml:"cell_v_delta_watch_mv"`

	RiseWatchCPerMin float64       `yaml:"rise_watch_c_per_min"`
	RiseWatchFor     time.Duration `yaml:"rise_watch_for"`
	RiseWindow       time.Duration `yaml:"rise_window"`
	RunawayCPerS     float64       `yaml:"runaway_c_per_s"`
	RunawayFor       time.Duration `yaml:"runaway_for"`
	VoltageDropFrac  float64       `yaml:"voltage_drop_frac"`

	OffgasWarnPPM       float64 `yaml:"offgas_warn_ppm"`
	OffgasBaselineMult  float64 `yaml:"offgas_baseline_mult"`
	COWarnPPM           float64 `yaml:"co_warn_ppm"`
	H2FireLFLFrac       float64 `yaml:"h2_fire_lfl_frac"`
	H2LFLPPM            float64 `yaml:"h2_lfl_ppm"`
	StaleAfterIntervals int     `yaml:"stale_after_intervals"`
	// NoDataGrace: with a live poller (which reports every failed attempt), a device that simply
	// has no new batch is waiting on a late poller, not silent; this long is tolerated before it is
	// taken as silent all the same.
	NoDataGrace time.Duration `yaml:"no_data_grace"`

	// Sensor plausibility: a temperature step larger than MaxStepC between two readings is
	// suspect, and the point's thresholds wait SettleFor of steady readings before they count;
	// FlapJumps such steps within FlapWindow make the sensor a flapping one; a reading that has not
	// changed for StuckFor while its rack's other sensors have is stuck.
	MaxStepC   float64       `yaml:"max_step_c"`
	SettleFor  time.Duration `yaml:"settle_for"`
	FlapJumps  int           `yaml:"flap_jumps"`
	FlapWindow time.Duration `yaml:"flap_window"`
	StuckFor   time.Duration `yaml:"stuck_for"`
	// Sensor agreement (agreement.go): a module temperature that has risen DisagreeC more than
	// its twin (or its neighbours) for DisagreeFor, with nothing moving with it, disagrees; a
	// reading is confirmed by a twin or neighbour that rose at least ConfirmC and ConfirmFrac of
	// its rise.
	DisagreeC   float64       `yaml:"disagree_c"`
	DisagreeFor time.Duration `yaml:"disagree_for"`
	ConfirmC    float64       `yaml:"confirm_c"`
	ConfirmFrac float64       `yaml:"confirm_frac"`
	// FrozenFor: a device all of whose analogue readings have not changed for this long, while
	// another of its kind in the zone moved, is frozen (a gateway serving cached registers).
	FrozenFor time.Duration `yaml:"frozen_for"`

	// ChatterOnDelay and ChatterOffDelay: an alarm that chattered (3 activations within a
	// minute) must hold this long before it comes back, and be gone this long before it clears,
	// for the next hour (chatter.go).
	ChatterOnDelay  time.Duration `yaml:"chatter_on_delay"`
	ChatterOffDelay time.Duration `yaml:"chatter_off_delay"`

	// StageHold is how long a lower stage must hold before a stage falls.
	StageHold time.Duration `yaml:"stage_hold"`

	// Self-discharge (selfdischarge.go): a rack is at rest while its string current is within
	// SelfDischargeFloatBandA, counted from SelfDischargeSettle after it last was not; a module
	// whose cells fell against the rack's for SelfDischargeWindow, by at least
	// SelfDischargeMinDropMV, at a rate that is a leak of SelfDischargeLeakMA or more, on at least
	// SelfDischargeMinCoverage of rested hours, leaks. The hours are kept SelfDischargeRetain.
	SelfDischargeFloatBandA  float64       `yaml:"self_discharge_float_band_a"`
	SelfDischargeSettle      time.Duration `yaml:"self_discharge_settle"`
	SelfDischargeWindow      time.Duration `yaml:"self_discharge_window"`
	SelfDischargeMinCoverage time.Duration `yaml:"self_discharge_min_coverage"`
	SelfDischargeMinDropMV   float64       `yaml:"self_discharge_min_drop_mv"`
	SelfDischargeLeakMA      float64       `yaml:"self_discharge_leak_ma"`
	SelfDischargeRetain      time.Duration `yaml:"self_discharge_retain"`
}

// DefaultThresholds are the values of docs/design.md's risk-stage table.
func DefaultThresholds() Thresholds {
	return Thresholds{
		CellTempWatchC:      45,
		CellTempWarnC:       55,
		CellTempCritC:       60,
		TempDeadbandC:       2,
		PeerDeltaWatchC:     5,
		PeerDeltaWarnC:      10,
		PeerZMin:            3.5,
		PeerSigmaFloorC:     0.3,
		CellVDeltaWatchMV:   30,
		RiseWatchCPerMin:    1,
		RiseWatchFor:        2 * time.Minute,
		RiseWindow:          2 * time.Minute,
		RunawayCPerS:        1,
		RunawayFor:          3 * time.Second,
		VoltageDropFrac:     0.25,
		OffgasWarnPPM:       10,
		OffgasBaselineMult:  5,
		COWarnPPM:           50,
		H2FireLFLFrac:       0.25,
		H2LFLPPM:            40000, // 4 % vol
		StaleAfterIntervals: 3,
		NoDataGrace:         30 * time.Second,
		MaxStepC:            10,
		SettleFor:           20 * time.Second,
		FlapJumps:           4,
		FlapWindow:          2 * time.Minute,
		StuckFor:            5 * time.Minute,
		FrozenFor:           5 * time.Minute,
		DisagreeC:           5,
		DisagreeFor:         10 * time.Minute,
		ConfirmC:            0.15,
		ConfirmFrac:         0.01,
		StageHold:           5 * time.Minute,
		ChatterOnDelay:      10 * time.Second,
		ChatterOffDelay:     time.Minute,
		// docs/design.md's self-discharge section says why these.
		SelfDischargeFloatBandA:  0.5,
		SelfDischargeSettle:      2 * time.Hour,
		SelfDischargeWindow:      72 * time.Hour,
		SelfDischargeMinCoverage: 24 * time.Hour,
		SelfDischargeMinDropMV:   2,
		SelfDischargeLeakMA:      5,
		SelfDischargeRetain:      14 * 24 * time.Hour,
	}
}

// Problems lists what is wrong with t, as (field, message, value) triples for the config's error
// reporting; alarms itself does no I/O and knows no file names.
func (t Thresholds) Problems() []Problem {
	var ps []Problem
	pos := func(field string, v float64) {
		if !(v > 0) {
			ps = append(ps, Problem{field, "must be > 0", v})
		}
	}
	pos("cell_temp_watch_c", t.CellTempWatchC)
	if !(t.CellTempWatchC < t.CellTempWarnC && t.CellTempWarnC < t.CellTempCritC) {
		ps = append(ps, Problem{"cell_temp_warn_c", fmt.Sprintf("must lie between cell_temp_watch_c (%g) and cell_temp_crit_c (%g)", t.CellTempWatchC, t.CellTempCritC), t.CellTempWarnC})
	}
	if t.TempDeadbandC < 0 {
		ps = append(ps, Problem{"temp_deadband_c", "must be >= 0", t.TempDeadbandC})
	}
	pos("peer_delta_watch_c", t.PeerDeltaWatchC)
	if !(t.PeerDeltaWarnC > t.PeerDeltaWatchC) {
		ps = append(ps, Problem{"peer_delta_warn_c", fmt.Sprintf("must be > peer_delta_watch_c (%g)", t.PeerDeltaWatchC), t.PeerDeltaWarnC})
	}
	pos("peer_z_min", t.PeerZMin)
	pos("peer_sigma_floor_c", t.PeerSigmaFloorC)
	pos("cell_v_delta_watch_mv", t.CellVDeltaWatchMV)
	pos("rise_watch_c_per_min", t.RiseWatchCPerMin)
	pos("runaway_c_per_s", t.RunawayCPerS)
	pos("offgas_warn_ppm", t.OffgasWarnPPM)
	pos("offgas_baseline_mult", t.OffgasBaselineMult)
	pos("co_warn_ppm", t.COWarnPPM)
	pos("h2_lfl_ppm", t.H2LFLPPM)
	if !(t.H2FireLFLFrac > 0 && t.H2FireLFLFrac <= 1) {
		ps = append(ps, Problem{"h2_fire_lfl_frac", "must be in (0, 1]", t.H2FireLFLFrac})
	}
	if !(t.VoltageDropFrac > 0 && t.VoltageDropFrac < 1) {
		ps = append(ps, Problem{"voltage_drop_frac", "must be in (0, 1)", t.VoltageDropFrac})
	}
	for _, d := range []struct {
		f string
		v time.Duration
	}{{"rise_watch_for", t.RiseWatchFor}, {"rise_window", t.RiseWindow}, {"runaway_for", t.RunawayFor},
		{"flap_window", t.FlapWindow}, {"stuck_for", t.StuckFor}, {"frozen_for", t.FrozenFor}, {"disagree_for", t.DisagreeFor}} {
		if d.v <= 0 {
			ps = append(ps, Problem{d.f, "must be a positive duration", d.v.String()})
		}
	}
	if t.ChatterOnDelay < 0 || t.ChatterOffDelay < 0 {
		ps = append(ps, Problem{"chatter_off_delay", "chatter_on_delay and chatter_off_delay must be >= 0", t.ChatterOffDelay.String()})
	}
	if t.StageHold < 0 {
		ps = append(ps, Problem{"stage_hold", "must be >= 0", t.StageHold.String()})
	}
	pos("max_step_c", t.MaxStepC)
	pos("disagree_c", t.DisagreeC)
	pos("confirm_c", t.ConfirmC)
	if !(t.ConfirmFrac >= 0 && t.ConfirmFrac < 1) {
		ps = append(ps, Problem{"confirm_frac", "must be in [0, 1)", t.ConfirmFrac})
	}
	if t.SettleFor < 0 {
		ps = append(ps, Problem{"settle_for", "must be >= 0", t.SettleFor.String()})
	}
	if t.FlapJumps < 2 {
		ps = append(ps, Problem{"flap_jumps", "must be >= 2", t.FlapJumps})
	}
	if t.NoDataGrace < 0 {
		ps = append(ps, Problem{"no_data_grace", "must be >= 0", t.NoDataGrace.String()})
	}
	pos("self_discharge_float_band_a", t.SelfDischargeFloatBandA)
	pos("self_discharge_min_drop_mv", t.SelfDischargeMinDropMV)
	pos("self_discharge_leak_ma", t.SelfDischargeLeakMA)
	if t.SelfDischargeSettle < 0 {
		ps = append(ps, Problem{"self_discharge_settle", "must be >= 0", t.SelfDischargeSettle.String()})
	}
	hours := func(d time.Duration) bool { return d > 0 && d%time.Hour == 0 }
	if !hours(t.SelfDischargeWindow) || t.SelfDischargeWindow < 6*time.Hour || t.SelfDischargeWindow > 30*24*time.Hour {
		ps = append(ps, Problem{"self_discharge_window", "must be whole hours, 6h..720h", t.SelfDischargeWindow.String()})
	}
	if !hours(t.SelfDischargeMinCoverage) || t.SelfDischargeMinCoverage < 2*time.Hour || t.SelfDischargeMinCoverage > t.SelfDischargeWindow {
		ps = append(ps, Problem{"self_discharge_min_coverage", fmt.Sprintf("must be whole hours, at least 2h and at most self_discharge_window (%s)", t.SelfDischargeWindow), t.SelfDischargeMinCoverage.String()})
	}
	if !hours(t.SelfDischargeRetain) || t.SelfDischargeRetain < t.SelfDischargeWindow || t.SelfDischargeRetain > 60*24*time.Hour {
		ps = append(ps, Problem{"self_discharge_retain", fmt.Sprintf("must be whole hours, at least self_discharge_window (%s) and at most 1440h", t.SelfDischargeWindow), t.SelfDischargeRetain.String()})
	}
	if t.StaleAfterIntervals < 1 {
		ps = append(ps, Problem{"stale_after_intervals", "must be >= 1", t.StaleAfterIntervals})
	}
	return ps
}

// Problem is one bad setting.
type Problem struct {
	Field string
	Msg   string
	Value any
}
