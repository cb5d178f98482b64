// Package sim is the power-room simulator behind cmd/firebreak-sim and `firebreak demo`: a
// physical model of Li-ion racks, UPS, room air and gas, smoke and fire panel, stepped in fixed
// increments of scenario time (so the same seed gives the same trace at any speed), and a Modbus
// TCP server that serves the model through the site's device profiles.
package sim

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/firebreak-dc/firebreak/configs"
	"github.com/firebreak-dc/firebreak/internal/config"
)

// Scenario is what happens in the room, and what a correct detector should make of it.
type Scenario struct {
	Name        string        `yaml:"name"`
	Description string        `yaml:"description"`
	Duration    time.Duration `yaml:"duration"`
	Seed        uint64        `yaml:"seed"`
	Chemistry   string        `yaml:"chemistry"`
	Room        string        `yaml:"room"` // a room preset in configs/rooms (default battery-room)
	// Site is the built-in site (configs/sites) the tests play the scenario on: demo, unless the
	// scenario needs another room, such as full-room's six racks.
	Site       string  `yaml:"site"`
	AmbientC   float64 `yaml:"ambient_c"`
	UPSLoadPct float64 `yaml:"ups_load_pct"`
	// LoadSwingPct makes the load follow the working day: ± this share of ups_load_pct, peaking
	// mid-afternoon.
	LoadSwingPct float64 `yaml:"load_swing_pct"`
	// Step is the model's increment of scenario time (default 1s): a scenario of days at rest
	// may take 30s or a minute (the thermal model still substeps wherever a cell moves fast).
	Step   time.Duration `yaml:"step"`
	Events []Event       `yaml:"events"`
	Expect Expect        `yaml:"expect"`
	HIL    HIL           `yaml:"hil"`
}

// HIL says how the hardware-in-loop suite plays a scenario: a long, quiet one may run faster with
// a slower poll, so that its hours fit in minutes without the poller falling behind.
type HIL struct {
	Speed    float64       `yaml:"speed"`    // default 50
	Interval time.Duration `yaml:"interval"` // overrides every device's poll interval; default as configured
	// NoDataGrace overrides detection.no_data_grace: at high speed a late poller's few hundred
	// milliseconds are minutes of scenario time. Failed polls (a silent device) are not affected.
	NoDataGrace time.Duration `yaml:"no_data_grace"`
}

// Event is one thing the scenario does to the room, or to its instruments, at a time.
//
// Room events: internal_short (device, module, cell, power_w, growth_per_min, max_w),
// micro_short (device, module, cell, leak_ma, growth_per_day, max_ma: a soft short that
// discharges one cell, its leak growing by growth_per_day a day up to max_ma; it warms the cell
// by its few milliwatts only), float_change (value: every rack's float voltage moves by this many
// mV per cell, as a charger setpoint or a temperature compensation does),
// utility_fail (duration, load_pct), hvac_fail (duration), arc_fire (device, module, power_w: an
// external fire against a module, with the room's flame and smoke detectors).
// Instrument faults: bms_silent (device, duration: the unit stops answering; a gateway reports
// exception 11), gateway_frozen (device, duration, point: the gateway in front of the unit goes on
// answering with the registers it read last, good quality, while the unit behind it has hung;
// with point, only the points whose names begin with it: one cached register block),
// sensor_stuck (device, point, duration), sensor_drift (device, point, rate_per_min, high, duration:
// the reading creeps away from the truth at that rate, up to high when high is set), sensor_value (device, point, value,
// duration: a spike when short), sensor_raw (device, point, raw, duration: a sentinel such as
// 0xFFFF), sensor_flap (device, point, low, high, period, duration), voltage_offset (device,
// module, value: the BMS reads that module's cell voltages value mV off, a calibration offset;
// duration as the others). A zero duration lasts to the end of the scenario.
// Link faults, frame by frame on the Modbus TCP link (a FaultProxy in front of the listener):
// link_drop (the connection is closed instead of an answer), link_late (delay: the answer comes
// that much later), link_exception (code: exception instead of an answer), link_short (a frame two
// bytes short), link_garbled (another transaction id), link_wrong_function (another read
// function's reply, its first data byte 2); each with device and duration.
type Event struct {
	At       time.Duration `yaml:"at"`
	Kind     string        `yaml:"kind"`
	Device   string        `yaml:"device"`
	Module   int           `yaml:"module"` // 1-based
	Cell     int           `yaml:"cell"`   // 1-based
	Duration time.Duration `yaml:"duration"`
	// PowerW is a short's initial heat (it grows by GrowthPerMin, a fraction, each minute, up to
	// MaxW) or an arc fire's heat.
	PowerW       float64       `yaml:"power_w"`
	GrowthPerMin float64       `yaml:"growth_per_min"`
	MaxW         float64       `yaml:"max_w"` // 0 means PowerW
	LoadPct      float64       `yaml:"load_pct"`
	Point        string        `yaml:"point"`
	Value        float64       `yaml:"value"`
	Raw          uint64        `yaml:"raw"`
	Low          float64       `yaml:"low"`
	High         float64       `yaml:"high"`
	Period       time.Duration `yaml:"period"`
	RatePerMin   float64       `yaml:"rate_per_min"` // sensor_drift
	Delay        time.Duration `yaml:"delay"`        // link_late
	Code         int           `yaml:"code"`         // link_exception
	LeakMA       float64       `yaml:"leak_ma"`      // micro_short
	GrowthPerDay float64       `yaml:"growth_per_day"`
	MaxMA        float64       `yaml:"max_ma"` // 0 means leak_ma
}

