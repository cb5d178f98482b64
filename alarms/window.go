package alarms

import (
	"math"
	"sort"
	"time"
)

// obs is one reading of a history: when (Unix nanoseconds: half the size of a time.Time, and a
// room keeps thousands of these per rack) and what.
type obs struct {
	t int64
	v float64
}

func observe(t time.Time, v float64) obs { return obs{t.UnixNano(), v} }

// since is how long before now an observation was made.
func since(now time.Time, o obs) time.Duration { return time.Duration(now.UnixNano() - o.t) }

// between is the time from a to b.
func between(a, b obs) time.Duration { return time.Duration(b.t - a.t) }

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
	origin              int64 // Unix nanoseconds, once set
	set                 bool
	n, sx, sy, sxx, sxy float64
}

func (f *fit) x(t int64) float64 { return time.Duration(t - f.origin).Minutes() }

// add takes o, already appended to h (the window it belongs to).
func (f *fit) add(h []obs, o obs) {
	if !f.set || time.Duration(o.t-f.origin) > time.Hour {
		*f = fit{origin: h[0].t, set: true}
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
	for i > 0 && since(now, h[i-1]) <= span+span/2 {
		i--
	}
	seg := h[i:]
	if len(seg) < 3 || between(seg[0], seg[len(seg)-1]) < span {
		return 0, false
	}
	for k := 1; k < len(seg); k++ {
		dt := between(seg[k-1], seg[k]).Seconds()
		if dt <= 0 {
			continue // a repeated timestamp (a retried poll) says nothing about the rate
		}
		if (seg[k].v-seg[k-1].v)/dt < rate {
			return 0, false
		}
	}
	total := between(seg[0], seg[len(seg)-1]).Seconds()
	return (seg[len(seg)-1].v - seg[0].v) / total, true
}

func median(v []float64) float64 {
	return medianInPlace(append([]float64(nil), v...))
}

// medianInPlace is the median of s, which it reorders: a selection, linear on average, not a sort.
func medianInPlace(s []float64) float64 {
	n := len(s)
	if n == 0 {
		return math.NaN()
	}
	hi := selectKth(s, n/2)
	if n%2 == 1 {
		return hi
	}
	// The lower middle is the largest of the elements selection left below the upper one.
	lo := s[0]
	for _, x := range s[1 : n/2] {
		lo = max(lo, x)
	}
	return (lo + hi) / 2
}

// selectKth reorders s so that s[k] is the k-th smallest, everything before it no larger and
// everything after no smaller (Hoare's selection, with a median-of-three pivot), and returns it.
func selectKth(s []float64, k int) float64 {
	lo, hi := 0, len(s)-1
	for hi > lo {
		if hi-lo < 12 {
			for i := lo + 1; i <= hi; i++ { // insertion sort of a short range
				for j := i; j > lo && s[j] < s[j-1]; j-- {
					s[j], s[j-1] = s[j-1], s[j]
				}
			}
			break
		}
		mid := lo + (hi-lo)/2
		if s[mid] < s[lo] {
			s[mid], s[lo] = s[lo], s[mid]
		}
		if s[hi] < s[lo] {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if s[hi] < s[mid] {
			s[hi], s[mid] = s[mid], s[hi]
		}
		pivot := s[mid]
		i, j := lo, hi
		for i <= j {
			for s[i] < pivot {
				i++
			}
			for s[j] > pivot {
				j--
			}
			if i <= j {
				s[i], s[j] = s[j], s[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return s[k]
		}
	}
	return s[k]
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
