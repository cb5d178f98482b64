package collectors_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/sim"
)

// counting records every request a poller makes, and can answer "busy" a number of times first.
type counting struct {
	collectors.Reader
	reqs []string
	busy int
}

func (c *counting) Read(unit uint8, kind collectors.RegisterKind, start, count uint16) ([]byte, error) {
	c.reqs = append(c.reqs, fmt.Sprintf("%s %d+%d", kind, start, count))
	if c.busy > 0 {
		c.busy--
		return nil, &collectors.ExceptionError{Code: 6}
	}
	return c.Reader.Read(unit, kind, start, count)
}

// demoRack serves the demo site's rack-01 over real Modbus TCP and returns its planned device
// with two points the rack does not have (input registers 301 and 310, past its map), merged by
// max_gap into the same request as bms_alarm at 300.
func demoRack(t *testing.T) (*collectors.Device, *counting) {
	t.Helper()
	cfg := hiltest.DemoSite(t)
	sc, _ := sim.LoadScenario("normal")
	s, err := sim.New(cfg, sc, clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	if err != nil {
		t.Fatal(err)
	}
	rd := hiltest.Serve(t, s, "gw-1")
	dev, err := cfg.Collector(cfg.Devices[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []uint16{301, 310} {
		dev.Points = append(dev.Points, collectors.Point{Name: fmt.Sprint("ghost_", a), Kind: collectors.Input, Address: a, Words: 1, Type: collectors.Uint16, Scale: 1})
	}
	dev.Limits.MaxGap = 16
	dev.Requests = collectors.Plan(dev.Points, dev.Limits)
	return dev, &counting{Reader: rd}
}

func quality(b sample.Batch, point string) sample.Quality {
	for _, s := range b.Samples {
		if s.Point == point {
			return s.Quality
		}
	}
	return 0
}

// TestIllegalAddressIsLearned: a request the device refuses with "illegal data address" is split
// to find the points at fault; only those are invalid and the rest of the range is read. The
// points are learned (never requested in the plan again) only once the refusal has persisted
// over three polls and two minutes while the device answered its other reads; a learned point
// is asked alone once a minute and read again as soon as it answers.
func TestIllegalAddressIsLearned(t *testing.T) {
	t.Parallel()
	dev, rd := demoRack(t)
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC))
	p := &collectors.Poller{Reader: rd, Clock: clk, Log: zap.NewNop()}
	before := len(dev.Requests)
	for poll := 1; poll <= 3; poll++ {
		b := p.Poll(dev)
		if b.Err != nil {
			t.Fatal(b.Err)
		}
		if quality(b, "ghost_301") != sample.Invalid || quality(b, "ghost_310") != sample.Invalid || quality(b, "bms_alarm") != sample.Good {
			t.Fatalf("poll %d: ghost_301 %v, ghost_310 %v, bms_alarm %v", poll, quality(b, "ghost_301"), quality(b, "ghost_310"), quality(b, "bms_alarm"))
		}
		for _, s := range b.Samples {
			if !strings.HasPrefix(s.Point, "ghost") && s.Quality != sample.Good {
				t.Errorf("%s: %v, want good", s.Point, s.Quality)
			}
		}
		if want := map[bool]int{true: 2, false: 0}[poll == 3]; len(dev.Illegal()) != want {
			t.Fatalf("after poll %d (%s in): learned %d illegal points, want %d", poll, time.Duration(poll-1)*time.Minute, len(dev.Illegal()), want)
		}
		clk.Advance(time.Minute)
	}
	rd.reqs = nil
	b := p.Poll(dev) // a minute after learning: the probe asks the two points alone
	if len(rd.reqs) != len(dev.Requests)+2 || len(dev.Requests) != before {
		t.Fatalf("poll with a probe made %d requests (plan %d, before learning %d): %v", len(rd.reqs), len(dev.Requests), before, rd.reqs)
	}
	if quality(b, "ghost_301") != sample.Invalid || quality(b, "bms_alarm") != sample.Good {
		t.Fatalf("the probe's poll: ghost_301 %v, bms_alarm %v; want invalid (still refused) and good", quality(b, "ghost_301"), quality(b, "bms_alarm"))
	}
	rd.reqs = nil
	clk.Advance(time.Second)
	b = p.Poll(dev)
	for _, r := range rd.reqs {
		if r == "input 300+11" || r == "input 301+1" || r == "input 310+1" {
			t.Fatalf("a learned range was read again between probes: %v", rd.reqs)
		}
	}
	if quality(b, "ghost_301") != sample.Invalid || quality(b, "bms_alarm") != sample.Good {
		t.Fatalf("after learning: ghost_301 %v, bms_alarm %v", quality(b, "ghost_301"), quality(b, "bms_alarm"))
	}
}

// refusing answers "illegal data address" to every read while on, as a gateway does for a few
// seconds while its serial side restarts.
type refusing struct {
	collectors.Reader
	on bool
}

func (r *refusing) Read(unit uint8, kind collectors.RegisterKind, start, count uint16) ([]byte, error) {
	if r.on {
		return nil, &collectors.ExceptionError{Code: 2}
	}
	return r.Reader.Read(unit, kind, start, count)
}

// TestExceptionBurstLearnsNothing: a device that refuses everything for a while (issue 22: a
// 10 s burst of exception 2 stopped every point of a rack being read for an hour) has invalid
// points for those polls only; nothing is learned, and the next poll reads all of it.
func TestExceptionBurstLearnsNothing(t *testing.T) {
	t.Parallel()
	dev, rd := demoRack(t)
	dev.Points = dev.Points[:len(dev.Points)-2] // no ghosts: every register exists
	dev.Requests = collectors.Plan(dev.Points, dev.Limits)
	ref := &refusing{Reader: rd}
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC))
	p := &collectors.Poller{Reader: ref, Clock: clk, Log: zap.NewNop()}
	ref.on = true
	for i := 0; i < 300; i++ { // five minutes of refusals, a poll a second
		b := p.Poll(dev)
		if q := quality(b, "module_temp_1"); q != sample.Invalid {
			t.Fatalf("poll %d during the burst: module_temp_1 %v", i, q)
		}
		clk.Advance(time.Second)
	}
	ref.on = false
	b := p.Poll(dev)
	if len(dev.Illegal()) != 0 {
		t.Fatalf("learned %d points from a burst in which the device answered nothing", len(dev.Illegal()))
	}
	for _, s := range b.Samples {
		if s.Quality != sample.Good {
			t.Errorf("after the burst: %s %v", s.Point, s.Quality)
		}
	}
}

