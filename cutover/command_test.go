package cutover

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
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
