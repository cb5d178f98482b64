package collectors

import (
	"errors"
	"fmt"
	"math"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/sunspec"
)

// sunspecDevice is the SunSpec side of a device whose profile names points of SunSpec models:
// their addresses come from the device's model chain, found before the first poll and again
// after any failure of the device (a reboot may come with new firmware and a new layout), and
// their values are scaled by the scale-factor registers read in the same poll.
type sunspecDevice struct {
	base     int            // where to look for 'SunS'; -1 tries each of sunspec.Bases
	declared []Point        // the profile's points, as the samples name them
	chain    *sunspec.Chain // nil until found
	// After discovery Device.Points is declared (placed) followed by one point per distinct
	// scale-factor register; sf[i] is the index of declared point i's scale factor there, or -1.
	sf     []int
	absent map[int]bool // declared points the device's chain does not have
}

func newSunSpecDevice(r *Resolved) *sunspecDevice {
	return &sunspecDevice{base: r.SunSpecBase, declared: r.Points}
}

// errNoSunSpec wraps what discovery could not find on a device that answers.
var errNoSunSpec = errors.New("not usable as SunSpec")

// discover finds the device's chain and re-plans it. A communication failure is returned as it
// is (the caller reports comm_lost); a device that answers without a usable chain gives an
// error wrapping errNoSunSpec.
func (p *Poller) discover(d *Device) error {
	var comm error // a failure of the link or the device, not an answer
	read := func(start, count uint16) ([]byte, error) {
		data, err := p.Reader.Read(d.UnitID, Holding, start, count)
		var ex *ExceptionError
		if err != nil && (!errors.As(err, &ex) || ex.Unreachable()) {
			comm = err
		}
		return data, err
	}
	absent := func(err error) bool {
		var ex *ExceptionError
		return errors.As(err, &ex) && ex.IllegalAddress()
	}
	chain, err := sunspec.Discover(read, absent, d.ss.base)
	if err != nil {
		if comm != nil {
			return err
		}
		return fmt.Errorf("%w: %w", errNoSunSpec, err)
	}
	d.ss.place(d, &chain)
	var models []string
	for _, m := range chain.Models {
		models = append(models, fmt.Sprintf("%d@%d", m.ID, m.Start))
	}
	var missing []string
	for i := range d.ss.declared {
		if d.ss.absent[i] {
			missing = append(missing, d.ss.declared[i].Name)
		}
	}
	p.Log.Info("sunspec models found", zap.String("device", d.Name), zap.Uint16("base", chain.Base),
		zap.Strings("models", models), zap.Int("requests_per_cycle", len(d.Requests)), zap.Strings("points_not_on_device", missing))
	return nil
}

// place gives the declared points their addresses in chain, adds the scale-factor registers
// and re-plans the device. Points the chain does not have are left out of the plan.
func (s *sunspecDevice) place(d *Device, chain *sunspec.Chain) {
	s.chain = chain
	d.Points, s.sf, s.absent = PlaceSunSpec(s.declared, chain)
	d.illegal = nil
	d.replan()
}

// PlaceSunSpec places declared points in chain: the points with their addresses (scaled ones
// without scale, offset and range, which apply once the scale factor is known) followed by one
// point per distinct scale-factor register; sf[i] is the index there of point i's scale factor
// (-1 for none), and absent the points the chain does not have.
func PlaceSunSpec(declared []Point, chain *sunspec.Chain) (points []Point, sf []int, absent map[int]bool) {
	absent = map[int]bool{}
	sf = make([]int, len(declared))
	points = append([]Point(nil), declared...)
	sfAt := map[uint16]int{}
	for i, pt := range declared {
		sf[i] = -1
		ss := pt.SunSpec
		if ss == nil {
			continue
		}
		addr, ok := chain.Locate(ss.Ref, ss.Offset, ss.Size)
		if !ok {
			absent[i] = true
			continue
		}
		points[i].Address = addr
		if ss.SFOffset < 0 {
			continue
		}
		fixed := ss.Ref
		fixed.Group = ""
		sfAddr, ok := chain.Locate(fixed, ss.SFOffset, 1)
		if !ok {
			absent[i] = true
			continue
		}
		points[i].HasRange = false
		points[i].Scale, points[i].Offset = 1, 0
		j, seen := sfAt[sfAddr]
		if !seen {
			j = len(points)
			sfAt[sfAddr] = j
			points = append(points, Point{Name: fmt.Sprintf("sf@%d", sfAddr), Kind: Holding, Address: sfAddr,
				Words: 1, Type: Int16, Scale: 1, Order: ABCD, Invalid: []uint64{0x8000}})
		}
		sf[i] = j
	}
	return points, sf, absent
}

// finish scales the declared samples by their scale factors, marks the points the device does
// not have invalid, and drops the scale-factor samples from the batch.
func (s *sunspecDevice) finish(b *sample.Batch) {
	if s.chain == nil || len(b.Samples) < len(s.declared) {
		if len(b.Samples) > len(s.declared) {
			b.Samples = b.Samples[:len(s.declared)]
		}
		return
	}
	for i := range s.declared {
		smp := &b.Samples[i]
		if s.absent[i] {
			if b.Err == nil {
				smp.Quality = sample.Invalid // never read: the device has no such point
			}
			continue
		}
		j := s.sf[i]
		if j < 0 || smp.Quality != sample.Good {
			continue
		}
		sf := b.Samples[j]
		if sf.Quality != sample.Good {
			// No scale factor, no number: its read failed or the device says "not implemented".
			smp.Quality = sf.Quality
			if sf.Quality == sample.OutOfRange {
				smp.Quality = sample.Invalid
			}
			smp.Value = 0
			continue
		}
		dv := ScaleSunSpec(s.declared[i], smp.Value, int(sf.Value))
		smp.Value, smp.Quality = dv.Value, dv.Quality
	}
	b.Samples = b.Samples[:len(s.declared)]
}

// ScaleSunSpec applies a SunSpec scale factor to a raw value, then the point's own scale,
// offset and plausible range. A scale factor outside -10..10 is not one a device means.
func ScaleSunSpec(pt Point, raw float64, sf int) Decoded {
	if sf < -10 || sf > 10 {
		return Decoded{Quality: sample.Invalid}
	}
	v := roundSig(raw*math.Pow10(sf), 12)
	if pt.Scale != 1 || pt.Offset != 0 {
		v = roundSig(v*pt.Scale+pt.Offset, 12)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Decoded{Quality: sample.Invalid}
	}
	if pt.HasRange && (v < pt.Range[0] || v > pt.Range[1]) {
		return Decoded{Value: v, Quality: sample.OutOfRange}
	}
	return Decoded{Value: v, Quality: sample.Good}
}

// unplaced is the batch of a SunSpec device whose chain is not known: comm_lost when the
// device did not answer, invalid when it answered without a usable chain.
func (s *sunspecDevice) unplaced(d *Device, at time.Time, err error) sample.Batch {
	q := sample.CommLost
	if errors.Is(err, errNoSunSpec) {
		q = sample.Invalid
	}
	b := sample.Batch{Device: d.Name, At: at, Samples: make([]sample.Sample, len(s.declared)),
		Err: fmt.Errorf("device %s unit %d: %w", d.Name, d.UnitID, err)}
	for i, pt := range s.declared {
		b.Samples[i] = sample.Sample{Device: d.Name, Point: pt.Name, Role: pt.Role, Quality: q, At: at}
	}
	return b
}
