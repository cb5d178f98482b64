package cutover

import (
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/scripttest"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of cutover/testdata/*.txt from what the planner does")

// TestScripts runs the planner's data-driven scripts in testdata/ (the format is
// internal/scripttest's). Time starts at 2022-10-15 15:19:00 UTC and only moves by advance or at.
// Commands:
//
//	planner [name=a] [KEY=VALUE ...]   a fresh planner, the current one from now on; keys: site,
//	                                   instance, zones (z:domain+domain:target+target,…),
//	                                   consumers, seq_start, heartbeat, validity,
//	                                   fire_to_power_cut, ack_timeout, cancel_hold, episode_window
//	use NAME                           another planner made before becomes the current one
//	at RFC3339 | advance DURATION      set the time | move it on
//	risk STAGE [zone=Z] [rack=NAME]    a zone's (or one of its racks') risk change
//	tick
//	ack CONSUMER STATUS [signal=ACTION] [detail=WORD] [zone=Z]
//	                                   the consumer acks the zone's last signal (or the one of
//	                                   that action in the episode)
//	ups DEVICE on|off RUNTIME [zone=Z] [quality=Q]   a poll of a UPS of the zone
//	manual ACTION OPERATOR [REASON…] | cancel OPERATOR [REASON…]   operator commands
//	peer NAME                          the named planner's last signal reaches this one
//	restart                            the state through JSON into a fresh planner, at now
//	active                             every zone's active action
//
// After each command the planner's Ready is printed (after "NAME: " once there are two planners)
// and Advanced, as the daemon does: "signal
// seq=N id=ID action=A stage=S eta=Ns valid=Ns: REASON", "escalation SOURCE KIND stage=S: TEXT",
// "progress ZONE ACTION CONSUMER=STATUS[(took Ns)] …"; an error prints "error: …".
// Regenerate with: go test ./cutover -run TestScripts -rewrite (then review the diff).
func TestScripts(t *testing.T) {
	scripttest.RunAll(t, *rewrite, func(t *testing.T, path string) func(scripttest.Case) string {
		s := &plannerScript{t: t, now: time.Date(2022, 10, 15, 15, 19, 0, 0, time.UTC), named: map[string]*scripted{}}
		return func(c scripttest.Case) string { return s.run(path, c) }
	})
}

type scripted struct {
	name  string
	p     *Planner
	o     Options
	zones []Zone
	last  map[string]Signal // each zone's last signal
}

type plannerScript struct {
	t     *testing.T
	now   time.Time
	cur   *scripted
	named map[string]*scripted
	out   []string
}

func (s *plannerScript) run(path string, c scripttest.Case) string {
	s.out = nil
	for i, line := range c.Input {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		s.do(path, c.Line+i, f)
	}
	return strings.Join(s.out, "\n")
}

