package alarms

import "fmt"

// Cause is why an alarm moved: the key of the lifecycle table and the cause of docs/design.md's
// P/events. Process causes come from conditions, operator causes from operators (the same names
// as their commands on P/cmd), logic causes from the alarm logic itself.
type Cause uint8

const (
	// process causes: a condition is a fact, and cannot be refused
	CauseActivate Cause = iota + 1
	CauseEscalate
	CauseClear
	// operator causes: refused when the alarm's state does not allow them
	CauseAck
	CauseShelve
	CauseUnshelve
	CauseOutOfService    // maintenance: not annunciated, its evidence does not count
	CauseReturnToService // back from maintenance
	// logic causes
	CauseSuppress   // suppressed by design: another alarm says the same
	CauseUnsuppress // no longer a duplicate
)

var causeNames = [...]string{CauseActivate: "activate", CauseEscalate: "escalate", CauseClear: "clear",
	CauseAck: "ack", CauseShelve: "shelve", CauseUnshelve: "unshelve", CauseOutOfService: "out_of_service",
	CauseReturnToService: "return_to_service", CauseSuppress: "suppress", CauseUnsuppress: "unsuppress"}

func (c Cause) String() string {
	if c > 0 && int(c) < len(causeNames) {
		return causeNames[c]
	}
	return fmt.Sprintf("cause(%d)", uint8(c))
}

// MarshalText writes the name.
func (c Cause) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads a name written by MarshalText.
func (c *Cause) UnmarshalText(b []byte) error {
	for k, n := range causeNames {
		if n != "" && n == string(b) {
			*c = Cause(k)
			return nil
		}
	}
	return fmt.Errorf("unknown cause %q", b)
}

// Operator says whether an operator may ask for c.
func (c Cause) Operator() bool { return c >= CauseAck && c <= CauseReturnToService }

// Causes is every cause, in order: the event types of P/events.
func Causes() []Cause {
	out := make([]Cause, 0, len(causeNames)-1)
	for c := CauseActivate; int(c) < len(causeNames); c++ {
		out = append(out, c)
	}
	return out
}

// OperatorCauses is every cause an operator may ask for, in order: the alarm commands.
func OperatorCauses() []Cause {
	return []Cause{CauseAck, CauseShelve, CauseUnshelve, CauseOutOfService, CauseReturnToService}
}

// ParseOperatorCause reads an operator's command name (ack, shelve, …); ok is false for any name
// that is not an operator cause.
func ParseOperatorCause(name string) (c Cause, ok bool) {
	if err := c.UnmarshalText([]byte(name)); err != nil || !c.Operator() {
		return 0, false
	}
	return c, true
}
