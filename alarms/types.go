package alarms

import (
	"errors"
	"fmt"
	"time"
)

// Stage is a risk stage, 0 (normal) to 4 (fire), as numbered in docs/design.md's table. Unlike the other
// enums it starts at 0, because the number itself is the contract on the wire.
type Stage int

const (
	StageNormal Stage = iota
	StageWatch
	StageWarning
	StageCritical
	StageFire
)

var stageNames = [...]string{"normal", "watch", "warning", "critical", "fire"}

func (s Stage) String() string {
	if s >= 0 && int(s) < len(stageNames) {
		return stageNames[s]
	}
	return fmt.Sprintf("stage(%d)", int(s))
}

// Modality groups signals by physics: two signals of different modalities are independent.
type Modality uint8

const (
	Temperature Modality = iota + 1
	Voltage
	Gas
	Smoke
	Fire
	Comms
	SensorHealth
	BMS
	RuleModality // a site's own rule
	Protocol     // kept for its number: the daemon's own alarms (Engine.Protocol) are no condition's
)

var modalityNames = map[Modality]string{Temperature: "temperature", Voltage: "voltage", Gas: "gas",
	Smoke: "smoke", Fire: "fire", Comms: "comms", SensorHealth: "sensor", BMS: "bms", RuleModality: "rule", Protocol: "protocol"}

func (m Modality) String() string {
	if n, ok := modalityNames[m]; ok {
		return n
	}
	return fmt.Sprintf("modality(%d)", uint8(m))
}

// MarshalText writes the name.
func (m Modality) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads a name written by MarshalText.
func (m *Modality) UnmarshalText(b []byte) error {
	for k, n := range modalityNames {
		if n == string(b) {
			*m = k
			return nil
		}
	}
	return fmt.Errorf("unknown modality %q", b)
}

// Evidence is one active signal that supports a stage: which alarm, what it read.
type Evidence struct {
	Alarm    string   `json:"alarm"`
	Device   string   `json:"device"`
	Point    string   `json:"point,omitempty"`
	Detector string   `json:"detector"`
	Modality Modality `json:"modality"`
	Stage    Stage    `json:"stage"`
	Value    float64  `json:"value"`
	Unit     string   `json:"unit,omitempty"`
	Text     string   `json:"text"`
}

// Scope says whether a risk change is for one rack or a whole zone.
type Scope uint8

const (
	ScopeRack Scope = iota + 1
	ScopeZone
)

func (s Scope) String() string {
	if s == ScopeRack {
		return "rack"
	}
	return "zone"
}

// RiskChange is a stage transition of a rack or a zone, with why.
type RiskChange struct {
	Scope    Scope
	Name     string // rack (device) or zone name
	Zone     string
	From, To Stage
	At       time.Time
	Since    time.Time // when the new stage began (== At)
	Reason   string
	Evidence []Evidence
	// ZoneStage is the zone's stage once this change is made (a rack's change comes before its
	// zone's), and Racks every known rack of the zone with its stage then: the whole picture, so
	// that a retained P/risk/<zone> never needs an earlier message to be read.
	ZoneStage Stage
	ZoneSince time.Time
	Racks     map[string]Stage
}

// AlarmState is the ISA-18.2 state of an alarm.
type AlarmState uint8

const (
	Normal AlarmState = iota + 1
	Unacked
	Acked
	RTNUnacked         // returned to normal, not yet acknowledged
	Shelved            // hidden by an operator for a limited time; still counts towards risk
	SuppressedByDesign // hidden by the alarm logic because another alarm says the same
	OutOfService       // removed by an operator (maintenance): its evidence no longer counts
)

var alarmStateNames = map[AlarmState]string{Normal: "normal", Unacked: "unacknowledged", Acked: "acknowledged",
	RTNUnacked: "rtn_unacknowledged", Shelved: "shelved", SuppressedByDesign: "suppressed_by_design", OutOfService: "out_of_service"}

func (s AlarmState) String() string {
	if n, ok := alarmStateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("alarm_state(%d)", uint8(s))
}

// MarshalText writes the name.
func (s AlarmState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a name written by MarshalText.
func (s *AlarmState) UnmarshalText(b []byte) error {
	for k, n := range alarmStateNames {
		if n == string(b) {
			*s = k
			return nil
		}
	}
	return fmt.Errorf("unknown alarm state %q", b)
}

// Alarm is one alarm's current state: what docs/design.md's retained P/alarm/<id> carries.
type Alarm struct {
	ID       string     `json:"id"`
	Device   string     `json:"device"`
	Point    string     `json:"point,omitempty"`
	Zone     string     `json:"zone"`
	Detector string     `json:"detector"`
	State    AlarmState `json:"state"`
	Active   bool       `json:"active"`
	Stage    Stage      `json:"stage"`
	Value    float64    `json:"value"`
	Unit     string     `json:"unit,omitempty"`
	Text     string     `json:"text"`
	Since    time.Time  `json:"since"`
	// Latched alarms (stage 3 and above) need an acknowledgement after they clear, even if they
	// were acknowledged while active.
	Latched      bool       `json:"latched,omitempty"`
	ShelvedUntil *time.Time `json:"shelved_until,omitempty"`
}

// AlarmEvent is one lifecycle transition of an alarm (docs/design.md's P/events).
type AlarmEvent struct {
	Seq   uint64     `json:"alarm_seq"` // per engine, in order of occurrence
	From  AlarmState `json:"from"`
	Cause Cause      `json:"cause"`
	At    time.Time  `json:"at"`
	Alarm Alarm      `json:"alarm"`
}

// Errors of operator actions on alarms.
var (
	ErrUnknownAlarm      = errors.New("unknown alarm")
	ErrIllegalTransition = errors.New("not allowed in the alarm's present state")
)

// Ready is what the caller must now perform, in order.
type Ready struct {
	Events []AlarmEvent
	Risk   []RiskChange
	// Restated are alarms whose value and text changed with no transition, to be stated again
	// (retained) where they are shown: self_discharge's estimate, judged once an hour, firms up
	// over days. Other alarms' values move with every poll and are not restated.
	Restated []Restated
}

// Restated is an alarm as it stands at At, with no transition.
type Restated struct {
	At    time.Time
	Alarm Alarm
}

// Empty says there is nothing to perform.
func (r Ready) Empty() bool { return len(r.Events) == 0 && len(r.Risk) == 0 && len(r.Restated) == 0 }
