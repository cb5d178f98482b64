package daemon

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/ratelog"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// Queue sizes of the inbox.
const (
	protocolQueue = 1024
	commandQueue  = 256
	refusedQueue  = 16
)

// inbox sorts what arrives on the daemon's subscriptions (in paho's handler goroutines) into
// three queues for the engine loop, so that garbage can never crowd out what the drain protocol
// needs (issue 22: a flood of 20,000 garbage commands cost a signed ack command and a consumer's
// drain ack, which shared one queue with them):
//
//   - protocol: consumers' acks that parse and name a configured consumer, and the HA peer's
//     status and signals. Never dropped: the handler waits for the engine loop.
//   - commands: commands that look like commands (the size bound, JSON, a known operator, a
//     signature of the right shape). Dropped, logged, only when 256 wait.
//   - refused: the rest, to be answered with the reason; while 16 wait, more are dropped and
//     counted (the engine loop also bounds how fast it answers refusals).
//
// Garbage on the ack topics is not answered (acks never are): it is counted and logged, rate
// limited.
type inbox struct {
	protocol chan rawCommand
	commands chan rawCommand
	refused  chan rawCommand

	ctx       context.Context // the daemon's: a waiting handler gives up when it ends
	topics    wire.Topics
	consumers atomic.Pointer[map[string]bool]
	operators atomic.Pointer[map[string]ed25519.PublicKey]
	log       *zap.Logger
	// refusedCmds and badAcks count what is dropped, logged at most every 10 s.
	refusedCmds, badAcks ratelog.Log
}

func newInbox(ctx context.Context, topics wire.Topics, consumers []string, operators map[string]ed25519.PublicKey, log *zap.Logger) *inbox {
	in := &inbox{protocol: make(chan rawCommand, protocolQueue), commands: make(chan rawCommand, commandQueue),
		refused: make(chan rawCommand, refusedQueue), ctx: ctx, topics: topics, log: log,
		refusedCmds: ratelog.Log{Every: 10 * time.Second, Msg: "refused operator commands dropped unanswered: too many at once"},
		badAcks:     ratelog.Log{Every: 10 * time.Second, Msg: "drain acks refused: too large, malformed, or from a consumer not in cutover.consumers"}}
	in.set(consumers, operators)
	return in
}

// set takes the consumers and operators of a (reloaded) config.
func (in *inbox) set(consumers []string, ops map[string]ed25519.PublicKey) {
	cs := map[string]bool{}
	for _, c := range consumers {
		cs[c] = true
	}
	in.consumers.Store(&cs)
	in.operators.Store(&ops)
}

// protocolMsg hands over a message of the drain protocol, waiting while the queue is full.
func (in *inbox) protocolMsg(rc rawCommand) {
	select {
	case in.protocol <- rc:
	case <-in.ctx.Done():
	}
}

// command sorts an operator command.
func (in *inbox) command(topic string, payload []byte) {
	rc := rawCommand{topic: topic, payload: payload}
	if !in.looksLikeCommand(payload) {
		if len(payload) > wire.MaxCommandBytes {
			rc.payload, rc.oversize = nil, len(payload) // refused unread, and answered
		}
		select {
		case in.refused <- rc:
		default:
			in.refusedCmds.Add(in.log, zap.String("example_topic", clip(topic)))
		}
		return
	}
	select {
	case in.commands <- rc:
	default:
		in.log.Warn("operator command dropped: too many waiting", zap.String("topic", clip(topic)))
	}
}

// looksLikeCommand is a cheap check before the engine loop verifies the signature: the size
// bound, JSON, a known operator and a signature of the right shape.
func (in *inbox) looksLikeCommand(payload []byte) bool {
	if len(payload) > wire.MaxCommandBytes {
		return false
	}
	var c struct {
		Operator string `json:"operator"`
		Sig      string `json:"sig"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return false
	}
	if _, ok := (*in.operators.Load())[c.Operator]; !ok {
		return false
	}
	sig, err := base64.StdEncoding.DecodeString(c.Sig)
	return err == nil && len(sig) == ed25519.SignatureSize
}

// ack sorts a consumer's drain ack: one that parses and names a configured consumer is protocol.
func (in *inbox) ack(topic string, payload []byte) {
	if len(payload) == 0 {
		return // a cleared retained ack
	}
	tp, ok := in.topics.Parse(topic)
	ok = ok && tp.Kind == wire.KindDrainAck && len(payload) <= wire.MaxAckBytes
	if ok {
		_, err := cutover.ParseAck(payload, tp.Zone, tp.Consumer)
		ok = err == nil && (*in.consumers.Load())[tp.Consumer]
	}
	if !ok {
		in.badAcks.Add(in.log, zap.String("example_topic", clip(topic)))
		return
	}
	in.protocolMsg(rawCommand{topic: topic, payload: payload, ack: true})
}

// limiter is a token bucket on the engine loop's clock: refusals are answered at most rate per
// second after a burst.
type limiter struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func (l *limiter) allow(now time.Time) bool {
	if l.last.IsZero() {
		l.tokens = l.burst
	} else {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
