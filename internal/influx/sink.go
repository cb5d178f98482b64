// Package influx is the telemetry sink: samples become InfluxDB points, written in batches of our
// own through influxdb-client-go's blocking write API, so that every batch's fate is known (written,
// refused, retried) and counted. It never writes a NaN, an Inf or a sentinel: a sample that is not
// good keeps its quality and has no value.
//
// Schema (docs/operations.md, "InfluxDB"):
//
//	telemetry,site=<site>,instance=<instance>,zone=<zone>,device=<device>,point=<point>[,role=<role>],quality=<quality>
//	    value=<float> (good samples only), good=<bool>
//	events,site=…,instance=…,zone=…,kind=alarm|risk|drain,… fields per kind
//
// It works with InfluxDB 2.x (bucket, org, token) and 1.8 (/api/v2/write: bucket "db/rp", token
// "user:pass" or empty when auth is off). Write errors follow the 2.x write API: 429 and 503 are
// retried after their Retry-After (else with a backoff), 413 halves the batch, any other refusal
// (400, 401, 403, 404) drops the batch and counts its points as failed.
package influx

import (
	"context"
	"errors"
	"fmt"
	"math"
	nethttp "net/http"
	"sync"
	"sync/atomic"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/influxdata/influxdb-client-go/v2/api/write"
	influxlog "github.com/influxdata/influxdb-client-go/v2/log"
	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

// Measurement is the measurement every sample goes to; Events the one of alarm events, risk
// changes and drain signals.
const (
	Measurement = "telemetry"
	Events      = "events"
)

// Meta is what every point is tagged with besides its sample: the site, the daemon (an HA pair
// writes each point twice, once per instance) and each device's zone.
type Meta struct {
	Site, Instance string
	Zones          map[string]string // device → zone
}

// Points turns a batch into points (pure; tested without a server).
func Points(m Meta, b sample.Batch) []*write.Point {
	out := make([]*write.Point, 0, len(b.Samples))
	for _, s := range b.Samples {
		if s.Text != "" {
			continue // string points (serials, models) are not time series
		}
		tags := map[string]string{"site": m.Site, "instance": m.Instance, "device": s.Device, "point": s.Point,
			"quality": s.Quality.String()}
		if z := m.Zones[s.Device]; z != "" {
			tags["zone"] = z
		}
		if s.Role != "" {
			tags["role"] = string(s.Role)
		}
		good := s.Quality == sample.Good && !math.IsNaN(s.Value) && !math.IsInf(s.Value, 0)
		fields := map[string]any{"good": good}
		if good {
			fields["value"] = s.Value
		}
		out = append(out, write.NewPoint(Measurement, tags, fields, s.At))
	}
	return out
}

// Options configure a sink.
type Options struct {
	URL, Token, Bucket, Org string
	Meta                    Meta
	Queue                   int // batches waiting for the writer; beyond it batches are dropped and counted
	// MaxPending bounds the points held for a retry (a server away for minutes); beyond it the
	// oldest are dropped and counted. 0: 500,000 (about 5 minutes of a 500-device room).
	MaxPending int
	// FlushEvery is how often what is held is written (and a retry tried); 0: 1 s.
	FlushEvery time.Duration
}

// batchSize is the most points one write carries (a 413 halves it for the batch that drew it).
const batchSize = 5000

// Sink writes telemetry and events without ever blocking the caller.
type Sink struct {
	o      Options
	client influxdb2.Client
	in     chan sample.Batch
	ev     chan *write.Point
	log    *zap.Logger

	written, dropped, failed atomic.Int64
	mu                       sync.Mutex
	failing                  error // the last write's error while writes fail; nil once one succeeds
}

var setLog sync.Once

// New makes a sink; nothing is sent until Run. The client library's own log goes to log.
func New(o Options, log *zap.Logger) *Sink {
	if o.Queue <= 0 {
		o.Queue = 1024
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 500_000
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = time.Second
	}
	setLog.Do(func() {
		influxlog.Log = &zapLog{log.WithOptions(zap.AddCallerSkip(1)).With(zap.String("library", "influxdb-client-go"))}
	})
	opts := influxdb2.DefaultOptions().SetHTTPRequestTimeout(10).SetBatchSize(batchSize)
	return &Sink{o: o, client: influxdb2.NewClientWithOptions(o.URL, o.Token, opts), in: make(chan sample.Batch, o.Queue),
		ev: make(chan *write.Point, o.Queue), log: log}
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

// OfferEvent queues one point of the events measurement (see EventPoints), or drops and counts it.
func (s *Sink) OfferEvent(p *write.Point) {
	select {
	case s.ev <- p:
	default:
		s.dropped.Add(1)
	}
}

// Pending is how many batches wait in the queue.
func (s *Sink) Pending() int { return len(s.in) }

// Written is how many points the server took; Dropped how many the full queue or the retry
// bound refused; Failed how many the server refused for good.
func (s *Sink) Written() int64 { return s.written.Load() }
func (s *Sink) Dropped() int64 { return s.dropped.Load() }
func (s *Sink) Failed() int64  { return s.failed.Load() }

// Failing is the last write error while writes fail, nil while they succeed.
func (s *Sink) Failing() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failing
}

// writer is the one call the sink makes of the client (the blocking write API).
type writer interface {
	WritePoint(ctx context.Context, p ...*write.Point) error
}

// Run writes until ctx ends, then what it holds, once, for at most 5 s.
func (s *Sink) Run(ctx context.Context) error {
	w := s.client.WriteAPIBlocking(s.o.Org, s.o.Bucket)
	defer s.client.Close()
	r := &retrier{s: s, w: w}
	t := time.NewTicker(s.o.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			for drained := false; !drained; {
				select {
				case b := <-s.in:
					r.add(Points(s.o.Meta, b))
				case p := <-s.ev:
					r.add([]*write.Point{p})
				default:
					drained = true
				}
			}
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r.next = time.Time{} // one last try, whatever the backoff says
			r.flush(fctx)
			cancel()
			if n := len(r.pending); n > 0 {
				s.dropped.Add(int64(n))
				s.log.Warn("telemetry points not written before the shutdown", zap.Int("points", n), zap.Error(s.Failing()))
			}
			if n := s.Dropped(); n > 0 {
				s.log.Warn("telemetry points dropped before influx (queue full or retry bound)", zap.Int64("points", n))
			}
			return nil
		case b := <-s.in:
			r.add(Points(s.o.Meta, b))
			if len(r.pending) >= batchSize {
				r.flush(ctx)
			}
		case p := <-s.ev:
			r.add([]*write.Point{p})
		case <-t.C:
			r.flush(ctx)
		}
	}
}

