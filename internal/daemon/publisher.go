package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/internal/mqttx"
	"github.com/firebreak-dc/firebreak/internal/outbox"
)

const (
	// window is how many critical messages may wait for their PUBACK at once. The broker keeps
	// their order (one connection, one publisher goroutine), so pipelining costs no ordering.
	window = 64
	// pubackTimeout: a PUBACK later than this means the connection is gone even if paho has not
	// noticed yet; everything unacknowledged is sent again after the next connect.
	pubackTimeout = 10 * time.Second
)

type flight struct {
	e    outbox.Entry
	tok  paho.Token
	sent time.Time
}

// criticalPublisher sends the outbox to the broker in order and forgets each message only after
// its PUBACK. After every (re)connect it re-makes the subscriptions' checks, re-publishes the last
// retained state of every topic it knows (a restarted broker may have lost it), then sends the
// outbox again from its oldest message: delivery is at least once, in order, and a consumer
// dedupes on event_id (events) or seq (drain signals).
type criticalPublisher struct {
	mq  *mqttx.Client
	ob  *outbox.Outbox
	log *zap.Logger

	inflight []flight
	last     uint64 // the newest outbox ID handed to paho since the last reset
	// observe, if set, takes each message's time from hand-over to PUBACK.
	observe func(float64)
	// failing, if set, is told when the outbox fails the publisher (and nil when it works
	// again): readiness and an alarm show it.
	failing func(error)
	failed  error
}

// retryOutbox is how long the publisher waits before it asks a failing outbox again.
const retryOutbox = time.Second

// outboxFailed records a failure of the outbox (err nil: it works again), logged once a change.
// The publisher never stops for it: it tries again, and the messages stay where they are.
func (p *criticalPublisher) outboxFailed(err error) {
	switch {
	case err != nil && p.failed == nil:
		p.log.Error("the outbox fails the publisher; trying again every second (messages stay queued)", zap.Error(err))
	case err == nil && p.failed != nil:
		p.log.Info("the outbox works again; publishing", zap.NamedError("was", p.failed))
	}
	if (err == nil) != (p.failed == nil) && p.failing != nil {
		p.failing(err)
	}
	p.failed = err
}

// run publishes until the outbox is empty after engineDone closed, or ctx ends (then what is left
// stays in the outbox for the next start, and the error says how much).
func (p *criticalPublisher) run(ctx context.Context, engineDone <-chan struct{}) error {
	recheck := time.NewTimer(0)
	defer recheck.Stop()
	for {
		var err error
		if p.mq.Connected() {
			err = p.fill()
		}
		err = errors.Join(err, p.collect())
		p.outboxFailed(err)
		if engineDone == nil && p.ob.Len() == 0 {
			return nil
		}
		var headDone <-chan struct{}
		wait := 500 * time.Millisecond // re-check the connection while it is down
		if err != nil {
			wait = retryOutbox
		} else if len(p.inflight) > 0 {
			headDone = p.inflight[0].tok.Done()
			wait = max(time.Until(p.inflight[0].sent.Add(pubackTimeout)), 0)
		}
		recheck.Reset(wait)
		select {
		case <-ctx.Done():
			if n := p.ob.Len(); n > 0 {
				return fmt.Errorf("%d critical messages not yet acknowledged by the broker; they stay in the outbox for the next start", n)
			}
			return nil
		case <-engineDone:
			engineDone = nil
		case <-p.mq.Connects():
			p.reconnected(ctx)
		case <-p.ob.Notify():
		case <-headDone:
		case <-recheck.C:
			if len(p.inflight) > 0 && time.Since(p.inflight[0].sent) >= pubackTimeout {
				p.log.Warn("no PUBACK in time; will send again after reconnecting", zap.String("topic", p.inflight[0].e.Msg.Topic),
					zap.Int("in_flight", len(p.inflight)))
				p.reset()
			}
		}
	}
}

// fill hands paho the next outbox messages, up to the window.
func (p *criticalPublisher) fill() error {
	if len(p.inflight) >= window {
		return nil
	}
	es, err := p.ob.Peek(p.last, window-len(p.inflight))
	if err != nil {
		return err
	}
	now := time.Now()
	for _, e := range es {
		p.inflight = append(p.inflight, flight{e: e, tok: p.mq.PublishAsync(e.Msg), sent: now})
		p.last = e.ID
	}
	return nil
}

// collect forgets, in one transaction, every message acknowledged from the head of the window.
func (p *criticalPublisher) collect() error {
	var done []outbox.Entry
	for len(p.inflight) > 0 {
		f := p.inflight[0]
		select {
		case <-f.tok.Done():
		default:
			return p.ob.Done(done)
		}
		if err := f.tok.Error(); err != nil {
			p.log.Warn("publish failed; will send again after reconnecting", zap.String("topic", f.e.Msg.Topic), zap.Error(err))
			p.reset()
			break
		}
		done = append(done, f.e)
		p.inflight = p.inflight[1:]
		if p.observe != nil {
			p.observe(time.Since(f.sent).Seconds())
		}
	}
	return p.ob.Done(done)
}

// reset forgets what is in flight: it is all sent again, from the outbox's head.
func (p *criticalPublisher) reset() {
	p.inflight = nil
	p.last = 0
}

func (p *criticalPublisher) reconnected(ctx context.Context) {
	p.reset()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.mq.CheckSubscriptions(sctx); err != nil {
		p.log.Error("operator commands will not arrive", zap.Error(err))
	}
	ret, err := p.ob.Retained()
	if err != nil {
		p.log.Error("retained state not re-published", zap.Error(err))
		return
	}
	// Not tracked: if these fail, the next connect publishes them again; anything newer is in the
	// outbox and goes after them.
	for _, m := range ret {
		p.mq.PublishAsync(m)
	}
	if len(ret) > 0 {
		p.log.Info("retained state re-published", zap.Int("topics", len(ret)))
	}
}
