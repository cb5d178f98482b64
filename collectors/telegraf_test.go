package collectors_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/sunspec"
)

// telegrafRequests counts the read requests Telegraf's modbus input makes for points, per
// register table, as its documentation and source describe the two modes compared here:
//   - "none" (its default): points at consecutive addresses form one block; blocks are split at
//     the batch size (125 registers, 2000 bits); nothing is read that no point needs;
//   - "max_insert": points sorted by address are merged greedily while the hole before the next
//     point is at most max_extra_registers and the request stays within the batch size.
//
// This is our reading of its algorithm, written for this comparison, not its code.
func telegrafRequests(points []collectors.Point, mode string, maxExtra int) int {
	byKind := map[collectors.RegisterKind][][2]int{}
	for _, p := range points {
		byKind[p.Kind] = append(byKind[p.Kind], [2]int{int(p.Address), int(p.Words)})
	}
	n := 0
	for kind, fs := range byKind {
		sort.Slice(fs, func(a, b int) bool { return fs[a][0] < fs[b][0] || (fs[a][0] == fs[b][0] && fs[a][1] > fs[b][1]) })
		batch := 125
		if kind.IsBit() {
			batch = 2000
		}
		start, end := fs[0][0], fs[0][0]+fs[0][1]
		for _, f := range fs[1:] {
			hole := max(f[0]-end, 0)
			merge := false
			switch mode {
			case "none":
				merge = hole == 0 && f[0] == end && max(end, f[0]+f[1])-start <= batch
			case "max_insert":
				merge = hole <= maxExtra && max(end, f[0]+f[1])-start <= batch
			}
			if merge {
				end = max(end, f[0]+f[1])
				continue
			}
			n++
			start, end = f[0], f[0]+f[1]
		}
		n++
	}
	return n
}

// TestPlannerBesideTelegraf prints, for every shipped profile, the requests per cycle of our
// planner beside Telegraf's modbus input (default, and max_insert with the same gap), and checks
// that ours is never worse than max_insert. docs/PERFORMANCE.md records the table.
func TestPlannerBesideTelegraf(t *testing.T) {
	t.Parallel()
	cfg := hiltest.DemoSite(t)
	var rows []string
	for _, name := range cfg.ProfileNames() {
		prof := cfg.Points(config.Device{Profile: name})
		points := prof.Points
		if prof.HasSunSpec() {
			// Placed as on a device holding exactly what the profile names; Telegraf would need
			// the same addresses, scale-factor registers included, written out by hand.
			var refs []sunspec.Ref
			for _, p := range points {
				refs = append(refs, p.SunSpec.Ref)
			}
			chain, err := sunspec.Build(40000, sunspec.ShapeOf(refs))
			if err != nil {
				t.Fatal(err)
			}
			points, _, _ = collectors.PlaceSunSpec(points, &chain)
		}
		for _, gap := range []int{0, 16} {
			reqs := collectors.Plan(points, collectors.Limits{MaxRegisters: 125, MaxGap: gap})
			st := collectors.Stats(points, reqs)
			none, ins := telegrafRequests(points, "none", gap), telegrafRequests(points, "max_insert", gap)
			rows = append(rows, fmt.Sprintf("| %s | %d | %d | %d (%d registers, %d discarded) | %d | %d |", name, len(points), gap,
				st.Requests, st.Read, st.Discarded, none, ins))
			if st.Requests > ins {
				t.Errorf("%s gap %d: our planner makes %d requests, Telegraf max_insert %d", name, gap, st.Requests, ins)
			}
		}
	}
	t.Logf("\n| profile | points | max_gap | Firebreak requests/cycle | Telegraf default | Telegraf max_insert |\n|---|---|---|---|---|---|\n%s", strings.Join(rows, "\n"))
}

func TestTelegrafModel(t *testing.T) {
	t.Parallel()
	// Addresses 1,2,3,5,6,10,11,12,14 (one register each), as Telegraf's own source comment
	// walks through: default mode reads (1,3), (5,2), (10,3), (14,1).
	var pts []collectors.Point
	for _, a := range []uint16{1, 2, 3, 5, 6, 10, 11, 12, 14} {
		pts = append(pts, collectors.Point{Kind: collectors.Holding, Address: a, Words: 1})
	}
	if n := telegrafRequests(pts, "none", 0); n != 4 {
		t.Fatalf("none: %d requests, want 4", n)
	}
	if n := telegrafRequests(pts, "max_insert", 1); n != 2 {
		t.Fatalf("max_insert, 1 extra: %d requests, want 2: (1..6) and (10..14), the 1-register holes filled", n)
	}
	if n := telegrafRequests(pts, "max_insert", 3); n != 1 {
		t.Fatalf("max_insert, 3 extra: %d requests, want 1", n)
	}
}
