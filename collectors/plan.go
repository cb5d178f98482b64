package collectors

import (
	"fmt"
	"io"
	"sort"
)

// Modbus limits per read request.
const (
	maxRegistersPerRead = 125
	maxBitsPerRead      = 2000
)

// Request is one read of a contiguous range of one register table. Points index into the
// device's point list; every one of them lies wholly inside [Start, Start+Count).
type Request struct {
	Kind   RegisterKind
	Start  uint16
	Count  uint16
	Points []int32 // int32: a room holds 100,000 of them
}

// Limits bound how the planner merges ranges.
type Limits struct {
	MaxRegisters int // per request, for holding and input tables
	MaxGap       int // registers it may read and discard to merge two ranges
}

// Plan groups a device's points into as few requests as the limits allow: per register table,
// points sorted by address, a range grown while the merged request stays within MaxRegisters
// and the hole it would read and discard is at most MaxGap. Bit tables use the Modbus bit limit
// and a gap of MaxGap*16 bits (the same bytes on the wire).
func Plan(points []Point, lim Limits) []Request { return PlanWithout(points, lim, nil) }

// PlanWithout is Plan leaving out the points skip names (by index): ranges a device was found to
// refuse with "illegal data address", which are never read again.
func PlanWithout(points []Point, lim Limits, skip map[int]bool) []Request {
	byKind := map[RegisterKind][]int{}
	for i, p := range points {
		if !skip[i] {
			byKind[p.Kind] = append(byKind[p.Kind], i)
		}
	}
	var out []Request
	for _, kind := range []RegisterKind{Coil, Discrete, Holding, Input} {
		idx := byKind[kind]
		if len(idx) == 0 {
			continue
		}
		sort.SliceStable(idx, func(a, b int) bool { return points[idx[a]].Address < points[idx[b]].Address })
		maxCount, gap := lim.MaxRegisters, lim.MaxGap
		if maxCount <= 0 || maxCount > maxRegistersPerRead {
			maxCount = maxRegistersPerRead
		}
		if kind.IsBit() {
			maxCount, gap = maxBitsPerRead, lim.MaxGap*16
		}
		var cur *Request
		end := 0 // one past the last register of cur
		for _, i := range idx {
			p := points[i]
			pStart, pEnd := int(p.Address), int(p.Address)+int(p.Words)
			if cur != nil {
				newEnd := max(end, pEnd)
				if pStart-end <= gap && newEnd-int(cur.Start) <= maxCount {
					cur.Points = append(cur.Points, int32(i))
					end = newEnd
					cur.Count = uint16(end - int(cur.Start))
					continue
				}
				out = append(out, *cur)
			}
			cur = &Request{Kind: kind, Start: p.Address, Count: p.Words, Points: []int32{int32(i)}}
			end = pEnd
		}
		out = append(out, *cur)
	}
	return out
}

// PlanStats summarises a plan for `firebreak check`.
type PlanStats struct {
	Requests  int
	Read      int // registers (or bits) read per cycle
	Discarded int // of those, read only to merge ranges
}

// Stats counts what a plan reads.
func Stats(points []Point, reqs []Request) PlanStats {
	var s PlanStats
	for _, r := range reqs {
		s.Requests++
		s.Read += int(r.Count)
		used := make([]bool, r.Count)
		for _, i := range r.Points {
			p := points[i]
			for a := int(p.Address); a < int(p.Address)+int(p.Words); a++ {
				used[a-int(r.Start)] = true
			}
		}
		for _, u := range used {
			if !u {
				s.Discarded++
			}
		}
	}
	return s
}

// WritePlan prints a device's plan the way `firebreak check` shows it.
func WritePlan(w io.Writer, device string, points []Point, reqs []Request) {
	s := Stats(points, reqs)
	fmt.Fprintf(w, "%s: %d points, %d requests per cycle, %d registers read, %d read and discarded\n",
		device, len(points), s.Requests, s.Read, s.Discarded)
	for _, r := range reqs {
		fmt.Fprintf(w, "  read %-8s %5d..%-5d (%3d)  %d points\n", r.Kind, r.Start, int(r.Start)+int(r.Count)-1, r.Count, len(r.Points))
	}
}

// WriteDevicePlan prints a configured device's plan; a SunSpec device's addresses are only
// known once its model chain has been read, so `firebreak check` says what it will look for.
func WriteDevicePlan(w io.Writer, d *Device) {
	if ok, chain := d.SunSpec(); ok && chain == nil {
		where := "at 40000, 0 or 50000"
		if d.ss.base >= 0 {
			where = fmt.Sprintf("at %d", d.ss.base)
		}
		models := map[uint16]bool{}
		for _, p := range d.ss.declared {
			if p.SunSpec != nil {
				models[p.SunSpec.Ref.Model] = true
			}
		}
		ids := make([]int, 0, len(models))
		for id := range models {
			ids = append(ids, int(id))
		}
		sort.Ints(ids)
		fmt.Fprintf(w, "%s: %d points, SunSpec models %v: addresses found on the device at run time (marker 'SunS' %s)\n",
			d.Name, len(d.ss.declared), ids, where)
		return
	}
	WritePlan(w, d.Name, d.Points, d.Requests)
}