// TestBusyIsRetriedABoundedNumberOfTimes: "server device busy" is asked again up to twice within a
// poll; a device still busy after that leaves only that request's points invalid.
func TestBusyIsRetriedABoundedNumberOfTimes(t *testing.T) {
	t.Parallel()
	dev, rd := demoRack(t)
	dev.Points = dev.Points[:len(dev.Points)-2] // no ghosts: only the busy retries add requests
	dev.Requests = collectors.Plan(dev.Points, dev.Limits)
	p := &collectors.Poller{Reader: rd, Clock: clock.NewManual(time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC)), Log: zap.NewNop()}
	rd.busy = 2
	b := p.Poll(dev)
	if b.Err != nil || quality(b, "contactor_open") != sample.Good {
		t.Fatalf("busy twice: err %v, contactor_open %v", b.Err, quality(b, "contactor_open"))
	}
	if rd.reqs[0] != rd.reqs[1] || rd.reqs[1] != rd.reqs[2] {
		t.Fatalf("the busy request was not repeated: %v", rd.reqs[:3])
	}
	rd.busy, rd.reqs = 3, nil
	b = p.Poll(dev)
	if b.Err != nil || quality(b, "contactor_open") != sample.Invalid || quality(b, "bms_alarm") != sample.Good {
		t.Fatalf("busy three times: err %v, contactor_open %v, bms_alarm %v", b.Err, quality(b, "contactor_open"), quality(b, "bms_alarm"))
	}
	if len(rd.reqs) != len(dev.Requests)+2 {
		t.Fatalf("%d requests for a %d-request plan with 2 retries", len(rd.reqs), len(dev.Requests))
	}
}

// TestRTUOverTCP polls every demo device through RTU frames over TCP (goburrow's RTU packager,
// our framing of the stream) from the simulator's RTU-over-TCP listener: every value is what the
// simulator holds, a unit the gateway cannot reach is an exception 11, not a hang.
func TestRTUOverTCP(t *testing.T) {
	t.Parallel()
	cfg := hiltest.DemoSite(t)
	sc, _ := sim.LoadScenario("normal")
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := sim.New(cfg, sc, clock.NewManual(at))
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(time.Minute)
	srv, err := s.ServeRTUOverTCP("gw-1", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ep, err := collectors.ParseEndpoint("rtuovertcp://" + srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := collectors.NewReader(ep, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	p := &collectors.Poller{Reader: rd, Clock: clock.NewManual(at), Log: zap.NewNop()}
	for _, d := range cfg.Devices {
		dev, err := cfg.Collector(d)
		if err != nil {
			t.Fatal(err)
		}
		b := p.Poll(dev)
		if b.Err != nil {
			t.Fatalf("%s: %v", d.Name, b.Err)
		}
		want, err := s.Read(d.Name, b.At)
		if err != nil {
			t.Fatal(err)
		}
		for i, smp := range b.Samples {
			if smp.Quality != want.Samples[i].Quality || smp.Value != want.Samples[i].Value {
				t.Errorf("%s.%s: polled %v (%v), the simulator holds %v (%v)", d.Name, smp.Point, smp.Value, smp.Quality,
					want.Samples[i].Value, want.Samples[i].Quality)
			}
		}
	}
	dev, _ := cfg.Collector(cfg.Devices[0])
	dev.UnitID = 99
	b := p.Poll(dev)
	var ex *collectors.ExceptionError
	if !errors.As(b.Err, &ex) || ex.Code != 11 {
		t.Fatalf("an unknown unit: %v, want exception 11", b.Err)
	}
}
