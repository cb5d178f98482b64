package mqttx_test

import (
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/internal/mqttx"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/testenv"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// rackTelemetry is one rack's telemetry message as the daemon sends it (35 points).
func rackTelemetry(enc *wire.Encoder, i int) wire.Message {
	b := sample.Batch{Device: "rack-01", At: time.Unix(int64(i), 0)}
	for p := 0; p < 35; p++ {
		b.Samples = append(b.Samples, sample.Sample{Device: "rack-01", Point: "module_temp_" + string(rune('a'+p%26)), Value: 24.5 + float64(p)/10, Quality: sample.Good})
	}
	return enc.Telemetry(b)
}

// BenchmarkTelemetryToSubscriber measures the telemetry path the daemon uses (encoded rack
// messages, QoS 0, PublishTelemetry: straight into the gathered connection) through a real Mosquitto to a subscriber, and reports the
// messages per second that arrive there, not merely those handed to the client. The publisher
// keeps at most 2,000 messages ahead of the subscriber: a sustained rate, not a burst into
// buffers (QoS 0 beyond what the subscriber takes is dropped by the broker, and counted here).
func BenchmarkTelemetryToSubscriber(b *testing.B) {
	broker := testenv.Mosquitto(b)
	var got atomic.Int64
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("bench-sub").SetOrderMatters(false))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("bench/#", 0, func(paho.Client, paho.Message) { got.Add(1) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	c, err := mqttx.Dial(mqttx.Options{Brokers: []string{broker}, ClientID: "bench-pub"}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(nil)
	select {
	case <-c.Connects():
	case <-time.After(5 * time.Second):
		b.Fatal("no connection")
	}
	enc := wire.NewEncoder("bench", "s", "i", "boot")
	msgs := make([]wire.Message, 1000)
	for i := range msgs {
		msgs[i] = rackTelemetry(enc, i)
	}
	b.SetBytes(int64(len(msgs[0].Payload)))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for int64(i)-got.Load() > 2000 {
			time.Sleep(50 * time.Microsecond) // flow control on the subscriber
		}
		m := msgs[i%len(msgs)]
		if err := c.PublishTelemetry(m.Topic, m.Payload); err != nil {
			b.Fatalf("message %d: %v", i, err)
		}
	}
	// Wait for the subscriber to stop receiving; what never arrives is reported as lost.
	deadline := time.Now().Add(10 * time.Second)
	for prev := int64(-1); got.Load() != prev && got.Load() < int64(b.N) && time.Now().Before(deadline); {
		prev = got.Load()
		time.Sleep(100 * time.Millisecond) // waiting for deliveries to settle
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(got.Load())/elapsed.Seconds(), "delivered_msgs/s")
	b.ReportMetric(float64(int64(b.N)-got.Load()), "lost")
}
