package influx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/internal/influx"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/testenv"
)

// BenchmarkSinkToInfluxDB18 offers device polls of 200 points (500 devices, one poll each per
// second of sample time) to the sink and reports the points per second that a real InfluxDB 1.8
// on loopback has accepted by the time Run has flushed; it then counts them back.
func BenchmarkSinkToInfluxDB18(b *testing.B) {
	url := testenv.InfluxDB18(b, "bench")
	sink := influx.New(influx.Options{URL: url, Bucket: "bench/autogen", Meta: influx.Meta{Site: "s"}, Queue: 1000}, zap.NewNop())
	batches := make([]sample.Batch, 500)
	for d := range batches {
		batches[d].Device = fmt.Sprintf("rack-%03d", d)
		for p := 0; p < 200; p++ {
			batches[d].Samples = append(batches[d].Samples, sample.Sample{Device: batches[d].Device,
				Point: fmt.Sprintf("p%03d", p), Value: float64(p) + 0.5, Quality: sample.Good})
		}
	}
	polls := max(1, b.N/200)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { done <- sink.Run(ctx) }()
	for i := 0; i < polls; i++ {
		bt := batches[i%500]
		bt.At = time.Unix(1_700_000_000+int64(i/500), 0)
		for sink.Pending() > 900 {
			time.Sleep(time.Millisecond) // the benchmark may not outrun the queue: drops would flatter it
		}
		sink.Offer(bt)
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if sink.Dropped() != 0 || sink.Failed() != 0 {
		b.Fatalf("dropped %d points, %d failed writes", sink.Dropped(), sink.Failed())
	}
	body, err := testenv.Influx18Query(url, "bench", "SELECT count(value) FROM telemetry")
	if err != nil {
		b.Fatal(err)
	}
	var res struct {
		Results []struct {
			Series []struct{ Values [][]any }
		}
	}
	if json.Unmarshal(body, &res) != nil || len(res.Results) == 0 || len(res.Results[0].Series) == 0 {
		b.Fatalf("count: %s", body)
	}
	stored := res.Results[0].Series[0].Values[0][1].(float64)
	b.ReportMetric(float64(polls*200)/elapsed.Seconds(), "points/s")
	b.ReportMetric(stored, "points_stored")
}
