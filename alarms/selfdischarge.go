package alarms

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

// Battery is what a rack's cells are, for self_discharge: the capacity and the open-circuit
// voltage's slope where the string floats (its chemistry preset's, or the cell maker's).
type Battery struct {
	CapacityAh       float64
	OCVSlopeMVPerPct float64
}

// self_discharge finds a cell that leaks (a micro short) while the UPS floats, days before it
// warms. In a series string every cell carries the same current, so a cell with a leak I loses
// I·t of charge against its peers and its voltage falls against theirs by the chemistry's OCV
// slope near full (about 3.5 mV a day for 10 mA on a 68 Ah NMC cell); a BMS that balances
// passively bleeds its module-mates down after it, so a module's lowest cell carries the same
// fall. What is measured:
//
//   - each cell-voltage channel (a cell, or a module's lowest where the BMS gives only that)
//     against the rack's median of the same channels, sample by sample: a whole rack or room
//     moving together (a float change, the temperature) cancels;
//   - at rest only: the string current within self_discharge_float_band_a, and that for
//     self_discharge_settle since it last was not (a discharge and its recharge move cells by
//     their slopes, not by their leaks);
//   - averaged per hour (a BMS that rounds to 1 mV or reads noisily is judged by thousands of
//     readings, not one), the hours kept for self_discharge_retain, durably (SelfDischargeState);
//   - its trend over self_discharge_window, fitted by Theil–Sen (the median of the slopes
//     between every two hours: a spike or a missing day does not bend it), on at least
//     self_discharge_min_coverage of rested hours: a constant offset (a channel that always
//     reads 15 mV low) has no trend.
//
// A module is raised at stage 1 (maintenance) when one of its channels falls by at least
// self_discharge_min_drop_mv over the window, steadily (sdConsistent of the slopes negative),
// at a rate that is a leak of at least self_discharge_leak_ma. It is never a drain by itself;
// a temperature warning on its rack while it stands is a second, independent signal (staging).
//
// The estimate: a fall of s mV/h at an OCV slope of k mV/% is s/k % of capacity per hour, so
// I = s/k × capacity_ah × 10 mA (1 % of C Ah is 10·C mAh); the short's resistance is the cell's
// voltage over I.

// sdConsistent is the share of the pairwise slopes of a window that must fall for a trend to be
// a leak (Kendall's tau of 0.6 and more); sdConsistentClear clears it.
const (
	sdConsistent      = 0.8
	sdConsistentClear = 0.65
	sdMinPerHour      = 3 // rested readings an hour needs to count
)

// sdState is one rack's self-discharge history.
type sdState struct {
	restSince time.Time // first rested reading of this rest; zero while not at rest
	hour      int64     // the hour being averaged (Unix hours); 0 before the first
	chans     []*sdChan // by point name
	byName    map[string]*sdChan
	evalNext  bool // judge at the next batch (after a restore)
	scratch   []float64
	lows      []sdLow
	vals      []float64
}

// sdChan is one module's lowest cell (or one cell voltage on no known module): this hour's sum,
// and the closed hours.
type sdChan struct {
	point  string // the module's first cell-voltage point: the alarm's
	lowest string // the cell lowest at the last reading
	module int
	sum    float64
	n      int
	base   int64     // Unix hour of hist[0]
	hist   []float32 // mV from the rack's median, one per hour from base; NaN: not at rest
	stage  Stage
	said   string // the alarm's text when it was last stated
}

// sdFit is a channel's trend over the window.
type sdFit struct {
	hours      int     // rested hours in the window
	span       int64   // from the first to the last, hours
	slope      float64 // mV per hour
	consistent float64 // share of pairwise slopes below zero
	last       float64 // the latest hour's mV from the median
	leakMA     float64
}

