package sparkplug

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/firebreak-dc/firebreak/internal/mqttx"
	"github.com/firebreak-dc/firebreak/internal/outbox"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/sparkplug/spb"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// Options configure a session.
type Options struct {
	Model       Model
	MQTT        mqttx.Options // brokers, client id, credentials, TLS; the will and subscriptions are the session's
	PrimaryHost string        // "" for none
	// StateDir keeps the bdSeq (sparkplug-bdseq) and the store and forward queue (sparkplug.db);
	// "" keeps both in memory.
	StateDir string
	StoreMax int // DDATA and NDATA kept while the primary host is away; the oldest go first
	Log      *zap.Logger
}

// Session is the Sparkplug edge node on the wire: one MQTT session at a time, each with its own
// NDEATH will (bdSeq), births when it is established (and when the primary host, if set, says it
// is online), data by exception, a rebirth on request, and the data made while the primary host
// is away stored durably and sent afterwards flagged historical.
type Session struct {
	o        Options
	node     *Node
	batches  chan sample.Batch
	states   chan State
	cmds     chan []byte
	hostMsg  chan []byte
	models   chan Model
	store    *outbox.Outbox
	pending  []wire.Message // stored data not yet written to the store
	pendingN atomic.Int64   // len(pending), for Stored
	seq      uint64
	bdSeq    uint64
	log      *zap.Logger

	dropped atomic.Int64 // inputs dropped because the session was behind
	up      atomic.Bool  // born: a session is established and its births are out
	// hostOnline is the primary host's last STATE: online, and the timestamp of it.
	hostOnline bool
	hostTS     int64
	hostKnown  bool
	// badStateLogged is when a malformed STATE was last logged.
	badStateLogged time.Time
}

// Queue sizes: a poll or a state the session cannot take at once is dropped and counted (the
// JSON topics and the outbox carry the truth; Sparkplug is a copy of it).
const (
	batchQueue   = 4096
	stateQueue   = 256
	storeGroup   = 256
	storeFlush   = 250 * time.Millisecond
	retryBetween = 2 * time.Second
)

// New makes a session; Run connects.
func New(o Options) (*Session, error) {
	s := &Session{o: o, node: NewNode(o.Model), batches: make(chan sample.Batch, batchQueue), states: make(chan State, stateQueue),
		cmds: make(chan []byte, 16), hostMsg: make(chan []byte, 16), models: make(chan Model, 1), log: o.Log}
	if o.StoreMax <= 0 {
		s.o.StoreMax = 100000
	}
	if o.StateDir == "" {
		s.store = outbox.OpenMemory(s.o.StoreMax, nil)
		return s, nil
	}
	s.store = openStore(filepath.Join(o.StateDir, "sparkplug.db"), s.o.StoreMax, s.log)
	b, err := os.ReadFile(s.bdSeqPath())
	switch {
	case errors.Is(err, os.ErrNotExist):
		s.bdSeq = 255 // the first session has 0
	case err != nil:
		s.log.Warn("sparkplug bdSeq file cannot be read; starting again at 0", zap.String("file", s.bdSeqPath()), zap.Error(err))
		s.bdSeq = 255
	default:
		n, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 8)
		if perr != nil {
			s.log.Warn("sparkplug bdSeq file is not a number 0-255; starting again at 0", zap.String("file", s.bdSeqPath()), zap.Error(perr))
			n = 255
		}
		s.bdSeq = n
	}
	return s, nil
}

// openStore opens the store and forward file; a damaged one is set aside (kept for a post-mortem)
// and a new one started, and one that cannot be opened at all leaves the store in memory: the
// edge node degrades, it never keeps the daemon from starting.
func openStore(path string, max int, log *zap.Logger) *outbox.Outbox {
	st, err := outbox.Open(path, max)
	if err != nil && errors.Is(err, outbox.ErrDamaged) {
		aside := path + ".damaged-" + time.Now().UTC().Format("20060102T150405")
		if rerr := os.Rename(path, aside); rerr == nil {
			log.Error("sparkplug store and forward file is damaged: set aside, a new one started (what it held is not sent)",
				zap.String("file", path), zap.String("set_aside", aside), zap.Error(err))
			st, err = outbox.Open(path, max)
		}
	}
	if err != nil {
		log.Error("sparkplug store and forward file cannot be opened: kept in memory only (lost at a restart)", zap.String("file", path), zap.Error(err))
		return outbox.OpenMemory(max, err)
	}
	return st
}

func (s *Session) bdSeqPath() string { return filepath.Join(s.o.StateDir, "sparkplug-bdseq") }

// Offer hands a poll to the session; it never blocks.
func (s *Session) Offer(b sample.Batch) {
	select {
	case s.batches <- b:
	default:
		s.dropped.Add(1)
	}
}

