package collectors_test

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/sim"
)

// TestOneFaultyDeviceDoesNotHoldUpTheOthers polls all seven demo devices on one gateway
// connection every 500 ms, through a proxy that makes rack-02 (unit 2) misbehave in each way a
// device or gateway does: it drops the connection, answers after the 600 ms timeout, answers with
// an exception, sends a frame two bytes short, or a frame with another transaction id. Each time
// the other six devices' batches must keep arriving on schedule, good; rack-02's must carry the
// right failure. Real TCP, real clock. On one connection a device that times out costs the others
// its timeout whenever it is asked: it is asked less and less often (rest doubling from its
// interval), so after the first 1.5 s it costs the link a timeout at most 3 times, and each such
// ask may stretch one gap of each other device (two more late gaps are allowed for a loaded
// machine).
func TestOneFaultyDeviceDoesNotHoldUpTheOthers(t *testing.T) {
	t.Parallel()
	cfg, s := quietRoom(t)
	// Generous for a loaded CI machine under the race detector: the assertions are about the
	// schedule's shape (a timeout's worth of delay at most, rarely), not about milliseconds.
	const interval, timeout = 500 * time.Millisecond, 600 * time.Millisecond
	for _, tc := range []struct {
		name  string
		fault sim.Fault
		check func(b sample.Batch) bool // rack-02's batches, after the first second
	}{
		{"connection dropped", sim.Fault{Kind: sim.FaultDrop}, func(b sample.Batch) bool { return b.Err != nil }},
		{"answer after the timeout", sim.Fault{Kind: sim.FaultLate, Delay: 2 * timeout}, func(b sample.Batch) bool { return b.Err != nil }},
		{"server device failure", sim.Fault{Kind: sim.FaultException, Code: 4}, func(b sample.Batch) bool {
			return b.Err == nil && b.Samples[0].Quality == sample.Invalid
		}},
		{"gateway target failed", sim.Fault{Kind: sim.FaultException, Code: 11}, func(b sample.Batch) bool {
			var ex *collectors.ExceptionError
			return errors.As(b.Err, &ex) && ex.Code == 11
		}},
		{"short frame", sim.Fault{Kind: sim.FaultShort}, func(b sample.Batch) bool { return errors.Is(b.Err, collectors.ErrBadLength) }},
		{"wrong transaction id", sim.Fault{Kind: sim.FaultGarbled}, func(b sample.Batch) bool { return b.Err != nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rd := faultyReader(t, s, tc.fault, timeout)
			cfg := *cfg
			out := make(chan sample.Batch, 1024)
			p := &collectors.Poller{Conn: "gw-1", Reader: rd, Clock: clock.Real{}, Out: out, Log: zap.NewNop()}
			for _, d := range cfg.Devices {
				dev, err := cfg.Collector(d)
				if err != nil {
					t.Fatal(err)
				}
				dev.Interval = interval
				p.Devices = append(p.Devices, dev)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 7*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			byDev := map[string][]sample.Batch{}
			start := time.Now()
		collect:
			for {
				select {
				case b := <-out:
					byDev[b.Device] = append(byDev[b.Device], b)
				case <-ctx.Done():
					break collect
				}
			}
			<-done
			settled := start.Add(1500 * time.Millisecond)
			// rack-02's slow asks after the first 1.5 s (ones that cost the link half a timeout or
			// more; a resting device's batch is not asked at all, Took 0): each may stretch one gap
			// of each other device, and rest doubling keeps them few (about log2 of the window
			// over the interval: 3 here; a poller that asked it every cycle would ask about 5 times).
			asks := 0
			for _, b := range byDev["rack-02"] {
				if b.At.After(settled) && b.Took >= timeout/2 {
					asks++
				}
			}
			if asks > 3 {
				t.Errorf("rack-02 was asked %d times in 5.5 s at a %v interval, each costing a timeout: it is not resting between failures", asks, interval)
			}
			for name, bs := range byDev {
				var gaps []time.Duration
				for i := 1; i < len(bs); i++ {
					if bs[i].At.After(settled) {
						gaps = append(gaps, bs[i].At.Sub(bs[i-1].At))
					}
				}
				sort.Slice(gaps, func(a, b int) bool { return gaps[a] < gaps[b] })
				for _, b := range bs {
					if !b.At.After(settled) {
						continue
					}
					if name == "rack-02" {
						if !tc.check(b) {
							t.Fatalf("rack-02: a batch with err %v, first quality %v", b.Err, b.Samples[0].Quality)
						}
						continue
					}
					if b.Err != nil {
						t.Fatalf("%s, a healthy device, failed: %v", name, b.Err)
					}
					for _, s := range b.Samples {
						if s.Quality != sample.Good && s.Quality != sample.Invalid {
							t.Fatalf("%s.%s: %v", name, s.Point, s.Quality)
						}
					}
				}
				if name == "rack-02" || len(gaps) == 0 {
					continue
				}
				late := 0
				for _, g := range gaps {
					if g > 2*interval {
						late++
					}
				}
				// A late gap is one a rack-02 ask stretched, or one the machine's load did (two
				// more allowed for that); none may be longer than an interval and a timeout.
				if worst := gaps[len(gaps)-1]; worst > interval+timeout+300*time.Millisecond || late > asks+2 {
					t.Errorf("%s: %d of %d gaps over two intervals (rack-02 asked %d times), worst %v (interval %v, timeout %v): the faulty device held it up",
						name, late, len(gaps), asks, worst, interval, timeout)
				}
			}
			if len(byDev) != len(cfg.Devices) {
				t.Fatalf("batches from %d devices, want %d", len(byDev), len(cfg.Devices))
			}
		})
	}
}

// TestWrongFunctionCodeIsATransportError: goburrow v0.1.0 takes a reply with another function
// code for an exception whose code is its first data byte (2: "illegal data address"), which the
// poller would learn as a refused register (issue 22). It is a transport error instead.
func TestWrongFunctionCodeIsATransportError(t *testing.T) {
	t.Parallel()
	cfg, s := quietRoom(t)
	rd := faultyReader(t, s, sim.Fault{Kind: sim.FaultWrongFunction}, time.Second)
	p := &collectors.Poller{Reader: rd, Clock: clock.Real{}, Log: zap.NewNop()}
	for i, want := range []bool{true, false} { // rack-02 (unit 2) has the fault, rack-01 not
		dev, err := cfg.Collector(cfg.Devices[1-i])
		if err != nil {
			t.Fatal(err)
		}
		b := p.Poll(dev)
		if got := errors.Is(b.Err, collectors.ErrWrongFunction); got != want {
			t.Errorf("%s: err %v, want ErrWrongFunction %v", dev.Name, b.Err, want)
		}
		if len(dev.Illegal()) != 0 {
			t.Errorf("%s: learned %d refused points from wrong function codes", dev.Name, len(dev.Illegal()))
		}
	}
}

// faultyReader serves the demo site's gateway through a fault proxy that gives unit 2 (rack-02)
// the fault, and returns a reader on it; all of it closes when the test ends.
func faultyReader(t *testing.T, s *sim.Simulator, f sim.Fault, timeout time.Duration) collectors.Reader {
	t.Helper()
	srv, err := s.Serve("gw-1", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	proxy, err := sim.NewFaultProxy(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	proxy.Set(2, f)
	ep, _ := collectors.ParseEndpoint("tcp://" + proxy.Addr)
	rd, err := collectors.NewReader(ep, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	return rd
}

// quietRoom is the demo site and a simulator of it playing the normal scenario, in real time.
func quietRoom(t *testing.T) (*config.Config, *sim.Simulator) {
	t.Helper()
	cfg := hiltest.DemoSite(t)
	sc, _ := sim.LoadScenario("normal")
	s, err := sim.New(cfg, sc, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, s
}
