package alarms

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

// DeviceInfo is what the engine knows of a device from the config.
type DeviceInfo struct {
	Name     string
	Zone     string
	Interval time.Duration
	Units    map[string]string // point → unit, for evidence
}

// Topology is the site as the engine sees it.
type Topology struct {
	Devices []DeviceInfo
	Zones   []string
	Rules   []Rule
}

// Rule is a site's own rule on one point: a value above or below a limit, or a rise of at least
// RatePerMin (per minute, over the rise window), held for For, raising Stage. Exactly one of Above,
// Below, RatePerMin is set (the config validates it).
type Rule struct {
	Name, Device, Point string
	Above, Below        *float64
	RatePerMin          *float64
	For                 time.Duration
	Stage               Stage
}

type ruleState struct {
	r     Rule
	since time.Time
}

// Engine is the detection state machine. It is not safe for concurrent use: one owner steps it.
type Engine struct {
	th      Thresholds
	devices map[string]*devState
	zones   map[string]*scopeState
	racks   map[string]*scopeState
	// zoneNames and rackNames are the keys above in order, kept so that restaging (per batch)
	// does not sort hundreds of names every time.
	zoneNames, rackNames []string
	rackList             []*scopeState // racks[rackNames[i]]
	conds                map[string]*cond
	alarms               map[string]*Alarm
	held                 map[string]bool // alarms shelved or suppressed by design: lifecycleTick watches them
	// restored holds active alarms loaded from a snapshot, until fresh data confirms or clears them.
	restored map[string]time.Time
	live     bool
	rules    map[string][]*ruleState // by device.point
	seq      uint64
	started  time.Time
	ready    Ready
}

type devState struct {
	info      DeviceInfo
	points    map[string]*pointState
	ids       map[[2]string]string // (point, detector) → alarm id, built once
	nconds    int                  // active conditions on this device: none is the common case
	byRole    map[string][]string  // sorted point names per role, rebuilt when a point appears
	lastOK    time.Time
	lastErrAt time.Time
	lastErr   string
	currentA  float64
}

type obs struct {
	t time.Time
	v float64
}

type pointState struct {
	role      string
	hist      []obs // good samples within the longest detector window
	fit       fit   // running least-squares sums over hist
	last      float64
	good      bool
	tempLevel Stage
	peerLevel Stage
	riseSince time.Time
	baseline  float64
	gasOn     bool

	// plausibility
	hasPrev      bool
	lastJumpAt   time.Time   // last step larger than MaxStepC
	jumps        []time.Time // such steps within FlapWindow
	lastChangeAt time.Time   // last time the reading changed at all
	medianAtChng float64     // the rack's median for this role when the reading last changed
	flapping     bool
	stuck        bool
	peerDelta    float64 // last deviation from the rack's median (module temperatures)
	peerKnown    bool
}

func hasRateRule(rules []*ruleState) bool {
	for _, r := range rules {
		if r.r.RatePerMin != nil {
			return true
		}
	}
	return false
}

// excluded says the sensor is known bad: its readings feed no detector and no peer statistic.
func (p *pointState) excluded() bool { return p.flapping || p.stuck }

func isTemperature(role string) bool {
	return role == "cell_temperature" || role == "module_temperature"
}

type scopeState struct {
	scope       Scope
	name, zone  string
	stage       Stage
	since       time.Time
	lowerSince  time.Time
	lastReasons string
}

// cond is an active detector condition; each is one alarm.
type cond struct {
	id, device, point, zone, detector string
	modality                          Modality
	stage                             Stage
	value                             float64
	unit, text                        string
	source                            string // independence key: signals with the same source are one sensor
}

// Option changes how an engine reads its input.
type Option func(*Engine)

// LivePoller says the samples come from a live poller, which sends a batch (with its error) for
// every failed attempt: then a device's silence shows in its failed polls at once, and a device
// with no batch at all is waiting on a late poller, tolerated for NoDataGrace. Without it (replay),
// a device with no rows for its stale limit is silent, as DESIGN's trace format says.
func LivePoller() Option { return func(e *Engine) { e.live = true } }

// New returns an engine for the topology.
func New(topo Topology, th Thresholds, opts ...Option) *Engine {
	e := &Engine{th: th, devices: map[string]*devState{}, zones: map[string]*scopeState{},
		racks: map[string]*scopeState{}, conds: map[string]*cond{}, alarms: map[string]*Alarm{}, held: map[string]bool{},
		restored: map[string]time.Time{}, rules: map[string][]*ruleState{}}
	for _, r := range topo.Rules {
		k := r.Device + "." + r.Point
		e.rules[k] = append(e.rules[k], &ruleState{r: r})
	}
	for _, o := range opts {
		o(e)
	}
	for _, z := range topo.Zones {
		e.zones[z] = &scopeState{scope: ScopeZone, name: z, zone: z}
	}
	e.zoneNames = sortedKeys(e.zones)
	for _, d := range topo.Devices {
		if d.Units == nil {
			d.Units = map[string]string{}
		}
		e.devices[d.Name] = &devState{info: d, points: map[string]*pointState{}, ids: map[[2]string]string{}, byRole: map[string][]string{}}
	}
	return e
}

// Ready returns what changed since the last Advance.
func (e *Engine) Ready() Ready { return e.ready }

// HasReady says whether Ready has anything.
func (e *Engine) HasReady() bool { return !e.ready.Empty() }

// Advance acknowledges that the last Ready was performed.
func (e *Engine) Advance() { e.ready = Ready{} }

// ZoneStage is a zone's present stage.
func (e *Engine) ZoneStage(zone string) Stage {
	if z := e.zones[zone]; z != nil {
		return z.stage
	}
	return StageNormal
}

