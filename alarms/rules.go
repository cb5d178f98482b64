package alarms

import (
	"fmt"
	"strings"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

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

func hasRateRule(rules []*ruleState) bool {
	for _, r := range rules {
		if r.r.RatePerMin != nil {
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
			on, v = n >= trendMin && slope >= *r.RatePerMin, slope
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
		unit := ps.unit
		e.setCond(d, s.Point, ruleDetector(r.Name), st, v, unit, func() string {
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
