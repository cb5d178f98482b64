// Package kpi computes the alarm key performance indicators a site's alarm management review asks
// for (ISA-18.2, EEMUA 191) from what the daemon publishes: alarms per hour, the peak of new
// alarms in 10 minutes (an alarm suppressed by design as it is raised is no new alarm: it was
// never annunciated) and how much of the time was a flood (more than 10 new alarms in a 10-minute
// interval), the most frequent alarms, chattering alarms, the alarms standing at the end, and when
// a drain went out. It is pure: `firebreak replay -summary` feeds it the messages of a backtest.
package kpi

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// The numbers of EEMUA 191 and ISA-18.2 that the report measures against.
const (
	Interval       = 10 * time.Minute // the interval of "new alarms per 10 minutes"
	FloodAbove     = 10               // more new alarms than this in an interval is a flood
	ChatterWithin  = time.Minute      // ChatterCount activations of one alarm within this: chattering
	ChatterCount   = 3
	TopFrequent    = 10
	acceptablePerH = 6 // EEMUA 191: about one new alarm per 10 minutes is manageable
)

// Summary accumulates what a run published.
type Summary struct {
	first, last time.Time
	activations []time.Time            // every new alarm, in order
	byAlarm     map[string][]time.Time // alarm id → its activations
	state       map[string]alarms.Alarm
	firstSignal map[cutover.Action]time.Time
}

// New returns an empty summary.
func New() *Summary {
	return &Summary{byAlarm: map[string][]time.Time{}, state: map[string]alarms.Alarm{}, firstSignal: map[cutover.Action]time.Time{}}
}

// Observe takes the messages published at ts.
func (s *Summary) Observe(ts time.Time, msgs []wire.Message) {
	if s.first.IsZero() {
		s.first = ts
	}
	s.last = ts
	for _, m := range msgs {
		if ev := m.Event; ev != nil {
			s.state[ev.Alarm.ID] = ev.Alarm
			switch ev.Cause {
			case alarms.CauseActivate:
				s.activations = append(s.activations, ev.At)
				s.byAlarm[ev.Alarm.ID] = append(s.byAlarm[ev.Alarm.ID], ev.At)
			case alarms.CauseSuppress:
				// Suppressed by design the moment it was raised: it was never annunciated, so it
				// is no new alarm for the operator (it is still one on its retained topic).
				s.unannounce(ev.Alarm.ID, ev.At)
			}
		}
		if sig := m.Signal; sig != nil {
			if _, seen := s.firstSignal[sig.Action]; !seen {
				s.firstSignal[sig.Action] = sig.IssuedAt
			}
		}
	}
}

// unannounce takes back an activation of id at at, if that was its last.
func (s *Summary) unannounce(id string, at time.Time) {
	ts := s.byAlarm[id]
	if len(ts) == 0 || !ts[len(ts)-1].Equal(at) {
		return
	}
	s.byAlarm[id] = ts[:len(ts)-1]
	if len(s.byAlarm[id]) == 0 {
		delete(s.byAlarm, id)
	}
	for i := len(s.activations) - 1; i >= 0; i-- {
		if s.activations[i].Equal(at) {
			s.activations = append(s.activations[:i], s.activations[i+1:]...)
			return
		}
	}
}

// Report is the summary's figures.
type Report struct {
	Span            time.Duration
	Alarms          int     // new alarms (activations)
	PerHour         float64 // new alarms per hour
	PeakPer10Min    int     // most new alarms in any 10 minutes (sliding)
	PeakAt          time.Time
	FloodShare      float64 // share of the 10-minute intervals (from the start) with more than FloodAbove
	Intervals       int
	Frequent        []Count  // the most frequent alarms, most first
	Chattering      []string // alarms with ChatterCount activations within ChatterWithin
	Standing        []string // alarms in the operator's list at the end (active, or waiting for an ack)
	FirstPrepare    time.Time
	FirstDrain      time.Time // drain or evacuate
	FirstDrainIsEvc bool
}

// Count is one alarm and how often it was raised.
type Count struct {
	ID string
	N  int
}