// selfDischarge is the pass of a rack with a battery.
func (e *Engine) selfDischarge(d *devState, now time.Time) {
	b := d.info.Battery
	if b == nil {
		return
	}
	sd := d.sd
	if sd == nil {
		sd = &sdState{byName: map[string]*sdChan{}}
		d.sd = sd
	}
	if h := now.Unix() / 3600; h > sd.hour {
		if sd.hour > 0 {
			e.closeHour(d, sd, now)
		}
		sd.hour = h
	} else if sd.evalNext {
		sd.evalNext = false
		e.judgeLeaks(d, sd, now)
	}
	if !d.currentAt.Equal(now) || d.suspect != "" {
		// No current in this batch (a failed poll, a bad reading): neither rest nor not; a
		// device whose readings are no evidence (frozen) adds nothing either.
		return
	}
	if math.Abs(d.currentA) > e.th.SelfDischargeFloatBandA {
		sd.restSince = time.Time{}
		return
	}
	if sd.restSince.IsZero() {
		sd.restSince = now
	}
	if now.Sub(sd.restSince) < e.th.SelfDischargeSettle {
		return
	}
	// A module's lowest cell: balancing only ever bleeds a cell down towards it, never below, so
	// a leak is the only thing that takes it down against the other modules' lowest.
	names, vals, pss := d.goodByRole(sample.CellVoltage)
	lows := sd.lows[:0]
next:
	for i, n := range names {
		if pss[i].held {
			continue // its register block stands still (frozen.go)
		}
		m := int(pss[i].module)
		for k := range lows {
			if l := &lows[k]; m > 0 && l.module == m {
				if vals[i] < l.v {
					l.v, l.cell = vals[i], n
				}
				if natLess(n, l.point) {
					l.point = n // the module's first point, as the profile numbers them
				}
				continue next
			}
		}
		lows = append(lows, sdLow{point: n, cell: n, module: m, v: vals[i]})
	}
	sd.lows = lows
	if len(lows) < 3 {
		return
	}
	vs := sd.vals[:0]
	for _, l := range lows {
		vs = append(vs, l.v)
	}
	sd.vals = vs
	med := d.median(vs)
	for _, l := range lows {
		c := sd.byName[l.point]
		if c == nil {
			c = &sdChan{point: l.point, module: l.module}
			sd.byName[l.point] = c
			sd.chans = append(sd.chans, c)
			sort.Slice(sd.chans, func(i, j int) bool { return sd.chans[i].point < sd.chans[j].point })
		}
		c.sum += (l.v - med) * 1000
		c.n++
		c.lowest = l.cell
	}
}

// natLess orders point names as their profile numbers them: cell_v_9 before cell_v_10.
func natLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// sdLow is a module's lowest cell in one batch: the channel's name (the module's first cell
// point, in name order) and the cell that is lowest now.
type sdLow struct {
	point, cell string
	module      int
	v           float64
}

// closeHour files the hour just ended and judges the rack.
func (e *Engine) closeHour(d *devState, sd *sdState, now time.Time) {
	keep := int64(e.th.SelfDischargeRetain / time.Hour)
	for _, c := range sd.chans {
		v := float32(math.NaN())
		if c.n >= sdMinPerHour {
			v = float32(c.sum / float64(c.n))
		}
		c.sum, c.n = 0, 0
		c.put(sd.hour, v, keep)
	}
	e.sdDirty = true
	e.judgeLeaks(d, sd, now)
}

// put files hour h (gaps in between are NaN), keeping the last keep hours.
func (c *sdChan) put(h int64, v float32, keep int64) {
	if len(c.hist) == 0 {
		c.base = h
	}
	if h < c.base+int64(len(c.hist)) {
		return // an hour already filed (a clock set back): the first word stands
	}
	for c.base+int64(len(c.hist)) < h {
		c.hist = append(c.hist, float32(math.NaN()))
	}
	c.hist = append(c.hist, v)
	if over := int64(len(c.hist)) - keep; over > 0 {
		c.hist = slices.Delete(c.hist, 0, int(over))
		c.base += over
	}
}

// trendOf is the channel's Theil–Sen trend over the hours (from, end].
func trendOf(c *sdChan, b *Battery, from, end int64, scratch *[]float64) sdFit {
	var f sdFit
	type pt struct {
		h int64
		v float64
	}
	var pts []pt
	for i, v := range c.hist {
		if h := c.base + int64(i); h > from && h <= end && !math.IsNaN(float64(v)) {
			pts = append(pts, pt{h, float64(v)})
		}
	}
	f.hours = len(pts)
	if len(pts) < 2 {
		return f
	}
	f.span = pts[len(pts)-1].h - pts[0].h
	f.last = pts[len(pts)-1].v
	slopes := (*scratch)[:0]
	neg := 0
	for i := range pts {
		for j := i + 1; j < len(pts); j++ {
			s := (pts[j].v - pts[i].v) / float64(pts[j].h-pts[i].h)
			slopes = append(slopes, s)
			if s < 0 {
				neg++
			}
		}
	}
	*scratch = slopes
	f.slope = medianInPlace(slopes)
	f.consistent = float64(neg) / float64(len(slopes))
	f.leakMA = -f.slope / b.OCVSlopeMVPerPct * b.CapacityAh * 10
	return f
}

// judgeLeaks raises or clears each module's self_discharge from its channels' trends. Without
// the coverage to judge, a module stays as it was.
func (e *Engine) judgeLeaks(d *devState, sd *sdState, now time.Time) {
	b := d.info.Battery
	minHours := int(e.th.SelfDischargeMinCoverage / time.Hour)
	end := sd.hour
	if now.Unix()/3600 > sd.hour {
		end = now.Unix()/3600 - 1
	}
	for _, c := range sd.chans {
		e.judgeModule(d, sd, b, c, end, minHours, now)
	}
}