// Alarms returns every alarm that is not in Normal, sorted by id.
func (e *Engine) Alarms() []Alarm {
	var out []Alarm
	for _, a := range e.alarms {
		if a.State != Normal {
			out = append(out, *a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (e *Engine) window() time.Duration {
	w := e.th.RiseWindow
	if e.th.RunawayFor*4 > w {
		w = e.th.RunawayFor * 4
	}
	return w
}

// Step feeds one poll of one device.
func (e *Engine) Step(b sample.Batch) {
	d := e.devices[b.Device]
	if d == nil {
		return // not in the topology: the caller validated the config, so this is a stray
	}
	e.touch(b.At)
	if b.Err == nil {
		d.lastOK = b.At
		e.setCond(d, "", "comm_lost", Comms, StageNormal, 0, "", noText, b.At)
		e.setCond(d, "", "no_data", Comms, StageNormal, 0, "", noText, b.At)
	} else {
		d.lastErrAt, d.lastErr = b.At, b.Err.Error()
	}
	// A device most of whose points read nothing plausible at once (a BMS in a fault state, a
	// gateway answering exceptions) is one fault, not one alarm per point: one device alarm, its
	// points named in it (issue 22: one failing device raised 31 alarms, a flood by itself).
	bad, named := e.badPoints(b)
	wholeDevice := bad >= deviceFaultMin && 2*bad >= named
	for _, s := range b.Samples {
		if s.Quality == sample.CommLost {
			continue
		}
		if s.Quality == sample.Good && s.Text == "" {
			// The collectors and the trace reader never pass a non-finite value; whatever feeds
			// the engine, a NaN or an infinity is no reading and must not reach a fit or a
			// signal, and a magnitude no sensor reads (in any unit) is implausible.
			switch {
			case !finite(s.Value):
				s.Value, s.Quality = 0, sample.Invalid
			case math.Abs(s.Value) > MaxReading:
				s.Quality = sample.OutOfRange
			}
		}
		rules := e.rules[s.Device+"."+s.Point]
		if s.Role == "" && rules == nil {
			continue
		}
		ps := d.points[s.Point]
		if ps == nil {
			ps = &pointState{role: s.Role}
			d.points[s.Point] = ps
			d.byRole = map[string][]string{}
		}
		e.sensorHealth(d, s, ps, wholeDevice)
		if s.Quality != sample.Good {
			continue
		}
		e.plausibility(d, s, ps)
		ps.last, ps.good, ps.hasPrev = s.Value, true, true
		// Only temperatures (rise, runaway, confirmation) and points with a rate rule look back;
		// the rest (cell voltages are most points of a rack) keep no history: memory and time.
		if isTemperature(s.Role) || hasRateRule(rules) {
			ps.hist = append(ps.hist, obs{s.At, s.Value})
			ps.fit.add(ps.hist, obs{s.At, s.Value})
			cut := 0
			for cut < len(ps.hist) && s.At.Sub(ps.hist[cut].t) > e.window() {
				ps.fit.remove(ps.hist[cut])
				cut++
			}
			ps.hist = ps.hist[cut:]
		}
		if ps.excluded() {
			e.clearDetectors(d, s.Point, s.At)
			continue
		}
		e.applyRules(d, s, ps, rules)
		e.detect(d, s, ps)
	}
	e.deviceHealth(d, b, bad, named, wholeDevice)
	e.stuck(d, b.At)
	e.peers(d, b.At)
	e.voltages(d, b.At)
	if _, isRack := e.racks[d.info.Name]; !isRack && d.isRack() {
		r := &scopeState{scope: ScopeRack, name: d.info.Name, zone: d.info.Zone}
		e.racks[d.info.Name] = r
		i, _ := slices.BinarySearch(e.rackNames, d.info.Name)
		e.rackNames = slices.Insert(e.rackNames, i, d.info.Name)
		e.rackList = slices.Insert(e.rackList, i, r)
	}
	e.lifecycleTick(b.At)
	e.restage(b.At)
}

// Tick moves time on without samples: comm loss and stage hold times are judged here.
func (e *Engine) Tick(now time.Time) {
	e.touch(now)
	for _, name := range sortedKeys(e.devices) {
		d := e.devices[name]
		limit := time.Duration(e.th.StaleAfterIntervals) * d.info.Interval
		last := d.lastOK
		if last.IsZero() {
			last = e.started
		}
		failing := d.lastErrAt.After(d.lastOK)
		if e.live && !failing {
			limit = max(limit, e.th.NoDataGrace)
		}
		if now.Sub(last) > limit {
			// Two alarms, because they mean different things: comm_lost, the device failed its
			// polls (it is silent); no_data, nothing came at all (a late poller live; in a trace,
			// DESIGN's silent device). Both leave the rack unwatched; only silence escalates.
			age := now.Sub(last)
			if failing {
				e.setCond(d, "", "no_data", Comms, StageNormal, 0, "", noText, now)
				e.setCond(d, "", "comm_lost", Comms, StageWatch, age.Seconds(), "s", func() string {
					return fmt.Sprintf("%s has not answered for %s: %s", name, age.Round(time.Second), d.lastErr)
				}, now)
			} else {
				e.setCond(d, "", "comm_lost", Comms, StageNormal, 0, "", noText, now)
				e.setCond(d, "", "no_data", Comms, StageWatch, age.Seconds(), "s", func() string {
					return fmt.Sprintf("no data from %s for %s", name, age.Round(time.Second))
				}, now)
			}
		}
	}
	e.lifecycleTick(now)
	e.confirmRestored(now)
	e.restage(now)
}

func (e *Engine) touch(now time.Time) {
	if e.started.IsZero() {
		e.started = now
	}
}

func (d *devState) isRack() bool {
	for _, p := range d.points {
		if p.role == "cell_temperature" || p.role == "module_temperature" || p.role == "cell_voltage" {
			return true
		}
	}
	return false
}

// applyRules evaluates the site's own rules on a good sample.
func (e *Engine) applyRules(d *devState, s sample.Sample, ps *pointState, rules []*ruleState) {
	for _, rs := range rules {
		r := rs.r
		var on bool
		var v float64
		switch {
		case r.Above != nil:
			on, v = s.Value > *r.Above, s.Value
		case r.Below != nil:
			on, v = s.Value < *r.Below, s.Value
		case r.RatePerMin != nil:
			slope, n := ps.fit.slopePerMin()
			on, v = n >= 5 && slope >= *r.RatePerMin, slope
		}
		st := StageNormal
		if heldFor(on, &rs.since, s.At, r.For) {
			st = r.Stage
		}
		what := func() string {
			switch {
			case r.Above != nil:
				return fmt.Sprintf("above %g", *r.Above)
			case r.Below != nil:
				return fmt.Sprintf("below %g", *r.Below)
			}
			return fmt.Sprintf("rising at least %g per minute", *r.RatePerMin)
		}
		unit := d.info.Units[s.Point]
		e.setCond(d, s.Point, "rule:"+r.Name, RuleModality, st, v, unit, func() string {
			return fmt.Sprintf("rule %s: %s.%s %s (%s) for %s", r.Name, d.info.Name, s.Point, what(),
				strings.TrimSpace(fmt.Sprintf("%.3g %s", v, unit)), s.At.Sub(rs.since).Round(time.Second))
		}, s.At)
	}
}

// heldFor tracks since when a condition has held (zero while it does not) and says whether it
// has held for at least d by now.
func heldFor(on bool, since *time.Time, now time.Time, d time.Duration) bool {
	if !on {
		*since = time.Time{}
		return false
	}
	if since.IsZero() {
		*since = now
	}
	return now.Sub(*since) >= d
}

// plausibility tracks steps and changes of an analogue reading and raises a flapping sensor.
func (e *Engine) plausibility(d *devState, s sample.Sample, ps *pointState) {
	if !ps.hasPrev || s.Value != ps.last {
		ps.lastChangeAt = s.At
	}
	if !isTemperature(s.Role) {
		return
	}
	if ps.hasPrev && math.Abs(s.Value-ps.last) >= e.th.MaxStepC {
		ps.lastJumpAt = s.At
		ps.jumps = append(ps.jumps, s.At)
	}
	cut := 0
	for cut < len(ps.jumps) && s.At.Sub(ps.jumps[cut]) > e.th.FlapWindow {
		cut++
	}
	ps.jumps = ps.jumps[cut:]
	// A runaway rises in steps too, but in one direction: flapping needs steps both ways.
	_, runaway := sustainedRise(ps.hist, s.At, e.th.RunawayFor, e.th.RunawayCPerS)
	flapping := len(ps.jumps) >= e.th.FlapJumps && !runaway
	if flapping != ps.flapping {
		ps.flapping = flapping
		st := StageNormal
		if flapping {
			st = StageWatch
		}
		e.setCond(d, s.Point, "flapping", SensorHealth, st, s.Value, d.info.Units[s.Point], func() string {
			return fmt.Sprintf("%s.%s is flapping: %d steps over %.0f °C within %s; excluded from detection", d.info.Name, s.Point, len(ps.jumps), e.th.MaxStepC, e.th.FlapWindow)
		}, s.At)
	}
}

// stuckMove is how far a rack's median must move for a sensor that did not follow it to be stuck:
// a steady, quantised reading in a steady room is not a fault, however long it lasts.
var stuckMove = map[string]float64{"module_temperature": 1.0, "cell_voltage": 0.02}

// stuck raises a sensor whose reading has not changed for StuckFor while its rack's median moved
// by stuckMove: a frozen ADC or a cached value, not a steady cell.
func (e *Engine) stuck(d *devState, now time.Time) {
	for _, role := range []string{"module_temperature", "cell_voltage"} {
		all := d.names(role)
		names := make([]string, 0, len(all))
		vals := make([]float64, 0, len(all))
		for _, n := range all {
			if p := d.points[n]; p.hasPrev {
				names = append(names, n)
				vals = append(vals, p.last)
			}
		}
		if len(vals) < 3 {
			continue
		}
		med := median(vals)
		for _, n := range names {
			p := d.points[n]
			if p.lastChangeAt.Equal(now) {
				p.medianAtChng = med
			}
			stuck := now.Sub(p.lastChangeAt) >= e.th.StuckFor && math.Abs(med-p.medianAtChng) >= stuckMove[role]
			if stuck == p.stuck {
				continue
			}
			p.stuck = stuck
			st := StageNormal
			if stuck {
				st = StageWatch
				e.clearDetectors(d, n, now)
			}
			e.setCond(d, n, "stuck", SensorHealth, st, p.last, d.info.Units[n], func() string {
				return fmt.Sprintf("%s.%s has read %g for %s while its rack moved from %g to %g; excluded from detection",
					d.info.Name, n, p.last, now.Sub(p.lastChangeAt).Round(time.Second), round3(p.medianAtChng), round3(med))
			}, now)
		}
	}
}

// clearDetectors clears every process condition of a point that is known bad.
func (e *Engine) clearDetectors(d *devState, point string, now time.Time) {
	for _, det := range []string{"temp_high", "rise", "runaway", "peer_delta", "cell_voltage"} {
		e.setCond(d, point, det, Temperature, StageNormal, 0, "", noText, now)
	}
}

// deviceFaultMin is how many points of a device must read nothing plausible at once (and at
// least half of those the detectors read) for it to be one device fault.
const deviceFaultMin = 4

// badPoints counts the points of a batch the detectors read (those with a role) that read
// nothing plausible, and how many such points the batch has. It is on the hot path: no lookups.
func (e *Engine) badPoints(b sample.Batch) (bad, named int) {
	for _, s := range b.Samples {
		if s.Quality == sample.CommLost || s.Role == "" {
			continue
		}
		named++
		if s.Quality == sample.Invalid || s.Quality == sample.OutOfRange || (s.Quality == sample.Good && s.Text == "" && !finite(s.Value)) {
			bad++
		}
	}
	return bad, named
}

// deviceHealth raises (or clears) the one sensor fault of a device most of whose points read
// nothing plausible.
func (e *Engine) deviceHealth(d *devState, b sample.Batch, bad, named int, whole bool) {
	st := StageNormal
	if whole {
		st = StageWatch
	}
	e.setCond(d, "", "sensor_fault", SensorHealth, st, float64(bad), "points", func() string {
		var names []string
		for _, s := range b.Samples {
			if (s.Quality == sample.Invalid || s.Quality == sample.OutOfRange) && len(names) < 8 {
				names = append(names, s.Point)
			}
		}
		more := ""
		if bad > len(names) {
			more = fmt.Sprintf(" and %d more", bad-len(names))
		}
		return fmt.Sprintf("%s: %d of %d points read no plausible value (%s%s); one device fault, not one alarm each",
			d.info.Name, bad, named, strings.Join(names, ", "), more)
	}, b.At)
}

// sensorHealth raises a sensor fault for a point that reads a sentinel or an implausible value;
// when the whole device is at fault (deviceHealth), the point's own alarm stays quiet.
func (e *Engine) sensorHealth(d *devState, s sample.Sample, ps *pointState, wholeDevice bool) {
	bad := s.Quality == sample.Invalid || s.Quality == sample.OutOfRange
	st := StageNormal
	if bad {
		st = StageWatch
		ps.good = false
	}
	if wholeDevice {
		st = StageNormal
	}
	e.setCond(d, s.Point, "sensor_fault", SensorHealth, st, s.Value, d.info.Units[s.Point], func() string {
		return fmt.Sprintf("%s.%s reads no plausible value (%s)", d.info.Name, s.Point, s.Quality)
	}, s.At)
}

func (e *Engine) detect(d *devState, s sample.Sample, ps *pointState) {
	unit := d.info.Units[s.Point]
	switch s.Role {
	case "cell_temperature", "module_temperature":
		e.temperature(d, s, ps, unit)
	case "string_current":
		d.currentA = s.Value
	case "offgas_ppm":
		thr := e.th.OffgasWarnPPM
		rel := ps.baseline > 0 && s.Value >= e.th.OffgasBaselineMult*ps.baseline && s.Value >= 2
		on := s.Value >= thr || rel
		if ps.gasOn && !on && s.Value >= 0.8*thr {
			on = true // hysteresis: a decaying plume does not flap the alarm
		}
		if !on {
			if ps.baseline == 0 {
				ps.baseline = s.Value
			}
			ps.baseline += 0.01 * (s.Value - ps.baseline)
		}
		ps.gasOn = on
		e.level(d, s, on, "offgas", Gas, StageWarning, unit, func() string { return fmt.Sprintf("off-gas %.1f ppm (baseline %.1f ppm)", s.Value, ps.baseline) })
	case "co_ppm":
		e.level(d, s, s.Value >= e.th.COWarnPPM, "co_high", Gas, StageWarning, unit, func() string { return fmt.Sprintf("CO %.0f ppm", s.Value) })
	case "h2_ppm":
		lim := e.th.H2FireLFLFrac * e.th.H2LFLPPM
		e.level(d, s, s.Value >= lim, "h2_lfl", Gas, StageFire, unit, func() string {
			return fmt.Sprintf("H2 %.0f ppm, %.0f %% of its LFL", s.Value, 100*s.Value/e.th.H2LFLPPM)
		})
	case "smoke":
		e.level(d, s, s.Value != 0, "smoke", Smoke, StageCritical, "", constText("smoke detected in the room"))
	case "heat":
		e.level(d, s, s.Value != 0, "heat", Smoke, StageCritical, "", constText("heat detector in alarm"))
	case "suppression_released":
		e.level(d, s, s.Value != 0, "suppression_released", Fire, StageCritical, "", constText("gas suppression released"))
	case "fire_alarm":
		e.level(d, s, s.Value != 0, "fire_alarm", Fire, StageFire, "", constText("fire panel in alarm"))
	case "bms_alarm":
		e.level(d, s, s.Value != 0, "bms_alarm", BMS, StageWatch, "", func() string { return fmt.Sprintf("BMS alarm word 0x%04X", uint16(s.Value)) })
	}
}

func (e *Engine) level(d *devState, s sample.Sample, on bool, det string, m Modality, st Stage, unit string, text func() string) {
	if !on {
		st = StageNormal
	}
	e.setCond(d, s.Point, det, m, st, s.Value, unit, text, s.At)
}

func (e *Engine) temperature(d *devState, s sample.Sample, ps *pointState, unit string) {
	v, th := s.Value, e.th
	lvl := StageNormal
	switch {
	case v >= th.CellTempWarnC:
		lvl = StageWarning
	case v >= th.CellTempWatchC:
		lvl = StageWatch
	}
	thr := th.CellTempWatchC
	if ps.tempLevel == StageWarning {
		thr = th.CellTempWarnC
	}
	if ps.tempLevel > lvl && ps.tempLevel <= StageWarning && v >= thr-th.TempDeadbandC {
		lvl = ps.tempLevel
	}
	// After an implausible step the reading must settle before it may raise anything.
	unsettled := !ps.lastJumpAt.IsZero() && s.At.Sub(ps.lastJumpAt) < th.SettleFor
	if unsettled && lvl > ps.tempLevel {
		lvl = ps.tempLevel
	}
	slope, n := ps.fit.slopePerMin()
	text := func() string { return fmt.Sprintf("%s.%s at %.1f °C", d.info.Name, s.Point, v) }
	// Confirmed: hot and still rising over the window, which a spike or a stuck sensor is not.
	if !unsettled && v >= th.CellTempCritC && n >= 5 && slope > 0.1 && persisted(ps.hist, 3, th.CellTempWarnC) {
		lvl = StageCritical
		text = func() string {
			return fmt.Sprintf("%s.%s at %.1f °C, rising %.1f °C/min", d.info.Name, s.Point, v, slope)
		}
	}
	if lvl < StageCritical {
		ps.tempLevel = lvl
	} else {
		ps.tempLevel = StageWarning
	}
	e.setCond(d, s.Point, "temp_high", Temperature, lvl, v, unit, text, s.At)

	// Sustained rate of rise, outside discharge.
	rising := n >= 5 && slope >= th.RiseWatchCPerMin && math.Abs(d.currentA) < dischargeCurrentA
	rl := StageNormal
	if heldFor(rising, &ps.riseSince, s.At, th.RiseWatchFor) {
		rl = StageWatch
	}
	e.setCond(d, s.Point, "rise", Temperature, rl, slope, "°C/min", func() string { return fmt.Sprintf("%s.%s rising %.1f °C/min", d.info.Name, s.Point, slope) }, s.At)

	// Runaway: every step of the last RunawayFor rose at least RunawayCPerS.
	rs := StageNormal
	if r, ok := sustainedRise(ps.hist, s.At, th.RunawayFor, th.RunawayCPerS); ok {
		rs = StageFire
		e.setCond(d, s.Point, "runaway", Temperature, rs, r, "°C/s", func() string { return fmt.Sprintf("%s.%s thermal runaway: %.1f °C/s", d.info.Name, s.Point, r) }, s.At)
	} else {
		e.setCond(d, s.Point, "runaway", Temperature, rs, 0, "°C/s", noText, s.At)
	}
}

func noText() string { return "" }

// constText is a text that needs no formatting.
func constText(s string) func() string { return func() string { return s } }

// dischargeCurrentA: above this string current a rack warms from its own load, not a fault.
const dischargeCurrentA = 20

// peers compares each module temperature with the median of its rack.
func (e *Engine) peers(d *devState, now time.Time) {
	names, vals := d.goodByRole("module_temperature")
	if len(vals) < 3 {
		return
	}
	med := median(vals)
	dev := make([]float64, len(vals))
	for i, v := range vals {
		dev[i] = math.Abs(v - med)
	}
	sigma := math.Max(1.4826*median(dev), e.th.PeerSigmaFloorC)
	for i, n := range names {
		ps := d.points[n]
		delta := vals[i] - med
		z := delta / sigma
		ps.peerDelta, ps.peerKnown = delta, true
		lvl := StageNormal
		switch {
		case z < e.th.PeerZMin:
		case delta >= e.th.PeerDeltaWarnC:
			lvl = StageWarning
		case delta >= e.th.PeerDeltaWatchC:
			lvl = StageWatch
		}
		thr := e.th.PeerDeltaWatchC
		if ps.peerLevel == StageWarning {
			thr = e.th.PeerDeltaWarnC
		}
		if ps.peerLevel > lvl && delta >= thr-e.th.TempDeadbandC {
			lvl = ps.peerLevel
		}
		if !ps.lastJumpAt.IsZero() && now.Sub(ps.lastJumpAt) < e.th.SettleFor && lvl > ps.peerLevel {
			lvl = ps.peerLevel
		}
		ps.peerLevel = lvl
		e.setCond(d, n, "peer_delta", Temperature, lvl, delta, "°C", func() string {
			return fmt.Sprintf("%s.%s %.1f °C above the rack median %.1f °C (z %.1f)", d.info.Name, n, delta, med, z)
		}, now)
	}
}

// voltages: deviation from the rack's median at rest, and a collapse (with heat: runaway).
func (e *Engine) voltages(d *devState, now time.Time) {
	names, vals := d.goodByRole("cell_voltage")
	if len(vals) < 3 {
		return
	}
	med := median(vals)
	hot := false
	for _, c := range e.conds {
		if c.device == d.info.Name && c.modality == Temperature && c.stage >= StageWatch {
			hot = true
		}
	}
	rest := math.Abs(d.currentA) < dischargeCurrentA
	for i, n := range names {
		v := vals[i]
		collapse := v < (1-e.th.VoltageDropFrac)*med
		lvl := StageNormal
		text := ""
		switch {
		case collapse && hot:
			lvl, text = StageFire, fmt.Sprintf("%s.%s collapsed to %.2f V (median %.2f V) with heat", d.info.Name, n, v, med)
		case collapse:
			lvl, text = StageWatch, fmt.Sprintf("%s.%s collapsed to %.2f V (median %.2f V)", d.info.Name, n, v, med)
		case rest && math.Abs(v-med)*1000 >= e.th.CellVDeltaWatchMV:
			lvl, text = StageWatch, fmt.Sprintf("%s.%s %.0f mV from the rack median at rest", d.info.Name, n, (v-med)*1000)
		}
		e.setCond(d, n, "cell_voltage", Voltage, lvl, v, "V", func() string { return text }, now)
	}
}

// id is the alarm id of a detector on a point (or on the device, for point "").
func (d *devState) id(point, det string) string {
	k := [2]string{point, det}
	if id, ok := d.ids[k]; ok {
		return id
	}
	id := d.info.Name
	if point != "" {
		id += "." + point
	}
	id += "." + det
	d.ids[k] = id
	return id
}

// names is the sorted point names of a role.
func (d *devState) names(role string) []string {
	if ns, ok := d.byRole[role]; ok {
		return ns
	}
	var ns []string
	for n, p := range d.points {
		if p.role == role {
			ns = append(ns, n)
		}
	}
	sort.Strings(ns)
	d.byRole[role] = ns
	return ns
}

func (d *devState) goodByRole(role string) ([]string, []float64) {
	all := d.names(role)
	names := make([]string, 0, len(all))
	vals := make([]float64, 0, len(all))
	for _, n := range all {
		if p := d.points[n]; p.good && !p.excluded() {
			names = append(names, n)
			vals = append(vals, p.last)
		}
	}
	return names, vals
}

// setCond raises, updates or clears one condition and drives its alarm's lifecycle.
func (e *Engine) setCond(d *devState, point, det string, m Modality, st Stage, v float64, unit string, textFn func() string, now time.Time) {
	if !finite(v) {
		v = 0 // an alarm's value goes into JSON and into drain signals: it is always a number
	}
	if st == StageNormal && d.nconds == 0 {
		return // nothing active on the device: nothing to clear (the hot path of a quiet room)
	}
	id := d.id(point, det)
	c := e.conds[id]
	if st == StageNormal {
		if c != nil {
			delete(e.conds, id)
			d.nconds--
			_ = e.transition(id, "clear", now, c, v)
		}
		return
	}
	text := textFn()
	if c == nil {
		// Its independence key (source) is set when the stage is assessed.
		c = &cond{id: id, device: d.info.Name, point: point, zone: d.info.Zone, detector: det, modality: m}
		e.conds[id] = c
		d.nconds++
		c.stage, c.value, c.unit, c.text = st, v, unit, text
		if !e.confirmRestoredActive(id, c, v, now) {
			_ = e.transition(id, "activate", now, c, v)
		}
		return
	}
	escalate := st > c.stage
	c.stage, c.value, c.unit, c.text = st, v, unit, text
	if escalate {
		_ = e.transition(id, "escalate", now, c, v)
	} else if a := e.alarms[id]; a != nil {
		a.Value, a.Stage, a.Text = v, st, text
	}
}

// confirmRestoredActive takes a condition that comes back for an alarm restored active (after
// a restart or a config reload): the alarm is the same one, still active, so it is not
// announced again; only a higher stage is, as an escalation. It says whether it took it.
func (e *Engine) confirmRestoredActive(id string, c *cond, v float64, now time.Time) bool {
	a := e.alarms[id]
	if _, restored := e.restored[id]; !restored || a == nil || !a.Active {
		return false
	}
	delete(e.restored, id)
	if c.stage > a.Stage {
		_ = e.transition(id, "escalate", now, c, v)
		return true
	}
	a.Value, a.Stage, a.Text = v, c.stage, c.text
	return true
}

// SetProtocolAlarm raises, escalates or (with StageNormal) clears an alarm that no detector owns:
// the drain protocol's, e.g. a consumer that did not acknowledge a drain signal in time. It has
// the whole ISA-18.2 lifecycle (annunciated, acknowledged, shelved, latched at stage 3 and above)
// and its stage is its priority; it is never evidence of a fire, so no risk stage moves for it.
// Its id is "<source>.<detector>"; source is what it concerns ("cutover.<zone>.<consumer>").
func (e *Engine) SetProtocolAlarm(source, detector, zone string, st Stage, text string, now time.Time) {
	id := source + "." + detector
	c := e.conds[id]
	switch {
	case st == StageNormal && c == nil:
		return
	case st == StageNormal:
		delete(e.conds, id)
		_ = e.transition(id, "clear", now, c, 0)
	case c == nil:
		c = &cond{id: id, device: source, zone: zone, detector: detector, modality: Protocol, stage: st, text: text}
		e.conds[id] = c
		if !e.confirmRestoredActive(id, c, 0, now) {
			_ = e.transition(id, "activate", now, c, 0)
		}
	default:
		escalate := st > c.stage
		c.stage, c.text = st, text
		if escalate {
			_ = e.transition(id, "escalate", now, c, 0)
		} else if a := e.alarms[id]; a != nil {
			a.Stage, a.Text = st, text
		}
	}
}

// sourceOf is a condition's independence key: two signals with one source are one sensor's word.
// The BMS's max temperature is one of its NTCs, not a sensor of its own; and a temperature that
// is high only because the whole room is warm (it stands out from no peer) is one zone-wide
// signal, however many sensors show it: HVAC failure and heavy discharge warm every rack together.
func (e *Engine) sourceOf(d *devState, point, det string) string {
	if point == "" {
		return d.info.Name + "." + det
	}
	p := d.points[point]
	if p == nil || det != "temp_high" {
		return d.info.Name + "." + point
	}
	switch p.role {
	case "module_temperature":
		if p.peerKnown && p.peerDelta < e.th.PeerDeltaWatchC {
			return "uniform:" + d.info.Zone
		}
	case "cell_temperature":
		standsOut := false
		for _, o := range d.points {
			if o.role == "module_temperature" && o.peerKnown && o.peerDelta >= e.th.PeerDeltaWatchC {
				standsOut = true
			}
		}
		if !standsOut {
			return "uniform:" + d.info.Zone
		}
		return d.info.Name + ".tmax"
	}
	return d.info.Name + "." + point
}

// byCondition stands, in the table, for "back to where the condition puts it": Unacked if the
// alarm is active, Normal if not.
const byCondition AlarmState = 0

// transitions is the ISA-18.2 lifecycle table: state × cause → next state. Process causes
// (activate, escalate, clear) come from the detectors, the others from operators (ack, shelve,
// unshelve, remove, restore) or the alarm logic (suppress, unsuppress). A process cause not in the
// table for a state only updates whether the alarm is active; an operator cause not in it is an
// ErrIllegalTransition and changes nothing.
var transitions = map[AlarmState]map[string]AlarmState{
	Normal:             {"activate": Unacked, "shelve": Shelved, "remove": OutOfService, "suppress": SuppressedByDesign},
	Unacked:            {"clear": RTNUnacked, "ack": Acked, "escalate": Unacked, "shelve": Shelved, "remove": OutOfService, "suppress": SuppressedByDesign},
	Acked:              {"clear": Normal, "escalate": Unacked, "shelve": Shelved, "remove": OutOfService, "suppress": SuppressedByDesign},
	RTNUnacked:         {"activate": Unacked, "ack": Normal, "shelve": Shelved, "remove": OutOfService, "suppress": SuppressedByDesign},
	Shelved:            {"unshelve": byCondition, "remove": OutOfService},
	SuppressedByDesign: {"unsuppress": byCondition, "remove": OutOfService},
	OutOfService:       {"restore": byCondition},
}

func processCause(c string) bool { return c == "activate" || c == "escalate" || c == "clear" }

func (e *Engine) transition(id, cause string, now time.Time, c *cond, v float64) error {
	a := e.alarms[id]
	if a == nil {
		if !processCause(cause) {
			return fmt.Errorf("%w: %s", ErrUnknownAlarm, id)
		}
		a = &Alarm{ID: id, Device: c.device, Point: c.point, Zone: c.zone, Detector: c.detector, State: Normal}
		e.alarms[id] = a
	}
	from := a.State
	next, ok := transitions[a.State][cause]
	switch {
	case !ok && !processCause(cause):
		return fmt.Errorf("%w: %s %s while %s", ErrIllegalTransition, cause, id, a.State)
	case !ok:
		next = a.State // shelved, suppressed or out of service: the state holds, activity is recorded
	}
	switch cause {
	case "activate", "escalate":
		a.Active = true
		a.Stage, a.Value, a.Unit, a.Text = c.stage, v, c.unit, c.text
		if c.stage >= StageCritical {
			a.Latched = true
		}
	case "clear":
		a.Active = false
	}
	if next == byCondition {
		next = Normal
		if a.Active {
			next = Unacked
		}
	}
	// A latched alarm needs an acknowledgement after it clears, even if acknowledged before.
	if cause == "clear" && a.Latched && next == Normal {
		next = RTNUnacked
	}
	if cause == "ack" && next == Normal {
		a.Latched = false
	}
	a.State = next
	if next != Shelved {
		a.ShelvedUntil = nil
	}
	if next == Shelved || next == SuppressedByDesign {
		e.held[id] = true
	} else {
		delete(e.held, id)
	}
	a.Since = now
	e.seq++
	e.ready.Events = append(e.ready.Events, AlarmEvent{Seq: e.seq, From: from, Cause: cause, At: now, Alarm: *a})
	return nil
}

// operator performs an operator's cause on an alarm.
func (e *Engine) operator(id, cause string, now time.Time) error {
	a := e.alarms[id]
	if a == nil {
		return fmt.Errorf("%w: %s", ErrUnknownAlarm, id)
	}
	c := e.conds[id]
	if c == nil {
		c = &cond{id: id, device: a.Device, point: a.Point, zone: a.Zone, detector: a.Detector, stage: a.Stage}
	}
	return e.transition(id, cause, now, c, a.Value)
}

// Ack acknowledges an alarm.
func (e *Engine) Ack(id string, now time.Time) error { return e.operator(id, "ack", now) }

// Shelve hides an alarm until until; it still counts towards risk, and comes back by itself.
func (e *Engine) Shelve(id string, until, now time.Time) error {
	if !until.After(now) {
		return fmt.Errorf("%w: shelve %s until %s, which is not in the future", ErrIllegalTransition, id, until.Format(time.RFC3339))
	}
	if err := e.operator(id, "shelve", now); err != nil {
		return err
	}
	u := until.UTC()
	e.alarms[id].ShelvedUntil = &u
	e.ready.Events[len(e.ready.Events)-1].Alarm.ShelvedUntil = &u
	return nil
}

// Unshelve returns a shelved alarm before its time.
func (e *Engine) Unshelve(id string, now time.Time) error { return e.operator(id, "unshelve", now) }

// RemoveFromService takes an alarm out of service (its sensor is under maintenance): it is not
// annunciated and its evidence no longer counts towards risk, until ReturnToService.
func (e *Engine) RemoveFromService(id string, now time.Time) error {
	return e.operator(id, "remove", now)
}

// ReturnToService puts an alarm back in service.
func (e *Engine) ReturnToService(id string, now time.Time) error {
	return e.operator(id, "restore", now)
}

// lifecycleTick returns shelved alarms whose time is up, and suppresses by design a BMS-max alarm
// that only repeats what an alarm of one of the rack's own NTCs already says. It looks only at the
// alarms it may change (the active conditions, and alarms shelved or suppressed): it runs per Step.
func (e *Engine) lifecycleTick(now time.Time) {
	if len(e.held) > 0 {
		for _, id := range sortedKeys(e.held) {
			a := e.alarms[id]
			if a.State == Shelved && a.ShelvedUntil != nil && !now.Before(*a.ShelvedUntil) {
				_ = e.operator(id, "unshelve", now)
			}
			if a.State == SuppressedByDesign && !e.duplicate(id) {
				_ = e.operator(id, "unsuppress", now)
			}
		}
	}
	// In id order, not map order: the events this makes must come out the same in replay as live.
	for _, id := range sortedKeys(e.conds) {
		c := e.conds[id]
		if !e.isTmax(c) {
			continue
		}
		if a := e.alarms[id]; a != nil && a.State != SuppressedByDesign && a.State != Shelved && a.State != OutOfService && e.duplicate(id) {
			_ = e.operator(id, "suppress", now)
		}
	}
}

func (e *Engine) isTmax(c *cond) bool {
	d := e.devices[c.device]
	if d == nil {
		return false
	}
	p := d.points[c.point]
	return p != nil && p.role == "cell_temperature"
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
			if op := d.points[o.point]; op != nil && op.role == "module_temperature" {
				return true
			}
		}
	}
	return false
}

// restage recomputes every rack's and zone's stage and records the changes.
func (e *Engine) restage(now time.Time) {
	byScope := map[*scopeState][]*cond{}
	for _, id := range sortedKeys(e.conds) {
		c := e.conds[id]
		if c.modality == Protocol {
			continue // an alarm about the drain protocol, not about the room
		}
		// Independence is judged now, with this batch's peer statistics, not when the condition
		// was raised: a sample seen before its rack's median cannot know if it stands out.
		c.source = e.sourceOf(e.devices[c.device], c.point, c.detector)
		if a := e.alarms[id]; a != nil && a.State == OutOfService {
			continue // under maintenance: its evidence does not count
		}
		if z := e.zones[c.zone]; z != nil {
			byScope[z] = append(byScope[z], c)
		}
		if r := e.racks[c.device]; r != nil {
			byScope[r] = append(byScope[r], c)
		}
	}
	zoneGas := map[string][]*cond{}
	for _, c := range e.conds {
		if c.modality == Protocol {
			continue
		}
		if a := e.alarms[c.id]; a != nil && a.State == OutOfService {
			continue
		}
		if c.modality == Gas && c.stage >= StageWarning {
			zoneGas[c.zone] = append(zoneGas[c.zone], c)
		}
	}
	for _, r := range e.rackList {
		cs, gas := byScope[r], zoneGas[r.zone]
		if len(cs) == 0 && len(gas) == 0 && r.stage == StageNormal && r.lowerSince.IsZero() {
			continue // a quiet rack: apply would assess normal and change nothing
		}
		e.apply(r, cs, gas, now)
	}
	for _, name := range e.zoneNames {
		z := e.zones[name]
		e.apply(z, byScope[z], zoneGas[z.name], now)
	}
}

func (e *Engine) apply(s *scopeState, conds, gas []*cond, now time.Time) {
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
	e.ready.Risk = append(e.ready.Risk, RiskChange{Scope: s.scope, Name: s.name, Zone: s.zone, From: s.stage,
		To: target, At: now, Since: now, Reason: reason, Evidence: ev})
	s.stage, s.since, s.lowerSince = target, now, time.Time{}
}

// assess is DESIGN's staging rule over a scope's active conditions: the highest single signal,
// where a lone stage-2 signal stays at 2 and two independent stage-2 signals make 3; a BMS gone
// silent while the zone has gas is evidence, not "unknown".
func assess(conds, zoneGas []*cond, live bool) (Stage, []Evidence, string) {
	// silent: the device failed its polls; or, in a trace (not live), left no rows.
	silent := func(c *cond) bool { return c.detector == "comm_lost" || (!live && c.detector == "no_data") }
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
		ev[i] = Evidence{Alarm: c.id, Device: c.device, Point: c.point, Detector: c.detector, Modality: c.modality,
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

// persisted says whether the last k samples were all at least v: a spike is one sample.
func persisted(h []obs, k int, v float64) bool {
	if len(h) < k {
		return false
	}
	for _, o := range h[len(h)-k:] {
		if o.v < v {
			return false
		}
	}
	return true
}

// fit keeps the sums of a least-squares line through a sliding window, so the slope costs O(1)
// per sample. x is minutes since origin; the origin moves forward (and the sums are rebuilt from
// the window) once an hour, so the sums never grow large enough to lose precision.
type fit struct {
	origin              time.Time
	n, sx, sy, sxx, sxy float64
}

func (f *fit) x(t time.Time) float64 { return t.Sub(f.origin).Minutes() }

// add takes o, already appended to h (the window it belongs to).
func (f *fit) add(h []obs, o obs) {
	if f.origin.IsZero() || o.t.Sub(f.origin) > time.Hour {
		*f = fit{origin: h[0].t}
		for _, p := range h[:len(h)-1] {
			f.accumulate(p, 1)
		}
	}
	f.accumulate(o, 1)
}

func (f *fit) remove(o obs) { f.accumulate(o, -1) }

func (f *fit) accumulate(o obs, sign float64) {
	x := f.x(o.t)
	f.n += sign
	f.sx += sign * x
	f.sy += sign * o.v
	f.sxx += sign * x * x
	f.sxy += sign * x * o.v
}

// slopePerMin is the window's least-squares slope per minute, and how many samples it rests on.
func (f *fit) slopePerMin() (float64, int) {
	den := f.n*f.sxx - f.sx*f.sx
	if f.n < 2 || den <= 1e-12 {
		return 0, int(f.n)
	}
	return (f.n*f.sxy - f.sx*f.sy) / den, int(f.n + 0.5)
}

// sustainedRise reports the mean rate over the last span if every step within it rose at least
// rate per second and the steps cover the span; a single spike or a step change does not.
func sustainedRise(h []obs, now time.Time, span time.Duration, rate float64) (float64, bool) {
	if len(h) < 3 {
		return 0, false
	}
	i := len(h) - 1
	for i > 0 && now.Sub(h[i-1].t) <= span+span/2 {
		i--
	}
	seg := h[i:]
	if len(seg) < 3 || seg[len(seg)-1].t.Sub(seg[0].t) < span {
		return 0, false
	}
	for k := 1; k < len(seg); k++ {
		dt := seg[k].t.Sub(seg[k-1].t).Seconds()
		if dt <= 0 {
			continue // a repeated timestamp (a retried poll) says nothing about the rate
		}
		if (seg[k].v-seg[k-1].v)/dt < rate {
			return 0, false
		}
	}
	total := seg[len(seg)-1].t.Sub(seg[0].t).Seconds()
	return (seg[len(seg)-1].v - seg[0].v) / total, true
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// MaxReading is the largest magnitude the engine takes as a reading: beyond every physical
// quantity a power room measures in any unit it uses, and small enough that the window fits'
// sums of squares stay finite.
const MaxReading = 1e12

// finite says whether v is a number JSON can carry (not NaN, not an infinity).
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// round3 rounds to three decimals; a value beyond 1e15 has no fraction a float can hold, and
// v*1000 could overflow to an infinity (found by FuzzReplay with 1e308).
func round3(v float64) float64 {
	if math.Abs(v) > 1e15 || !finite(v) {
		return v
	}
	return math.Round(v*1000) / 1000
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