// Report computes the figures so far.
func (s *Summary) Report() Report {
	r := Report{Span: s.last.Sub(s.first), Alarms: len(s.activations)}
	if h := r.Span.Hours(); h > 0 {
		r.PerHour = float64(r.Alarms) / h
	}
	r.PeakPer10Min, r.PeakAt = peak(s.activations, Interval)
	if r.Span > 0 {
		r.Intervals = int((r.Span + Interval - 1) / Interval)
		counts := make([]int, r.Intervals)
		for _, t := range s.activations {
			if i := int(t.Sub(s.first) / Interval); i >= 0 && i < len(counts) {
				counts[i]++
			}
		}
		flood := 0
		for _, c := range counts {
			if c > FloodAbove {
				flood++
			}
		}
		r.FloodShare = float64(flood) / float64(r.Intervals)
	}
	for id, ts := range s.byAlarm {
		r.Frequent = append(r.Frequent, Count{id, len(ts)})
		if n, _ := peak(ts, ChatterWithin); n >= ChatterCount {
			r.Chattering = append(r.Chattering, id)
		}
	}
	sort.Slice(r.Frequent, func(i, j int) bool {
		if r.Frequent[i].N != r.Frequent[j].N {
			return r.Frequent[i].N > r.Frequent[j].N
		}
		return r.Frequent[i].ID < r.Frequent[j].ID
	})
	if len(r.Frequent) > TopFrequent {
		r.Frequent = r.Frequent[:TopFrequent]
	}
	sort.Strings(r.Chattering)
	for id, a := range s.state {
		// Standing: in the operator's list at the end. Suppressed by design, shelved and out of
		// service alarms are kept from it on purpose; they are not standing.
		switch a.State {
		case alarms.Normal, alarms.SuppressedByDesign, alarms.Shelved, alarms.OutOfService:
		default:
			r.Standing = append(r.Standing, id)
		}
	}
	sort.Strings(r.Standing)
	r.FirstPrepare = s.firstSignal[cutover.Prepare]
	d, e := s.firstSignal[cutover.Drain], s.firstSignal[cutover.Evacuate]
	switch {
	case !d.IsZero() && (e.IsZero() || !e.Before(d)):
		r.FirstDrain = d
	case !e.IsZero():
		r.FirstDrain, r.FirstDrainIsEvc = e, true
	}
	return r
}

// PeakBefore is the most new alarms in any 10 minutes that ended by t (before a runaway, say).
func (s *Summary) PeakBefore(t time.Time) int {
	var ts []time.Time
	for _, a := range s.activations {
		if a.Before(t) {
			ts = append(ts, a)
		}
	}
	n, _ := peak(ts, Interval)
	return n
}

// peak is the largest number of times within any window of length w, and when it began.
func peak(ts []time.Time, w time.Duration) (int, time.Time) {
	best, at, j := 0, time.Time{}, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= w {
			j++
		}
		if n := i - j + 1; n > best {
			best, at = n, ts[j]
		}
	}
	return best, at
}

// Write prints the report for people, the times relative to the run's start.
func (r Report) Write(w io.Writer, start time.Time) {
	rel := func(t time.Time) string { return "T+" + t.Sub(start).Round(time.Second).String() }
	fmt.Fprintf(w, "alarm KPIs over %s (ISA-18.2 / EEMUA 191)\n", r.Span.Round(time.Second))
	fmt.Fprintf(w, "  new alarms             %d, %.1f per hour (manageable: about %d per hour)\n", r.Alarms, r.PerHour, acceptablePerH)
	peakAt := ""
	if r.PeakPer10Min > 0 {
		peakAt = " from " + rel(r.PeakAt)
	}
	fmt.Fprintf(w, "  peak per 10 minutes    %d%s (a flood is more than %d)\n", r.PeakPer10Min, peakAt, FloodAbove)
	fmt.Fprintf(w, "  time in flood          %.0f %% of %d 10-minute intervals\n", 100*r.FloodShare, r.Intervals)
	fmt.Fprintf(w, "  most frequent          ")
	if len(r.Frequent) == 0 {
		fmt.Fprintln(w, "none")
	}
	for i, c := range r.Frequent {
		if i > 0 {
			fmt.Fprint(w, "                         ")
		}
		fmt.Fprintf(w, "%3d  %s\n", c.N, c.ID)
	}
	list := func(name string, ids []string) {
		fmt.Fprintf(w, "  %-22s %d", name, len(ids))
		for _, id := range ids {
			fmt.Fprintf(w, "\n                           %s", id)
		}
		fmt.Fprintln(w)
	}
	list("chattering", r.Chattering)
	list("standing at the end", r.Standing)
	switch {
	case r.FirstDrain.IsZero() && r.FirstPrepare.IsZero():
		fmt.Fprintln(w, "  drain                  none")
	default:
		if !r.FirstPrepare.IsZero() {
			fmt.Fprintf(w, "  prepare                %s\n", rel(r.FirstPrepare))
		}
		if !r.FirstDrain.IsZero() {
			what := "drain"
			if r.FirstDrainIsEvc {
				what = "evacuate"
			}
			fmt.Fprintf(w, "  %-22s %s\n", what, rel(r.FirstDrain))
		}
	}
}

// Start is when the run began (the first message).
func (s *Summary) Start() time.Time { return s.first }