// judgeModule raises or clears one module's self_discharge from its lowest cell's trend. Without
// the coverage to judge, it stays as it was.
func (e *Engine) judgeModule(d *devState, sd *sdState, b *Battery, c *sdChan, end int64, minHours int, now time.Time) {
	// Windows from the coverage minimum up to self_discharge_window, in steps of the minimum: a
	// cell that leaks falls against its module-mates first and only then takes its module's
	// lowest down, so the fall starts inside a long window, whose fit it would bend flat; the
	// window that shows the leak steadiest and fastest is the one that speaks.
	var f sdFit
	judged, on := false, false
	for w := minHours; w <= int(e.th.SelfDischargeWindow/time.Hour); w += minHours {
		g := trendOf(c, b, end-int64(w), end, &sd.scratch)
		if g.hours < minHours || g.span < int64(minHours-1) {
			continue
		}
		gOn := e.leaks(g, c.stage == StageWatch)
		if !judged || (gOn && (!on || g.leakMA > f.leakMA)) || (!gOn && !on && g.leakMA > f.leakMA) {
			f, on = g, gOn
		}
		judged = true
	}
	if !judged {
		return
	}
	st := StageNormal
	if on {
		st = StageWatch
	}
	was := c.stage
	c.stage = st
	defer func() {
		// A standing alarm whose estimate moved is stated again, once an hour at most.
		if id := d.id(c.point, SelfDischarge); was == StageWatch && st == StageWatch && e.conds[id] != nil {
			if a := e.book.alarms[id]; a != nil && a.Text != c.said {
				e.ready.Restated = append(e.ready.Restated, Restated{At: now, Alarm: *a})
			}
		}
		if a := e.book.alarms[d.id(c.point, SelfDischarge)]; a != nil {
			c.said = a.Text
		}
	}()
	e.setCond(d, c.point, SelfDischarge, st, round3(f.leakMA), "mA", func() string {
		where := c.point
		if c.module > 0 {
			where = fmt.Sprintf("module %d", c.module)
			if c.lowest != "" && c.lowest != c.point {
				where += " (" + c.lowest + ")"
			}
		}
		ohms := ""
		if p := d.point(c.lowest); p != nil && p.last > 0 && f.leakMA > 0 {
			ohms = fmt.Sprintf(" (≈ %.0f Ω)", p.last/(f.leakMA/1000))
		}
		stands := fmt.Sprintf("%.0f mV below its peers", -f.last)
		if f.last > 0 {
			stands = fmt.Sprintf("%.0f mV above its peers (its offset)", f.last)
		}
		return fmt.Sprintf("%s %s: leaking about %.0f mA%s, %s and falling %.1f mV/day",
			d.info.Name, where, f.leakMA, ohms, stands, -f.slope*24)
	}, now)
}

// leaks says whether a window's trend is a leak; one already found (raised) stays until it is
// plainly gone (hysteresis).
func (e *Engine) leaks(f sdFit, raised bool) bool {
	drop := -f.slope * float64(f.span)
	if f.leakMA >= e.th.SelfDischargeLeakMA && drop >= e.th.SelfDischargeMinDropMV && f.consistent >= sdConsistent {
		return true
	}
	return raised && f.leakMA >= e.th.SelfDischargeLeakMA/2 && drop >= e.th.SelfDischargeMinDropMV/2 && f.consistent >= sdConsistentClear
}

// The self-discharge history on disk: "FBSD", a version byte, then per rack its name, the hour
// being averaged, and per channel its point, module, first hour and one int16 per hour (0.01 mV
// from the rack's median; sdMissing: not at rest). A room of 40 racks of 16 modules keeps 30
// days in under a megabyte.
const (
	sdMagic     = "FBSD\x01"
	sdMissing   = math.MinInt16
	sdMaxChans  = 4096
	sdMaxHours  = 60 * 24
	sdMaxName   = 1024
	sdMaxDevice = 100000
)

// SelfDischargeDirty says whether an hour was closed since SelfDischargeState was last taken
// (asked after every batch: one flag, not a walk of the room).
func (e *Engine) SelfDischargeDirty() bool { return e.sdDirty }

