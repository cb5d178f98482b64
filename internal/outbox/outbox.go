// Package outbox is the durable queue between the detection engine and the MQTT broker for the
// messages that must not be lost: alarm events and states, risk, drain signals, command results.
// A message is written (fsync'd, bbolt) before it is published and removed only after the
// broker's PUBACK; after a reconnect or a restart it is sent again, in order. It also keeps the
// last acknowledged retained message of every topic, which the publisher re-publishes on every
// (re)connect so that a broker that lost its retained store gets the current picture back.
// Telemetry never goes through it. It publishes nothing itself.
package outbox

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/firebreak-dc/firebreak/internal/wire"
)

var (
	bucketQueue    = []byte("queue")
	bucketRetained = []byte("retained")
	bucketNonces   = []byte("nonces")
)

// Entry is one queued message and its position in the queue.
type Entry struct {
	ID  uint64
	Msg wire.Message
}

// record is how a message is stored (wire.Message keeps QoS and flags out of its JSON).
type record struct {
	Topic   string          `json:"t"`
	QoS     byte            `json:"q"`
	Retain  bool            `json:"r"`
	State   bool            `json:"s,omitempty"`
	Payload json.RawMessage `json:"p"`
}

func encode(m wire.Message) ([]byte, error) {
	return json.Marshal(record{Topic: m.Topic, QoS: m.QoS, Retain: m.Retain, State: m.State, Payload: m.Payload})
}

func decode(b []byte) (wire.Message, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return wire.Message{}, err
	}
	return wire.Message{Topic: r.Topic, QoS: r.QoS, Retain: r.Retain, State: r.State, Payload: r.Payload, Critical: true}, nil
}

func key(id uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], id)
	return k[:]
}

// Outbox is safe for one writer (the engine loop) and one reader (the publisher) at once.
type Outbox struct {
	db     *bolt.DB
	max    int
	mu     sync.Mutex
	n      int
	notify chan struct{}
}

// ErrCorrupt says a stored entry cannot be decoded; the file should be moved aside.
var ErrCorrupt = errors.New("outbox: corrupt entry")

// Open opens (or creates) the outbox file. max bounds the queue (see Put).
func Open(path string, max int) (*Outbox, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("outbox %s: %w (is another firebreak using this state_dir?)", path, err)
	}
	o := &Outbox{db: db, max: max, notify: make(chan struct{}, 1)}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketQueue, bucketRetained, bucketNonces} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		o.n = tx.Bucket(bucketQueue).Stats().KeyN
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox %s: %w", path, err)
	}
	return o, nil
}

// Close closes the file.
func (o *Outbox) Close() error { return o.db.Close() }

// Len is how many messages wait for a PUBACK.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

// Notify is signalled after every Put.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

// Put appends msgs durably, in one fsync'd transaction. When the queue would exceed its bound
// (a broker gone for days), it first drops queued state messages that a newer queued message on
// the same topic makes obsolete, then, if that is not enough, the oldest messages; dropped says
// how many, so the caller can raise it loudly. It never refuses the new messages.
func (o *Outbox) Put(msgs []wire.Message) (dropped int, err error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	err = o.db.Update(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueue)
		for _, m := range msgs {
			id, err := q.NextSequence()
			if err != nil {
				return err
			}
			b, err := encode(m)
			if err != nil {
				return err
			}
			if err := q.Put(key(id), b); err != nil {
				return err
			}
		}
		n := o.n + len(msgs)
		if o.max > 0 && n > o.max {
			d, err := shrink(q, n-o.max)
			if err != nil {
				return err
			}
			dropped = d
			n -= d
		}
		o.n = n
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("outbox put: %w", err)
	}
	select {
	case o.notify <- struct{}{}:
	default:
	}
	return dropped, nil
}

// shrink removes at least excess entries: obsolete state messages first, then the oldest.
func shrink(q *bolt.Bucket, excess int) (int, error) {
	newest := map[string][]byte{} // topic → key of its newest state message
	c := q.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		m, err := decode(v)
		if err != nil {
			return 0, fmt.Errorf("%w at %x: %v", ErrCorrupt, k, err)
		}
		if m.State {
			newest[m.Topic] = append([]byte(nil), k...)
		}
	}
	var victims [][]byte
	for k, v := c.First(); k != nil; k, v = c.Next() {
		m, _ := decode(v)
		if m.State && string(newest[m.Topic]) != string(k) {
			victims = append(victims, append([]byte(nil), k...))
		}
	}
	for k, _ := c.First(); k != nil && len(victims) < excess; k, _ = c.Next() {
		victims = append(victims, append([]byte(nil), k...))
	}
	seen := map[string]bool{}
	dropped := 0
	for _, k := range victims {
		if seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		if err := q.Delete(k); err != nil {
			return 0, err
		}
		dropped++
	}
	return dropped, nil
}

// Peek returns up to n entries with an ID greater than after, oldest first.
func (o *Outbox) Peek(after uint64, n int) ([]Entry, error) {
	var out []Entry
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketQueue).Cursor()
		for k, v := c.Seek(key(after + 1)); k != nil && len(out) < n; k, v = c.Next() {
			m, err := decode(v)
			if err != nil {
				return fmt.Errorf("%w at %x: %v", ErrCorrupt, k, err)
			}
			out = append(out, Entry{ID: binary.BigEndian.Uint64(k), Msg: m})
		}
		return nil
	})
	return out, err
}

// Done removes entries the broker acknowledged and records each retained one as its topic's
// last known state, in one transaction.
func (o *Outbox) Done(entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	err := o.db.Update(func(tx *bolt.Tx) error {
		q, r := tx.Bucket(bucketQueue), tx.Bucket(bucketRetained)
		n := o.n
		for _, e := range entries {
			if q.Get(key(e.ID)) != nil {
				n--
			}
			if err := q.Delete(key(e.ID)); err != nil {
				return err
			}
			if e.Msg.Retain {
				b, err := encode(e.Msg)
				if err != nil {
					return err
				}
				if err := r.Put([]byte(e.Msg.Topic), b); err != nil {
					return err
				}
			}
		}
		o.n = n
		return nil
	})
	if err != nil {
		return fmt.Errorf("outbox done: %w", err)
	}
	return nil
}

// Retained returns the last acknowledged retained message of every topic, in topic order.
func (o *Outbox) Retained() ([]wire.Message, error) {
	var out []wire.Message
	err := o.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRetained).ForEach(func(k, v []byte) error {
			m, err := decode(v)
			if err != nil {
				return fmt.Errorf("%w at retained %s: %v", ErrCorrupt, k, err)
			}
			out = append(out, m)
			return nil
		})
	})
	return out, err
}

// UseNonce records a command nonce as used until expires, forgetting ones that expired before
// now. It reports false, and records nothing, when the nonce was already used: a replay.
func (o *Outbox) UseNonce(nonce string, expires, now time.Time) (bool, error) {
	fresh := false
	err := o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNonces)
		var stale [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			if len(v) == 8 && int64(binary.BigEndian.Uint64(v)) < now.UnixNano() {
				stale = append(stale, append([]byte(nil), k...))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		if b.Get([]byte(nonce)) != nil {
			return nil
		}
		fresh = true
		return b.Put([]byte(nonce), key(uint64(expires.UnixNano())))
	})
	if err != nil {
		return false, fmt.Errorf("outbox nonce: %w", err)
	}
	return fresh, nil
}
