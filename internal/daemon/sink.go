package daemon

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/firebreak-dc/firebreak/internal/mqttx"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/wire"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Sink is where every poll's telemetry goes besides the engine: InfluxDB (internal/influx) and
// MQTT telemetry. Offer is called by the engine loop and never blocks: a sink that is behind
// drops the batch and counts it. Run delivers until ctx ends (the daemon ends it once the engine
// has handed over the pollers' last batches), then delivers what it already holds without
// waiting for more, and logs what it dropped.
type Sink interface {
	Offer(sample.Batch)
	Run(ctx context.Context) error
}

// mqttTelemetry is P/dev/<device>/telemetry: QoS 0, dropped rather than queued when the broker is
// away or slow; alarms, risk and drains go through the outbox, never here.
type mqttTelemetry struct {
	enc                *wire.Encoder // the engine loop's: Offer runs on it
	mq                 *mqttx.Client
	ch                 chan wire.Message
	free               chan []byte // payload buffers of messages written, for the next ones
	log                *zap.Logger
	published, counted prometheus.Counter // counted: dropped
	dropped            atomic.Int64
}

func newMQTTTelemetry(enc *wire.Encoder, mq *mqttx.Client, published, dropped prometheus.Counter, log *zap.Logger) *mqttTelemetry {
	return &mqttTelemetry{enc: enc, mq: mq, ch: make(chan wire.Message, telemetryQueue), free: make(chan []byte, telemetryFree), published: published, counted: dropped, log: log}
}

// Offer encodes the batch (on the engine loop, which owns the encoder's seq) into the buffer of
// a message already written, if one is free, and queues it. The batch is not kept.
func (t *mqttTelemetry) Offer(b sample.Batch) {
	var buf []byte
	select {
	case buf = <-t.free:
	default:
	}
	m := t.enc.TelemetryInto(buf, b)
	select {
	case t.ch <- m:
	default:
		t.recycle(m.Payload)
		t.drop()
	}
}

// recycle keeps a written payload's buffer for a later Offer.
func (t *mqttTelemetry) recycle(buf []byte) {
	select {
	case t.free <- buf:
	default:
	}
}

func (t *mqttTelemetry) drop() {
	t.dropped.Add(1)
	t.counted.Inc()
}

// Run publishes until ctx ends, then what is queued.
func (t *mqttTelemetry) Run(ctx context.Context) error {
	defer func() {
		if n := t.dropped.Load(); n > 0 {
			t.log.Warn("telemetry dropped while the broker was slow or away", zap.Int64("messages", n))
		}
	}()
	for {
		select {
		case m := <-t.ch:
			t.publish(m)
		case <-ctx.Done():
			for {
				select {
				case m := <-t.ch:
					t.publish(m)
				default:
					return nil
				}
			}
		}
	}
}

// publish writes m straight into the connection (mqttx.PublishTelemetry copies it), so its
// buffer is free again at once.
func (t *mqttTelemetry) publish(m wire.Message) {
	err := t.mq.PublishTelemetry(m.Topic, m.Payload)
	t.recycle(m.Payload)
	if err != nil {
		if !errors.Is(err, mqttx.ErrNotConnected) {
			t.log.Debug("telemetry not written", zap.String("topic", m.Topic), zap.Error(err))
		}
		t.drop()
		return
	}
	t.published.Inc()
}
