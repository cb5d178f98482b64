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
	Kind     string // devices of one kind (one profile) are compared with each other
	Interval time.Duration
	Units    map[string]string // point → unit, for evidence
	// Modules says which battery module a point sits on (1-based); points not in it, or 0, are
	// on no known module: their sensors have no twin and no neighbours to agree with.
	Modules map[string]int
	// Blocks says which register block (one Modbus request of the collector's plan) a point is
	// read in; none known, the device is judged as a whole only.
	Blocks map[string]int
	// Battery, for a rack, is its cells' capacity and OCV slope: self_discharge runs on it only
	// with one.
	Battery *Battery
}

// Topology is the site as the engine sees it.
type Topology struct {
	Devices []DeviceInfo
	Zones   []string
	Rules   []Rule
}

// Engine is the detection state machine. It is not safe for concurrent use: one owner steps it.
type Engine struct {
	th      Thresholds
	devices map[string]*devState
	sdDirty bool // self_discharge closed an hour since its state was last taken
	zones   map[string]*scopeState
	racks   map[string]*scopeState
	// zoneNames and rackNames are the keys above in order, kept so that restaging (per batch)
	// does not sort hundreds of names every time.
	zoneNames, rackNames []string
	rackList             []*scopeState        // racks[rackNames[i]]
	unquiet              map[*scopeState]bool // racks not at stage 0 or holding a higher one
	scrRacks             []*scopeState        // restage's scratch
	conds                map[string]*cond
	book                 *book // every alarm's lifecycle
	live                 bool
	rules                map[string][]*ruleState // by device.point
	infos                map[infoKey]*pointInfo  // the points' shared pointInfos (intern)
	names                map[string]*string      // point names for slots (name)
	scr                  scratch                 // every device's scratch buffers (one device is stepped at a time)
	lists                nameLists               // the devices' sorted point names per role, one copy of each
	chatter              map[string]*chatter     // by alarm id: recent activations and delays
	started              time.Time
	ready                Ready
}

// scratch is the buffers the detectors of one device reuse from poll to poll. The engine steps
// one device at a time and no detector keeps a result past its own pass, so every device shares
// the engine's (500 racks kept 2.5 MB of copies).
type scratch struct {
	names []string
	vals  []float64
	ps    []*pointState
	med   []float64
	agree []agreeSensor
	means []float64
}

type devState struct {
	info   DeviceInfo
	points []*pointState            // sorted by name (point finds one)
	ids    map[idKey]string         // (point, detector) → alarm id, built once
	nconds int                      // active conditions on this device: none is the common case
	byRole map[sample.Role]*roleSet // sorted points per role, rebuilt when a point appears
	// slots is what Step needs of each sample of a batch, by its index: a poller sends a
	// device's points in the same order every time, so the hot path looks nothing up by name
	// (a slot whose point is not the sample's is filled again from the maps).
	slots []slot
	// slab holds the device's point states side by side (they are read in order every poll).
	slab      []pointState
	scr       *scratch  // the engine's: goodByRole's and median's results are used before the next call
	lists     nameLists // the engine's
	lastOK    time.Time
	lastErrAt time.Time
	lastErr   string
	currentA  float64
	currentAt time.Time // when currentA was read
	sd        *sdState  // self_discharge's history (selfdischarge.go); nil without a battery
	// suspect, if set, is the detector that found the whole device's readings to be no evidence
	// (frozen): they go to no detector until it clears, and its conditions stand as they were.
	suspect DetectorID
	// frozenAt is when frozen.go last looked at the device (it looks every frozenEvery).
	frozenAt time.Time
}

// slot is one sample position of a device's batches: its point and its state (nil: no detector
// reads it).
type slot struct {
	point *string // the engine's one copy of the name (a room has 100,000 slots); nil not filled
	ps    *pointState
}

// roleSet is a role's points of a device, sorted by name.
type roleSet struct {
	names []string
	ps    []*pointState
}