// OfferState hands the engine's state after a change to the session; it never blocks.
func (s *Session) OfferState(st State) {
	select {
	case s.states <- st:
	default:
		s.dropped.Add(1)
	}
}

// Remodel replaces the node's devices and points (a config reload): the node is born again with
// them, the values it has kept. It never blocks: of two reloads in a row the last wins.
func (s *Session) Remodel(m Model) {
	for {
		select {
		case s.models <- m:
			return
		default:
		}
		select {
		case <-s.models:
		default:
		}
	}
}

// Up says whether a session is established and its births are out (with a primary host: it
// is online).
func (s *Session) Up() bool { return s.up.Load() }

// Stored is how many messages wait in the store for the primary host.
func (s *Session) Stored() int { return s.store.Len() + int(s.pendingN.Load()) }

// Dropped is how many polls and states the session could not take.
func (s *Session) Dropped() int64 { return s.dropped.Load() }

// nextBdSeq moves bdSeq on (0-255) and keeps it, before the CONNECT that carries it.
func (s *Session) nextBdSeq() uint64 {
	s.bdSeq = (s.bdSeq + 1) % 256
	if s.o.StateDir != "" {
		tmp := s.bdSeqPath() + ".tmp"
		err := os.WriteFile(tmp, []byte(strconv.FormatUint(s.bdSeq, 10)+"\n"), 0o600)
		if err == nil {
			err = os.Rename(tmp, s.bdSeqPath())
		}
		if err != nil {
			s.log.Warn("sparkplug bdSeq not kept (the next start may repeat it)", zap.Error(err))
		}
	}
	return s.bdSeq
}

// death is an NDEATH payload: bdSeq only, no seq.
func death(bdSeq uint64, now time.Time) []byte {
	p := &spb.Payload{Timestamp: millis(now), Metrics: []*spb.Payload_Metric{{Name: proto.String(MetricBdSeq), Timestamp: millis(now),
		Datatype: proto.Uint32(Int64), Value: &spb.Payload_Metric_LongValue{LongValue: bdSeq}}}}
	b, _ := proto.Marshal(p)
	return b
}

// Run keeps a session established until ctx ends, then publishes the NDEATH and disconnects.
func (s *Session) Run(ctx context.Context) error {
	defer s.store.Close()
	defer s.flushStore()
	tick := time.NewTicker(storeFlush)
	defer tick.Stop()
	for ctx.Err() == nil {
		if err := s.session(ctx, tick.C); err != nil {
			return err
		}
		if ctx.Err() == nil {
			s.idle(ctx, retryBetween, tick.C)
		}
	}
	return nil
}

// idle waits d between sessions, taking polls and states meanwhile (into the store when there is
// a primary host), so that nothing waits in the queues for the next connection.
func (s *Session) idle(ctx context.Context, d time.Duration, tick <-chan time.Time) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return
		case <-ctx.Done():
			return
		case b := <-s.batches:
			s.send(nil, s.node.Batch(b))
		case st := <-s.states:
			s.send(nil, s.node.Apply(st))
		case m := <-s.models:
			s.node = s.node.Remodel(m)
		case <-tick:
			s.flushStore()
		}
	}
}

