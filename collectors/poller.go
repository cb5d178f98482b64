package collectors

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/sunspec"
)

// Device is a device with its poll plan.
type Device struct {
	Name     string
	UnitID   uint8
	Interval time.Duration
	Points   []Point
	Requests []Request
	Limits   Limits

	// illegal holds the points learned unreadable (see learn): left out of the plan, their
	// samples Invalid, and asked alone again every probeEvery (probeAt), forgotten once one reads.
	illegal map[int]bool
	probeAt time.Time
	// refused are the points refused alone ("illegal data address") not yet learned: when their
	// refusals began and how many polls refused them while other reads of the device succeeded.
	refused map[int]*refusal

	// A device that times out costs every other device on its link the timeout; after timeouts
	// in a row it is only asked again at restUntil (doubling from its interval to maxRest).
	timeouts  int
	restUntil time.Time
	lastErr   error

	ss *sunspecDevice // nil unless the profile names SunSpec points
}

// replan plans the device's points, leaving out those learned illegal and those its SunSpec
// chain does not have.
func (d *Device) replan() {
	skip := d.illegal
	if d.ss != nil {
		skip = map[int]bool{}
		for i := range d.illegal {
			skip[i] = true
		}
		for i := range d.ss.absent {
			skip[i] = true
		}
	}
	d.Requests = PlanWithout(d.Points, d.Limits, skip)
}

// Declared is the device's points as its samples name them (without the scale-factor registers
// a SunSpec device also reads).
func (d *Device) Declared() []Point {
	if d.ss != nil {
		return d.ss.declared
	}
	return d.Points
}

// SunSpec says whether the device's addresses come from SunSpec discovery, and the chain found
// (nil before discovery).
func (d *Device) SunSpec() (bool, *sunspec.Chain) {
	if d.ss == nil {
		return false, nil
	}
	return true, d.ss.chain
}

// refusal is the record of a point refused alone.
type refusal struct {
	first, last time.Time
	polls       int
}

// Learning. A range refused with "illegal data address" is split to find the points at fault;
// those points are only learned (left out of the plan) when the refusal persists and is specific:
// refused alone in at least learnPolls polls spanning learnSpan, each poll one in which other
// reads of the same device succeeded, with no gap of learnGap between refusals, and never every
// point of the device. A 10 s burst of exceptions from a gateway that is rebooting its serial
// side learns nothing: its points are invalid for those polls and read again at the next. A
// learned point is asked alone every probeEvery, and read again from the first answer. A busy
// device (exception 6) is asked again at most busyRetries times within one poll.
const (
	learnPolls  = 3
	learnSpan   = 2 * time.Minute
	learnGap    = 10 * time.Minute
	probeEvery  = time.Minute
	busyRetries = 2
	maxRest     = 30 * time.Second
)

// Illegal returns the indexes of the points learned to be unreadable.
func (d *Device) Illegal() []int {
	var out []int
	for i := range d.Points {
		if d.illegal[i] {
			out = append(out, i)
		}
	}
	return out
}

// DeviceSpec is one device as the collector needs it: internal/config makes it from the config.
type DeviceSpec struct {
	Name     string
	UnitID   uint8
	Interval time.Duration
	Points   *Resolved
	Limits   Limits // of the connection it is polled on
}

// NewDevice plans one device.
func NewDevice(s DeviceSpec) (*Device, error) {
	if s.Points == nil {
		return nil, fmt.Errorf("device %s: no register map", s.Name)
	}
	dev := &Device{
		Name:     s.Name,
		UnitID:   s.UnitID,
		Interval: s.Interval,
		Points:   s.Points.Points,
		Limits:   s.Limits,
	}
	if s.Points.HasSunSpec() {
		dev.ss = newSunSpecDevice(s.Points) // planned once its chain is found
	} else {
		dev.replan()
	}
	return dev, nil
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
	// Samples, when set, gives the batches' sample slices (the engine loop hands them back once
	// nothing reads them); nil allocates each.
	Samples *sample.Pool
}

// Run polls every device on its interval until ctx ends. A device that fails is reported (its
// batch carries the error and CommLost samples) and the loop moves on to the next one.
func (p *Poller) Run(ctx context.Context) error {
	defer p.Reader.Close()
	if len(p.Devices) == 0 {
		<-ctx.Done()
		return nil
	}
	next := slots(p.Clock.Now(), p.Devices)
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
			p.Log.Warn("poller behind schedule", zap.Duration("behind", behind)) // the logger names the connection
			lastWarn = p.Clock.Now()
		}
		if ctx.Err() != nil {
			return nil
		}
		d := p.Devices[i]
		var b sample.Batch
		if now := p.Clock.Now(); now.Before(d.restUntil) {
			b = p.resting(d, now)
		} else {
			t0 := p.Clock.Now()
			b = p.Poll(d)
			b.Took = p.Clock.Now().Sub(t0)
			p.rest(d, b)
		}
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

