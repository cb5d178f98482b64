package alarms

import (
	"errors"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/scripttest"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of alarms/testdata/*.txt from what the engine does")

// TestScripts runs the data-driven scripts in testdata/: inputs and the engine's expected output
// side by side, as in etcd's raft. A case is one or more command lines, a line "----", the
// expected output, and a blank line. Commands:
//
//	topology zone=Z devices=NAME,NAME,... [interval=1s] [modules=PREFIX:N:COUNT]
//	                                                        (a fresh engine; needed first;
//	                                                        PREFIX_k sit N to a module)
//	rule NAME DEVICE.POINT above|below|rate VALUE FOR STAGE (before the first feed)
//	feed DEVICE POINT:ROLE=VALUE[!QUALITY] ...              one batch at the present time; a point
//	                                                        may be a range: module_temp_1..8; a
//	                                                        value may ramp: 25+0.025/s from the
//	                                                        case's start
//	fail DEVICE                                             a failed poll
//	tick | advance DURATION
//	loop N STEP                                             the rest of the case N times, advancing
//	                                                        STEP and ticking after each
//	ack|unshelve|out_of_service|return_to_service ID   shelve ID DURATION
//	stage                                                   zone and rack stages
//
// Output: every alarm event ("event ID CAUSE FROM->TO stage=S active=B") and risk change ("risk
// SCOPE NAME FROM->TO: REASON") the case produced, and what stage and operator errors print.
// Regenerate with: go test ./alarms -run TestScripts -rewrite (then review the diff).
func TestScripts(t *testing.T) {
	scripttest.RunAll(t, *rewrite, func(t *testing.T, path string) func(scripttest.Case) string {
		s := &script{t: t, now: time.Date(2022, 10, 15, 15, 0, 0, 0, time.UTC)}
		return func(c scripttest.Case) string { return s.run(path, c) }
	})
}

type script struct {
	t   *testing.T
	e   *Engine
	tp  Topology
	now time.Time
	// caseStart is when the running case began: a ramp BASE+RATE/s is BASE at it.
	caseStart time.Time
	out       []string
}

func (s *script) run(path string, c scripttest.Case) string {
	s.out = nil
	s.caseStart = s.now
	in := c.Input
	for i := 0; i < len(in); i++ {
		f := strings.Fields(in[i])
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[0] == "loop" {
			if len(f) != 3 {
				s.t.Fatalf("%s:%d: loop N STEP", path, c.Line+i)
			}
			n, _ := strconv.Atoi(f[1])
			step, err := time.ParseDuration(f[2])
			if err != nil || n < 1 {
				s.t.Fatalf("%s:%d: loop N STEP: %v", path, c.Line+i, err)
			}
			body := in[i+1:]
			for k := 0; k < n; k++ {
				for _, b := range body {
					s.do(path, c.Line+i, strings.Fields(b))
				}
				s.now = s.now.Add(step)
				s.e.Tick(s.now)
				s.collect()
			}
			break
		}
		s.do(path, c.Line+i, f)
	}
	return strings.Join(s.out, "\n")
}

