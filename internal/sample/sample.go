// Package sample is the vocabulary that flows from collectors to alarms and the sinks: a reading
// of one point at one time with its quality. It holds types only, no behaviour that needs I/O.
package sample

import (
	"fmt"
	"time"
)

// Quality says whether Value may be used as a number.
type Quality uint8

const (
	Good       Quality = iota + 1
	Invalid            // the device sent a sentinel meaning "no reading"
	OutOfRange         // outside the point's plausible range
	Stale              // not refreshed within its stale limit
	CommLost           // the device did not answer
)

func (q Quality) String() string {
	switch q {
	case Good:
		return "good"
	case Invalid:
		return "invalid"
	case OutOfRange:
		return "out_of_range"
	case Stale:
		return "stale"
	case CommLost:
		return "comm_lost"
	}
	return fmt.Sprintf("quality(%d)", uint8(q))
}

// MarshalText writes the name, so payloads read "good", not 1.
func (q Quality) MarshalText() ([]byte, error) { return []byte(q.String()), nil }

// Sample is one reading. Value is meaningful only when Quality is Good.
type Sample struct {
	Device  string
	Point   string
	Role    Role
	Value   float64
	Text    string // for string points; Value is 0 then
	Quality Quality
	At      time.Time
}

// Batch is one poll of one device: every point of it, read at one time. Err is set when the poll
// failed as a whole (then every sample carries CommLost).
type Batch struct {
	Device  string
	At      time.Time
	Samples []Sample
	Err     error
	// Took is how long the poll took (0 when it was not asked: a resting device, replay).
	Took time.Duration
}