// pointState is what the engine keeps of one point of a device. A room holds tens of thousands
// (a rack's cell voltages are most of them), and every poll reads each: the fields every sample
// touches come first, in one cache line; what only temperatures need, and a history, hang off it
// for the points that have them (a cell voltage's state is a fifth of a temperature's).
type pointState struct {
	last         float64
	lastChange   int64   // UnixNano of the last time the reading changed at all (or was first seen); 0 never
	moved        int64   // UnixNano of the last time it changed from a reading before it; 0 never
	medianAtChng float64 // the rack's median for this role when the reading last changed
	baseline     float64 // off-gas
	*pointInfo
	good     bool
	hasPrev  bool
	held     bool // its block is frozen: no evidence until it moves (frozen.go)
	flapping bool
	stuck    bool
	disagree bool
	gasOn    bool

	*trend // temperatures and points with a rate rule; nil for the others
	*heat  // temperatures (cell and module); nil for the others
}

// pointInfo is what does not change of a point: its name, role, unit and place in the rack, and
// the site's rules on it. The same point of every device of a profile shares one (500 racks,
// one module_temp_3), so a point state carries a pointer, not 56 bytes of strings and numbers;
// a point with rules has its own.
type pointInfo struct {
	name   string
	role   sample.Role
	unit   string
	module int32 // 1-based; 0 unknown
	block  int32 // register block; -1 unknown
	rules  []*ruleState
}

// A room holds one pointState per point (100,000 at 500 racks of 200), so its times are kept as
// UnixNano, 8 bytes instead of time.Time's 24, and read back through these.
func (p *pointState) lastChangeAt() time.Time { return fromNanos(p.lastChange) }
func (p *pointState) movedAt() time.Time      { return fromNanos(p.moved) }

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// trend is a point's readings within the longest detector window and their running fit.
type trend struct {
	hist []obs // good samples within the longest detector window: a view of buf
	buf  []obs
	fit  fit // running least-squares sums over hist
}

// push appends o to the history, moving the window back to the start of its buffer when it
// reaches the end (so a sliding window allocates only while it grows, and its buffer is at most a
// quarter larger than the window: a room keeps thousands; the move copies the window once every
// quarter of it, four readings per reading).
func (t *trend) push(o obs) {
	if len(t.hist) == cap(t.hist) {
		if n := len(t.hist); n+n/4 <= len(t.buf) {
			copy(t.buf, t.hist)
			t.hist = t.buf[:n]
		} else {
			t.buf = make([]obs, n+n/4+8)
			copy(t.buf, t.hist)
			t.hist = t.buf[:n]
		}
	}
	t.hist = append(t.hist, o)
}

// heat is what a temperature point keeps besides the rest.
type heat struct {
	tempLevel Stage
	peerLevel Stage
	riseSince time.Time

	// plausibility
	lastJumpAt time.Time // when the last run of steps larger than MaxStepC began
	jumps      []jump    // such steps within FlapWindow
	peerDelta  float64   // last deviation from the rack's median (module temperatures)
	peerKnown  bool

	// agreement (module temperatures): the offset of the window mean from the rack's median, its
	// quiet baseline, the rise from it; whether a twin or a neighbour moves with it (and which,
	// by how much); whether it stands alone, and since when
	offset, offBase, rise  float64
	baseKnown              bool
	baseAt                 time.Time
	supported              bool
	supportBy              string
	supportC               float64
	seenAgree              bool
	loneSince, backedSince time.Time
}

// jump is a step of a reading larger than MaxStepC: when, and whether up.
type jump struct {
	t  time.Time
	up bool
}

// excluded says the sensor is known bad: its readings feed no detector and no peer statistic.
func (p *pointState) excluded() bool { return p.flapping || p.stuck || p.disagree || p.held }

// Option changes how an engine reads its input.
type Option func(*Engine)

// LivePoller says the samples come from a live poller, which sends a batch (with its error) for
// every failed attempt: then a device's silence shows in its failed polls at once, and a device
// with no batch at all is waiting on a late poller, tolerated for NoDataGrace. Without it (replay),
// a device with no rows for its stale limit is silent, as docs/design.md's trace format says.
func LivePoller() Option { return func(e *Engine) { e.live = true } }

