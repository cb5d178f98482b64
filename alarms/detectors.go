package alarms

import (
	"slices"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

// DetectorID names a detector: the last part of its alarms' ids (rack-1.cell_t1.temp_high) and
// the detector field of alarms and evidence. A site's rule is the detector "rule:<name>"; the
// daemon's own alarms (Engine.Protocol) name theirs.
type DetectorID string

// The detectors. Every id is spelled here and nowhere else; what each one is, is its row in
// detectorTable.
const (
	TempHigh       DetectorID = "temp_high"
	Rise           DetectorID = "rise"
	Runaway        DetectorID = "runaway"
	PeerDelta      DetectorID = "peer_delta"
	Disagree       DetectorID = "disagree"
	CellVoltageDev DetectorID = "cell_voltage"   // a cell's voltage collapsing or off its peers
	SelfDischarge  DetectorID = "self_discharge" // a cell leaking charge at float, over days (a micro short)
	Flapping       DetectorID = "flapping"
	Stuck          DetectorID = "stuck"
	SensorFault    DetectorID = "sensor_fault"
	Frozen         DetectorID = "frozen"
	CommLost       DetectorID = "comm_lost"
	NoData         DetectorID = "no_data"
	Offgas         DetectorID = "offgas"
	COHigh         DetectorID = "co_high"
	H2LFL          DetectorID = "h2_lfl"
	SmokeDetected  DetectorID = "smoke"
	HeatDetected   DetectorID = "heat"
	Suppression    DetectorID = "suppression_released"
	FirePanel      DetectorID = "fire_alarm"
	BMSAlarmWord   DetectorID = "bms_alarm"

	rulePrefix = "rule:"

	// RoomWarm is no detector's: it is the zone's one alarm for the uniform warming that the
	// temperature detectors' conditions show together (roomwarm.go), "<zone>.room_warm".
	RoomWarm DetectorID = "room_warm"
)

// Silence says when a detector's alarm means its device is silent: evidence, when the device
// was already at warning or its zone has gas, because a BMS cooking in its own rack goes quiet.
type Silence uint8

const (
	NotSilence Silence = iota + 1
	SilentAlways
	SilentInTrace // only in a trace, where a device with no rows is docs/design.md's silent device
)

// DetectorInfo is what staging, clearing and Home Assistant discovery need to know of a detector.
type DetectorInfo struct {
	ID       DetectorID
	Modality Modality
	Roles    []sample.Role // the roles it reads; none for a detector of the device itself
	// ClearsWhenExcluded: its conditions clear when their sensor is excluded (flapping, stuck),
	// because an excluded sensor's readings are no evidence.
	ClearsWhenExcluded bool
	// ZoneGas: at warning and above it is gas in the room, evidence for every rack of the zone.
	ZoneGas bool
	Silence Silence
	// pass, if set, runs over a whole device after each of its batches (after every sample has
	// gone through detect), in the table's order: the detectors that compare a device's points
	// with each other, or a device with the others.
	pass func(e *Engine, d *devState, now time.Time)
}

var (
	rackTemps = []sample.Role{sample.CellTemperature, sample.ModuleTemperature}
	anyRole   []sample.Role // sensor health reads every point with a role
)

// detectorTable is every detector, one row each. A new detector is a row here, its file, and its
// thresholds in thresholds.go.
var detectorTable = []DetectorInfo{
	{ID: TempHigh, Modality: Temperature, Roles: rackTemps, ClearsWhenExcluded: true, Silence: NotSilence},
	{ID: Rise, Modality: Temperature, Roles: rackTemps, ClearsWhenExcluded: true, Silence: NotSilence},
	{ID: Runaway, Modality: Temperature, Roles: rackTemps, ClearsWhenExcluded: true, Silence: NotSilence},
	{ID: Stuck, Modality: SensorHealth, Roles: []sample.Role{sample.ModuleTemperature, sample.CellVoltage}, Silence: NotSilence, pass: (*Engine).stuck},
	{ID: PeerDelta, Modality: Temperature, Roles: []sample.Role{sample.ModuleTemperature}, ClearsWhenExcluded: true, Silence: NotSilence, pass: (*Engine).peers},
	{ID: Disagree, Modality: SensorHealth, Roles: []sample.Role{sample.ModuleTemperature}, Silence: NotSilence, pass: (*Engine).agreement},
	{ID: CellVoltageDev, Modality: Voltage, Roles: []sample.Role{sample.CellVoltage}, ClearsWhenExcluded: true, Silence: NotSilence, pass: (*Engine).voltages},
	{ID: SelfDischarge, Modality: Voltage, Roles: []sample.Role{sample.CellVoltage}, Silence: NotSilence, pass: (*Engine).selfDischarge},
	{ID: Flapping, Modality: SensorHealth, Roles: rackTemps, Silence: NotSilence},
	{ID: SensorFault, Modality: SensorHealth, Roles: anyRole, Silence: NotSilence},
	{ID: CommLost, Modality: Comms, Silence: SilentAlways},
	{ID: NoData, Modality: Comms, Silence: SilentInTrace},
	{ID: Frozen, Modality: Comms, Silence: SilentAlways, pass: (*Engine).frozen},
	{ID: Offgas, Modality: Gas, Roles: []sample.Role{sample.OffgasPPM}, ZoneGas: true, Silence: NotSilence},
	{ID: COHigh, Modality: Gas, Roles: []sample.Role{sample.COPPM}, ZoneGas: true, Silence: NotSilence},
	{ID: H2LFL, Modality: Gas, Roles: []sample.Role{sample.H2PPM}, ZoneGas: true, Silence: NotSilence},
	{ID: SmokeDetected, Modality: Smoke, Roles: []sample.Role{sample.Smoke}, Silence: NotSilence},
	{ID: HeatDetected, Modality: Smoke, Roles: []sample.Role{sample.Heat}, Silence: NotSilence},
	{ID: Suppression, Modality: Fire, Roles: []sample.Role{sample.SuppressionReleased}, Silence: NotSilence},
	{ID: FirePanel, Modality: Fire, Roles: []sample.Role{sample.FireAlarm}, Silence: NotSilence},
	{ID: BMSAlarmWord, Modality: BMS, Roles: []sample.Role{sample.BMSAlarm}, Silence: NotSilence},
}

// ruleInfo is the row of every site rule.
var ruleInfo = DetectorInfo{Modality: RuleModality, Silence: NotSilence}

// detectorByID, excludedClears and devicePasses are read from the table once, in init (the
// passes call setCond, which reads detectorByID: a package-level initializer would be a cycle).
var (
	detectorByID   map[DetectorID]*DetectorInfo
	excludedClears []DetectorID // the detectors a sensor's exclusion clears, in the table's order
	devicePasses   []func(e *Engine, d *devState, now time.Time)
)

func init() {
	detectorByID = make(map[DetectorID]*DetectorInfo, len(detectorTable))
	for i, d := range detectorTable {
		detectorByID[d.ID] = &detectorTable[i]
		if d.ClearsWhenExcluded {
			excludedClears = append(excludedClears, d.ID)
		}
		if d.pass != nil {
			devicePasses = append(devicePasses, d.pass)
		}
	}
}

// info is a detector's row; a site rule's is ruleInfo.
func (id DetectorID) info() *DetectorInfo {
	if d := detectorByID[id]; d != nil {
		return d
	}
	return &ruleInfo
}

// ruleDetector is the detector id of a site rule.
func ruleDetector(name string) DetectorID { return DetectorID(rulePrefix + name) }

// Detectors returns every detector's row, in the table's order (a copy: the table is not for
// changing).
func Detectors() []DetectorInfo {
	out := slices.Clone(detectorTable)
	for i := range out {
		out[i].Roles = slices.Clone(out[i].Roles)
		out[i].pass = nil
	}
	return out
}

// Detector is one detector's row.
func Detector(id DetectorID) (DetectorInfo, bool) {
	p, ok := detectorByID[id]
	if !ok {
		return DetectorInfo{}, false
	}
	d := *p
	d.Roles, d.pass = slices.Clone(d.Roles), nil
	return d, true
}

// DetectorsFor is every detector that may raise an alarm on a device with points of these roles,
// in the table's order: those of the device itself (comm loss, no data, frozen) always, sensor
// health for any role, the others for a role they read.
func DetectorsFor(roles []sample.Role) []DetectorID {
	var out []DetectorID
	for _, d := range detectorTable {
		ok := d.Roles == nil && d.ID != SensorFault
		for _, r := range roles {
			ok = ok || (d.ID == SensorFault && r != "") || d.Reads(r)
		}
		if ok {
			out = append(out, d.ID)
		}
	}
	return out
}

// Reads says whether the detector reads points of role r.
func (d DetectorInfo) Reads(r sample.Role) bool { return slices.Contains(d.Roles, r) }
