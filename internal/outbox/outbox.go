// Package outbox is the durable queue between the detection engine and the MQTT broker for the
// messages that must not be lost: alarm events and states, risk, drain signals, command results.
// A message is written (fsync'd, bbolt) before it is published and removed only after the
// broker's PUBACK; after a reconnect or a restart it is sent again, in order. It also keeps the
// last acknowledged retained message of every topic, which the publisher re-publishes on every
// (re)connect so that a broker that lost its retained store gets the current picture back.
// Telemetry never goes through it. It publishes nothing itself.
package outbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

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

// record is how a message is stored (wire.Message keeps QoS and flags out of its JSON). CRC is
// the CRC-32C of topic and payload: bbolt checks the structure of its pages, not what they hold,
// and a flipped byte in a payload can still be valid JSON. Records written before there was one
// have 0 and are taken as they are.
type record struct {
	Topic   string          `json:"t"`
	QoS     byte            `json:"q"`
	Retain  bool            `json:"r"`
	State   bool            `json:"s,omitempty"`
	Payload json.RawMessage `json:"p,omitempty"` // absent: an empty retained message (a delete)
	CRC     uint32          `json:"c,omitempty"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func recordCRC(topic string, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum([]byte(topic), castagnoli), castagnoli, payload) | 1 // never 0
}

// encode stores the payload compacted and not HTML-escaped, as decode reads it back, so that its
// checksum covers the very bytes stored.
func encode(m wire.Message) ([]byte, error) {
	var p bytes.Buffer
	if len(m.Payload) > 0 {
		if err := json.Compact(&p, m.Payload); err != nil {
			return nil, err
		}
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(record{Topic: m.Topic, QoS: m.QoS, Retain: m.Retain, State: m.State, Payload: p.Bytes(),
		CRC: recordCRC(m.Topic, p.Bytes())}); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

func decode(b []byte) (wire.Message, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return wire.Message{}, err
	}
	if r.CRC != 0 && r.CRC != recordCRC(r.Topic, r.Payload) {
		return wire.Message{}, fmt.Errorf("checksum mismatch in the message for %.80s", r.Topic)
	}
	return wire.Message{Topic: r.Topic, QoS: r.QoS, Retain: r.Retain, State: r.State, Payload: r.Payload, Critical: true}, nil
}

func key(id uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], id)
	return k[:]
}

// Outbox is safe for one writer (the engine loop) and one reader (the publisher) at once.
//
// When the file cannot be written (a full or read-only state_dir), nothing is refused and nothing
// is lost while the process lives: what the file did not take is kept in memory (newer than all
// that is in the file), delivered from there, and written to the file again at every later
// operation until the file takes it. Durable says whether the file is in step. A file that could
// not be opened at all leaves the outbox in memory alone (OpenMemory).
type Outbox struct {
	db     *bolt.DB // nil: memory only
	max    int
	mu     sync.Mutex
	n      int // entries in the file that are not gone
	next   uint64
	notify chan struct{}

	mem      []Entry                 // entries the file has not taken, in ID order
	gone     map[uint64]bool         // acknowledged, but the file still holds them
	memRet   map[string]wire.Message // acknowledged retained states the file has not taken
	memNonce map[string]time.Time    // nonces the file has not taken, and when they expire
	durErr   error                   // why the file is not in step; nil when it is
	dead     bool                    // the file tripped bbolt: it is no longer used
}

// ErrCorrupt says a stored entry cannot be decoded; the file should be moved aside.
var ErrCorrupt = errors.New("outbox: corrupt entry")

// ErrDamaged says the file is not a sound bbolt database (a damaged page, a truncated file,
// random bytes): move it aside and start a new one. Nothing of bbolt's panics gets past Open.
var ErrDamaged = errors.New("outbox: damaged file")

// ErrLocked says another process holds the file (another firebreak on this state_dir).
var ErrLocked = errors.New("outbox: locked by another process")

// Open opens (or creates) the outbox file, checking every page of it first. max bounds the queue
// (see Put).
func Open(path string, max int) (*Outbox, error) {
	db, err := openChecked(path)
	if err != nil {
		return nil, err
	}
	o := newOutbox(max)
	o.db = db
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketQueue, bucketRetained, bucketNonces} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		q := tx.Bucket(bucketQueue)
		o.n, o.next = q.Stats().KeyN, q.Sequence()
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox %s: %w", path, err)
	}
	return o, nil
}

// OpenMemory is an outbox that keeps everything in memory, for a state_dir that cannot hold the
// file; why is what Durable reports.
func OpenMemory(max int, why error) *Outbox {
	o := newOutbox(max)
	o.durErr = why
	return o
}

func newOutbox(max int) *Outbox {
	return &Outbox{max: max, notify: make(chan struct{}, 1), gone: map[uint64]bool{}, memRet: map[string]wire.Message{},
		memNonce: map[string]time.Time{}}
}

// openChecked opens the file and walks every page (bbolt's consistency check) with faults turned
// into panics and panics into ErrDamaged: a damaged page must set the file aside, not crash a
// daemon that is watching a battery room.
func openChecked(path string) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				func() {
					defer func() { _ = recover() }()
					db.Close()
				}()
			}
			db, err = nil, fmt.Errorf("%w: %s: %v", ErrDamaged, path, r)
		}
	}()
	if fi, serr := os.Stat(path); serr == nil && fi.Size() == 0 {
		// bbolt would make a new database of it; but a file of ours is never empty: something
		// truncated it, and what it held is lost.
		return nil, fmt.Errorf("%w: %s is empty (0 bytes)", ErrDamaged, path)
	}
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s (is another firebreak using this state_dir?)", ErrLocked, path)
	case errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrVersionMismatch) || errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	case err != nil:
		return nil, fmt.Errorf("outbox %s: %w", path, err)
	}
	// Every page is read here, in this goroutine (bbolt's own Check runs in one of its own,
	// where its assertions' panics could not be caught), and every stored message must decode:
	// the publisher would otherwise stop at the first one that does not. The first write
	// transaction (the buckets) touches the freelist too.
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			msgs := string(name) == string(bucketQueue) || string(name) == string(bucketRetained)
			return bk.ForEach(func(k, v []byte) error {
				if msgs {
					if _, err := decode(v); err != nil {
						return fmt.Errorf("%w at %s/%x: %v", ErrCorrupt, name, k, err)
					}
				}
				return nil
			})
		})
	})
	if err == nil {
		fi, serr := os.Stat(path)
		err = db.View(func(tx *bolt.Tx) error {
			if serr == nil && tx.Size() > fi.Size() {
				return fmt.Errorf("the file is %d bytes, its pages reach to %d: truncated", fi.Size(), tx.Size())
			}
			return nil
		})
	}
	if err == nil {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketQueue, bucketRetained, bucketNonces} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	}
	return db, nil
}

// Count reads how many queued messages a damaged file still shows, as well as it can (-1 when
// not even that can be read): what an alarm says may have been lost.
func Count(path string) (n int) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			n = -1
		}
	}()
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return -1
	}
	defer db.Close()
	n = -1
	_ = db.View(func(tx *bolt.Tx) error {
		if q := tx.Bucket(bucketQueue); q != nil {
			n = q.Stats().KeyN
		}
		return nil
	})
	return n
}

// Close closes the file. A file bbolt tripped on is left as it is: the transaction that
// panicked may still hold bbolt's lock, and closing would wait for it forever (the process is
// stopping; the operating system closes the file).
func (o *Outbox) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.db == nil || o.dead {
		return nil
	}
	return o.db.Close()
}

// Len is how many messages wait for a PUBACK.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dead {
		return len(o.mem)
	}
	return o.n + len(o.mem)
}

// Durable is nil while the file holds everything the outbox does, else why it does not (the
// state_dir is full or read-only, or there is no file).
func (o *Outbox) Durable() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.durErr
}

// Notify is signalled after every Put.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

// guard runs a bbolt transaction with faults turned into panics and panics into an error: a file
// damaged in a way the check at open could not see (bbolt checks few of its invariants before it
// trips on them) stops being used, and the outbox goes on in memory. The caller holds mu.
func (o *Outbox) guard(tx func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			o.dead = true
			err = fmt.Errorf("%w: %v (the file is no longer used; messages are kept in memory)", ErrDamaged, r)
			o.durErr = err
		}
	}()
	return tx()
}

// usable says whether the file may be used.
func (o *Outbox) usable() bool { return o.db != nil && !o.dead }

// view runs fn in a read transaction of the file, guarded. The caller holds mu.
func (o *Outbox) view(fn func(tx *bolt.Tx) error) error {
	return o.guard(func() error { return o.db.View(fn) })
}

// update runs fn in a write transaction of the file after writing what the file has not taken
// yet; fn gets and returns the count of queued entries in the file. It says whether the file took
// it all. The caller holds mu.
func (o *Outbox) update(fn func(tx *bolt.Tx, n int) (int, error)) bool {
	if !o.usable() {
		return false
	}
	var n int
	err := o.guard(func() error {
		return o.db.Update(func(tx *bolt.Tx) error {
			q, r, nb := tx.Bucket(bucketQueue), tx.Bucket(bucketRetained), tx.Bucket(bucketNonces)
			n = o.n // gone entries are already counted out
			for _, e := range o.mem {
				b, err := encode(e.Msg)
				if err != nil {
					return err
				}
				if err := q.Put(key(e.ID), b); err != nil {
					return err
				}
				n++
			}
			for id := range o.gone {
				if err := q.Delete(key(id)); err != nil {
					return err
				}
			}
			for topic, m := range o.memRet {
				if err := retain(r, topic, m); err != nil {
					return err
				}
			}
			for nonce, exp := range o.memNonce {
				if err := nb.Put([]byte(nonce), key(uint64(exp.UnixNano()))); err != nil {
					return err
				}
			}
			if err := q.SetSequence(o.next); err != nil {
				return err
			}
			var err error
			n, err = fn(tx, n)
			return err
		})
	})
	if err != nil {
		o.durErr = err
		return false
	}
	o.n, o.mem, o.durErr = n, nil, nil
	clear(o.gone)
	clear(o.memRet)
	clear(o.memNonce)
	return true
}

// Put appends msgs durably, in one fsync'd transaction. When the queue would exceed its bound
// (a broker gone for days), it first drops queued state messages that a newer queued message on
// the same topic makes obsolete, then, if that is not enough, the oldest messages; dropped says
// how many, so the caller can raise it loudly. It never refuses the new messages: when the file
// does not take them they are kept in memory (see Durable), and err is always nil.
func (o *Outbox) Put(msgs []wire.Message) (dropped int, err error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	return o.put(msgs, false)
}

// Restate is Put for a boot's (or a reload's) whole retained truth: msgs are queued and every
// retained state recorded before is forgotten, in one transaction. From then on the table holds
// only what was published since, so a reconnect never re-publishes an earlier boot's state, and
// a topic msgs do not name (a removed device's) is no longer owned. msgs should clear (an empty
// retained message) every earlier topic they do not restate.
func (o *Outbox) Restate(msgs []wire.Message) (dropped int, err error) {
	return o.put(msgs, true)
}

func (o *Outbox) put(msgs []wire.Message, restate bool) (dropped int, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if restate {
		clear(o.memRet)
	}
	entries := make([]Entry, len(msgs))
	for i, m := range msgs {
		o.next++
		entries[i] = Entry{ID: o.next, Msg: m}
	}
	ok := o.update(func(tx *bolt.Tx, n int) (int, error) {
		q := tx.Bucket(bucketQueue)
		if restate {
			if err := tx.DeleteBucket(bucketRetained); err != nil {
				return n, err
			}
			if _, err := tx.CreateBucket(bucketRetained); err != nil {
				return n, err
			}
		}
		for _, e := range entries {
			b, err := encode(e.Msg)
			if err != nil {
				return n, err
			}
			if err := q.Put(key(e.ID), b); err != nil {
				return n, err
			}
		}
		n += len(entries)
		if o.max > 0 && n > o.max {
			d, err := shrink(q, n-o.max)
			if err != nil {
				return n, err
			}
			dropped = d
			n -= d
		}
		return n, nil
	})
	if !ok {
		dropped = 0
		o.mem = append(o.mem, entries...)
		if excess := o.n + len(o.mem) - o.max; o.max > 0 && excess > 0 {
			dropped = o.shrinkMem(excess)
		}
	}
	select {
	case o.notify <- struct{}{}:
	default:
	}
	return dropped, nil
}

// shrinkMem drops at least excess entries of the memory queue: obsolete states first, then the
// oldest. The caller holds mu.
func (o *Outbox) shrinkMem(excess int) int {
	newest := map[string]uint64{}
	for _, e := range o.mem {
		if e.Msg.State {
			newest[e.Msg.Topic] = e.ID
		}
	}
	keep := o.mem[:0]
	dropped := 0
	for _, e := range o.mem {
		if dropped < excess && e.Msg.State && newest[e.Msg.Topic] != e.ID {
			dropped++
			continue
		}
		keep = append(keep, e)
	}
	o.mem = keep
	if n := min(excess-dropped, len(o.mem)); n > 0 {
		o.mem = o.mem[n:]
		dropped += n
	}
	return dropped
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
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Entry
	if o.usable() {
		err := o.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketQueue).Cursor()
			for k, v := c.Seek(key(after + 1)); k != nil && len(out) < n; k, v = c.Next() {
				id := binary.BigEndian.Uint64(k)
				if o.gone[id] {
					continue
				}
				m, err := decode(v)
				if err != nil {
					return fmt.Errorf("%w at %x: %v", ErrCorrupt, k, err)
				}
				out = append(out, Entry{ID: id, Msg: m})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, e := range o.mem {
		if len(out) >= n {
			break
		}
		if e.ID > after {
			out = append(out, e)
		}
	}
	return out, nil
}

// Done removes entries the broker acknowledged and records each retained one as its topic's
// last known state, in one transaction (in memory, until the file takes it, when it does not).
func (o *Outbox) Done(entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	done := map[uint64]bool{}
	for _, e := range entries {
		done[e.ID] = true
	}
	inMem := map[uint64]bool{}
	keep := o.mem[:0]
	for _, e := range o.mem {
		if done[e.ID] {
			inMem[e.ID] = true
			continue
		}
		keep = append(keep, e)
	}
	o.mem = keep
	ok := o.update(func(tx *bolt.Tx, n int) (int, error) {
		q, r := tx.Bucket(bucketQueue), tx.Bucket(bucketRetained)
		for _, e := range entries {
			if q.Get(key(e.ID)) != nil {
				n--
			}
			if err := q.Delete(key(e.ID)); err != nil {
				return n, err
			}
			if e.Msg.Retain {
				if err := retain(r, e.Msg.Topic, e.Msg); err != nil {
					return n, err
				}
			}
		}
		return n, nil
	})
	if !ok {
		for _, e := range entries {
			if !inMem[e.ID] && !o.gone[e.ID] && o.usable() {
				o.gone[e.ID] = true
				o.n--
			}
			if e.Msg.Retain {
				o.memRet[e.Msg.Topic] = e.Msg
			}
		}
	}
	return nil
}

// retain records m as its topic's retained state; an empty payload (MQTT's delete of a retained
// message) forgets the topic.
func retain(r *bolt.Bucket, topic string, m wire.Message) error {
	if len(m.Payload) == 0 {
		return r.Delete([]byte(topic))
	}
	b, err := encode(m)
	if err != nil {
		return err
	}
	return r.Put([]byte(topic), b)
}

// Retained returns the last acknowledged retained message of every topic, in topic order: what
// the broker holds (a reconnect publishes it again).
func (o *Outbox) Retained() ([]wire.Message, error) { return o.retained(false) }

// RetainedQueued is Retained with the retained messages still queued applied on top, in order:
// what the broker will hold once the queue is delivered. A restate must clear every topic of
// these it does not name: a device removed by a reload a moment after the boot that stated it
// (its availability still queued, the broker slow or away) would otherwise keep that state on
// the broker for good.
func (o *Outbox) RetainedQueued() ([]wire.Message, error) { return o.retained(true) }

func (o *Outbox) retained(queued bool) ([]wire.Message, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	byTopic := map[string]wire.Message{}
	var pending []wire.Message // queued retained messages, oldest first
	if o.usable() {
		err := o.view(func(tx *bolt.Tx) error {
			err := tx.Bucket(bucketRetained).ForEach(func(k, v []byte) error {
				m, err := decode(v)
				if err != nil {
					return fmt.Errorf("%w at retained %s: %v", ErrCorrupt, k, err)
				}
				byTopic[string(k)] = m
				return nil
			})
			if err != nil || !queued {
				return err
			}
			return tx.Bucket(bucketQueue).ForEach(func(k, v []byte) error {
				if o.gone[binary.BigEndian.Uint64(k)] {
					return nil
				}
				m, err := decode(v)
				if err != nil {
					return fmt.Errorf("%w at %x: %v", ErrCorrupt, k, err)
				}
				if m.Retain {
					pending = append(pending, m)
				}
				return nil
			})
		})
		if err != nil {
			return nil, err
		}
	}
	if queued {
		for _, e := range o.mem {
			if e.Msg.Retain {
				pending = append(pending, e.Msg)
			}
		}
	}
	// Acknowledged first (the file's, then what it has not taken), then the queue in order; an
	// empty payload deletes the topic.
	set := func(m wire.Message) {
		if len(m.Payload) == 0 {
			delete(byTopic, m.Topic)
		} else {
			byTopic[m.Topic] = m
		}
	}
	for _, m := range o.memRet {
		set(m)
	}
	for _, m := range pending {
		set(m)
	}
	topics := make([]string, 0, len(byTopic))
	for t := range byTopic {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	out := make([]wire.Message, 0, len(topics))
	for _, t := range topics {
		out = append(out, byTopic[t])
	}
	return out, nil
}

// UseNonce records a command nonce as used until expires, forgetting ones that expired before
// now. It reports false, and records nothing, when the nonce was already used: a replay. When
// the file does not take it, the nonce is kept in memory (a restart then forgets it).
func (o *Outbox) UseNonce(nonce string, expires, now time.Time) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, exp := range o.memNonce {
		if exp.Before(now) {
			delete(o.memNonce, k)
		}
	}
	if _, used := o.memNonce[nonce]; used {
		return false, nil
	}
	if o.usable() {
		used := false
		_ = o.view(func(tx *bolt.Tx) error {
			v := tx.Bucket(bucketNonces).Get([]byte(nonce))
			used = len(v) == 8 && int64(binary.BigEndian.Uint64(v)) >= now.UnixNano()
			return nil
		})
		if used {
			return false, nil
		}
	}
	ok := o.update(func(tx *bolt.Tx, n int) (int, error) {
		b := tx.Bucket(bucketNonces)
		var stale [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			if len(v) == 8 && int64(binary.BigEndian.Uint64(v)) < now.UnixNano() {
				stale = append(stale, append([]byte(nil), k...))
			}
			return nil
		}); err != nil {
			return n, err
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return n, err
			}
		}
		return n, b.Put([]byte(nonce), key(uint64(expires.UnixNano())))
	})
	if !ok {
		o.memNonce[nonce] = expires
	}
	return true, nil
}