// session is one MQTT session: connect with a will, wait for the primary host, birth, then data
// until the connection is lost, the host goes away, or ctx ends.
func (s *Session) session(ctx context.Context, tick <-chan time.Time) error {
	bdSeq := s.nextBdSeq()
	mo := s.o.MQTT
	mo.WillTopic, mo.WillPayload, mo.WillNotRetained, mo.OneSession = s.node.Topic(NDEATH, ""), death(bdSeq, time.Now()), true, true
	// Handlers run in paho's goroutines: they hand over and return (a flood of commands is dropped).
	hand := func(ch chan []byte) func(string, []byte) {
		return func(_ string, p []byte) {
			select {
			case ch <- p:
			default:
				s.log.Warn("sparkplug: a command or STATE message dropped (too many at once)")
			}
		}
	}
	mo.Subscriptions = []mqttx.Subscription{{Topic: s.node.Topic(NCMD, ""), QoS: 1, Handle: hand(s.cmds)}}
	if h := s.o.PrimaryHost; h != "" {
		mo.Subscriptions = append(mo.Subscriptions, mqttx.Subscription{Topic: Namespace + "/STATE/" + h, QoS: 1, Handle: hand(s.hostMsg)})
	}
	// The host's retained STATE comes again with the subscription: until it does, the host is
	// not known to be online in this session.
	s.hostOnline = false
	cl, err := mqttx.Dial(mo, s.log)
	if err != nil {
		return err
	}
	store := s.o.PrimaryHost != ""
	end := func(why string) {
		s.up.Store(false)
		s.node.End(store)
		s.log.Info("sparkplug session over", zap.String("why", why), zap.Uint64("bdseq", bdSeq))
	}
	connected := false
	for {
		select {
		case <-ctx.Done():
			if connected {
				final := wire.Message{Topic: s.node.Topic(NDEATH, ""), QoS: 1, Payload: death(bdSeq, time.Now())}
				cl.Close(&final)
			} else {
				cl.Close(nil)
			}
			s.up.Store(false)
			s.node.End(store)
			return nil
		case <-cl.Ended():
			cl.Close(nil)
			end("connection lost")
			return nil
		case <-cl.Connects():
			if err := cl.CheckSubscriptions(ctx); err != nil {
				s.log.Warn("sparkplug subscriptions failed; starting the session again", zap.Error(err))
				cl.Close(nil)
				end("subscriptions failed")
				return nil
			}
			connected = true
			if s.o.PrimaryHost == "" || s.hostOnline {
				if err := s.birth(ctx, cl, bdSeq); err != nil {
					return err
				}
			} else {
				s.log.Info("sparkplug connected; waiting for the primary host to be online", zap.String("primary_host", s.o.PrimaryHost))
			}
		case p := <-s.hostMsg:
			online, changed := s.hostState(p)
			if !changed || !connected {
				continue
			}
			if online && !s.node.Live() {
				if err := s.birth(ctx, cl, bdSeq); err != nil {
					return err
				}
			} else if !online && s.node.Live() {
				// Sparkplug 3.0: on an offline STATE of the primary host, NDEATH, disconnect, start over.
				final := wire.Message{Topic: s.node.Topic(NDEATH, ""), QoS: 1, Payload: death(bdSeq, time.Now())}
				cl.Close(&final)
				end("the primary host is offline")
				return nil
			}
		case p := <-s.cmds:
			if rebirthRequested(p) && s.node.Live() {
				s.log.Info("sparkplug rebirth requested")
				if err := s.birth(ctx, cl, bdSeq); err != nil {
					return err
				}
			}
		case b := <-s.batches:
			s.send(cl, s.node.Batch(b))
		case st := <-s.states:
			s.send(cl, s.node.Apply(st))
		case m := <-s.models:
			s.node = s.node.Remodel(m)
			if s.node.Live() {
				s.log.Info("sparkplug: the config changed; the node is born again")
				if err := s.birth(ctx, cl, bdSeq); err != nil {
					return err
				}
			}
		case <-tick:
			s.flushStore()
		}
	}
}

// hostState reads a STATE message of the primary host: whether it is online, and whether that
// is news (a message older than the last online one is an old session's and is ignored).
func (s *Session) hostState(p []byte) (online, changed bool) {
	var st struct {
		Online    *bool  `json:"online"`
		Timestamp *int64 `json:"timestamp"`
	}
	if err := json.Unmarshal(p, &st); err != nil || st.Online == nil || st.Timestamp == nil {
		if now := time.Now(); now.Sub(s.badStateLogged) >= time.Minute { // a flood of them is one line a minute
			s.badStateLogged = now
			s.log.Warn("sparkplug: a STATE message of the primary host that is not {online, timestamp}; ignored",
				zap.ByteString("payload", p[:min(len(p), 200)]))
		}
		return s.hostOnline, false
	}
	if s.hostKnown && *st.Timestamp < s.hostTS {
		return s.hostOnline, false
	}
	was := s.hostOnline
	s.hostOnline, s.hostTS, s.hostKnown = *st.Online, *st.Timestamp, true
	return s.hostOnline, was != s.hostOnline
}

// rebirthRequested says whether an NCMD asks for a rebirth (Node Control/Rebirth = true).
func rebirthRequested(p []byte) bool {
	var pl spb.Payload
	if proto.Unmarshal(p, &pl) != nil {
		return false
	}
	for _, m := range pl.Metrics {
		if m.GetName() == MetricRebirth && m.GetBooleanValue() {
			return true
		}
	}
	return false
}

// birth publishes the NBIRTH (seq 0) and the DBIRTHs, then what was stored while the host was
// away, flagged historical, in order.
func (s *Session) birth(ctx context.Context, cl *mqttx.Client, bdSeq uint64) error {
	for _, o := range s.node.Birth(time.Now(), bdSeq) {
		s.publish(cl, o)
	}
	s.up.Store(true)
	s.log.Info("sparkplug node born", zap.Uint64("bdseq", bdSeq))
	return s.forward(ctx, cl)
}

