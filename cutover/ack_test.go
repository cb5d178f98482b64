package cutover

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

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
