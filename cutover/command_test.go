package cutover

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/alarms"
)

func signed(t *testing.T, c Command, key ed25519.PrivateKey) []byte {
	t.Helper()
	if err := SignCommand(&c, key); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyCommand(t *testing.T) {
	t.Parallel()
	alicePub, alice, _ := ed25519.GenerateKey(nil)
	_, mallory, _ := ed25519.GenerateKey(nil)
	ops := map[string]ed25519.PublicKey{"alice": alicePub}
	good := Command{V: 1, Command: "shelve", Instance: "fb-a1", Alarm: "rack-07.cell_temp_max.temp_high", Duration: "2h",
		Operator: "alice", TS: t0, Nonce: "n-1"}
	with := func(f func(*Command)) Command { c := good; f(&c); return c }
	tampered := signed(t, good, alice)
	tampered = []byte(strings.Replace(string(tampered), `"2h"`, `"200h"`, 1))

	for _, tc := range []struct {
		name    string
		payload []byte
		verb    string
		want    error
		msg     string
	}{
		{"good", signed(t, good, alice), "shelve", nil, ""},
		{"unsigned", func() []byte { b, _ := json.Marshal(good); return b }(), "shelve", ErrCmdBadSignature, "not a base64"},
		{"wrong key", signed(t, good, mallory), "shelve", ErrCmdBadSignature, `operator "alice"`},
		{"tampered", tampered, "shelve", ErrCmdBadSignature, ""},
		{"unknown operator", signed(t, with(func(c *Command) { c.Operator = "bob" }), mallory), "shelve", ErrCmdUnknownOperator, `"bob"`},
		{"stale", signed(t, with(func(c *Command) { c.TS = t0.Add(-2 * time.Minute) }), alice), "shelve", ErrCmdStale, "max_age 1m0s"},
		{"from the future", signed(t, with(func(c *Command) { c.TS = t0.Add(2 * time.Minute) }), alice), "shelve", ErrCmdStale, ""},
		{"other instance", signed(t, with(func(c *Command) { c.Instance = "fb-a2" }), alice), "shelve", ErrCmdWrongInstance, `"fb-a2"`},
		{"topic differs", signed(t, good, alice), "ack", ErrCmdMalformed, `topic says "ack"`},
		{"not json", []byte(`{"v":1,`), "shelve", ErrCmdMalformed, ""},
		{"unknown field", []byte(`{"v":1,"command":"ack","sudo":true}`), "ack", ErrCmdMalformed, "sudo"},
		{"no duration", signed(t, with(func(c *Command) { c.Duration = "" }), alice), "shelve", ErrCmdMalformed, "positive duration"},
		{"no nonce", signed(t, with(func(c *Command) { c.Nonce = "" }), alice), "shelve", ErrCmdMalformed, "nonce"},
		{"bad action", signed(t, with(func(c *Command) { c.Command, c.Zone, c.Action = "drain", "b3", "panic" }), alice), "drain", ErrCmdMalformed, "panic"},
		{"unknown verb", signed(t, with(func(c *Command) { c.Command = "reboot" }), alice), "reboot", ErrCmdMalformed, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := VerifyCommand(tc.payload, tc.verb, "fb-a1", ops, t0.Add(10*time.Second), time.Minute)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not say %q", err, tc.msg)
			}
			if err == nil && c.ShelveFor() != 2*time.Hour {
				t.Fatalf("shelve for %s", c.ShelveFor())
			}
		})
	}
}

func TestManualDrainOnlyEscalates(t *testing.T) {
	t.Parallel()
	p := planner()
	if err := p.Manual("nowhere", Drain, "alice", "", t0); !errors.Is(err, ErrUnknownZone) {
		t.Fatalf("unknown zone: %v", err)
	}
	if err := p.Manual("b3", Drain, "alice", "smell of burning", t0); err != nil {
		t.Fatal(err)
	}
	s := p.Ready()
	if len(s) != 1 || s[0].Action != Drain || s[0].Reason != "manual drain by alice: smell of burning" || s[0].Episode == "" {
		t.Fatalf("signals %+v", s)
	}
	p.Advance()
	if err := p.Manual("b3", Prepare, "alice", "", t0); !errors.Is(err, ErrNoEscalate) {
		t.Fatalf("a weaker manual action: %v", err)
	}
	// A detected stage-4 still escalates a manual drain, in the same episode.
	p.StepRisk(zoneTo(alarms.StageFire, t0.Add(time.Minute)))
	if s2 := p.Ready(); len(s2) != 1 || s2[0].Action != Evacuate || s2[0].Episode != s[0].Episode {
		t.Fatalf("escalation %+v", s2)
	}
}

func TestCancelOnlyAfterStageZeroHeld(t *testing.T) {
	t.Parallel()
	p := NewPlanner(Options{Site: "s", Instance: "i", Heartbeat: 10 * time.Second, Validity: time.Minute,
		FireToPowerCut: time.Hour, CancelHold: 10 * time.Minute}, []Zone{{Name: "b3"}})
	if err := p.Cancel("b3", "alice", "", t0); !errors.Is(err, ErrNotActive) {
		t.Fatalf("cancel with nothing active: %v", err)
	}
	p.StepRisk(zoneTo(alarms.StageCritical, t0))
	p.Advance()
	if err := p.Cancel("b3", "alice", "", t0.Add(time.Hour)); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("cancel at stage 3: %v", err)
	}
	p.StepRisk(zoneTo(alarms.StageNormal, t0.Add(20*time.Minute)))
	err := p.Cancel("b3", "alice", "", t0.Add(25*time.Minute))
	if !errors.Is(err, ErrNotHeld) || !strings.Contains(err.Error(), "5m0s of cutover.cancel_hold 10m0s") {
		t.Fatalf("cancel 5 min into the hold: %v", err)
	}
	p.StepRisk(zoneTo(alarms.StageWatch, t0.Add(26*time.Minute)))
	p.StepRisk(zoneTo(alarms.StageNormal, t0.Add(27*time.Minute)))
	if err := p.Cancel("b3", "alice", "", t0.Add(31*time.Minute)); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("the hold restarts when the stage rises again: %v", err)
	}
	if err := p.Cancel("b3", "alice", "all clear", t0.Add(37*time.Minute)); err != nil {
		t.Fatal(err)
	}
	s := p.Ready()
	if len(s) != 1 || s[0].Action != Cancel || s[0].Reason != "cancelled by alice: all clear" {
		t.Fatalf("cancel signal %+v", s)
	}
	p.Advance()
	if p.Active("b3") != "" {
		t.Fatal("the zone is still active after cancel")
	}
	p.Tick(t0.Add(time.Hour))
	if len(p.Ready()) != 0 {
		t.Fatal("a cancelled zone keeps sending heartbeats")
	}
}