func (s *plannerScript) do(path string, line int, f []string) {
	fail := func(format string, a ...any) { s.t.Fatalf("%s:%d: %s", path, line, fmt.Sprintf(format, a...)) }
	dur := func(v string) time.Duration {
		d, err := time.ParseDuration(v)
		if err != nil {
			fail("%v", err)
		}
		return d
	}
	args, kv := split(f[1:])
	if s.cur == nil && f[0] != "planner" && f[0] != "at" && f[0] != "advance" {
		fail("planner first")
	}
	zone := func() string {
		if z := kv["zone"]; z != "" || len(s.cur.zones) == 0 {
			return z
		}
		return s.cur.zones[0].Name
	}
	var err error
	switch f[0] {
	case "planner":
		o := Options{Site: "pangyo-a", Instance: "fb-a1", BootID: "b1", Heartbeat: 10 * time.Second, Validity: time.Minute,
			FireToPowerCut: time.Hour}
		zones := []Zone{{Name: "b3", Domains: []string{"ups-a", "ups-b"}, Targets: []string{"hall-1", "hall-2"}}}
		for k, v := range kv {
			switch k {
			case "name":
			case "site":
				o.Site = v
			case "instance":
				o.Instance = v
			case "consumers":
				o.Consumers = strings.Split(v, ",")
			case "seq_start":
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					fail("seq_start: %v", err)
				}
				o.SeqStart = n
			case "heartbeat":
				o.Heartbeat = dur(v)
			case "validity":
				o.Validity = dur(v)
			case "fire_to_power_cut":
				o.FireToPowerCut = dur(v)
			case "ack_timeout":
				o.AckTimeout = dur(v)
			case "cancel_hold":
				o.CancelHold = dur(v)
			case "episode_window":
				o.EpisodeWindow = dur(v)
			case "zones":
				zones = nil
				for _, z := range strings.Split(v, ",") {
					p := strings.Split(z, ":")
					zn := Zone{Name: p[0]}
					if len(p) == 3 {
						zn.Domains, zn.Targets = strings.Split(p[1], "+"), strings.Split(p[2], "+")
					}
					zones = append(zones, zn)
				}
			default:
				fail("planner: unknown key %s", k)
			}
		}
		s.cur = &scripted{name: orDefault(kv["name"], "a"), p: NewPlanner(o, zones), o: o, zones: zones, last: map[string]Signal{}}
		s.named[orDefault(kv["name"], "a")] = s.cur
	case "use":
		if s.cur = s.named[args[0]]; s.cur == nil {
			fail("no planner %s", args[0])
		}
	case "at":
		at, perr := time.Parse(time.RFC3339Nano, args[0])
		if perr != nil {
			fail("at: %v", perr)
		}
		s.now = at
	case "advance":
		s.now = s.now.Add(dur(args[0]))
	case "risk":
		st, perr := strconv.Atoi(args[0])
		if perr != nil {
			fail("risk STAGE: %v", perr)
		}
		rc := alarms.RiskChange{Scope: alarms.ScopeZone, Name: zone(), Zone: zone(), To: alarms.Stage(st), At: s.now,
			Reason: "why", Evidence: []alarms.Evidence{{Alarm: "rack-07.offgas", Value: 420, Unit: "ppm"}}}
		if r := kv["rack"]; r != "" {
			rc.Scope, rc.Name = alarms.ScopeRack, r
		}
		s.cur.p.StepRisk(rc)
	case "tick":
		s.cur.p.Tick(s.now)
	case "ack":
		if len(args) != 2 {
			fail("ack CONSUMER STATUS")
		}
		sig := s.cur.last[zone()]
		id := sig.ID
		if a := kv["signal"]; a != "" {
			id = sig.Episode + "." + a
		}
		err = s.cur.p.StepAck(Ack{Consumer: args[0], Zone: zone(), SignalID: id, Seq: sig.Seq, Status: AckStatus(args[1]),
			Detail: kv["detail"], TS: s.now}, s.now)
	case "ups":
		if len(args) != 3 {
			fail("ups DEVICE on|off RUNTIME")
		}
		q := sample.Good
		if kv["quality"] == "invalid" {
			q = sample.Invalid
		}
		on := 0.0
		if args[1] == "on" {
			on = 1
		}
		s.cur.p.StepUPS(zone(), sample.Batch{Device: args[0], At: s.now, Samples: []sample.Sample{
			{Device: args[0], Point: "on_battery", Role: sample.UPSOnBattery, Value: on, Quality: q, At: s.now},
			{Device: args[0], Point: "runtime", Role: sample.UPSRuntime, Value: dur(args[2]).Seconds(), Quality: sample.Good, At: s.now},
		}})
	case "manual":
		if len(args) < 2 {
			fail("manual ACTION OPERATOR [REASON]")
		}
		err = s.cur.p.Manual(zone(), Action(args[0]), args[1], strings.Join(args[2:], " "), s.now)
	case "cancel":
		if len(args) < 1 {
			fail("cancel OPERATOR [REASON]")
		}
		err = s.cur.p.Cancel(zone(), args[0], strings.Join(args[1:], " "), s.now)
	case "peer":
		other := s.named[args[0]]
		if other == nil {
			fail("no planner %s", args[0])
		}
		s.cur.p.PeerSignal(other.last[zone()])
	case "restart":
		b, merr := json.Marshal(s.cur.p.State())
		if merr != nil {
			fail("%v", merr)
		}
		var st PlannerState
		if uerr := json.Unmarshal(b, &st); uerr != nil {
			fail("%v", uerr)
		}
		s.cur.p = NewPlanner(s.cur.o, s.cur.zones)
		s.cur.p.Restore(st, s.now)
	case "active":
		for _, z := range s.cur.p.Zones() {
			s.out = append(s.out, fmt.Sprintf("active %s %q", z, s.cur.p.Active(z)))
		}
	default:
		fail("unknown command %q", f[0])
	}
	if err != nil {
		s.out = append(s.out, "error: "+err.Error())
	}
	if s.cur != nil {
		s.ready()
	}
}

// ready prints the planner's Ready and Advances it.
func (s *plannerScript) ready() {
	rd := s.cur.p.Ready()
	n := len(s.out)
	for _, sig := range rd.Signals {
		s.cur.last[sig.Zone] = sig
		s.out = append(s.out, fmt.Sprintf("signal seq=%d id=%s action=%s stage=%d eta=%ds valid=%s domains=%s targets=%s: %s",
			sig.Seq, sig.ID, sig.Action, sig.Stage, sig.PowerLossETAS, sig.ValidUntil.Sub(sig.IssuedAt),
			strings.Join(sig.Domains, ","), strings.Join(sig.Targets, ","), sig.Reason))
	}
	for _, e := range rd.Escalations {
		s.out = append(s.out, fmt.Sprintf("escalation %s %s stage=%d: %s", e.Source(), e.Kind, e.Stage, e.Text))
	}
	for _, pr := range rd.Progress {
		line := fmt.Sprintf("progress %s %s", pr.Zone, pr.Action)
		for _, n := range slices.Sorted(maps.Keys(pr.Consumers)) {
			c := pr.Consumers[n]
			line += fmt.Sprintf(" %s=%s", n, orDefault(string(c.Status), "-"))
			if c.TookS != nil {
				line += fmt.Sprintf("(took %gs)", *c.TookS)
			}
		}
		s.out = append(s.out, line)
	}
	if len(s.named) > 1 {
		for i := n; i < len(s.out); i++ {
			s.out[i] = s.cur.name + ": " + s.out[i]
		}
	}
	s.cur.p.Advance()
}

// split separates KEY=VALUE arguments from the others.
func split(f []string) ([]string, map[string]string) {
	kv := map[string]string{}
	var args []string
	for _, a := range f {
		if k, v, ok := strings.Cut(a, "="); ok {
			kv[k] = v
		} else {
			args = append(args, a)
		}
	}
	return args, kv
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}