// slotLength is the shortest time between two groups of polls on one connection. Devices start
// spread over their interval, not all at once, so that the link carries an even load and no poll
// queues behind all the others; but not each in a slot of its own either: every slot is a wake-up
// of the poller, and the engine's and the telemetry's after it (500 devices on 4 gateways,
// docs/PERFORMANCE.md: a quarter to two fifths less CPU with 25 slots a second per gateway than
// with 125). A slot's devices are polled back to back, always in the same order, so each keeps
// its own steady interval.
const slotLength = 40 * time.Millisecond

// slots is each device's first poll: the devices in order over at most interval/slotLength slots
// of their interval, from start.
func slots(start time.Time, devices []*Device) []time.Time {
	next := make([]time.Time, len(devices))
	for i, d := range devices {
		n := max(min(len(devices), int(d.Interval/slotLength)), 1)
		next[i] = start.Add(d.Interval * time.Duration(i*n/len(devices)) / time.Duration(n))
	}
	return next
}

// rest decides, after a poll, whether the device must rest: only timeouts make it, since only
// they hold up the other devices on the link.
func (p *Poller) rest(d *Device, b sample.Batch) {
	var ne net.Error
	if b.Err == nil || !errors.As(b.Err, &ne) || !ne.Timeout() {
		d.timeouts, d.restUntil = 0, time.Time{}
		return
	}
	d.timeouts++
	d.lastErr = b.Err
	if d.timeouts < 2 {
		return // one timeout may be a glitch: ask again on schedule
	}
	wait := min(d.Interval<<min(d.timeouts-2, 16), maxRest)
	d.restUntil = b.At.Add(wait)
	p.Log.Warn("device times out; polling it less often so the others on the link keep their schedule",
		zap.String("device", d.Name), zap.Int("timeouts", d.timeouts), zap.Duration("next_in", wait), zap.Error(b.Err))
}

// resting is the batch of a device that is not asked this time: every sample CommLost, and the
// error saying why.
func (p *Poller) resting(d *Device, at time.Time) sample.Batch {
	pts := d.Declared()
	b := sample.Batch{Device: d.Name, At: at, Samples: make([]sample.Sample, len(pts)),
		Err: fmt.Errorf("device %s unit %d: not asked until %s after %d timeouts in a row (last: %w)",
			d.Name, d.UnitID, d.restUntil.Format(time.RFC3339Nano), d.timeouts, d.lastErr)}
	for i, pt := range pts {
		b.Samples[i] = sample.Sample{Device: d.Name, Point: pt.Name, Role: pt.Role, Quality: sample.CommLost, At: at}
	}
	return b
}

// Poll reads one device once and returns its batch: one sample per declared point.
func (p *Poller) Poll(d *Device) sample.Batch {
	if d.ss == nil {
		return p.poll(d, p.Clock.Now())
	}
	at := p.Clock.Now()
	if d.ss.chain == nil {
		if err := p.discover(d); err != nil {
			return d.ss.unplaced(d, at, err)
		}
	}
	b := p.poll(d, at)
	d.ss.finish(&b)
	if b.Err != nil {
		d.ss.chain = nil // found again when the device answers: it may come back with a new layout
	}
	return b
}

func (p *Poller) poll(d *Device, at time.Time) sample.Batch {
	b := sample.Batch{Device: d.Name, At: at, Samples: p.Samples.Get(len(d.Points))}
	for i, pt := range d.Points {
		b.Samples[i] = sample.Sample{Device: d.Name, Point: pt.Name, Role: pt.Role, Quality: sample.CommLost, At: at}
	}
	for i := range d.illegal {
		b.Samples[i].Quality = sample.Invalid
	}
	var refusedNow []int
	answered := 0 // reads of this device that returned data
	for _, r := range d.Requests {
		err := p.request(d, r, b.Samples)
		var ex *ExceptionError
		switch {
		case err == nil:
			answered++
		case errors.As(err, &ex) && ex.Unreachable():
			// The gateway answered for a unit it cannot reach: the device is lost, not the link.
			b.Err = fmt.Errorf("device %s unit %d: %w", d.Name, d.UnitID, err)
			return b
		case errors.As(err, &ex) && ex.IllegalAddress():
			// Some register in the range does not exist, or the device says so for now. Read
			// the points one by one to find which; keep the rest.
			for _, i32 := range r.Points {
				i, pt := int(i32), d.Points[i32]
				one := Request{Kind: r.Kind, Start: pt.Address, Count: pt.Words, Points: []int32{i32}}
				err := p.request(d, one, b.Samples)
				switch {
				case err == nil:
					answered++
					delete(d.refused, i)
				case errors.As(err, &ex) && ex.IllegalAddress():
					refusedNow = append(refusedNow, i)
					b.Samples[i].Quality = sample.Invalid
				case errors.As(err, &ex) && ex.Unreachable(), err != nil && !errors.As(err, &ex):
					b.Err = fmt.Errorf("device %s unit %d: read %s %d+%d: %w", d.Name, d.UnitID, one.Kind, one.Start, one.Count, err)
					return b
				default:
					b.Samples[i].Quality = sample.Invalid
				}
			}
		case errors.As(err, &ex):
			// The device is there but refuses this range for now: only these points are unusable.
			for _, i := range r.Points {
				b.Samples[i].Quality = sample.Invalid
			}
			p.Log.Debug("exception", zap.String("device", d.Name), zap.Stringer("kind", r.Kind), zap.Uint16("start", r.Start), zap.Error(err))
		default:
			b.Err = fmt.Errorf("device %s unit %d: read %s %d+%d: %w", d.Name, d.UnitID, r.Kind, r.Start, r.Count, err)
			return b
		}
	}
	if len(d.illegal) > 0 && !at.Before(d.probeAt) {
		p.probe(d, b.Samples, at)
	}
	if answered > 0 {
		p.learn(d, refusedNow, at)
	}
	return b
}