func (s *script) do(path string, line int, f []string) {
	if len(f) == 0 || strings.HasPrefix(f[0], "#") {
		return
	}
	fail := func(format string, a ...any) { s.t.Fatalf("%s:%d: %s", path, line, fmt.Sprintf(format, a...)) }
	if s.e == nil && f[0] != "topology" {
		fail("topology first")
	}
	switch f[0] {
	case "topology":
		kv := kvs(f[1:])
		iv, err := time.ParseDuration(orDefault(kv["interval"], "1s"))
		if err != nil {
			fail("interval: %v", err)
		}
		tp := Topology{Zones: []string{kv["zone"]}}
		// modules=PREFIX:N:COUNT: points PREFIX_1 … PREFIX_COUNT sit N to a module, in order.
		modules := map[string]int{}
		if m := kv["modules"]; m != "" {
			p := strings.Split(m, ":")
			n, errN := strconv.Atoi(orDefault(p[len(p)-2], ""))
			count, errC := strconv.Atoi(p[len(p)-1])
			if len(p) != 3 || errN != nil || errC != nil || n < 1 {
				fail("modules=PREFIX:N:COUNT")
			}
			for k := 0; k < count; k++ {
				modules[fmt.Sprintf("%s_%d", p[0], k+1)] = k/n + 1
			}
		}
		for _, d := range strings.Split(kv["devices"], ",") {
			tp.Devices = append(tp.Devices, DeviceInfo{Name: d, Zone: kv["zone"], Interval: iv, Modules: modules})
		}
		s.tp = tp
		s.e = New(tp, DefaultThresholds())
	case "rule":
		// rule NAME DEVICE.POINT above|below|rate VALUE FOR STAGE (before the first feed)
		if len(f) != 7 {
			fail("rule NAME DEVICE.POINT above|below|rate VALUE FOR STAGE")
		}
		dev, pt, _ := strings.Cut(f[2], ".")
		v, err1 := strconv.ParseFloat(f[4], 64)
		dur, err2 := time.ParseDuration(f[5])
		st, err3 := strconv.Atoi(f[6])
		if err1 != nil || err2 != nil || err3 != nil {
			fail("rule: bad value, duration or stage")
		}
		r := Rule{Name: f[1], Device: dev, Point: pt, For: dur, Stage: Stage(st)}
		switch f[3] {
		case "above":
			r.Above = &v
		case "below":
			r.Below = &v
		case "rate":
			r.RatePerMin = &v
		default:
			fail("rule kind %q", f[3])
		}
		s.tp.Rules = append(s.tp.Rules, r)
		s.e = New(s.tp, DefaultThresholds())
	case "feed":
		if len(f) < 3 {
			fail("feed DEVICE POINT:ROLE=VALUE ...")
		}
		b := sample.Batch{Device: f[1], At: s.now}
		for _, spec := range f[2:] {
			b.Samples = append(b.Samples, s.samples(fail, f[1], spec)...)
		}
		s.e.Step(b)
	case "fail":
		s.e.Step(sample.Batch{Device: f[1], At: s.now, Err: errors.New("i/o timeout")})
	case "tick":
		s.e.Tick(s.now)
	case "advance":
		d, err := time.ParseDuration(f[1])
		if err != nil {
			fail("advance: %v", err)
		}
		s.now = s.now.Add(d)
	case "ack", "unshelve", "out_of_service", "return_to_service":
		var err error
		switch f[0] {
		case "ack":
			err = s.e.Ack(f[1], s.now)
		case "unshelve":
			err = s.e.Unshelve(f[1], s.now)
		case "out_of_service":
			err = s.e.OutOfService(f[1], s.now)
		case "return_to_service":
			err = s.e.ReturnToService(f[1], s.now)
		}
		if err != nil {
			s.out = append(s.out, "error: "+err.Error())
		}
	case "shelve":
		d, perr := time.ParseDuration(f[2])
		if perr != nil {
			fail("shelve ID DURATION: %v", perr)
		}
		if err := s.e.Shelve(f[1], s.now.Add(d), s.now); err != nil {
			s.out = append(s.out, "error: "+err.Error())
		}
	case "stage":
		var racks []string
		for n, r := range s.e.racks {
			racks = append(racks, fmt.Sprintf("%s=%d", n, r.stage))
		}
		sort.Strings(racks)
		var zones []string
		for n, z := range s.e.zones {
			zones = append(zones, fmt.Sprintf("%s=%d", n, z.stage))
		}
		sort.Strings(zones)
		s.out = append(s.out, fmt.Sprintf("stage zone %s racks %s", strings.Join(zones, " "), strings.Join(racks, " ")))
	default:
		fail("unknown command %q", f[0])
	}
	s.collect()
}

func (s *script) samples(fail func(string, ...any), dev, spec string) []sample.Sample {
	name, rest, ok := strings.Cut(spec, ":")
	role, val, ok2 := strings.Cut(rest, "=")
	if !ok || !ok2 {
		fail("point spec %q: want POINT:ROLE=VALUE", spec)
	}
	q := sample.Good
	if v, qs, bad := strings.Cut(val, "!"); bad {
		val = v
		switch qs {
		case "invalid":
			q = sample.Invalid
		case "out_of_range":
			q = sample.OutOfRange
		default:
			fail("quality %q", qs)
		}
	}
	var v float64
	if base, rate, ok := strings.Cut(val, "+"); ok && strings.HasSuffix(rate, "/s") {
		b, err1 := strconv.ParseFloat(base, 64)
		r, err2 := strconv.ParseFloat(strings.TrimSuffix(rate, "/s"), 64)
		if err1 != nil || err2 != nil {
			fail("ramp %q: want BASE+RATE/s", val)
		}
		v = b + r*s.now.Sub(s.caseStart).Seconds()
	} else {
		var err error
		if v, err = strconv.ParseFloat(val, 64); err != nil {
			fail("value %q: %v", val, err)
		}
	}
	names := []string{name}
	if i := strings.LastIndex(name, "_"); i > 0 && strings.Contains(name[i+1:], "..") {
		lo, hi, _ := strings.Cut(name[i+1:], "..")
		a, errA := strconv.Atoi(lo)
		z, errZ := strconv.Atoi(hi)
		if errA != nil || errZ != nil || a > z {
			fail("point range %q: want NAME_LO..HI", name)
		}
		names = nil
		for k := a; k <= z; k++ {
			names = append(names, fmt.Sprintf("%s_%d", name[:i], k))
		}
	}
	var out []sample.Sample
	for _, n := range names {
		out = append(out, sample.Sample{Device: dev, Point: n, Role: sample.Role(role), Value: v, Quality: q, At: s.now})
	}
	return out
}

func (s *script) collect() {
	rd := s.e.Ready()
	for _, ev := range rd.Events {
		s.out = append(s.out, fmt.Sprintf("event %s %s %s->%s stage=%d active=%v", ev.Alarm.ID, ev.Cause, ev.From, ev.Alarm.State, ev.Alarm.Stage, ev.Alarm.Active))
	}
	for _, rc := range rd.Risk {
		s.out = append(s.out, fmt.Sprintf("risk %s %s %d->%d: %s", rc.Scope, rc.Name, rc.From, rc.To, rc.Reason))
	}
	s.e.Advance()
}

func kvs(f []string) map[string]string {
	m := map[string]string{}
	for _, x := range f {
		k, v, _ := strings.Cut(x, "=")
		m[k] = v
	}
	return m
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}
