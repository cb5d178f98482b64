package collectors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/sample"
)

// Device is a device with its poll plan.
type Device struct {
	Name     string
	UnitID   uint8
	Interval time.Duration
	Points   []config.Point
	Requests []Request
}

// NewDevice plans one configured device.
func NewDevice(cfg *config.Config, d config.Device) (*Device, error) {
	prof := cfg.Points(d)
	if prof == nil {
		return nil, fmt.Errorf("device %s: unknown profile %q", d.Name, d.Profile)
	}
	conn, ok := cfg.Connection(d.Connection)
	if !ok {
		return nil, fmt.Errorf("device %s: unknown connection %q", d.Name, d.Connection)
	}
	return &Device{
		Name:     d.Name,
		UnitID:   uint8(d.UnitID),
		Interval: d.Interval,
		Points:   prof.Points,
		Requests: Plan(prof.Points, Limits{MaxRegisters: conn.MaxRegistersPerRequest, MaxGap: conn.MaxGap}),
	}, nil
}

// Poller is the one owner goroutine of one connection: it alone uses the Reader, so at most one
// request is in flight on the link, and it switches unit ids between devices.
type Poller struct {
	Conn    string
	Reader  Reader
	Devices []*Device
	Clock   clock.Clock
	Out     chan<- sample.Batch
	Log     *zap.Logger
}

// Run polls every device on its interval until ctx ends. A device that fails is reported (its
// batch carries the error and CommLost samples) and the loop moves on to the next one.
func (p *Poller) Run(ctx context.Context) error {
	defer p.Reader.Close()
	if len(p.Devices) == 0 {
		<-ctx.Done()
		return nil
	}
	next := make([]time.Time, len(p.Devices))
	start := p.Clock.Now()
	for i := range next {
		next[i] = start
	}
	var lastWarn time.Time
	for {
		i := 0
		for j := range next {
			if next[j].Before(next[i]) {
				i = j
			}
		}
		if wait := next[i].Sub(p.Clock.Now()); wait > 0 {
			if err := clock.Sleep(ctx, p.Clock, wait); err != nil {
				return nil
			}
		} else if behind := -wait; behind > p.Devices[i].Interval && p.Clock.Now().Sub(lastWarn) > time.Minute {
			// The link is slower than the schedule asks: the data goes stale for everyone on it.
			p.Log.Warn("poller behind schedule", zap.String("connection", p.Conn), zap.Duration("behind", behind))
			lastWarn = p.Clock.Now()
		}
		if ctx.Err() != nil {
			return nil
		}
		d := p.Devices[i]
		b := p.Poll(d)
		select {
		case p.Out <- b:
		case <-ctx.Done():
			return nil
		}
		// Keep the schedule's phase; skip cycles that a slow device already missed rather than
		// bursting to catch up.
		now := p.Clock.Now()
		for !next[i].After(now) {
			next[i] = next[i].Add(d.Interval)
		}
	}
}

// Poll reads one device once and returns its batch.
func (p *Poller) Poll(d *Device) sample.Batch {
	at := p.Clock.Now()
	b := sample.Batch{Device: d.Name, At: at, Samples: make([]sample.Sample, len(d.Points))}
	for i, pt := range d.Points {
		b.Samples[i] = sample.Sample{Device: d.Name, Point: pt.Name, Role: pt.Role, Quality: sample.CommLost, At: at}
	}
	for _, r := range d.Requests {
		data, err := p.Reader.Read(d.UnitID, r.Kind, r.Start, r.Count)
		var ex *ExceptionError
		switch {
		case errors.As(err, &ex) && ex.Unreachable():
			// The gateway answered for a unit it cannot reach: the device is lost, not the link.
			b.Err = fmt.Errorf("device %s unit %d: %w", d.Name, d.UnitID, err)
			return b
		case errors.As(err, &ex):
			// The device is there but refuses this range: only these points are unusable.
			for _, i := range r.Points {
				b.Samples[i].Quality = sample.Invalid
			}
			p.Log.Debug("exception", zap.String("device", d.Name), zap.Stringer("kind", r.Kind), zap.Uint16("start", r.Start), zap.Error(err))
			continue
		case err != nil:
			b.Err = fmt.Errorf("device %s unit %d: read %s %d+%d: %w", d.Name, d.UnitID, r.Kind, r.Start, r.Count, err)
			return b
		}
		decodeInto(b.Samples, d.Points, r, data)
	}
	return b
}

// decodeInto fills the samples of r's points from its response.
func decodeInto(out []sample.Sample, points []config.Point, r Request, data []byte) {
	for _, i := range r.Points {
		pt := points[i]
		off := int(pt.Address) - int(r.Start)
		var dv Decoded
		var err error
		if r.Kind.IsBit() {
			dv, err = DecodeBit(pt, data, off)
		} else {
			dv, err = DecodeRegisters(pt, data[2*off:2*off+2*int(pt.Words)])
		}
		if err != nil {
			out[i].Quality = sample.Invalid
			continue
		}
		out[i].Value, out[i].Text, out[i].Quality = dv.Value, dv.Text, dv.Quality
	}
}
