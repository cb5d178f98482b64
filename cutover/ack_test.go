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

func ackPlanner() *Planner {
	return NewPlanner(Options{Site: "s", Instance: "fb-a1", Heartbeat: 10 * time.Second, Validity: time.Minute,
		FireToPowerCut: time.Hour, Consumers: []string{"cp", "lb"}, AckTimeout: 15 * time.Second},
		[]Zone{{Name: "b3", Domains: []string{"ups-a"}, Targets: []string{"hall-1"}}})
}

func TestNoAckEscalatesAndResends(t *testing.T) {
	t.Parallel()
	p := ackPlanner()
	p.StepRisk(zoneTo(alarms.StageCritical, t0))
	sig := p.Ready()[0]
	p.Advance()
	if err := p.StepAck(Ack{Consumer: "cp", Zone: "b3", SignalID: sig.ID, Seq: sig.Seq, Status: AckReceived}, t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	p.Advance()
	p.Tick(t0.Add(14 * time.Second)) // a heartbeat, nothing more
	if len(p.Escalations()) != 0 || len(p.Ready()) != 1 {
		t.Fatalf("before ack_timeout: %+v %+v", p.Escalations(), p.Ready())
	}
	p.Advance()
	p.Tick(t0.Add(15 * time.Second))
	es := p.Escalations()
	if len(es) != 1 || es[0].Consumer != "lb" || es[0].Kind != EscalationNoAck || es[0].Stage != alarms.StageCritical ||
		es[0].Source() != "cutover.b3.lb" || !strings.Contains(es[0].Text, "lb has not acknowledged drain of zone b3 for 15s") {
		t.Fatalf("escalations at ack_timeout: %+v", es)
	}
	if rs := p.Ready(); len(rs) != 1 || rs[0].ID != sig.ID || rs[0].Seq <= sig.Seq {
		t.Fatalf("the signal must be sent again at once, same id, new seq: %+v", rs)
	}
	p.Advance()
	// The late ack clears the escalation and counts.
	if err := p.StepAck(Ack{Consumer: "lb", Zone: "b3", SignalID: sig.ID, Status: AckDrained}, t0.Add(20*time.Second)); err != nil {
		t.Fatal(err)
	}
	if es := p.Escalations(); len(es) != 1 || es[0].Stage != alarms.StageNormal {
		t.Fatalf("clear: %+v", es)
	}
	pr := p.Progress()
	if len(pr) != 1 || pr[0].Consumers["lb"].Status != AckDrained || *pr[0].Consumers["lb"].TookS != 20 || pr[0].Consumers["cp"].Status != AckReceived {
		t.Fatalf("progress %+v", pr)
	}
}

func TestFailedAckEscalatesAndStaleAcksChangeNothing(t *testing.T) {
	t.Parallel()
	p := ackPlanner()
	p.StepRisk(zoneTo(alarms.StageWarning, t0))
	prep := p.Ready()[0]
	p.Advance()
	p.StepRisk(zoneTo(alarms.StageFire, t0.Add(time.Minute)))
	evac := p.Ready()[0]
	p.Advance()
	if err := p.StepAck(Ack{Consumer: "cp", Zone: "b3", SignalID: prep.ID, Status: AckDrained}, t0.Add(61*time.Second)); !errors.Is(err, ErrStaleAck) {
		t.Fatalf("an ack of the superseded prepare: %v", err)
	}
	if err := p.StepAck(Ack{Consumer: "mallory", Zone: "b3", SignalID: evac.ID, Status: AckDrained}, t0); !errors.Is(err, ErrUnknownConsumer) {
		t.Fatalf("unknown consumer: %v", err)
	}
	if err := p.StepAck(Ack{Consumer: "cp", Zone: "b3", SignalID: evac.ID, Status: "done"}, t0); !errors.Is(err, ErrBadAck) {
		t.Fatalf("bad status: %v", err)
	}
	if len(p.Escalations()) != 0 || len(p.Progress()) != 0 {
		t.Fatal("refused acks changed something")
	}
	if err := p.StepAck(Ack{Consumer: "cp", Zone: "b3", SignalID: evac.ID, Status: AckFailed, Detail: "kubectl: forbidden"}, t0.Add(62*time.Second)); err != nil {
		t.Fatal(err)
	}
	es := p.Escalations()
	if len(es) != 1 || es[0].Kind != EscalationFailed || es[0].Stage != alarms.StageFire || !strings.Contains(es[0].Text, "kubectl: forbidden") {
		t.Fatalf("failed: %+v", es)
	}
	p.Advance()
	// A received re-delivered after failed goes back: ignored.
	if err := p.StepAck(Ack{Consumer: "cp", Zone: "b3", SignalID: evac.ID, Status: AckReceived}, t0.Add(63*time.Second)); err != nil || len(p.Progress()) != 0 {
		t.Fatalf("a step back: %v %+v", err, p.Progress())
	}
}

func TestETAFromUPSRuntimeOnBattery(t *testing.T) {
	t.Parallel()
	p := ackPlanner()
	p.StepPower("b3", "ups-a", false, 20*time.Minute, t0)
	p.StepRisk(zoneTo(alarms.StageCritical, t0))
	if eta := p.Ready()[0].PowerLossETAS; eta != 3600 {
		t.Fatalf("on mains: eta %d, want the fire budget 3600", eta)
	}
	p.Advance()
	p.StepPower("b3", "ups-a", true, 20*time.Minute, t0.Add(5*time.Second))
	p.Tick(t0.Add(10 * time.Second))
	if eta := p.Ready()[0].PowerLossETAS; eta != 20*60-5 {
		t.Fatalf("on battery: eta %d, want the UPS runtime left, %d", eta, 20*60-5)
	}
}

func TestReceiverRefusesForgedExpiredReplayedTampered(t *testing.T) {
	t.Parallel()
	pubA, keyA, _ := ed25519.GenerateKey(nil)
	pubB, keyB, _ := ed25519.GenerateKey(nil)
	_, mallory, _ := ed25519.GenerateKey(nil)
	mk := func(key ed25519.PrivateKey, inst string, seq uint64, valid time.Duration) []byte {
		s := Signal{V: 1, ID: "e.drain", Episode: "e", Zone: "b3", Action: Drain, IssuedAt: t0, ValidUntil: t0.Add(valid), Instance: inst, Seq: seq}
		if err := Sign(&s, key); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(s)
		return b
	}
	r := Receiver{Keys: []ed25519.PublicKey{pubA, pubB}}
	now := t0.Add(time.Second)
	for _, tc := range []struct {
		name    string
		payload []byte
		want    error
	}{
		{"good, daemon a", mk(keyA, "fb-a1", 5, time.Minute), nil},
		{"good, its HA peer with its own seq", mk(keyB, "fb-a2", 2, time.Minute), nil},
		{"forged", mk(mallory, "fb-a1", 6, time.Minute), ErrBadSignature},
		{"expired", mk(keyA, "fb-a1", 7, 500*time.Millisecond), ErrExpired},
		{"replayed", mk(keyA, "fb-a1", 5, time.Minute), ErrReplayed},
		{"older seq", mk(keyA, "fb-a1", 4, time.Minute), ErrReplayed},
		{"tampered", []byte(strings.Replace(string(mk(keyA, "fb-a1", 8, time.Minute)), `"zone":"b3"`, `"zone":"b4"`, 1)), ErrBadSignature},
		{"not json", []byte(`{"v":1,`), ErrMalformed},
		{"newer heartbeat of the same id", mk(keyA, "fb-a1", 9, time.Minute), nil},
	} {
		_, err := r.Check(tc.payload, now)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if r.LastSeq["fb-a1"] != 9 || r.LastSeq["fb-a2"] != 2 {
		t.Fatalf("last seq %v", r.LastSeq)
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	p1 := ackPlanner()
	p1.StepRisk(zoneTo(alarms.StageCritical, t0))
	sig := p1.Ready()[0]
	p1.Advance()
	if err := p1.StepAck(Ack{Consumer: "cp", Zone: "b3", SignalID: sig.ID, Status: AckDraining}, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	st := p1.State()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back PlannerState
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}

	p2 := ackPlanner()
	restart := t0.Add(time.Minute)
	p2.Restore(back, restart)
	p2.Tick(restart)
	rs := p2.Ready()
	if len(rs) != 1 || rs[0].ID != sig.ID || rs[0].Episode != sig.Episode || rs[0].Seq <= sig.Seq {
		t.Fatalf("after restart: %+v, want the same id re-sent with a newer seq than %d", rs, sig.Seq)
	}
	p2.Advance()
	// The stage is still critical: the engine says so again; nothing new is signalled.
	p2.StepRisk(zoneTo(alarms.StageCritical, restart.Add(time.Second)))
	if len(p2.Ready()) != 0 {
		t.Fatalf("a restored drain was signalled again as new: %+v", p2.Ready())
	}
	// cp's ack survived; lb, which never acked, is escalated ack_timeout after the restart.
	p2.Tick(restart.Add(15 * time.Second))
	es := p2.Escalations()
	if len(es) != 1 || es[0].Consumer != "lb" {
		t.Fatalf("escalations after restart: %+v", es)
	}
}