// SelfDischargeState is the hourly history of every rack, for state_dir (see sdMagic).
func (e *Engine) SelfDischargeState() []byte {
	out := []byte(sdMagic)
	names := sortedKeys(e.devices)
	var racks []*devState
	for _, n := range names {
		if d := e.devices[n]; d.sd != nil {
			racks = append(racks, d)
		}
	}
	e.sdDirty = false
	out = binary.LittleEndian.AppendUint32(out, uint32(len(racks)))
	for _, d := range racks {
		sd := d.sd
		out = appendName(out, d.info.Name)
		out = binary.LittleEndian.AppendUint64(out, uint64(sd.hour))
		out = binary.LittleEndian.AppendUint16(out, uint16(len(sd.chans)))
		for _, c := range sd.chans {
			out = appendName(out, c.point)
			out = binary.LittleEndian.AppendUint16(out, uint16(c.module))
			out = binary.LittleEndian.AppendUint64(out, uint64(c.base))
			out = binary.LittleEndian.AppendUint16(out, uint16(len(c.hist)))
			for _, v := range c.hist {
				q := int16(sdMissing)
				if !math.IsNaN(float64(v)) {
					q = int16(math.Round(math.Max(-327.67, math.Min(327.67, float64(v))) * 100))
				}
				out = binary.LittleEndian.AppendUint16(out, uint16(q))
			}
		}
	}
	return out
}

func appendName(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// RestoreSelfDischarge loads a history written by SelfDischargeState into a fresh engine: racks
// and channels no longer configured are left out, and each rack is judged again at its next
// reading, so that a leak found before a restart is raised again at once. A damaged history is an
// error that changes nothing.
func (e *Engine) RestoreSelfDischarge(b []byte, now time.Time) error {
	r := sdReader{b: b}
	if string(r.take(len(sdMagic))) != sdMagic {
		return errors.New("self-discharge history: not a Firebreak self-discharge file (or another version)")
	}
	n := int(r.u32())
	if n > sdMaxDevice {
		return fmt.Errorf("self-discharge history: %d racks", n)
	}
	states := map[string]*sdState{}
	keep := int(e.th.SelfDischargeRetain / time.Hour)
	for i := 0; i < n && r.err == nil; i++ {
		name := r.name()
		sd := &sdState{byName: map[string]*sdChan{}, hour: int64(r.u64()), evalNext: true}
		nc := int(r.u16())
		if nc > sdMaxChans {
			r.fail(fmt.Sprintf("rack %q has %d channels", name, nc))
		}
		for j := 0; j < nc && r.err == nil; j++ {
			c := &sdChan{point: r.name(), module: int(r.u16()), base: int64(r.u64())}
			nh := int(r.u16())
			if nh > sdMaxHours {
				r.fail(fmt.Sprintf("rack %q channel %q has %d hours", name, c.point, nh))
				break
			}
			c.hist = make([]float32, nh)
			for k := range c.hist {
				q := int16(r.u16())
				c.hist[k] = float32(math.NaN())
				if q != sdMissing {
					c.hist[k] = float32(q) / 100
				}
			}
			if over := len(c.hist) - keep; over > 0 {
				c.hist = c.hist[over:]
				c.base += int64(over)
			}
			sd.byName[c.point], sd.chans = c, append(sd.chans, c)
		}
		states[name] = sd
	}
	if r.err == nil && r.off != len(b) {
		r.fail(fmt.Sprintf("%d bytes after the last rack", len(b)-r.off))
	}
	if r.err != nil {
		return r.err
	}
	for name, sd := range states {
		d := e.devices[name]
		if d == nil || d.info.Battery == nil {
			continue
		}
		kept := sd.chans[:0]
		for _, c := range sd.chans {
			if m, ok := d.info.Modules[c.point]; ok || d.info.Units[c.point] != "" {
				c.module = m
				kept = append(kept, c)
			} else {
				delete(sd.byName, c.point)
			}
		}
		sd.chans = kept
		sort.Slice(sd.chans, func(i, j int) bool { return sd.chans[i].point < sd.chans[j].point })
		if hour := now.Unix() / 3600; sd.hour > hour {
			sd.hour = hour // written by a clock ahead of this one: the open hour starts again
		}
		d.sd = sd
	}
	return nil
}

// sdReader reads SelfDischargeState's format, remembering the first thing wrong.
type sdReader struct {
	b   []byte
	off int
	err error
}

func (r *sdReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("self-discharge history is damaged at byte %d: %s", r.off, what)
	}
}

func (r *sdReader) take(n int) []byte {
	if r.err != nil || n > len(r.b)-r.off {
		r.fail("it ends early")
		r.off = len(r.b)
		return nil
	}
	out := r.b[r.off : r.off+n]
	r.off += n
	return out
}

func (r *sdReader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *sdReader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *sdReader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *sdReader) name() string {
	n := int(r.u16())
	if n > sdMaxName {
		r.fail(fmt.Sprintf("a name of %d bytes", n))
		return ""
	}
	return string(r.take(n))
}
