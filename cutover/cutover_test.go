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

func TestSignVerify(t *testing.T) {
	t.Parallel()
	pub, priv, _ := ed25519.GenerateKey(nil)
	p := planner()
	p.StepRisk(zoneTo(alarms.StageCritical, t0))
	sig := p.Ready().Signals[0]
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