// forward sends the stored data, oldest first, flagged historical, and removes each batch once
// paho has written it.
func (s *Session) forward(ctx context.Context, cl *mqttx.Client) error {
	s.flushStore()
	var after uint64
	sent, skipped := 0, 0
	var toks []paho.Token
	if n := s.store.Len(); n > 0 {
		s.log.Info("sparkplug: sending the data stored while the primary host was away", zap.Int("messages", n))
	}
	for {
		entries, err := s.store.Peek(after, 256)
		if err != nil {
			s.log.Error("sparkplug store and forward: the store cannot be read; what it holds is not sent", zap.Error(err))
			return nil
		}
		if len(entries) == 0 {
			break
		}
		for _, e := range entries {
			after = e.ID
			var b64 string
			raw, derr := []byte(nil), json.Unmarshal(e.Msg.Payload, &b64)
			if derr == nil {
				raw, derr = base64.StdEncoding.DecodeString(b64)
			}
			var p spb.Payload
			if derr == nil {
				derr = proto.Unmarshal(raw, &p)
			}
			if derr != nil {
				s.log.Error("sparkplug store and forward: a stored message is damaged; skipped", zap.Uint64("id", e.ID), zap.Error(derr))
				continue
			}
			kind, device := s.parseTopic(e.Msg.Topic)
			if device != "" && !s.node.Born(device) {
				skipped++ // its device is not born in this session (offline now): a host would not know its aliases
				continue
			}
			for _, m := range p.Metrics {
				m.IsHistorical = proto.Bool(true)
			}
			toks = append(toks, s.publish(cl, Out{Kind: kind, Device: device, Payload: &p}))
			sent++
		}
		// Removed once written: a connection lost in the middle leaves the rest for the next session.
		for _, tok := range toks {
			select {
			case <-tok.Done():
			case <-ctx.Done():
				return nil
			}
			if tok.Error() != nil {
				s.log.Warn("sparkplug store and forward: the connection failed while sending; the rest stays stored", zap.Error(tok.Error()))
				return nil
			}
		}
		toks = toks[:0]
		if err := s.store.Done(entries); err != nil {
			s.log.Error("sparkplug store and forward: sent messages not removed from the store", zap.Error(err))
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	if sent > 0 || skipped > 0 {
		s.log.Info("sparkplug: stored data sent, flagged historical", zap.Int("messages", sent), zap.Int("not_sent_device_offline", skipped))
	}
	return nil
}

func (s *Session) parseTopic(t string) (kind, device string) {
	parts := strings.Split(t, "/")
	if len(parts) >= 4 {
		kind = parts[2]
	}
	if len(parts) >= 5 {
		device = parts[4]
	}
	return kind, device
}

// send publishes outs when the session is live (on cl); data made while it is not is stored.
func (s *Session) send(cl *mqttx.Client, outs []Out) {
	for _, o := range outs {
		if s.node.Live() {
			s.publish(cl, o)
			continue
		}
		if o.Kind != DDATA && o.Kind != NDATA {
			continue
		}
		b, err := proto.Marshal(o.Payload)
		if err != nil {
			continue
		}
		payload, _ := json.Marshal(base64.StdEncoding.EncodeToString(b))
		s.pending = append(s.pending, wire.Message{Topic: s.node.Topic(o.Kind, o.Device), QoS: 0, Payload: payload})
		s.pendingN.Store(int64(len(s.pending)))
		if len(s.pending) >= storeGroup {
			s.flushStore()
		}
	}
}

// flushStore writes the data held for store and forward in one transaction.
func (s *Session) flushStore() {
	if len(s.pending) == 0 {
		return
	}
	dropped, err := s.store.Put(s.pending)
	s.pending = nil
	s.pendingN.Store(0)
	if err != nil {
		s.log.Error("sparkplug store and forward: not written", zap.Error(err))
	}
	if dropped > 0 {
		s.log.Warn("sparkplug store and forward is full: the oldest stored data dropped", zap.Int("messages", dropped))
	}
}

// publish stamps seq (0 on an NBIRTH, then one more on every message, 255 wrapping to 0) and
// hands the message to paho (QoS 0, not retained, as Sparkplug's births and data are).
func (s *Session) publish(cl *mqttx.Client, o Out) paho.Token {
	if o.Kind == NBIRTH {
		s.seq = 0
	} else {
		s.seq = (s.seq + 1) % 256
	}
	o.Payload.Seq = proto.Uint64(s.seq)
	b, err := proto.Marshal(o.Payload)
	if err != nil {
		s.log.Error("sparkplug payload not encoded", zap.Stringer("message", o), zap.Error(err))
		return done{}
	}
	return cl.PublishAsync(wire.Message{Topic: s.node.Topic(o.Kind, o.Device), QoS: 0, Payload: b})
}

// done is a token that is complete at once (a message that was not sent).
type done struct{}

func (done) Wait() bool                     { return true }
func (done) WaitTimeout(time.Duration) bool { return true }
func (done) Done() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
func (done) Error() error { return nil }
