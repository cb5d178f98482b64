package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/internal/mqttx"
	"github.com/firebreak-dc/firebreak/internal/outbox"
	"github.com/firebreak-dc/firebreak/internal/testenv"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// BenchmarkCriticalPath measures alarm events through the durable path: written to the outbox in
// batches of 10 (one fsync each, as the engine loop does per step), published at QoS 1 with 64 in
// flight, forgotten after each PUBACK, to a real Mosquitto. Reported: events/s acknowledged.
func BenchmarkCriticalPath(b *testing.B) {
	broker := testenv.Mosquitto(b)
	ob, err := outbox.Open(filepath.Join(b.TempDir(), "outbox.db"), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer ob.Close()
	mq, err := mqttx.Dial(mqttx.Options{Brokers: []string{broker}, ClientID: "bench-critical"}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer mq.Close(nil)
	payload, _ := json.Marshal(map[string]any{"event_id": "fb-a1.0123456789abcdef.42", "cause": "activate",
		"alarm": map[string]any{"id": "rack-07.cell_temp_max.temp_high", "state": "unacknowledged", "stage": 2, "value": 56.3}})
	batch := make([]wire.Message, 10)
	for i := range batch {
		batch[i] = wire.Message{Topic: fmt.Sprintf("bench/events/%d", i), QoS: 1, Payload: payload, Critical: true}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	engineDone := make(chan struct{})
	done := make(chan error, 1)
	pub := &criticalPublisher{mq: mq, ob: ob, log: zap.NewNop()}
	b.ResetTimer()
	start := time.Now()
	go func() { done <- pub.run(ctx, engineDone) }()
	for n := 0; n < b.N; n += len(batch) {
		if _, err := ob.Put(batch); err != nil {
			b.Fatal(err)
		}
	}
	close(engineDone)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "acked_events/s")
}