// learn counts this poll's refusals (a poll in which other reads of the device succeeded) and
// learns the points whose refusal has persisted: see the constants above.
func (p *Poller) learn(d *Device, refusedNow []int, at time.Time) {
	if len(refusedNow) == 0 {
		return
	}
	if d.refused == nil {
		d.refused = map[int]*refusal{}
	}
	var learned []int
	for _, i := range refusedNow {
		r := d.refused[i]
		if r == nil || at.Sub(r.last) > learnGap {
			r = &refusal{first: at}
			d.refused[i] = r
		}
		r.last = at
		r.polls++
		if r.polls >= learnPolls && at.Sub(r.first) >= learnSpan {
			learned = append(learned, i)
		}
	}
	if len(learned) == 0 || len(d.illegal)+len(learned) >= len(d.Points) {
		return // never the whole device: a device that refuses everything is not a register map
	}
	if d.illegal == nil {
		d.illegal = map[int]bool{}
	}
	var names []string
	for _, i := range learned {
		d.illegal[i] = true
		delete(d.refused, i)
		names = append(names, d.Points[i].Name)
	}
	d.probeAt = at.Add(probeEvery)
	d.replan()
	p.Log.Warn("device keeps refusing some registers (illegal data address) while it answers for the others; they are read only once a minute until they answer",
		zap.String("device", d.Name), zap.Strings("points", names), zap.Int("requests_per_cycle", len(d.Requests)))
}

// probe asks each learned point alone; one that answers is read again from this poll on.
func (p *Poller) probe(d *Device, out []sample.Sample, at time.Time) {
	d.probeAt = at.Add(probeEvery)
	var back []string
	for _, i := range d.Illegal() {
		pt := d.Points[i]
		one := Request{Kind: pt.Kind, Start: pt.Address, Count: pt.Words, Points: []int32{int32(i)}}
		if p.request(d, one, out) == nil {
			delete(d.illegal, i)
			back = append(back, pt.Name)
		}
	}
	if len(back) > 0 {
		d.replan()
		p.Log.Info("device answers for registers it refused; they are read again", zap.String("device", d.Name), zap.Strings("points", back))
	}
}

// request reads one request, asking a busy device again a bounded number of times, and decodes
// its points into out.
func (p *Poller) request(d *Device, r Request, out []sample.Sample) error {
	var data []byte
	var err error
	for try := 0; ; try++ {
		data, err = p.Reader.Read(d.UnitID, r.Kind, r.Start, r.Count)
		var ex *ExceptionError
		if err == nil || !errors.As(err, &ex) || ex.Code != 6 || try == busyRetries {
			break
		}
	}
	if err != nil {
		return err
	}
	decodeInto(out, d.Points, r, data)
	return nil
}

// decodeInto fills the samples of r's points from its response.
func decodeInto(out []sample.Sample, points []Point, r Request, data []byte) {
	for _, i := range r.Points {
		pt := &points[i]
		off := int(pt.Address) - int(r.Start)
		var dv Decoded
		var err error
		if r.Kind.IsBit() {
			dv, err = DecodeBit(*pt, data, off)
		} else {
			dv, err = decodeRegisters(pt, data[2*off:2*off+2*int(pt.Words)])
		}
		if err != nil {
			out[i].Quality = sample.Invalid
			continue
		}
		out[i].Value, out[i].Text, out[i].Quality = dv.Value, dv.Text, dv.Quality
	}
}
