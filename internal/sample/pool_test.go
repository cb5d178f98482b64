package sample

import "testing"

// TestPool: Get gives n samples in a slice of its class's capacity, a slice given back is taken
// again (sync.Pool may drop some, so a few tries), one of a foreign capacity is never kept, and a
// nil pool allocates.
func TestPool(t *testing.T) {
	p := &Pool{}
	for _, n := range []int{1, 2, 3, 200, 256, 257, 1 << 16} {
		s := p.Get(n)
		if len(s) != n || cap(s) < n || cap(s)&(cap(s)-1) != 0 {
			t.Fatalf("Get(%d): len %d cap %d, want len %d in a power-of-two capacity", n, len(s), cap(s), n)
		}
	}
	if s := p.Get(1<<16 + 1); len(s) != 1<<16+1 {
		t.Fatalf("Get above the largest class: len %d", len(s))
	}
	reused := false
	for try := 0; try < 100 && !reused; try++ {
		s := p.Get(200)
		s[0].Point = "marked"
		p.Put(s)
		again := p.Get(150)
		reused = len(again) == 150 && cap(again) == 256 && &again[0] == &s[0]
	}
	if !reused {
		t.Fatal("a slice given back was never taken again")
	}
	for try := 0; try < 100; try++ {
		foreign := make([]Sample, 200) // not a class's capacity: not kept
		p.Put(foreign)
		if got := p.Get(200); &got[0] == &foreign[0] {
			t.Fatal("a slice of a foreign capacity was kept")
		}
	}
	var none *Pool
	none.Put(make([]Sample, 4))
	if s := none.Get(3); len(s) != 3 {
		t.Fatalf("nil pool Get(3): len %d", len(s))
	}
}