// end is when an event with a duration stops (the scenario's end for none).
func (e Event) end(total time.Duration) time.Duration {
	if e.Duration <= 0 {
		return total + time.Second
	}
	return e.At + e.Duration
}

// Expect is the outcome written in the scenario file, asserted by the hardware-in-loop tests.
type Expect struct {
	MaxStage     int           `yaml:"max_stage"`
	Drain        bool          `yaml:"drain"`
	DrainZone    string        `yaml:"drain_zone"`
	Runaway      bool          `yaml:"runaway"`
	MinDrainLead time.Duration `yaml:"min_drain_lead"` // drain at least this long before runaway
	// MaxDrainDelay: the drain at most this long after the first smoke, heat or suppression signal.
	MaxDrainDelay time.Duration `yaml:"max_drain_delay"`
	// MaxPrepareAt and MaxDrainAt: the first prepare and the first drain (or evacuate) at most
	// this long after the scenario's start.
	MaxPrepareAt time.Duration `yaml:"max_prepare_at"`
	MaxDrainAt   time.Duration `yaml:"max_drain_at"`
	// Alarms must each be raised (activated) at most By after the scenario's start.
	Alarms []ExpectAlarm `yaml:"alarms"`
	// MaxNewAlarms10m: at most this many new (annunciated) alarms in any 10 minutes, before the
	// runaway if there is one (EEMUA 191: more than 10 is a flood); 0 leaves it unchecked.
	MaxNewAlarms10m int `yaml:"max_new_alarms_10m"`
	// SelfDischarge is every self_discharge alarm the run may raise (none, when empty: a fire or
	// a day of float has no leak to find), each with the leak it must estimate within a factor
	// of two (leak_ma 0: not checked, as for a leak that grows).
	SelfDischarge []ExpectLeak `yaml:"self_discharge"`
}

// ExpectLeak is a self_discharge alarm a scenario raises, and the leak it should estimate.
type ExpectLeak struct {
	ID     string  `yaml:"id"`
	LeakMA float64 `yaml:"leak_ma"`
}

// ExpectAlarm is an alarm a scenario must raise, and by when.
type ExpectAlarm struct {
	ID string        `yaml:"id"`
	By time.Duration `yaml:"by"`
}

