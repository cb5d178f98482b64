package sim

import (
	"fmt"
	"math"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/internal/sunspec"
)

// simSF is the scale factor the simulator's SunSpec devices use for each kind of quantity: a
// collector that ignored scale factors would read millivolts as volts and tenths of a degree as
// degrees, and the tests would see it.
var simSF = map[string]int16{"CellV_SF": -3, "Tmp_SF": -1, "ModTmp_SF": -1, "V_SF": -1, "A_SF": -1, "AMax_SF": -1}

// layoutSunSpec lays a SunSpec device out at base: the common model, then as many instances of
// each model (and entries of its group) as the profile's points name, then the end marker. The
// served points get their addresses and a scale that folds in their scale factor.
func layoutSunSpec(sd *simDevice, declared []collectors.Point, base uint16) error {
	var refs []sunspec.Ref
	for _, p := range declared {
		if p.SunSpec != nil {
			refs = append(refs, p.SunSpec.Ref)
		}
	}
	list := sunspec.ShapeOf(refs)
	entries := map[uint16]int{}
	for _, sh := range list {
		entries[sh.ID] = sh.Entries
	}
	chain, err := sunspec.Build(base, list)
	if err != nil {
		return fmt.Errorf("device %s: %w", sd.name, err)
	}
	img := make([]uint16, int(chain.End())+2)
	img[base], img[base+1] = sunspec.Marker[0], sunspec.Marker[1]
	counts := map[uint16]string{803: "NStr", 804: "NMod", 805: "NCell"}
	seen := map[uint16]int{}
	for _, in := range chain.Models {
		img[in.Start], img[in.Start+1] = in.ID, in.Len
		m, ok := sunspec.Lookup(in.ID)
		if !ok {
			continue
		}
		seen[in.ID]++
		for _, p := range m.Fixed {
			if sf, ok := simSF[p.Name]; ok && p.Type == "sunssf" {
				img[int(in.Start)+p.Offset] = uint16(sf)
			}
		}
		if name, ok := counts[in.ID]; ok {
			p, _ := m.Point(name, false)
			img[int(in.Start)+p.Offset] = uint16(entries[in.ID])
		}
		if in.ID == 804 || in.ID == 805 {
			img[in.Start+2] = uint16(seen[in.ID]) // 804.Idx, 805.StrIdx: one-based
		}
	}
	img[chain.End()] = sunspec.EndID
	sd.points = append([]collectors.Point(nil), declared...)
	for i, p := range sd.points {
		ss := p.SunSpec
		if ss == nil {
			continue
		}
		addr, ok := chain.Locate(ss.Ref, ss.Offset, ss.Size)
		if !ok {
			return fmt.Errorf("device %s: point %s not in its own layout", sd.name, p.Name)
		}
		sd.points[i].Address = addr
		if ss.SFOffset >= 0 {
			m, _ := sunspec.Lookup(ss.Ref.Model)
			for _, f := range m.Fixed {
				if f.Offset == ss.SFOffset {
					sd.points[i].Scale = p.Scale * math.Pow10(int(simSF[f.Name]))
				}
			}
		}
	}
	for _, p := range sd.points {
		if end := int(p.Address) + int(p.Words); p.SunSpec == nil && p.Kind == collectors.Holding && end > len(img) {
			img = append(img, make([]uint16, end-len(img))...) // plain holding points of the same profile
		}
	}
	sd.regs[collectors.Holding] = img
	sd.chain = &chain
	return nil
}

// MoveSunSpec lays a SunSpec device out again at another base (0, 40000 or 50000): the tests
// use it to check discovery at each.
func (s *Simulator) MoveSunSpec(device string, base uint16) error {
	s.model.Lock()
	defer s.model.Unlock()
	for _, d := range s.devices {
		if d.name == device {
			if d.chain == nil {
				return fmt.Errorf("device %s is not a SunSpec device", device)
			}
			if err := layoutSunSpec(d, d.declared, base); err != nil {
				return err
			}
			s.refresh()
			s.publishLocked()
			return nil
		}
	}
	return fmt.Errorf("no device %s", device)
}
