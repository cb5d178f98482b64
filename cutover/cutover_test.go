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

var t0 = time.Date(2022, 10, 15, 15, 19, 0, 0, time.UTC)

func planner() *Planner {
	return NewPlanner(Options{Site: "pangyo-a", Instance: "fb-a1", BootID: "b1", Heartbeat: 10 * time.Second,
		Validity: time.Minute, FireToPowerCut: time.Hour, SeqStart: 41},
		[]Zone{{Name: "b3", Domains: []string{"ups-a", "ups-b"}, Targets: []string{"hall-1", "hall-2"}}})
}

func zoneTo(s alarms.Stage, at time.Time) alarms.RiskChange {
	return alarms.RiskChange{Scope: alarms.ScopeZone, Name: "b3", Zone: "b3", To: s, At: at, Reason: "why",
		Evidence: []alarms.Evidence{{Alarm: "rack-07.offgas", Value: 420, Unit: "ppm"}}}
}

func TestStagesToActions(t *testing.T) {
	t.Parallel()
	p := planner()
	p.StepRisk(alarms.RiskChange{Scope: alarms.ScopeRack, Name: "rack-1", Zone: "b3", To: alarms.StageFire, At: t0})
	p.StepRisk(zoneTo(alarms.StageWatch, t0))
	if len(p.Ready()) != 0 {
		t.Fatalf("rack scope or watch produced signals: %+v", p.Ready())
	}
	var got []string
	for i, s := range []alarms.Stage{alarms.StageWarning, alarms.StageCritical, alarms.StageWarning, alarms.StageFire} {
		p.StepRisk(zoneTo(s, t0.Add(time.Duration(i)*time.Second)))
		for _, sig := range p.Ready() {
			got = append(got, string(sig.Action))
		}
		p.Advance()
	}
	if strings.Join(got, ",") != "prepare,drain,evacuate" {
		t.Fatalf("actions %v: a falling stage must not withdraw a drain", got)
	}
	if p.Active("b3") != Evacuate {
		t.Fatalf("active %v", p.Active("b3"))
	}
}

func TestHeartbeatResendsWithNewSeq(t *testing.T) {
	t.Parallel()
	p := planner()
	p.StepRisk(zoneTo(alarms.StageCritical, t0))
	first := p.Ready()[0]
	p.Advance()
	p.Tick(t0.Add(5 * time.Second))
	if len(p.Ready()) != 0 {
		t.Fatal("re-sent before the heartbeat")
	}
	p.Tick(t0.Add(10 * time.Second))
	if len(p.Ready()) != 1 {
		t.Fatalf("heartbeat: %d signals", len(p.Ready()))
	}
	again := p.Ready()[0]
	if again.ID != first.ID || again.Seq != first.Seq+1 || !again.ValidUntil.After(first.ValidUntil) {
		t.Fatalf("heartbeat signal %+v after %+v", again, first)
	}
	if first.Seq != 42 {
		t.Fatalf("seq did not continue from SeqStart: %d", first.Seq)
	}
	if first.Domains[1] != "ups-b" || first.Targets[0] != "hall-1" || first.PowerLossETAS != 3600 {
		t.Fatalf("topology or eta wrong: %+v", first)
	}
}

func TestETACountsDownFromFire(t *testing.T) {
	t.Parallel()
	p := planner()
	p.StepRisk(zoneTo(alarms.StageFire, t0))
	p.Advance()
	p.Tick(t0.Add(20 * time.Minute))
	if eta := p.Ready()[0].PowerLossETAS; eta != 2400 {
		t.Fatalf("eta %d, want 2400", eta)
	}
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	pub, priv, _ := ed25519.GenerateKey(nil)
	p := planner()
	p.StepRisk(zoneTo(alarms.StageCritical, t0))
	sig := p.Ready()[0]
	if err := Sign(&sig, priv); err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(sig)
	got, err := Verify(payload, pub, t0.Add(time.Second))
	if err != nil || got.Action != Drain {
		t.Fatalf("verify: %v %+v", err, got)
	}
	tampered := strings.Replace(string(payload), `"hall-2"`, `"hall-9"`, 1)
	if _, err := Verify([]byte(tampered), pub, t0); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered target: %v", err)
	}
	otherPub, _, _ := ed25519.GenerateKey(nil)
	if _, err := Verify(payload, otherPub, t0); !errors.Is(err, ErrBadSignature) {
		t.Errorf("wrong key: %v", err)
	}
	if _, err := Verify(payload, pub, t0.Add(2*time.Minute)); !errors.Is(err, ErrExpired) {
		t.Errorf("expired: %v", err)
	}
	if _, err := Verify([]byte(`{"v":1,"bogus":true}`), pub, t0); !errors.Is(err, ErrMalformed) {
		t.Errorf("malformed: %v", err)
	}
}

func TestKeyRoundTrip(t *testing.T) {
	t.Parallel()
	_, priv, _ := ed25519.GenerateKey(nil)
	pemBytes, err := MarshalKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(pemBytes)
	if err != nil || !k.Equal(priv) {
		t.Fatalf("PEM round trip: %v", err)
	}
	if _, err := ParseKey([]byte("not a key")); err == nil {
		t.Fatal("garbage accepted as a key")
	}
}
