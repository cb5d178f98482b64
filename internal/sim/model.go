package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Rack geometry: 8 modules of 16 cells in series, two NTCs per module (as many BMSs have: the
// cells between the sensors are seen only through conduction).
const (
	modulesPerRack = 8
	cellsPerModule = 16
	ntcsPerModule  = 2
	gasConstant    = 8.314 // J/(mol K)
	kelvin         = 273.15
)

// Constants of nature; everything about the cells, the pack and the room is in the presets
// (configs/chemistry, configs/rooms).
const (
	stefan       = 5.670e-8 // W/(m² K⁴)
	molarVolumeL = 24.45    // litres per mole of gas at 25 °C
)

// ntcCells are the two cells (0-based) each NTC of a module is bonded between.
var ntcCells = [ntcsPerModule][2]int{{2, 3}, {10, 11}}

type cell struct {
	T     float64 // °C
	dTdt  float64 // °C/s, last step
	soc   float64 // 0..1
	cSEI  float64
	cNeg  float64
	zSEI  float64
	alpha float64
	cE    float64
	V     float64

	shortW, shortGrowth float64 // internal short: heat now, and growth per minute
	shortMaxW           float64
	shortOn             bool
	leakA, leakGrowth   float64 // micro short: the current it discharges the cell with, and growth per day
	leakMaxA            float64
	balancing           bool    // the BMS bleeds it (balance_mv above its module's lowest, until balance_stop_mv)
	externalW           float64 // heat from outside the cell (an arc fire)
	ventLeftS           float64
	vented              bool
	collapsed           bool
	storedJ             float64 // electrical energy left to burn through a collapsed separator
	runaway             bool
	gasLeftS            float64
	// rate is the reaction rates (SEI, anode, cathode, electrolyte) at the start of the substep:
	// reactionHeat finds them for the heat, advanceCell consumes the reactants with the same ones.
	rate [4]float64
}

// Rack is one battery rack and its BMS's view of it.
type Rack struct {
	Name          string
	cells         [modulesPerRack][cellsPerModule]cell
	currentA      float64 // + discharge
	contactorOpen bool
	ntc           [modulesPerRack * ntcsPerModule]float64
	ntcOpen       [modulesPerRack * ntcsPerModule]bool
	// floatV is the string voltage the charger holds at rest (the cells' open-circuit sum at the
	// start, plus the room's float changes); offsetV is what the BMS adds to each module's cell
	// voltage readings (voltage_offset: a calibration error, not the cells).
	floatV  float64
	offsetV [modulesPerRack]float64
}

// Charger: after a discharge the UPS recharges at up to chargeC of capacity (A per Ah), then
// holds the float voltage, supplying what the cells lose (a leak, the BMS's balancing).
const chargeC = 0.1

// Truth is one ground-truth event of a run: what really happened, and when.
type Truth struct {
	At     time.Duration `json:"at_s"`
	Kind   TruthKind     `json:"kind"`
	Device string        `json:"device,omitempty"`
	Detail string        `json:"detail,omitempty"`
}

// Room is the whole simulated power room, stepped in fixed increments of scenario time.
type Room struct {
	chem  *Chemistry
	rm    *RoomSpec
	sc    *Scenario
	rng   *rand.Rand
	t     time.Duration
	racks []*Rack
	byNm  map[string]*Rack
	fired []bool // events applied

	airC                    float64
	offgasPPM, h2PPM, coPPM float64
	smokeObs                float64
	smokeAboveS             float64
	smoke, heat, fireAlarm  bool
	suppression             bool
	fireAlarmAt, smokeAt    time.Duration
	upsOnBattery            bool
	upsLoadPct              float64
	hvacOn                  bool
	arcAt                   time.Duration
	arcOn                   bool

	floatShiftV float64 // float_change events applied so far, per cell

	truth []Truth
	seen  map[TruthKind]bool
}

// NewRoom builds the room for a scenario with the given rack names.
func NewRoom(sc *Scenario, chem *Chemistry, rm *RoomSpec, racks []string) *Room {
	r := &Room{
		chem: chem, rm: rm, sc: sc, rng: rand.New(rand.NewPCG(sc.Seed, 0x5eed)),
		byNm: map[string]*Rack{}, fired: make([]bool, len(sc.Events)),
		airC: sc.AmbientC, upsLoadPct: sc.UPSLoadPct, seen: map[TruthKind]bool{}, hvacOn: true,
	}
	storedJ := chem.CapacityAh * 3600 * chem.ocv(0.95)
	for _, name := range racks {
		rk := &Rack{Name: name}
		for m := range rk.cells {
			for c := range rk.cells[m] {
				rx := chem.Reactions
				soc := 0.95 + chem.Pack.SoCSpread*(2*r.rng.Float64()-1)
				rk.cells[m][c] = cell{T: sc.AmbientC, soc: soc, cSEI: rx.SEI.C0, cNeg: rx.Anode.C0, zSEI: 0.033,
					alpha: rx.Cathode.C0, cE: rx.Electrolyte.C0, storedJ: storedJ}
			}
		}
		// The room has floated for months: its BMS has balanced every module to within
		// balance_mv of its lowest cell (cells left the factory soc_spread apart).
		for m := range rk.cells {
			lo := math.Inf(1)
			for c := range rk.cells[m] {
				lo = math.Min(lo, rk.cells[m][c].soc)
			}
			for c := range rk.cells[m] {
				x := &rk.cells[m][c]
				for chem.ocv(x.soc)-chem.ocv(lo) > chem.Pack.BalanceMV/1000 {
					x.soc -= 0.0005
				}
				rk.floatV += chem.ocv(x.soc)
			}
		}
		r.racks = append(r.racks, rk)
		r.byNm[name] = rk
	}
	r.sense()
	return r
}

// Elapsed is the scenario time the model has reached.
func (r *Room) Elapsed() time.Duration { return r.t }

// Truth returns the ground-truth events so far.
func (r *Room) Truth() []Truth { return append([]Truth(nil), r.truth...) }

func (r *Room) record(kind TruthKind, device, detail string) {
	if r.seen[kind] {
		return
	}
	r.seen[kind] = true
	r.truth = append(r.truth, Truth{At: r.t, Kind: kind, Device: device, Detail: detail})
}

// Step advances the model by dt of scenario time.
func (r *Room) Step(dt time.Duration) {
	for i, e := range r.sc.Events {
		if !r.fired[i] && r.t >= e.At {
			r.fired[i] = true
			r.apply(e)
		}
	}
	r.windows()
	s := dt.Seconds()
	airGainW := 0.0
	for _, rk := range r.racks {
		airGainW += r.stepRack(rk, s)
	}
	r.stepRoom(s, airGainW)
	r.t += dt
	r.sense()
}

// windows sets the states that scenario events hold for a while.
func (r *Room) windows() {
	r.upsOnBattery, r.hvacOn = false, true
	for _, rk := range r.racks {
		rk.offsetV = [modulesPerRack]float64{}
	}
	day := math.Sin(2 * math.Pi * (r.t.Hours() - 9) / 24) // the scenario starts at midnight
	r.upsLoadPct = r.sc.UPSLoadPct * (1 + r.sc.LoadSwingPct/100*day)
	for _, e := range r.sc.Events {
		if r.t < e.At || r.t >= e.end(r.sc.Duration) {
			continue
		}
		switch e.Kind {
		case "utility_fail":
			r.upsOnBattery = true
			if e.LoadPct > 0 {
				r.upsLoadPct = e.LoadPct
			}
		case "hvac_fail":
			r.hvacOn = false
		case "voltage_offset":
			if rk := r.byNm[e.Device]; rk != nil {
				rk.offsetV[e.Module-1] = e.Value / 1000
			}
		}
	}
}

func (r *Room) apply(e Event) {
	switch e.Kind {
	case "utility_fail":
		r.record(TruthUtilityFail, "", fmt.Sprintf("UPS on battery for %s", e.Duration))
	case "hvac_fail":
		r.record(TruthHVACFail, "", "")
	case "arc_fire":
		rk := r.byNm[e.Device]
		if rk == nil {
			return
		}
		// The fire burns against the module's side: its outer cells take most of the heat.
		m := e.Module - 1
		for c := range rk.cells[m] {
			share := 0.02
			if c == 0 || c == cellsPerModule-1 {
				share = 0.5 - 0.02*float64(cellsPerModule-2)/2
			}
			rk.cells[m][c].externalW += e.PowerW * share
		}
		r.arcOn, r.arcAt = true, r.t
		r.record(TruthArcFire, e.Device, fmt.Sprintf("module %d", e.Module))
	case "internal_short":
		rk := r.byNm[e.Device]
		if rk == nil {
			return
		}
		c := &rk.cells[e.Module-1][e.Cell-1]
		c.shortOn, c.shortW, c.shortGrowth, c.shortMaxW = true, e.PowerW, e.GrowthPerMin, e.MaxW
		r.record(TruthInternalShort, e.Device, fmt.Sprintf("module %d cell %d", e.Module, e.Cell))
	case "micro_short":
		rk := r.byNm[e.Device]
		if rk == nil {
			return
		}
		c := &rk.cells[e.Module-1][e.Cell-1]
		c.leakA, c.leakGrowth, c.leakMaxA = e.LeakMA/1000, e.GrowthPerDay, e.MaxMA/1000
		r.record(TruthMicroShort, e.Device, fmt.Sprintf("module %d cell %d, %g mA", e.Module, e.Cell, e.LeakMA))
	case "float_change":
		r.floatShiftV += e.Value / 1000
		r.record(TruthFloatChange, "", fmt.Sprintf("%+g mV per cell", e.Value))
	}
}

// stepRack integrates one rack's cells over s seconds, in substeps small enough that no cell
// moves more than half a degree per substep (runaway is stiff). It returns the heat given to
// the room's air, in watts.
func (r *Room) stepRack(rk *Rack, s float64) float64 {
	if r.upsOnBattery && !rk.contactorOpen {
		vString := 0.0
		for m := range rk.cells {
			for c := range rk.cells[m] {
				vString += rk.cells[m][c].V
			}
		}
		rk.currentA = r.upsLoadPct / 100 * r.rm.UPSRatedKW * 1000 / float64(len(r.racks)) / math.Max(vString, 1)
	} else if !rk.contactorOpen {
		rk.currentA = -r.charge(rk, s)
	} else {
		rk.currentA = 0
	}
	r.balance(rk, s)
	var dT [modulesPerRack][cellsPerModule]float64
	var airW float64
	left := s
	for left > 1e-9 {
		maxRate := 0.0
		airW = 0
		for m := range rk.cells {
			for c := range rk.cells[m] {
				q, toAir := r.cellHeat(rk, m, c)
				dT[m][c] = q / (r.chem.CellMassKg * r.chem.CellCpJPerKgK)
				airW += toAir
				maxRate = math.Max(maxRate, math.Abs(dT[m][c]))
			}
		}
		h := left
		if maxRate*h > 0.5 {
			h = math.Max(0.5/maxRate, 0.005)
		}
		for m := range rk.cells {
			for c := range rk.cells[m] {
				r.advanceCell(rk, &rk.cells[m][c], dT[m][c], h)
			}
		}
		left -= h
	}
	for m := range rk.cells {
		for c := range rk.cells[m] {
			rk.cells[m][c].dTdt = dT[m][c]
		}
	}
	return airW
}

// charge is the charger's current into a rack for the next s seconds: what brings the cells'
// open-circuit sum to the float voltage (a constant-voltage charger, seen on the scale of a
// step), at most chargeC of capacity, never a discharge. A collapsed cell is no longer part of
// what it regulates.
func (r *Room) charge(rk *Rack, s float64) float64 {
	sum, slope := 0.0, 0.0
	for m := range rk.cells {
		for c := range rk.cells[m] {
			x := &rk.cells[m][c]
			if x.collapsed {
				continue
			}
			sum += r.chem.ocv(x.soc)
			slope += (r.chem.ocv(x.soc+0.001) - r.chem.ocv(x.soc-0.001)) / 0.002
		}
	}
	target := rk.floatV + r.floatShiftV*modulesPerRack*cellsPerModule
	if slope <= 0 || sum >= target {
		return 0
	}
	a := (target - sum) / slope * r.chem.CapacityAh * 3600 / s
	return math.Min(a, chargeC*r.chem.CapacityAh)
}

// balance is the BMS's passive balancing at float: a cell more than balance_mv above its
// module's lowest bleeds balance_a through the BMS's resistor (whose heat is on the BMS board, not
// in the cell) until it is within balance_stop_mv of it. It only ever brings a cell down to its
// module's lowest, never below: the lowest cell of a module is the one balancing leaves alone.
func (r *Room) balance(rk *Rack, s float64) {
	pk := r.chem.Pack
	if rk.currentA > 0 || pk.BalanceA <= 0 {
		return
	}
	for m := range rk.cells {
		lo := math.Inf(1)
		for c := range rk.cells[m] {
			if x := &rk.cells[m][c]; !x.collapsed {
				lo = math.Min(lo, x.V)
			}
		}
		for c := range rk.cells[m] {
			x := &rk.cells[m][c]
			above := (x.V - lo) * 1000
			switch {
			case x.collapsed:
				x.balancing = false
			case above > pk.BalanceMV:
				x.balancing = true
			case above < pk.BalanceStopMV:
				x.balancing = false
			}
			if x.balancing {
				x.soc = math.Max(0, x.soc-pk.BalanceA*s/3600/r.chem.CapacityAh)
			}
		}
	}
}

// cellHeat is the net heat into one cell (W) and the part of it that goes to the air.
func (r *Room) cellHeat(rk *Rack, m, c int) (float64, float64) {
	x := &rk.cells[m][c]
	q := rk.currentA * rk.currentA * r.chem.InternalResistance
	if x.shortOn {
		q += x.shortW
	}
	q += x.leakA * x.V // a micro short's few milliwatts
	q += x.externalW
	q += r.reactionHeat(x)
	if x.collapsed && x.storedJ > 0 {
		q += r.chem.ElectricalHeatFrac * x.storedJ / r.chem.HardShortTauS
	}
	nb := func(o *cell, g float64) { q += g * (o.T - x.T) }
	if c > 0 {
		nb(&rk.cells[m][c-1], r.chem.Pack.GCellCell)
	}
	if c < cellsPerModule-1 {
		nb(&rk.cells[m][c+1], r.chem.Pack.GCellCell)
	}
	if m > 0 {
		nb(&rk.cells[m-1][c], r.chem.Pack.GModuleModule)
	}
	if m < modulesPerRack-1 {
		nb(&rk.cells[m+1][c], r.chem.Pack.GModuleModule)
	}
	// Convection, and radiation, which is what holds a burning cell to several hundred degrees.
	tk, ta := x.T+kelvin, r.airC+kelvin
	toAir := r.chem.Pack.GCellAir*(x.T-r.airC) + r.chem.Pack.Emissivity*stefan*r.chem.Pack.RadAreaM2*(tk*tk*tk*tk-ta*ta*ta*ta)
	return q - toAir, toAir
}

// rates are the four Kim et al. reaction rates (1/s) at the cell's temperature and state.
func (r *Room) rates(x *cell) (sei, neg, pos, ele float64) {
	tk := x.T + kelvin
	rx := r.chem.Reactions
	arr := func(rc Reaction) float64 { return rc.A * math.Exp(-rc.Ea/(gasConstant*tk)) }
	sei = arr(rx.SEI) * x.cSEI
	neg = arr(rx.Anode) * x.cNeg * math.Exp(-x.zSEI/0.033)
	pos = arr(rx.Cathode) * x.alpha * (1 - x.alpha)
	ele = arr(rx.Electrolyte) * x.cE
	return
}

// reactionHeat is the heat of x's decomposition reactions, and keeps their rates in x.rate.
func (r *Room) reactionHeat(x *cell) float64 {
	sei, neg, pos, ele := r.rates(x)
	x.rate = [4]float64{sei, neg, pos, ele}
	rx := r.chem.Reactions
	perKg := rx.SEI.H*rx.SEI.MassFrac*sei + rx.Anode.H*rx.Anode.MassFrac*neg +
		rx.Cathode.H*rx.Cathode.MassFrac*pos + rx.Electrolyte.H*rx.Electrolyte.MassFrac*ele
	return perKg * r.chem.CellMassKg
}

// advanceCell moves x on by h at the rates cellHeat found for this substep (x has not changed
// since).
func (r *Room) advanceCell(rk *Rack, x *cell, dTdt, h float64) {
	sei, neg, pos, ele := x.rate[0], x.rate[1], x.rate[2], x.rate[3]
	x.cSEI = math.Max(0, x.cSEI-sei*h)
	x.cNeg = math.Max(0, x.cNeg-neg*h)
	x.zSEI += neg * h
	x.alpha = math.Min(1, x.alpha+pos*h)
	x.cE = math.Max(0, x.cE-ele*h)
	x.T += dTdt * h
	if x.shortOn {
		x.shortW = math.Min(x.shortMaxW, x.shortW*math.Pow(1+x.shortGrowth, h/60))
	}
	if x.collapsed {
		x.storedJ = math.Max(0, x.storedJ-x.storedJ/r.chem.HardShortTauS*h)
		x.soc = x.storedJ / (r.chem.CapacityAh * 3600 * r.chem.ocv(0.95)) * 0.95
	} else {
		x.soc = math.Max(0, x.soc-(rk.currentA+x.leakA)*h/3600/r.chem.CapacityAh)
		if x.leakA > 0 {
			x.leakA = math.Min(x.leakMaxA, x.leakA*math.Pow(1+x.leakGrowth, h/86400))
		}
	}
	if !x.vented && x.T >= r.chem.VentC {
		x.vented, x.ventLeftS = true, r.chem.VentDurationS
		r.record(TruthVent, rk.Name, "")
	}
	if !x.collapsed && x.T >= r.chem.SeparatorCollapseC {
		// The soft short is swallowed by the hard one.
		x.collapsed, x.shortOn = true, false
		r.record(TruthSeparatorCollapse, rk.Name, "")
	}
	if !x.runaway && dTdt >= 1 {
		x.runaway, x.gasLeftS = true, 30
		if r.seen[TruthRunaway] {
			r.record(TruthNeighbourRunaway, rk.Name, "")
		}
		r.record(TruthRunaway, rk.Name, "")
	}
}

// stepRoom moves gas, smoke, air temperature, the fire panel and the UPS on by s seconds.
func (r *Room) stepRoom(s, airGainW float64) {
	airMol := r.rm.VolumeM3 * 1000 / molarVolumeL
	ppm := func(mol float64) float64 { return mol / airMol * 1e6 }
	hot := 0.0
	for _, rk := range r.racks {
		for m := range rk.cells {
			for c := range rk.cells[m] {
				x := &rk.cells[m][c]
				if x.ventLeftS > 0 {
					d := math.Min(s, x.ventLeftS)
					r.offgasPPM += ppm(r.chem.VentMassG / r.chem.ElectrolyteGPerMol / r.chem.VentDurationS * d)
					x.ventLeftS -= d
				}
				if x.gasLeftS > 0 {
					d := math.Min(s, x.gasLeftS)
					mol := r.chem.RunawayGasL / molarVolumeL / 30 * d
					r.h2PPM += ppm(mol * r.chem.RunawayH2Frac)
					r.coPPM += ppm(mol * r.chem.RunawayCOFrac)
					r.offgasPPM += ppm(mol * 0.1)
					x.gasLeftS -= d
				}
				if x.T > 300 {
					hot += 1
				}
			}
		}
	}
	decay := math.Exp(-r.rm.AirChangesPerH / 3600 * s)
	r.offgasPPM *= decay
	r.h2PPM *= decay
	r.coPPM *= decay
	r.smokeObs = r.smokeObs*decay + hot*0.05*s
	if r.arcOn {
		r.smokeObs += r.rm.FirePanel.ArcSmokePerS * s
	}

	setpoint := r.sc.AmbientC + 0.5*math.Sin(2*math.Pi*r.t.Seconds()/1200)
	hvacW := 0.0
	if r.hvacOn {
		hvacW = math.Max(0, r.rm.GainW+r.rm.HVACWPerK*(r.airC-setpoint))
	}
	r.airC += (r.rm.GainW + airGainW - hvacW - r.rm.EnvelopeWPerK*(r.airC-r.sc.AmbientC)) / r.rm.CapacityJPerK * s

	if r.smokeObs >= r.rm.FirePanel.SmokeAlarmObscuration {
		r.smokeAboveS += s
	} else {
		r.smokeAboveS = 0
	}
	if !r.smoke && r.smokeAboveS >= r.rm.FirePanel.SmokeConfirmS {
		r.smoke, r.smokeAt = true, r.t
		r.record(TruthSmoke, "", "")
	}
	if !r.heat && (r.airC >= r.rm.FirePanel.HeatAlarmC || (r.arcOn && (r.t-r.arcAt).Seconds() >= r.rm.FirePanel.FlameDetectS)) {
		r.heat = true
		r.record(TruthHeat, "", "")
	}
	// The panel goes to fire alarm on a heat or flame detector at once, on smoke after the
	// coincidence delay of a second detector.
	if !r.fireAlarm && (r.heat || (r.smoke && (r.t-r.smokeAt).Seconds() >= r.rm.FirePanel.PanelConfirmS)) {
		r.fireAlarm, r.fireAlarmAt = true, r.t
		r.record(TruthFireAlarm, "", "")
	}
	if !r.suppression && r.fireAlarm && (r.t-r.fireAlarmAt).Seconds() >= r.rm.FirePanel.PredischargeS {
		r.suppression = true
		r.record(TruthSuppression, "", "")
	}
}

// sense updates what the instruments read: NTCs with noise, cell voltages, the BMS's contactor.
func (r *Room) sense() {
	for _, rk := range r.racks {
		for m := range rk.cells {
			for k, pair := range ntcCells {
				a, b := rk.cells[m][pair[0]].T, rk.cells[m][pair[1]].T
				v := (a+b)/2 + r.rng.NormFloat64()*0.05
				i := m*ntcsPerModule + k
				rk.ntc[i] = v
				rk.ntcOpen[i] = rk.ntcOpen[i] || v > r.chem.Pack.NTCOpenC
			}
			for c := range rk.cells[m] {
				x := &rk.cells[m][c]
				switch {
				case x.collapsed:
					x.V = 0.05 + 3.0*x.storedJ/(r.chem.CapacityAh*3600*4)
				default:
					x.V = r.chem.ocv(x.soc) - rk.currentA*r.chem.InternalResistance + r.rng.NormFloat64()*0.001
				}
			}
		}
		if rk.maxNTC() > r.chem.Pack.BMSTripC {
			rk.contactorOpen = true
		}
	}
}

func (rk *Rack) maxNTC() float64 {
	mx := math.Inf(-1)
	for i, v := range rk.ntc {
		if !rk.ntcOpen[i] {
			mx = math.Max(mx, v)
		}
	}
	return mx
}

// HottestCell is the highest cell temperature in the room (ground truth, for tests).
func (r *Room) HottestCell() float64 {
	mx := math.Inf(-1)
	for _, rk := range r.racks {
		for m := range rk.cells {
			for c := range rk.cells[m] {
				mx = math.Max(mx, rk.cells[m][c].T)
			}
		}
	}
	return mx
}
