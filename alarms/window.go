package alarms

import (
	"math"
	"sort"
	"time"
)

type obs struct {
	t time.Time
	v float64
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
