package cutover

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"math"
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

// TestEpisodeIDsAcrossAnHAPair: two planners (two instances) see a zone rise a poll apart and
// name the episode alike; the second episode in the same window gets its own id; a planner that
// has seen the peer's signal joins the peer's episode even across a window boundary.
func TestEpisodeIDsAcrossAnHAPair(t *testing.T) {
	zones := []Zone{{Name: "b3", Domains: []string{"d"}, Targets: []string{"t"}}}
	opts := func(instance string) Options {
		return Options{Site: "pangyo", Instance: instance, Heartbeat: 10 * time.Second, Validity: time.Minute,
			FireToPowerCut: time.Hour, CancelHold: time.Minute, EpisodeWindow: 10 * time.Minute}
	}
	rise := func(p *Planner, at time.Time) Signal {
		p.StepRisk(alarms.RiskChange{Scope: alarms.ScopeZone, Name: "b3", Zone: "b3", To: alarms.StageCritical, At: at})
		s := p.Ready()[len(p.Ready())-1]
		p.Advance()
		return s
	}
	t0 := time.Date(2026, 11, 23, 9, 3, 17, 0, time.UTC)
	a, b := NewPlanner(opts("fb-1"), zones), NewPlanner(opts("fb-2"), zones)
	sa, sb := rise(a, t0), rise(b, t0.Add(1300*time.Millisecond))
	if sa.Episode != sb.Episode || sa.ID != sb.ID || sa.Episode != "pangyo.b3.1795424400" {
		t.Fatalf("episodes %q and %q (ids %q, %q), want both pangyo.b3.1795424400", sa.Episode, sb.Episode, sa.ID, sb.ID)
	}
	// Cancelled on both; a new fire in the same window is a new episode, named alike on both.
	for _, p := range []*Planner{a, b} {
		p.StepRisk(alarms.RiskChange{Scope: alarms.ScopeZone, Name: "b3", Zone: "b3", To: alarms.StageNormal, At: t0.Add(time.Minute)})
		if err := p.Cancel("b3", "op", "", t0.Add(3*time.Minute)); err != nil {
			t.Fatal(err)
		}
		p.Advance()
	}
	sa, sb = rise(a, t0.Add(4*time.Minute)), rise(b, t0.Add(4*time.Minute+time.Second))
	if sa.Episode != "pangyo.b3.1795424400-2" || sb.Episode != sa.Episode {
		t.Fatalf("second episode in the window: %q and %q, want pangyo.b3.1795424400-2 on both", sa.Episode, sb.Episode)
	}
	// Across a window boundary: fb-1 opens at 09:19:59.5, fb-2 at 09:20:00.7. fb-2 has
	// verified fb-1's signal by then and joins its episode.
	c, d := NewPlanner(opts("fb-1"), zones), NewPlanner(opts("fb-2"), zones)
	edge := time.Date(2026, 11, 23, 9, 19, 59, 500e6, time.UTC)
	sc := rise(c, edge)
	d.PeerSignal(sc)
	if sd := rise(d, edge.Add(1200*time.Millisecond)); sd.Episode != sc.Episode {
		t.Fatalf("across the boundary: %q and %q, want the peer's episode joined", sc.Episode, sd.Episode)
	}
	// A peer's expired signal is not joined.
	e := NewPlanner(opts("fb-2"), zones)
	e.PeerSignal(sc)
	if se := rise(e, edge.Add(2*time.Minute)); se.Episode == sc.Episode {
		t.Fatalf("joined an episode whose signal expired a minute ago")
	}
}

// TestSignalAlwaysEncodes: a signal whose evidence holds a value that is not a number (the
// engine never hands one over, but nothing may stop a drain signal) is signed and verified, the
// value going out as null.
func TestSignalAlwaysEncodes(t *testing.T) {
	t.Parallel()
	pub, key, _ := ed25519.GenerateKey(nil)
	now := time.Date(2022, 10, 15, 15, 19, 0, 0, time.UTC)
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		s := Signal{V: 1, ID: "e.drain", Site: "s", Zone: "z", Action: Drain, Stage: 3, Domains: []string{"d"}, Targets: []string{"t"},
			Evidence: []EvidenceItem{{Alarm: "rack-1.module_temp_3.temp_high", Value: v, Unit: "degC"}, {Alarm: "gas.offgas", Value: 420, Unit: "ppm"}},
			IssuedAt: now, ValidUntil: now.Add(time.Minute), Instance: "fb", TS: now, Seq: 1}
		if err := Sign(&s, key); err != nil {
			t.Fatalf("%g: sign: %v", v, err)
		}
		raw, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("%g: encode: %v", v, err)
		}
		if !strings.Contains(string(raw), `"value":null`) || !strings.Contains(string(raw), `"value":420`) {
			t.Errorf("%g: %s", v, raw)
		}
		if _, err := Verify(raw, pub, now); err != nil {
			t.Errorf("%g: verify: %v", v, err)
		}
	}
}

// TestKeyFileDamageIsFound: a key file written by MarshalKey with any one byte changed either
// fails to load or loads the very same key, never another key no consumer knows (issue 21); and
// the file stays a plain PKCS#8 key for other tools.
func TestKeyFileDamageIsFound(t *testing.T) {
	t.Parallel()
	_, k, _ := ed25519.GenerateKey(nil)
	b, err := MarshalKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseKey(b); err != nil || !got.Equal(k) {
		t.Fatalf("round trip: %v", err)
	}
	other := 0
	for i := range b {
		d := append([]byte(nil), b...)
		d[i] ^= 0x20
		got, err := ParseKey(d)
		if err == nil && !got.Equal(k) {
			other++
			t.Errorf("byte %d (%q) changed: loaded another key", i, b[i])
		}
	}
	if other > 0 {
		t.Logf("%d of %d changes loaded another key", other, len(b))
	}
}