// LoadScenario reads a scenario from a file path, or by name from the built-in library.
func LoadScenario(nameOrPath string) (*Scenario, error) {
	var data []byte
	var err error
	src := nameOrPath
	if strings.HasSuffix(nameOrPath, ".yaml") || strings.Contains(nameOrPath, "/") {
		data, err = os.ReadFile(nameOrPath)
	} else {
		src = "configs/scenarios/" + nameOrPath + ".yaml"
		data, err = fs.ReadFile(configs.FS, "scenarios/"+nameOrPath+".yaml")
		if err != nil {
			return nil, fmt.Errorf("scenario %q: not a file and not a built-in scenario (built in: %s)", nameOrPath, strings.Join(BuiltinScenarios(), ", "))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	var s Scenario
	if err := decodeStrict(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return &s, nil
}

// BuiltinScenarios lists the embedded scenarios by name.
func BuiltinScenarios() []string {
	files, _ := fs.Glob(configs.FS, "scenarios/*.yaml")
	var out []string
	for _, f := range files {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(f, "scenarios/"), ".yaml"))
	}
	return out
}

func decodeStrict(data []byte, out any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(out)
}

func (s *Scenario) validate() error {
	var errs []string
	if s.Name == "" {
		errs = append(errs, "name: must be set")
	}
	if s.Duration <= 0 {
		errs = append(errs, fmt.Sprintf("duration: must be positive, got %s", s.Duration))
	}
	if s.Chemistry == "" {
		s.Chemistry = "nmc"
	}
	if s.Room == "" {
		s.Room = "battery-room"
	}
	if s.AmbientC == 0 {
		s.AmbientC = 24
	}
	for i, e := range s.Events {
		bad := func(field string, format string, a ...any) {
			errs = append(errs, fmt.Sprintf("events[%d].%s: %s", i, field, fmt.Sprintf(format, a...)))
		}
		needDevice := func() {
			if e.Device == "" {
				bad("device", "must name a device")
			}
		}
		// upTo defaults a growing quantity's ceiling to where it starts, and refuses one below.
		upTo := func(field string, ceiling *float64, startField string, start float64) {
			if *ceiling == 0 {
				*ceiling = start
			} else if *ceiling < start {
				bad(field, "must be >= %s (%g), got %g", startField, start, *ceiling)
			}
		}
		needModule := func() {
			needDevice()
			if e.Module < 1 || e.Module > modulesPerRack {
				bad("module", "must be 1..%d, got %d", modulesPerRack, e.Module)
			}
		}
		needCell := func() {
			needModule()
			if e.Cell < 1 || e.Cell > cellsPerModule {
				bad("cell", "must be 1..%d, got %d", cellsPerModule, e.Cell)
			}
		}
		needPoint := func() {
			needDevice()
			if e.Point == "" {
				bad("point", "must name a point of the device")
			}
		}
		switch e.Kind {
		case "internal_short":
			needCell()
			if e.PowerW <= 0 {
				bad("power_w", "must be > 0, got %g", e.PowerW)
			}
			upTo("max_w", &s.Events[i].MaxW, "power_w", e.PowerW)
		case "arc_fire":
			needModule()
			if e.PowerW <= 0 {
				bad("power_w", "must be > 0, got %g", e.PowerW)
			}
		case "micro_short":
			needCell()
			if !(e.LeakMA > 0 && e.LeakMA <= 10000) {
				bad("leak_ma", "must be in (0, 10000] mA, got %g", e.LeakMA)
			}
			if e.GrowthPerDay < 0 {
				bad("growth_per_day", "must be >= 0, got %g", e.GrowthPerDay)
			}
			upTo("max_ma", &s.Events[i].MaxMA, "leak_ma", e.LeakMA)
		case "float_change":
			if e.Value == 0 || e.Value < -500 || e.Value > 500 {
				bad("value", "must be a change of -500..500 mV per cell, not 0, got %g", e.Value)
			}
		case "voltage_offset":
			needModule()
			if e.Value == 0 || e.Value < -1000 || e.Value > 1000 {
				bad("value", "must be an offset of -1000..1000 mV, not 0, got %g", e.Value)
			}
		case "utility_fail":
			if e.LoadPct < 0 || e.LoadPct > 150 {
				bad("load_pct", "must be 0..150, got %g", e.LoadPct)
			}
		case "hvac_fail":
		case "bms_silent", "gateway_frozen", "link_drop", "link_short", "link_garbled", "link_wrong_function":
			needDevice()
		case "link_late":
			needDevice()
			if e.Delay <= 0 {
				bad("delay", "must be a positive duration, got %s", e.Delay)
			}
		case "link_exception":
			needDevice()
			if e.Code < 1 || e.Code > 255 {
				bad("code", "must be a Modbus exception code 1..255, got %d", e.Code)
			}
		case "sensor_stuck", "sensor_value", "sensor_raw":
			needPoint()
		case "sensor_drift":
			needPoint()
			if e.RatePerMin == 0 {
				bad("rate_per_min", "must not be 0 (°C, or the point's unit, per minute)")
			}
		case "sensor_flap":
			needPoint()
			if e.Period <= 0 {
				bad("period", "must be a positive duration")
			}
			if e.High <= e.Low {
				bad("high", "must be above low (%g), got %g", e.Low, e.High)
			}
		default:
			bad("kind", "must be one of internal_short, micro_short, float_change, voltage_offset, arc_fire, utility_fail, hvac_fail, bms_silent, gateway_frozen, sensor_stuck, sensor_drift, sensor_value, sensor_raw, sensor_flap, link_drop, link_late, link_exception, link_short, link_garbled, link_wrong_function; got %q", e.Kind)
		}
		if e.At < 0 || e.At > s.Duration {
			bad("at", "must lie within the scenario's duration, got %s", e.At)
		}
		if e.Duration < 0 {
			bad("duration", "must not be negative, got %s", e.Duration)
		}
	}
	if s.Step == 0 {
		s.Step = time.Second
	}
	if s.Step < time.Second || s.Step > 5*time.Minute || s.Step%time.Second != 0 {
		errs = append(errs, fmt.Sprintf("step: must be whole seconds, 1s..5m, got %s", s.Step))
	}
	if s.HIL.Speed == 0 {
		s.HIL.Speed = 50
	}
	// Days of float in a minute or two need thousands: with a step and a poll interval to match.
	if s.HIL.Speed < 30 || s.HIL.Speed > 20000 {
		errs = append(errs, fmt.Sprintf("hil.speed: must be 30..20000, got %g", s.HIL.Speed))
	}
	if s.HIL.Interval < 0 {
		errs = append(errs, fmt.Sprintf("hil.interval: must not be negative, got %s", s.HIL.Interval))
	}
	if s.Expect.MaxStage < 0 || s.Expect.MaxStage > 4 {
		errs = append(errs, fmt.Sprintf("expect.max_stage: must be 0..4, got %d", s.Expect.MaxStage))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// Chemistry is a cell preset (configs/chemistry/*.yaml).
type Chemistry struct {
	Name               string       `yaml:"name"`
	CellMassKg         float64      `yaml:"cell_mass_kg"`
	CellCpJPerKgK      float64      `yaml:"cell_cp_j_per_kg_k"`
	CapacityAh         float64      `yaml:"capacity_ah"`
	InternalResistance float64      `yaml:"internal_resistance_ohm"`
	VentC              float64      `yaml:"vent_c"`
	SeparatorCollapseC float64      `yaml:"separator_collapse_c"`
	VentMassG          float64      `yaml:"vent_mass_g"`
	VentDurationS      float64      `yaml:"vent_duration_s"`
	RunawayGasL        float64      `yaml:"runaway_gas_l"`
	RunawayH2Frac      float64      `yaml:"runaway_h2_frac"`
	RunawayCOFrac      float64      `yaml:"runaway_co_frac"`
	HardShortTauS      float64      `yaml:"hard_short_tau_s"`
	ElectrolyteGPerMol float64      `yaml:"electrolyte_g_per_mol"`
	OCVSlopeNearFull   float64      `yaml:"ocv_slope_mv_per_pct_near_full"`
	Pack               Pack         `yaml:"pack"`
	ElectricalHeatFrac float64      `yaml:"electrical_heat_frac"`
	OCV                [][2]float64 `yaml:"ocv"`
	Reactions          struct {
		SEI         Reaction `yaml:"sei"`
		Anode       Reaction `yaml:"anode"`
		Cathode     Reaction `yaml:"cathode"`
		Electrolyte Reaction `yaml:"electrolyte"`
	} `yaml:"reactions"`
}

// Pack is how cells sit in a module and a rack, and what the BMS does about them.
type Pack struct {
	GCellCell     float64 `yaml:"g_cell_cell_w_per_k"`
	GModuleModule float64 `yaml:"g_module_module_w_per_k"`
	GCellAir      float64 `yaml:"g_cell_air_w_per_k"`
	RadAreaM2     float64 `yaml:"radiating_area_m2"`
	Emissivity    float64 `yaml:"emissivity"`
	NTCOpenC      float64 `yaml:"ntc_open_c"`
	BMSTripC      float64 `yaml:"bms_trip_c"`
	BalanceMV     float64 `yaml:"balance_mv"`
	BalanceStopMV float64 `yaml:"balance_stop_mv"`
	BalanceA      float64 `yaml:"balance_a"`
	SoCSpread     float64 `yaml:"soc_spread"`
}

// RoomSpec is a room preset (configs/rooms/*.yaml).
type RoomSpec struct {
	Name           string  `yaml:"name"`
	VolumeM3       float64 `yaml:"volume_m3"`
	AirChangesPerH float64 `yaml:"air_changes_per_h"`
	HVACWPerK      float64 `yaml:"hvac_w_per_k"`
	GainW          float64 `yaml:"gain_w"`
	EnvelopeWPerK  float64 `yaml:"envelope_w_per_k"`
	CapacityJPerK  float64 `yaml:"capacity_j_per_k"`
	UPSRatedKW     float64 `yaml:"ups_rated_kw"`
	FirePanel      struct {
		SmokeAlarmObscuration float64 `yaml:"smoke_alarm_obscuration"`
		SmokeConfirmS         float64 `yaml:"smoke_confirm_s"`
		PanelConfirmS         float64 `yaml:"panel_confirm_s"`
		PredischargeS         float64 `yaml:"predischarge_s"`
		FlameDetectS          float64 `yaml:"flame_detect_s"`
		HeatAlarmC            float64 `yaml:"heat_alarm_c"`
		ArcSmokePerS          float64 `yaml:"arc_smoke_per_s"`
	} `yaml:"fire_panel"`
}

// LoadRoom reads a built-in room preset by name.
func LoadRoom(name string) (*RoomSpec, error) {
	data, err := fs.ReadFile(configs.FS, "rooms/"+name+".yaml")
	if err != nil {
		return nil, fmt.Errorf("room %q: no such preset in configs/rooms", name)
	}
	var r RoomSpec
	if err := decodeStrict(data, &r); err != nil {
		return nil, fmt.Errorf("configs/rooms/%s.yaml: %w", name, err)
	}
	if r.VolumeM3 <= 0 || r.CapacityJPerK <= 0 || r.UPSRatedKW <= 0 {
		return nil, fmt.Errorf("configs/rooms/%s.yaml: volume_m3, capacity_j_per_k and ups_rated_kw must be > 0", name)
	}
	return &r, nil
}

// Reaction is one Arrhenius decomposition reaction.
type Reaction struct {
	A        float64 `yaml:"a"`
	Ea       float64 `yaml:"ea"`
	H        float64 `yaml:"h"`
	MassFrac float64 `yaml:"mass_frac"`
	C0       float64 `yaml:"c0"`
}

// LoadChemistry reads a built-in preset by name.
func LoadChemistry(name string) (*Chemistry, error) {
	data, err := fs.ReadFile(configs.FS, "chemistry/"+name+".yaml")
	if err != nil {
		return nil, fmt.Errorf("chemistry %q: no such preset in configs/chemistry", name)
	}
	var c Chemistry
	if err := decodeStrict(data, &c); err != nil {
		return nil, fmt.Errorf("configs/chemistry/%s.yaml: %w", name, err)
	}
	if c.CellMassKg <= 0 || c.CellCpJPerKgK <= 0 || c.HardShortTauS <= 0 || c.ElectrolyteGPerMol <= 0 || len(c.OCV) < 2 {
		return nil, fmt.Errorf("configs/chemistry/%s.yaml: cell_mass_kg, cell_cp_j_per_kg_k, hard_short_tau_s and electrolyte_g_per_mol must be > 0 and ocv needs two points", name)
	}
	return &c, nil
}

// ocv interpolates the open-circuit voltage at state of charge soc (0..1).
func (c *Chemistry) ocv(soc float64) float64 {
	t := c.OCV
	if soc <= t[0][0] {
		return t[0][1]
	}
	for i := 1; i < len(t); i++ {
		if soc <= t[i][0] {
			f := (soc - t[i-1][0]) / (t[i][0] - t[i-1][0])
			return t[i-1][1] + f*(t[i][1]-t[i-1][1])
		}
	}
	return t[len(t)-1][1]
}

// SiteConfig is the built-in site a scenario is played on (its site:, demo by default), parsed.
func SiteConfig(sc *Scenario) (*config.Config, error) {
	name := sc.Site
	if name == "" {
		name = "demo"
	}
	data, err := configs.FS.ReadFile("sites/" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("scenario %s: site %q is not a built-in site (configs/sites)", sc.Name, name)
	}
	cfg, err := config.Parse(data, name+".yaml")
	if err != nil {
		return nil, err
	}
	// A rack that says what its cells are is the scenario's chemistry.
	chem, err := LoadChemistry(sc.Chemistry)
	if err != nil {
		return nil, err
	}
	for i := range cfg.Devices {
		if b := cfg.Devices[i].Battery; b != nil {
			cfg.Devices[i].Battery = &config.Battery{Chemistry: chem.Name, CapacityAh: chem.CapacityAh, OCVSlopeMVPerPct: chem.OCVSlopeNearFull}
		}
	}
	return cfg, nil
}
