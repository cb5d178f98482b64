package cutover

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
)

// ErrReplayed says a signal's seq is not newer than one already seen from its instance: a
// duplicate delivery, a retained message seen again, or a replay.
var ErrReplayed = errors.New("drain signal: seq not newer than seen")

// Receiver is the consumer's side of the protocol, for firebreak-agent and anyone's own consumer
// in Go: it accepts a signal only if one of the daemons' keys signed it, it has not expired, and
// its seq is newer than the last one seen from its instance (seq is per daemon instance; an HA
// pair has two). Its state is LastSeq, which the caller persists.
type Receiver struct {
	Keys    []ed25519.PublicKey
	LastSeq map[string]uint64
}

// ErrWrongZone says a valid signal arrived on another zone's topic; its seq is not spent, so the
// same signal on its own topic is still taken.
var ErrWrongZone = errors.New("drain signal: its zone is not its topic's")

// CheckOn is Check for a signal that arrived on zone's topic: one for another zone is refused
// before its seq is recorded.
func (r *Receiver) CheckOn(payload []byte, zone string, now time.Time) (Signal, error) {
	s, err := r.verify(payload, now)
	if err != nil {
		return s, err
	}
	if s.Zone != zone {
		return s, fmt.Errorf("%w: %s arrived on zone %q's topic", ErrWrongZone, s.Zone, zone)
	}
	return s, r.record(s)
}

// Check verifies payload at now and, if it is accepted, records its seq.
func (r *Receiver) Check(payload []byte, now time.Time) (Signal, error) {
	s, err := r.verify(payload, now)
	if err != nil {
		return s, err
	}
	return s, r.record(s)
}

// Verifiable says whether payload is signed by one of the keys, expiry aside: a cheap filter
// that keeps forgeries and garbage out of a consumer's queue.
func (r *Receiver) Verifiable(payload []byte) bool {
	_, err := r.verify(payload, time.Time{})
	return err == nil
}

func (r *Receiver) verify(payload []byte, now time.Time) (Signal, error) {
	if len(r.Keys) == 0 {
		return Signal{}, fmt.Errorf("%w: no public keys configured", ErrBadSignature)
	}
	var s Signal
	var err error
	for _, k := range r.Keys {
		if s, err = Verify(payload, k, now); !errors.Is(err, ErrBadSignature) {
			break
		}
	}
	if err != nil {
		return s, err
	}
	return s, nil
}

// record takes a verified signal's seq, refusing one not newer than the instance's last.
func (r *Receiver) record(s Signal) error {
	if r.LastSeq == nil {
		r.LastSeq = map[string]uint64{}
	}
	if last, ok := r.LastSeq[s.Instance]; ok && s.Seq <= last {
		return fmt.Errorf("%w: %s seq %d, last seen %d", ErrReplayed, s.Instance, s.Seq, last)
	}
	r.LastSeq[s.Instance] = s.Seq
	return nil
}
