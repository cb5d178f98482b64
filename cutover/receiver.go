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

// Check verifies payload at now and, if it is accepted, records its seq.
func (r *Receiver) Check(payload []byte, now time.Time) (Signal, error) {
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
	if r.LastSeq == nil {
		r.LastSeq = map[string]uint64{}
	}
	if last, ok := r.LastSeq[s.Instance]; ok && s.Seq <= last {
		return s, fmt.Errorf("%w: %s seq %d, last seen %d", ErrReplayed, s.Instance, s.Seq, last)
	}
	r.LastSeq[s.Instance] = s.Seq
	return s, nil
}
