package sample

import (
	"math/bits"
	"sync"
)

// Pool recycles the sample slices of polls. A 500-rack room polls 500 devices of 200 points a
// second: 21 kB of samples each, half of everything the daemon allocates, and the garbage
// collector's cycles (marking the engine's 100,000 point states each time) follow the bytes
// allocated (docs/PERFORMANCE.md). The poller takes a slice with Get; whoever is the last reader
// of a batch, once nothing can read it any more, gives it back with Put. A slice given back while
// anything still reads it is a data race: only hand back what no goroutine holds.
//
// Slices are kept by capacity class (powers of two), in sync.Pools, so the garbage collector
// still frees what is not taken again. A nil *Pool allocates and keeps nothing.
type Pool struct {
	classes [maxClass + 1]sync.Pool
}

// maxClass is the largest class kept: 2^16 samples. Larger slices are allocated and dropped.
const maxClass = 16

func class(n int) int { return bits.Len(uint(n - 1)) }

// Get returns a slice of n samples (their contents undefined: the caller sets every one).
func (p *Pool) Get(n int) []Sample {
	if p == nil || n <= 0 || class(n) > maxClass {
		return make([]Sample, n)
	}
	c := class(n)
	if s, ok := p.classes[c].Get().(*[]Sample); ok {
		return (*s)[:n]
	}
	return make([]Sample, n, 1<<c)
}

// Put gives a slice back for a later Get. Only slices of a class's full capacity are kept (what
// Get makes); others are left to the garbage collector.
func (p *Pool) Put(s []Sample) {
	if p == nil || cap(s) == 0 {
		return
	}
	c := class(cap(s))
	if c > maxClass || cap(s) != 1<<c {
		return
	}
	s = s[:cap(s)]
	p.classes[c].Put(&s)
}
