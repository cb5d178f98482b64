package alarms

import (
	"fmt"
	"math"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

// baselineTau is how slowly a sensor's offset from its rack's median is learnt while the rack is
// quiet: NTCs sit a few tenths apart for good (where they are glued, the airflow), and a rise is
// measured from that, not from the median.
const baselineTau = 30 * time.Minute

// agreement compares each module temperature with the sensors that must feel the same heat: its
// module's other NTC (its twin) and the NTCs of the modules next to it (repeat.per_module in the
// profile says which is which). It runs after peers.
//
// A real hot cell warms them too, at a lower rate. In the simulator's thermal model (cell to cell
// 0.5 W/K along a module, 0.05 W/K to the same cell of the module above and below, 0.15 W/K to
// the air, 1,100 J/K a cell), the nearest NTC of the next module rises by about 2 % of the hot
// NTC's rise, while the module's far NTC, six cells away, hardly moves within the hour a short
// takes: +0.7 °C of support for +36 °C at 60 °C (internal-short). So a reading is supported when
// one of those sensors has risen (its rise-window mean, from its quiet offset to the rack's
// median) by at least ConfirmFrac (1 %, half the model's ratio) of its own rise and at least
// ConfirmC (0.15 °C: more than a 0.1 °C register step, far more than the noise of a window mean).
// A drifting NTC has no such support: its twin and its neighbours follow the rack.
//
// A sensor that has stood DisagreeC (5 °C) above its reference (its twin, or without one its
// neighbours) for DisagreeFor (10 min) with no support, while the reference follows the rack and
// nothing else in the rack or the room is hot, is `disagree`: a sensor fault (stage 1), excluded
// from detection, from the rack median and from the support of others, until it has been backed
// for agreeAgain or falls back to its reference. The 10 minutes are what the model needs: a real
// short's neighbour has risen +0.3 °C (twice ConfirmC) 10 minutes after its hot NTC passed 5 °C
// above its twin, and only +0.15 to +0.2 °C 5 minutes after. A sensor seen already apart (a
// restart in the middle of an event) is never called a fault: only one seen leaving its twin.
func (e *Engine) agreement(d *devState, now time.Time) {
	rs := d.members(sample.ModuleTemperature)
	if len(rs.names) < 3 {
		return
	}
	all := d.scr.agree[:0]   // good readings with a window (a disagreeing sensor too: it may agree again)
	means := d.scr.means[:0] // of the sensors that count
	for i, p := range rs.ps {
		if !p.good || p.flapping || p.stuck || p.held || p.fit.n < 1 {
			continue
		}
		m := p.fit.sy / p.fit.n
		all = append(all, agreeSensor{rs.names[i], p, m})
		if !p.disagree {
			means = append(means, m)
		}
	}
	d.scr.agree, d.scr.means = all, means
	if len(means) < 3 {
		return
	}
	med := d.median(means)
	quiet := true
	for _, s := range all {
		s.p.offset = s.mean - med
		if math.Abs(s.p.offset) >= e.th.PeerDeltaWatchC {
			quiet = false
		}
	}
	for _, s := range all {
		p := s.p
		switch {
		case !p.baseKnown:
			if quiet {
				p.offBase, p.baseAt, p.baseKnown = p.offset, now, true
			}
		case quiet:
			a := math.Min(1, now.Sub(p.baseAt).Seconds()/baselineTau.Seconds())
			p.offBase += a * (p.offset - p.offBase)
			p.baseAt = now
		default:
			p.baseAt = now // frozen while the rack is not quiet: an event is not the baseline
		}
		p.rise = p.offset
		if p.baseKnown {
			p.rise = p.offset - p.offBase
		}
	}
	if quiet && len(means) == len(all) {
		// Nothing stands 5 °C off the median and no sensor disagrees: none can be alone, and
		// none is hot enough for its support to be asked. The common case, per poll.
		for _, s := range all {
			s.p.supported, s.p.loneSince = false, time.Time{}
			s.p.seenAgree = true
		}
		return
	}
	perModule := map[int32]int{}
	for _, h := range all {
		perModule[h.p.module]++
	}
	for _, h := range all {
		p := h.p
		// Supporters: the twin and the next modules' sensors (any other sensor where the profile
		// does not say which module is which), never one that disagrees itself.
		var support float64
		var by string
		refRise, refOffset, refs := math.Inf(-1), 0.0, 0
		for _, o := range all {
			if o.p == p || o.p.disagree {
				continue
			}
			twin := p.module > 0 && o.p.module == p.module
			next := p.module > 0 && o.p.module > 0 && (o.p.module == p.module-1 || o.p.module == p.module+1)
			if p.module > 0 && !twin && !next {
				continue
			}
			if by == "" || o.p.rise > support {
				support, by = o.p.rise, o.name
			}
			if twin || (next && perModule[p.module] < 2) {
				if o.p.rise > refRise {
					refRise, refOffset = o.p.rise, o.p.offset
				}
				refs++
			}
		}
		need := math.Max(e.th.ConfirmC, e.th.ConfirmFrac*p.rise)
		p.supported, p.supportBy, p.supportC = by != "" && support >= need, by, support
		if refs == 0 {
			continue // no module known: nothing to disagree with
		}
		gap := p.rise - refRise
		if gap < e.th.DisagreeC {
			p.seenAgree = true
		}
		// Alone: nothing else in the rack is hot (another NTC, the BMS's max above this one, a
		// critical condition), no gas in the room, and its reference follows the rack.
		was := p.disagree
		candidate := was || (gap >= e.th.DisagreeC && !p.supported)
		alone := candidate && math.Abs(refOffset) < e.th.PeerDeltaWatchC && e.restQuiet(d, all, p)
		backed := heldFor(p.supported || !alone, &p.backedSince, now, agreeAgain)
		switch {
		case was:
			p.disagree = !(backed || gap < e.th.DisagreeC-e.th.TempDeadbandC)
		default:
			lone := p.seenAgree && gap >= e.th.DisagreeC && !p.supported && alone
			p.disagree = heldFor(lone, &p.loneSince, now, e.th.DisagreeFor)
		}
		if p.disagree == was {
			continue
		}
		st := StageNormal
		if p.disagree {
			st = StageWatch
			e.clearDetectors(d, h.name, now)
		}
		name, v, ref := h.name, p.last, refRise
		e.setCond(d, name, Disagree, st, v, p.unit, func() string {
			return fmt.Sprintf("%s.%s has risen %.1f °C more than its twin or neighbours (%+.1f °C), and nothing moves with it: a sensor fault; excluded from detection",
				d.info.Name, name, gap, ref)
		}, now)
	}
}

// agreeAgain is how long a disagreeing sensor must be backed (something moves with it, or the rack
// is no longer quiet) before it counts again: support at the edge of ConfirmC must not chatter.
const agreeAgain = 30 * time.Second

// restQuiet says that nothing but p is hot in the rack: no other module temperature off the
// median by PeerDeltaWatchC, the BMS's max no hotter than p, no critical condition on the device,
// no gas in the room. Only then can a climb be one sensor's.
func (e *Engine) restQuiet(d *devState, all []agreeSensor, p *pointState) bool {
	for _, o := range all {
		if o.p != p && !o.p.disagree && math.Abs(o.p.offset) >= e.th.PeerDeltaWatchC {
			return false
		}
	}
	for _, n := range d.names(sample.CellTemperature) {
		if o := d.point(n); o.good && o.last > p.last+e.th.TempDeadbandC {
			return false
		}
	}
	for _, c := range e.conds {
		if (c.device == d.info.Name && c.stage >= StageCritical) || (c.zone == d.info.Zone && c.detector.info().ZoneGas && c.stage >= StageWarning) {
			return false
		}
	}
	return true
}

// agreeSensor is one module temperature in agreement's pass: its name, its state and the mean of
// its rise window.
type agreeSensor struct {
	name string
	p    *pointState
	mean float64
}

// confirmation says what confirms a hot, rising reading: a twin or a neighbour warming with it
// (for the BMS's max temperature, with the rack's hottest NTC, which it is), a cell voltage of
// its module off its peers, or gas in the room.
func (e *Engine) confirmation(d *devState, ps *pointState) (string, bool) {
	p := ps
	if p.role == sample.CellTemperature {
		p = nil
		for _, n := range d.names(sample.ModuleTemperature) {
			if o := d.point(n); o.good && !o.excluded() && (p == nil || o.last > p.last) {
				p = o
			}
		}
	}
	if p != nil && p.supported {
		return fmt.Sprintf("%s warming with it (%+.1f °C)", p.supportBy, p.supportC), true
	}
	for _, c := range e.conds {
		if c.zone != d.info.Zone || c.stage < StageWatch {
			continue
		}
		if c.detector.info().ZoneGas && c.stage >= StageWarning {
			return c.text, true
		}
		if c.detector == CellVoltageDev && c.device == d.info.Name && p != nil && p.module > 0 {
			if o := d.point(c.point); o != nil && o.module == p.module {
				return c.text, true
			}
		}
	}
	return "", false
}