// New returns an engine for the topology.
func New(topo Topology, th Thresholds, opts ...Option) *Engine {
	e := &Engine{th: th, devices: map[string]*devState{}, zones: map[string]*scopeState{},
		racks: map[string]*scopeState{}, conds: map[string]*cond{}, book: newBook(), rules: map[string][]*ruleState{}, infos: map[infoKey]*pointInfo{}, names: map[string]*string{}, lists: nameLists{},
		chatter: map[string]*chatter{}, unquiet: map[*scopeState]bool{}}
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
		e.devices[d.Name] = &devState{info: d, ids: map[idKey]string{}, byRole: map[sample.Role]*roleSet{}, scr: &e.scr, lists: e.lists}
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
	for _, a := range e.book.alarms {
		if a.State != Normal {
			out = append(out, *a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// window is how far a device's readings are kept for their trend: the rise window, but at least
// trendIntervals of its polls, so that a BMS polled every 45 s (a slow link shared by many racks)
// still has a trend to judge.
func (e *Engine) window(d *devState) time.Duration {
	return max(e.th.RiseWindow, e.th.RunawayFor*4, trendIntervals*d.info.Interval)
}

// trendIntervals is how many poll intervals a device's trend window spans at least.
const trendIntervals = 4

// trendMin is how many readings a trend (a slope over the window) rests on at least: a line
// through two is no trend. Not more: on a starved link (a poll timing out holds the others up)
// a window may hold only a few readings, and a hot, rising cell must still be seen rising.
const trendMin = 3

// Step feeds one poll of one device.
func (e *Engine) Step(b sample.Batch) {
	d := e.devices[b.Device]
	if d == nil {
		return // not in the topology: the caller validated the config, so this is a stray
	}
	e.touch(b.At)
	if b.Err == nil {
		d.lastOK = b.At
		e.setCond(d, "", CommLost, StageNormal, 0, "", noText, b.At)
		e.setCond(d, "", NoData, StageNormal, 0, "", noText, b.At)
	} else {
		d.lastErrAt, d.lastErr = b.At, b.Err.Error()
	}
	// A device most of whose points read nothing plausible at once (a BMS in a fault state, a
	// gateway answering exceptions) is one fault, not one alarm per point: one device alarm, its
	// points named in it (issue 22: one failing device raised 31 alarms, a flood by itself).
	bad, named := e.badPoints(b)
	wholeDevice := bad >= deviceFaultMin && 2*bad >= named
	if n := len(b.Samples); len(d.slots) < n {
		// A poll's batch has the same points every time: one slot each, no spare capacity (500
		// racks of 200 points grown one slot at a time kept 1.5 MB of it).
		d.slots = append(make([]slot, 0, n), d.slots...)[:n]
	}
	if d.slab == nil {
		// The first poll says how many point states the device needs: those of the points a
		// detector reads (sized by every point, 500 racks with 60 plain registers each kept 2.8 MB
		// of unused states). A point first read later starts a slab of 16.
		need := 0
		for _, s := range b.Samples {
			if s.Role != "" || e.rules[b.Device+"."+s.Point] != nil {
				need++
			}
		}
		d.slab = make([]pointState, 0, max(need, 1))
	}
	for i, s := range b.Samples {
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
		var sl *slot
		if i < len(d.slots) && d.slots[i].point != nil && *d.slots[i].point == s.Point {
			sl = &d.slots[i]
		} else {
			sl = e.fillSlot(d, i, s)
		}
		ps := sl.ps
		if ps == nil {
			continue
		}
		e.sensorHealth(d, s, ps, wholeDevice)
		if s.Quality != sample.Good {
			continue
		}
		e.plausibility(d, s, ps)
		ps.last, ps.good, ps.hasPrev = s.Value, true, true
		if d.suspect != "" || ps.held {
			continue
		}
		// Only temperatures (rise, runaway, confirmation) and points with a rate rule look back;
		// the rest (cell voltages are most points of a rack) keep no history: memory and time.
		if ps.trend != nil {
			o := observe(s.At, s.Value)
			ps.push(o)
			ps.fit.add(ps.hist, o)
			cut := 0
			// The window, but never fewer than trendMin readings: a device polled a minute apart
			// (its link timing out, rested by the poller) still has a trend, over the readings it has.
			for cut < len(ps.hist)-trendMin && since(s.At, ps.hist[cut]) > e.window(d) {
				ps.fit.remove(ps.hist[cut])
				cut++
			}
			ps.hist = ps.hist[cut:]
		}
		if ps.excluded() {
			e.clearDetectors(d, s.Point, s.At)
			continue
		}
		e.applyRules(d, s, ps, ps.rules)
		e.detect(d, s, ps)
	}
	e.deviceHealth(d, b, bad, named, wholeDevice)
	for _, pass := range devicePasses {
		pass(e, d, b.At)
	}
	if _, isRack := e.racks[d.info.Name]; !isRack && d.isRack() {
		e.rack(d)
	}
	e.lifecycleTick(b.At)
	e.restage(b.At)
}

// fillSlot (re)fills slot i of a device for sample s, creating the point's state the first time
// a detector has a reading of it.
func (e *Engine) fillSlot(d *devState, i int, s sample.Sample) *slot {
	if len(d.slots) <= i {
		// Step has made room for the batch: this is a sample past it (none in practice).
		d.slots = append(d.slots, make([]slot, i+1-len(d.slots))...)
	}
	sl := &d.slots[i]
	*sl = slot{point: e.name(s.Point)}
	rules := e.rules[s.Device+"."+s.Point]
	if s.Role == "" && rules == nil {
		return sl
	}
	if sl.ps = d.point(s.Point); sl.ps != nil {
		return sl
	}
	if len(d.slab) == cap(d.slab) {
		d.slab = make([]pointState, 0, 16)
	}
	d.slab = d.slab[:len(d.slab)+1]
	ps := &d.slab[len(d.slab)-1]
	info := pointInfo{name: s.Point, role: s.Role, unit: d.info.Units[s.Point], module: int32(d.info.Modules[s.Point]), block: -1, rules: rules}
	if b, ok := d.info.Blocks[s.Point]; ok {
		info.block = int32(b)
	}
	*ps = pointState{pointInfo: e.intern(info)}
	if s.Role.RackTemperature() {
		ps.heat = &heat{}
	}
	if s.Role.RackTemperature() || hasRateRule(rules) {
		ps.trend = &trend{}
	}
	at, _ := slices.BinarySearchFunc(d.points, s.Point, byName)
	d.points = slices.Insert(d.points, at, ps)
	d.byRole = map[sample.Role]*roleSet{}
	sl.ps = ps
	return sl
}

// name is the engine's one copy of a point name, for slots.
func (e *Engine) name(n string) *string {
	p := e.names[n]
	if p == nil {
		p = &n
		e.names[n] = p
	}
	return p
}

// intern is the engine's one pointInfo equal to info, made the first time; a point with rules
// gets its own (rules are per device and point).
func (e *Engine) intern(info pointInfo) *pointInfo {
	if info.rules != nil {
		return &info
	}
	k := infoKey{info.name, info.role, info.unit, info.module, info.block}
	p := e.infos[k]
	if p == nil {
		p = &info
		e.infos[k] = p
	}
	return p
}

// infoKey is a pointInfo without rules, the key of the engine's shared ones.
type infoKey struct {
	name          string
	role          sample.Role
	unit          string
	module, block int32
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
			// docs/design.md's silent device). Both leave the rack unwatched; only silence escalates.
			age := now.Sub(last)
			if failing {
				e.setCond(d, "", NoData, StageNormal, 0, "", noText, now)
				e.setCond(d, "", CommLost, StageWatch, age.Seconds(), "s", func() string {
					return fmt.Sprintf("%s has not answered for %s: %s", name, age.Round(time.Second), d.lastErr)
				}, now)
			} else {
				e.setCond(d, "", CommLost, StageNormal, 0, "", noText, now)
				e.setCond(d, "", NoData, StageWatch, age.Seconds(), "s", func() string {
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

// rack is a device's rack scope, made when the device first shows that it is a rack.
func (e *Engine) rack(d *devState) *scopeState {
	if r := e.racks[d.info.Name]; r != nil {
		return r
	}
	r := &scopeState{scope: ScopeRack, name: d.info.Name, zone: d.info.Zone}
	e.racks[d.info.Name] = r
	i, _ := slices.BinarySearch(e.rackNames, d.info.Name)
	e.rackNames = slices.Insert(e.rackNames, i, d.info.Name)
	e.rackList = slices.Insert(e.rackList, i, r)
	return r
}

func (d *devState) isRack() bool {
	for _, p := range d.points {
		if p.role.OfRack() {
			return true
		}
	}
	return false
}

// id is the alarm id of a detector on a point (or on the device, for point "").
func (d *devState) id(point string, det DetectorID) string {
	k := idKey{point, det}
	if id, ok := d.ids[k]; ok {
		return id
	}
	id := AlarmID(d.info.Name, point, det)
	d.ids[k] = id
	return id
}

// AlarmID is the id of a detector's alarm on a point of a device (<device>.<point>.<detector>),
// or on the device itself for point "" (<device>.<detector>).
func AlarmID(device, point string, det DetectorID) string {
	if point == "" {
		return device + "." + string(det)
	}
	return device + "." + point + "." + string(det)
}

// names is the sorted point names of a role.
func (d *devState) names(role sample.Role) []string { return d.members(role).names }

// members is a role's points, sorted by name.
func (d *devState) members(role sample.Role) *roleSet {
	if rs, ok := d.byRole[role]; ok {
		return rs
	}
	rs := &roleSet{}
	for _, p := range d.points { // in name order
		if p.role == role {
			rs.names = append(rs.names, p.name)
			rs.ps = append(rs.ps, p)
		}
	}
	rs.names = d.lists.intern(rs.names)
	d.byRole[role] = rs
	return rs
}

// byName orders a device's point states by name, for slices.BinarySearchFunc.
func byName(p *pointState, name string) int { return strings.Compare(p.name, name) }

// point is the state of the named point; nil if no detector has had a reading of it.
func (d *devState) point(name string) *pointState {
	i, ok := slices.BinarySearchFunc(d.points, name, byName)
	if !ok {
		return nil
	}
	return d.points[i]
}

// nameLists keeps one copy of each sorted list of point names: 500 racks of one profile have
// the same 128 cell voltages (1.2 MB of copies).
type nameLists map[string][]string

// intern is the kept list equal to names (names itself the first time).
func (l nameLists) intern(names []string) []string {
	k := strings.Join(names, "\x00")
	if kept, ok := l[k]; ok {
		return kept
	}
	l[k] = names
	return names
}

// goodByRole is a role's points with a good reading that feed detection: their names, readings
// and states, in the device's scratch buffers (valid until the next call).
func (d *devState) goodByRole(role sample.Role) ([]string, []float64, []*pointState) {
	rs := d.members(role)
	names, vals, pss := d.scr.names[:0], d.scr.vals[:0], d.scr.ps[:0]
	for i, p := range rs.ps {
		if p.good && !p.excluded() {
			names = append(names, rs.names[i])
			vals = append(vals, p.last)
			pss = append(pss, p)
		}
	}
	d.scr.names, d.scr.vals, d.scr.ps = names, vals, pss
	return names, vals, pss
}

// median of v, in the device's scratch buffer (v is not changed).
func (d *devState) median(v []float64) float64 {
	d.scr.med = append(d.scr.med[:0], v...)
	return medianInPlace(d.scr.med)
}

// idKey is a (point, detector) pair, the key of a device's alarm ids.
type idKey struct {
	point string
	det   DetectorID
}
