package collectors

import (
	"testing"
	"time"
)

// TestSlots: a large connection's devices share slots at least slotLength apart, in config order
// and evenly; a small one's each get their own, spread over the interval as before.
func TestSlots(t *testing.T) {
	start := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	devices := func(n int, interval time.Duration) []*Device {
		out := make([]*Device, n)
		for i := range out {
			out[i] = &Device{Interval: interval}
		}
		return out
	}
	for _, c := range []struct {
		name     string
		n        int
		interval time.Duration
		slots    int
	}{
		{"125 racks at 1 s", 125, time.Second, 25},
		{"8 racks at 1 s", 8, time.Second, 8},
		{"3 UPSs at 10 s", 3, 10 * time.Second, 3},
		{"a fast point at 20 ms", 4, 20 * time.Millisecond, 1},
	} {
		next := slots(start, devices(c.n, c.interval))
		per := map[time.Time]int{}
		for i, at := range next {
			per[at]++
			if i > 0 && at.Before(next[i-1]) {
				t.Errorf("%s: device %d starts at %s, before device %d (%s)", c.name, i, at, i-1, next[i-1])
			}
			if at.Before(start) || !at.Before(start.Add(c.interval)) {
				t.Errorf("%s: device %d starts at %s, outside its first interval", c.name, i, at)
			}
		}
		if len(per) != c.slots {
			t.Errorf("%s: %d slots, want %d", c.name, len(per), c.slots)
		}
		for at, k := range per {
			if k > (c.n+c.slots-1)/c.slots {
				t.Errorf("%s: %d devices in the slot at %s: uneven", c.name, k, at)
			}
		}
		if c.slots > 1 {
			gap := c.interval / time.Duration(c.slots)
			if gap < slotLength && c.n > 1 {
				t.Errorf("%s: slots %s apart, less than %s", c.name, gap, slotLength)
			}
		}
	}
}
