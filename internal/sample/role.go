package sample

// Role is what a point means to the detector (docs/design.md's list of roles). A point without one is
// telemetry only. The constants below are the whole vocabulary: config checks a profile's role
// against them, the engine, the pipeline, the simulator and Home Assistant discovery switch on
// them, and no other file spells a role.
type Role string

const (
	NoRole Role = ""

	CellTemperature       Role = "cell_temperature"   // the BMS's hottest cell (Tmax)
	ModuleTemperature     Role = "module_temperature" // one NTC of a module
	AmbientTemperature    Role = "ambient_temperature"
	CellVoltage           Role = "cell_voltage"
	StringVoltage         Role = "string_voltage"
	StringCurrent         Role = "string_current"
	SoC                   Role = "soc"
	OffgasPPM             Role = "offgas_ppm"
	H2PPM                 Role = "h2_ppm"
	COPPM                 Role = "co_ppm"
	Smoke                 Role = "smoke"
	Heat                  Role = "heat"
	FireAlarm             Role = "fire_alarm"
	SuppressionReleased   Role = "suppression_released"
	BMSAlarm              Role = "bms_alarm"
	ContactorOpen         Role = "contactor_open"
	UPSOnBattery          Role = "ups_on_battery"
	UPSRuntime            Role = "ups_runtime_s"
	UPSLoad               Role = "ups_load_pct"
	UPSBatteryTemperature Role = "ups_battery_temperature"
)

// Roles is every role, in docs/design.md's order.
var Roles = []Role{CellTemperature, ModuleTemperature, AmbientTemperature, CellVoltage, StringVoltage,
	StringCurrent, SoC, OffgasPPM, H2PPM, COPPM, Smoke, Heat, FireAlarm, SuppressionReleased, BMSAlarm,
	ContactorOpen, UPSOnBattery, UPSRuntime, UPSLoad, UPSBatteryTemperature}

// Known says whether r is one of Roles.
func (r Role) Known() bool {
	for _, k := range Roles {
		if k == r {
			return true
		}
	}
	return false
}

// RackTemperature says whether r is a battery rack's temperature: the ones that rise, run away
// and are compared with their peers.
func (r Role) RackTemperature() bool { return r == CellTemperature || r == ModuleTemperature }

// Binary says whether r is an on/off input (a contact, a flag): it stands still by nature.
func (r Role) Binary() bool {
	switch r {
	case Smoke, Heat, FireAlarm, SuppressionReleased, BMSAlarm, ContactorOpen, UPSOnBattery:
		return true
	}
	return false
}

// OfRack says whether a device with a point of role r is a battery rack (it has a risk stage of
// its own).
func (r Role) OfRack() bool { return r.RackTemperature() || r == CellVoltage }
