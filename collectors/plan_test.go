package collectors

import (
	"fmt"
	"testing"
)

func regs(kind RegisterKind, spans ...[2]int) []Point {
	var out []Point
	for i, s := range spans {
		out = append(out, Point{Name: fmt.Sprintf("p%d", i), Kind: kind, Address: uint16(s[0]), Words: uint16(s[1])})
	}
	return out
}

func TestPlan(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		points []Point
		lim    Limits
		want   string // kind start+count, …
	}{
		{"contiguous merge", regs(Input, [2]int{0, 1}, [2]int{1, 1}, [2]int{2, 2}), Limits{125, 0}, "input 0+4"},
		{"gap too big splits", regs(Input, [2]int{0, 1}, [2]int{5, 1}), Limits{125, 3}, "input 0+1,input 5+1"},
		{"gap within max_gap merges", regs(Input, [2]int{0, 1}, [2]int{5, 1}), Limits{125, 4}, "input 0+6"},
		{"max registers splits", regs(Holding, [2]int{0, 2}, [2]int{2, 2}, [2]int{4, 2}), Limits{4, 0}, "holding 0+4,holding 4+2"},
		{"a point never straddles two requests", regs(Holding, [2]int{0, 3}, [2]int{3, 2}), Limits{4, 0}, "holding 0+3,holding 3+2"},
		{"unsorted input", regs(Input, [2]int{10, 1}, [2]int{0, 1}, [2]int{11, 1}), Limits{125, 0}, "input 0+1,input 10+2"},
		{"overlapping points", regs(Input, [2]int{0, 2}, [2]int{0, 1}, [2]int{1, 1}), Limits{125, 0}, "input 0+2"},
		{"limit capped at 125", regs(Input, [2]int{0, 1}, [2]int{130, 1}), Limits{500, 200}, "input 0+1,input 130+1"},
		{"bits use bit gap", regs(Discrete, [2]int{0, 1}, [2]int{20, 1}), Limits{125, 2}, "discrete 0+21"},
		{"tables kept apart", append(regs(Coil, [2]int{0, 1}), regs(Input, [2]int{0, 1})...), Limits{125, 16}, "coil 0+1,input 0+1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reqs := Plan(tc.points, tc.lim)
			got := ""
			for i, r := range reqs {
				if i > 0 {
					got += ","
				}
				got += fmt.Sprintf("%s %d+%d", r.Kind, r.Start, r.Count)
				for _, pi := range r.Points {
					p := tc.points[pi]
					if p.Address < r.Start || int(p.Address)+int(p.Words) > int(r.Start)+int(r.Count) {
						t.Errorf("point %s outside request %+v", p.Name, r)
					}
				}
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
			n := 0
			for _, r := range reqs {
				n += len(r.Points)
			}
			if n != len(tc.points) {
				t.Errorf("plan covers %d of %d points", n, len(tc.points))
			}
		})
	}
}

func TestStatsCountsDiscarded(t *testing.T) {
	t.Parallel()
	pts := regs(Input, [2]int{0, 1}, [2]int{5, 2})
	s := Stats(pts, Plan(pts, Limits{125, 10}))
	if s.Requests != 1 || s.Read != 7 || s.Discarded != 4 {
		t.Fatalf("%+v", s)
	}
}

func BenchmarkPlanRack(b *testing.B) {
	var pts []Point
	for i := 0; i < 200; i++ {
		pts = append(pts, Point{Name: fmt.Sprint(i), Kind: Input, Address: uint16(i * 3), Words: 2})
	}
	b.ReportAllocs()
	for b.Loop() {
		Plan(pts, Limits{125, 16})
	}
}
