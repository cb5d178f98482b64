package alarms

import "time"

// Chattering (ISA-18.2): an alarm that activates chatterCount times within chatterWithin is
// chattering; for chatterHold after that it gets an on-delay (its condition must hold
// ChatterOnDelay before the alarm comes back) and an off-delay (it must be gone ChatterOffDelay
// before the alarm clears). While held on, the condition is still evidence: the delays only keep
// the operator from seeing it blink. A critical or fire alarm never waits its on-delay: it may
// only be held on, never held back.
const (
	chatterCount  = 3
	chatterWithin = time.Minute
	chatterHold   = time.Hour
	// onGap: a condition not seen true for this long has not held since it was last seen.
	onGap = 5 * time.Second
)

type chatter struct {
	acts       []time.Time // activations within chatterWithin
	until      time.Time   // the delays apply until then
	clearSince time.Time   // off-delay: since when the condition has been seen clear
	onSince    time.Time   // on-delay: since when it has been seen true again
	lastOn     time.Time
}

func (e *Engine) chatterOf(id string) *chatter {
	ch := e.chatter[id]
	if ch == nil {
		ch = &chatter{}
		e.chatter[id] = ch
	}
	return ch
}

// activated records an activation and says whether the alarm chatters from now on.
func (e *Engine) activated(id string, now time.Time) {
	ch := e.chatterOf(id)
	cut := 0
	for cut < len(ch.acts) && now.Sub(ch.acts[cut]) >= chatterWithin {
		cut++
	}
	ch.acts = append(ch.acts[cut:], now)
	if len(ch.acts) >= chatterCount {
		ch.until = now.Add(chatterHold)
	}
}

// holdOff says whether a chattering alarm's clear waits (its off-delay); the condition was seen
// clear at now.
func (e *Engine) holdOff(id string, now time.Time) bool {
	ch := e.chatter[id]
	if ch == nil || !now.Before(ch.until) {
		return false
	}
	if ch.clearSince.IsZero() {
		ch.clearSince = now
	}
	if now.Sub(ch.clearSince) < e.th.ChatterOffDelay {
		return true
	}
	ch.clearSince = time.Time{}
	return false
}

// holdOn says whether a chattering alarm's activation waits (its on-delay); the condition was
// seen true at now.
func (e *Engine) holdOn(id string, now time.Time) bool {
	ch := e.chatter[id]
	if ch == nil || !now.Before(ch.until) {
		return false
	}
	if ch.onSince.IsZero() || now.Sub(ch.lastOn) > onGap {
		ch.onSince = now
	}
	ch.lastOn = now
	if now.Sub(ch.onSince) < e.th.ChatterOnDelay {
		return true
	}
	ch.onSince = time.Time{}
	return false
}

// seenOn tells the off-delay that the condition is true again.
func (e *Engine) seenOn(id string) {
	if ch := e.chatter[id]; ch != nil {
		ch.clearSince = time.Time{}
	}
}