// retrier holds the points not yet written and writes them in batches, in order.
type retrier struct {
	s       *Sink
	w       writer
	pending []*write.Point
	next    time.Time     // no write before this (a Retry-After, a backoff)
	backoff time.Duration // the next backoff without a Retry-After
}

func (r *retrier) add(ps []*write.Point) {
	r.pending = append(r.pending, ps...)
	if over := len(r.pending) - r.s.o.MaxPending; over > 0 {
		r.s.dropped.Add(int64(over))
		r.pending = append(r.pending[:0:0], r.pending[over:]...)
	}
}

// flush writes what is pending, batch by batch, until it is all written or a write fails.
func (r *retrier) flush(ctx context.Context) {
	size := batchSize
	for len(r.pending) > 0 && !time.Now().Before(r.next) && ctx.Err() == nil {
		n := min(size, len(r.pending))
		err := r.w.WritePoint(ctx, r.pending[:n]...)
		if err == nil {
			r.s.written.Add(int64(n))
			r.pending = r.pending[n:]
			r.backoff = 0
			r.s.ok()
			continue
		}
		var he *http.Error
		status := 0
		if errors.As(err, &he) {
			status = he.StatusCode
		}
		switch {
		case status == nethttp.StatusRequestEntityTooLarge && n > 1:
			size = n / 2 // the server's limit: halve until it takes it
			continue
		case status == nethttp.StatusTooManyRequests || status == nethttp.StatusServiceUnavailable || status == 0 || status >= 500:
			// The server is busy or away: keep the points, try again later.
			var wait time.Duration
			if he != nil && he.RetryAfter > 0 {
				wait = time.Duration(he.RetryAfter) * time.Second
			} else {
				r.backoff = min(max(2*r.backoff, time.Second), 2*time.Minute)
				wait = r.backoff
			}
			r.next = time.Now().Add(wait)
			r.s.fail(fmt.Errorf("%w (retrying in %s; %d points held)", err, wait, len(r.pending)))
			return
		default:
			// Refused for good (bad data, no such bucket, not authorised): the points are lost;
			// counted, shown, and the next batch tried at the next flush.
			r.s.failed.Add(int64(n))
			r.pending = r.pending[n:]
			r.s.fail(fmt.Errorf("%w (%d points refused)", err, n))
			return
		}
	}
}

func (s *Sink) fail(err error) {
	s.mu.Lock()
	was := s.failing
	s.failing = err
	s.mu.Unlock()
	if was == nil {
		s.log.Error("influx writes fail; telemetry is held or refused (see firebreak_influx_points_total)", zap.Error(err))
	}
}

func (s *Sink) ok() {
	s.mu.Lock()
	was := s.failing
	s.failing = nil
	s.mu.Unlock()
	if was != nil {
		s.log.Info("influx writes work again", zap.NamedError("was", was))
	}
}

// zapLog is the client library's logger, into ours.
type zapLog struct{ l *zap.Logger }

func (z *zapLog) Debugf(f string, v ...any) { z.l.Debug(fmt.Sprintf(f, v...)) }
func (z *zapLog) Debug(m string)            { z.l.Debug(m) }
func (z *zapLog) Infof(f string, v ...any)  { z.l.Info(fmt.Sprintf(f, v...)) }
func (z *zapLog) Info(m string)             { z.l.Info(m) }
func (z *zapLog) Warnf(f string, v ...any)  { z.l.Warn(fmt.Sprintf(f, v...)) }
func (z *zapLog) Warn(m string)             { z.l.Warn(m) }
func (z *zapLog) Errorf(f string, v ...any) { z.l.Error(fmt.Sprintf(f, v...)) }
func (z *zapLog) Error(m string)            { z.l.Error(m) }
func (z *zapLog) SetLogLevel(uint)          {}
func (z *zapLog) LogLevel() uint            { return influxlog.DebugLevel }
func (z *zapLog) SetPrefix(string)          {}
