// Package influx is the telemetry sink: samples become InfluxDB points, written through
// influxdb-client-go's non-blocking WriteAPI behind a bounded queue of our own. It never writes a
// NaN, an Inf or a sentinel: a sample that is not good keeps its quality and has no value.
//
// Schema (one measurement): telemetry,site=<site>,device=<device>,point=<point>[,role=<role>]
// value=<float> (good samples only), quality="<quality>" (always), at the sample's time.
// It works with InfluxDB 2.x (bucket, token) and 1.8 (/api/v2/write: bucket "db/rp", token
// "user:pass" or empty when auth is off).
package influx

import (
	"context"
	"math"
	"sync/atomic"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api/write"
	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

// Measurement is the measurement every point goes to.
const Measurement = "telemetry"

// Points turns a batch into points (pure; tested without a server).
func Points(site string, b sample.Batch) []*write.Point {
	out := make([]*write.Point, 0, len(b.Samples))
	for _, s := range b.Samples {
		if s.Text != "" {
			continue // string points (serials, models) are not time series
		}
		tags := map[string]string{"site": site, "device": s.Device, "point": s.Point}
		if s.Role != "" {
			tags["role"] = string(s.Role)
		}
		fields := map[string]any{"quality": s.Quality.String()}
		if s.Quality == sample.Good && !math.IsNaN(s.Value) && !math.IsInf(s.Value, 0) {
			fields["value"] = s.Value
		}
		out = append(out, write.NewPoint(Measurement, tags, fields, s.At))
	}
	return out
}

// Options configure a sink.
type Options struct {
	URL, Token, Bucket, Org, Site string
	Queue                         int // batches waiting for the writer; beyond it batches are dropped and counted
}

// Sink writes telemetry without ever blocking the caller.
type Sink struct {
	o       Options
	client  influxdb2.Client
	in      chan sample.Batch
	dropped atomic.Int64
	failed  atomic.Int64
	log     *zap.Logger
}

// New makes a sink; nothing is sent until Run.
func New(o Options, log *zap.Logger) *Sink {
	if o.Queue <= 0 {
		o.Queue = 1024
	}
	// Retries back off exponentially from 1 s to 2 min, for at most 5 min per batch; the retry
	// buffer holds up to 500,000 points (about 5 minutes of a 500-device room at 200 points).
	opts := influxdb2.DefaultOptions().SetBatchSize(5000).SetFlushInterval(1000).
		SetMaxRetries(10).SetRetryInterval(1000).SetExponentialBase(2).SetMaxRetryInterval(120_000).
		SetMaxRetryTime(300_000).SetRetryBufferLimit(500_000).SetHTTPRequestTimeout(10)
	return &Sink{o: o, client: influxdb2.NewClientWithOptions(o.URL, o.Token, opts), in: make(chan sample.Batch, o.Queue), log: log}
}

// Offer queues a batch, or drops it and counts its points when the queue is full: telemetry
// never holds up detection.
func (s *Sink) Offer(b sample.Batch) {
	select {
	case s.in <- b:
	default:
		s.dropped.Add(int64(len(b.Samples)))
	}
}

// Pending is how many batches wait in the queue.
func (s *Sink) Pending() int { return len(s.in) }

// Dropped is how many points the full queue refused; Failed how many write errors the server
// gave (the client retries a failed batch before it reports it).
func (s *Sink) Dropped() int64 { return s.dropped.Load() }
func (s *Sink) Failed() int64  { return s.failed.Load() }

// Run writes until ctx ends, then flushes what it holds.
func (s *Sink) Run(ctx context.Context) error {
	w := s.client.WriteAPI(s.o.Org, s.o.Bucket)
	errs := w.Errors() // drained from the start, or the client blocks once its error channel fills
	done := make(chan struct{})
	go func() {
		defer close(done)
		for err := range errs {
			s.failed.Add(1)
			s.log.Warn("influx write failed", zap.Error(err))
		}
	}()
	defer func() {
		w.Flush()
		s.client.Close() // closes the error channel, ending the drain goroutine
		<-done
		if n := s.Dropped(); n > 0 {
			s.log.Warn("telemetry points dropped before influx (queue full)", zap.Int64("points", n))
		}
	}()
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case b := <-s.in:
					s.write(w, b)
				default:
					return nil
				}
			}
		case b := <-s.in:
			s.write(w, b)
		}
	}
}

type pointWriter interface{ WritePoint(*write.Point) }

func (s *Sink) write(w pointWriter, b sample.Batch) {
	for _, p := range Points(s.o.Site, b) {
		w.WritePoint(p)
	}
}
