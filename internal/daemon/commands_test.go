package daemon_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/testenv"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// TestOperatorCommands sends signed and unsigned commands to a running daemon over real
// Mosquitto: every bad one is refused on P/cmd/result/<instance> with its reason and changes
// nothing; the good ones are carried out.
func TestOperatorCommands(t *testing.T) {
	broker := testenv.Mosquitto(t)
	r := hiltest.NewRoom(t, "cmds", "normal", broker)
	alicePub, alice, _ := ed25519.GenerateKey(nil)
	_, mallory, _ := ed25519.GenerateKey(nil)
	r.Cfg.Commands.Operators = []config.Operator{{Name: "alice", PublicKey: base64.StdEncoding.EncodeToString(alicePub)}}
	r.Cfg.Commands.MaxAge = 10 * time.Minute // scenario time: 12 s of real time at 50×
	// An alarm to command: a rule that holds from the first sample.
	zero := 0.0
	r.Cfg.Rules = append(r.Cfg.Rules, config.Rule{Name: "always", Point: "rack-01.soc", Above: &zero, Stage: 1})
	p, inst := r.Prefix(), r.Cfg.Instance
	rec := hiltest.Record(t, broker, "operator", false, p+"/cmd/result/"+inst, p+"/events", p+"/drain/+", p+"/node/+/status")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.Sim.Run(gctx) })
	g.Go(func() error {
		return daemon.Run(gctx, daemon.Options{Config: r.Cfg, Clock: r.Clk, Log: zap.NewNop(), Version: "test",
			SigningKey: r.Key, ShutdownGrace: 2 * time.Second})
	})
	const alarm = "rack-01.soc.rule:always"
	events := func(cause string) int {
		got, _ := rec.Snapshot()
		n := 0
		for _, raw := range got[p+"/events"] {
			var ev struct {
				Cause string `json:"cause"`
				Alarm struct{ ID string }
			}
			_ = json.Unmarshal(raw, &ev)
			if ev.Alarm.ID == alarm && ev.Cause == cause {
				n++
			}
		}
		return n
	}
	hiltest.WaitFor(t, 30*time.Second, "the rule's alarm", func() bool { return events("activate") == 1 })

	send := func(verb string, payload []byte) map[string]any {
		t.Helper()
		before, _ := rec.Snapshot()
		n := len(before[p+"/cmd/result/"+inst])
		if tok := rec.Client.Publish(p+"/cmd/"+inst+"/"+verb, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish command: %v", tok.Error())
		}
		var res map[string]any
		hiltest.WaitFor(t, 10*time.Second, "the command's result", func() bool {
			got, _ := rec.Snapshot()
			if len(got[p+"/cmd/result/"+inst]) <= n {
				return false
			}
			return json.Unmarshal(got[p+"/cmd/result/"+inst][n], &res) == nil
		})
		return res
	}
	nonce := 0
	cmd := func(verb string, f func(*cutover.Command)) cutover.Command {
		nonce++
		c := cutover.Command{V: 1, Command: verb, Instance: inst, Alarm: alarm, Operator: "alice", TS: r.Clk.Now(), Nonce: fmt.Sprint("n", nonce)}
		if f != nil {
			f(&c)
		}
		return c
	}
	sign := func(c cutover.Command, key ed25519.PrivateKey) []byte {
		if err := cutover.SignCommand(&c, key); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(c)
		return b
	}
	plain := func(c cutover.Command) []byte { b, _ := json.Marshal(c); return b }

	for _, tc := range []struct {
		name, verb string
		payload    []byte
		want       string
	}{
		{"unsigned", "ack", plain(cmd("ack", nil)), "bad signature"},
		{"wrong key", "ack", sign(cmd("ack", nil), mallory), "bad signature"},
		{"unknown operator", "ack", sign(cmd("ack", func(c *cutover.Command) { c.Operator = "mallory" }), mallory), "unknown operator"},
		{"stale", "ack", sign(cmd("ack", func(c *cutover.Command) { c.TS = c.TS.Add(-time.Hour) }), alice), "stale command"},
		{"malformed JSON", "ack", []byte(`{"v":1,"command":"ack",`), "malformed command"},
		{"for the peer", "ack", sign(cmd("ack", func(c *cutover.Command) { c.Instance = "fb-other" }), alice), "another instance"},
		{"unknown alarm", "ack", sign(cmd("ack", func(c *cutover.Command) { c.Alarm = "rack-99.nothing" }), alice), "unknown alarm"},
		{"shelve without duration", "shelve", sign(cmd("shelve", nil), alice), "positive duration"},
		{"shelve for 292 years", "shelve", sign(cmd("shelve", func(c *cutover.Command) { c.Duration = "2562047h" }), alice), "a shelve may last at most 72h0m0s (commands.max_shelve)"},
		{"cancel with nothing to cancel", "cancel", sign(cmd("cancel", func(c *cutover.Command) { c.Alarm, c.Zone = "", "b3-battery" }), alice), "no drain is active"},
	} {
		res := send(tc.verb, tc.payload)
		if res["ok"] != false || !strings.Contains(fmt.Sprint(res["error"]), tc.want) {
			t.Errorf("%s: result %v, want refused with %q", tc.name, res, tc.want)
		}
	}
	// Oversized and hostile payloads: refused unread above wire.MaxCommandBytes, and a refused
	// command's fields are echoed only in short (issue 13: a 10 MB command grew the daemon by
	// 200 MB and got no result).
	long := strings.Repeat("m", 15000)
	for _, tc := range []struct {
		name    string
		payload []byte
		want    string
	}{
		{"10 MB", []byte(`{"v":1,"command":"ack","operator":"` + strings.Repeat("x", 10<<20) + `"}`), "a command may be at most 16384 (refused unread)"},
		{"a 15 KB operator name", sign(cmd("ack", func(c *cutover.Command) { c.Operator = long }), mallory), "unknown operator"},
		{"unsigned, with a 15 KB operator name", plain(cmd("ack", func(c *cutover.Command) { c.Operator = long })), "bad signature"},
	} {
		res := send("ack", tc.payload)
		raw, _ := json.Marshal(res)
		if res["ok"] != false || !strings.Contains(fmt.Sprint(res["error"]), tc.want) || len(raw) > 2048 {
			t.Errorf("%s: result of %d bytes %.300s, want refused with %q in under 2 KiB", tc.name, len(raw), raw, tc.want)
		}
	}
	if n := events("ack"); n != 0 {
		t.Fatalf("refused commands acknowledged the alarm %d times", n)
	}

	good := sign(cmd("ack", nil), alice)
	if res := send("ack", good); res["ok"] != true || res["operator"] != "alice" {
		t.Fatalf("a good ack: %v", res)
	}
	hiltest.WaitFor(t, 10*time.Second, "the ack event", func() bool { return events("ack") == 1 })
	if res := send("ack", good); res["ok"] != false || !strings.Contains(fmt.Sprint(res["error"]), "replayed nonce") {
		t.Fatalf("the same ack again: %v", res)
	}
	if res := send("shelve", sign(cmd("shelve", func(c *cutover.Command) { c.Duration = "2h" }), alice)); res["ok"] != true {
		t.Fatalf("shelve: %v", res)
	}
	hiltest.WaitFor(t, 10*time.Second, "the shelve event", func() bool { return events("shelve") == 1 })

	// A manual drain goes out signed, with who asked and why; a cancel before stage 0 has held
	// for cutover.cancel_hold is refused.
	drain := cmd("drain", func(c *cutover.Command) { c.Alarm, c.Zone, c.Reason = "", "b3-battery", "drill" })
	if res := send("drain", sign(drain, alice)); res["ok"] != true {
		t.Fatalf("manual drain: %v", res)
	}
	var sig cutover.Signal
	hiltest.WaitFor(t, 10*time.Second, "the manual drain signal", func() bool {
		got, _ := rec.Snapshot()
		for _, raw := range got[p+"/drain/b3-battery"] {
			s, err := cutover.Verify(raw, r.Pub, time.Time{})
			if err == nil && s.Action == cutover.Drain {
				sig = s
				return true
			}
		}
		return false
	})
	if sig.Reason != "manual drain by alice: drill" || len(sig.Targets) == 0 {
		t.Fatalf("manual drain signal: %+v", sig)
	}
	res := send("cancel", sign(cmd("cancel", func(c *cutover.Command) { c.Alarm, c.Zone = "", "b3-battery" }), alice))
	if res["ok"] != false || !strings.Contains(fmt.Sprint(res["error"]), "stage 0 has not held long enough") {
		t.Fatalf("early cancel: %v", res)
	}
	cancel()
	if err := g.Wait(); err != nil {
		t.Fatalf("daemon: %v", err)
	}
	// A clean shutdown says offline itself (the last will is for an unclean one).
	hiltest.WaitFor(t, 5*time.Second, "the offline status", func() bool {
		got, _ := rec.Snapshot()
		st := got[p+"/node/"+inst+"/status"]
		var last struct{ State string }
		return len(st) >= 2 && json.Unmarshal(st[len(st)-1], &last) == nil && last.State == "offline"
	})
}

// TestFloodCostsNoAck: 20,000 garbage payloads on the command and ack topics, with a signed ack
// command and a consumer's drain ack in the middle of them; both are carried out (issue 22: they
// shared one queue with the garbage and were dropped as "too many waiting"), and the refused
// garbage is not answered 20,000 times.
func TestFloodCostsNoAck(t *testing.T) {
	broker := testenv.Mosquitto(t)
	r := hiltest.NewRoom(t, "flood", "normal", broker)
	alicePub, alice, _ := ed25519.GenerateKey(nil)
	r.Cfg.Commands.Operators = []config.Operator{{Name: "alice", PublicKey: base64.StdEncoding.EncodeToString(alicePub)}}
	r.Cfg.Commands.MaxAge = 10 * time.Minute
	zero := 0.0
	r.Cfg.Rules = append(r.Cfg.Rules, config.Rule{Name: "fire", Point: "rack-01.soc", Above: &zero, Stage: 3}) // drains at once
	p, inst := r.Prefix(), r.Cfg.Instance
	rec := hiltest.Record(t, broker, "flooder", false, p+"/cmd/result/"+inst, p+"/drain/+", p+"/drain/+/status")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.Sim.Run(gctx) })
	g.Go(func() error {
		return daemon.Run(gctx, daemon.Options{Config: r.Cfg, Clock: r.Clk, Log: zap.NewNop(), Version: "test", SigningKey: r.Key, ShutdownGrace: 2 * time.Second})
	})
	var sig cutover.Signal
	hiltest.WaitFor(t, 30*time.Second, "the drain signal", func() bool {
		got, _ := rec.Snapshot()
		for _, raw := range got[p+"/drain/b3-battery"] {
			if s, err := cutover.Verify(raw, r.Pub, time.Time{}); err == nil && s.Action == cutover.Drain {
				sig = s
				return true
			}
		}
		return false
	})
	garbage := func(n int) {
		for i := 0; i < n; i++ {
			topic := p + "/cmd/" + inst + "/ack"
			if i%2 == 1 {
				topic = p + "/drain/b3-battery/ack/control-plane"
			}
			rec.Client.Publish(topic, 0, false, []byte(fmt.Sprintf(`{"garbage":%d,"sig":"AAAA"}`, i)))
		}
	}
	floodFrom := r.Clk.Now()
	garbage(10000)
	ack, _ := json.Marshal(cutover.Ack{V: 1, Consumer: "control-plane", Zone: "b3-battery", SignalID: sig.ID, Seq: sig.Seq, Status: cutover.AckReceived, TS: r.Clk.Now()})
	if tok := rec.Client.Publish(p+"/drain/b3-battery/ack/control-plane", 1, false, ack); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	c := cutover.Command{V: 1, Command: "ack", Instance: inst, Alarm: "rack-01.soc.rule:fire", Operator: "alice", TS: r.Clk.Now(), Nonce: "flood-1"}
	if err := cutover.SignCommand(&c, alice); err != nil {
		t.Fatal(err)
	}
	cmd, _ := json.Marshal(c)
	if tok := rec.Client.Publish(p+"/cmd/"+inst+"/ack", 1, false, cmd); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	garbage(10000)
	hiltest.WaitFor(t, time.Minute, "the signed ack command carried out", func() bool {
		got, _ := rec.Snapshot()
		for _, raw := range got[p+"/cmd/result/"+inst] {
			var res wire.CommandResult
			if json.Unmarshal(raw, &res) == nil && res.Nonce == "flood-1" && res.OK {
				return true
			}
		}
		return false
	})
	hiltest.WaitFor(t, time.Minute, "the consumer's drain ack recorded", func() bool {
		got, _ := rec.Snapshot()
		for _, raw := range got[p+"/drain/b3-battery/status"] {
			var pr cutover.Progress
			if json.Unmarshal(raw, &pr) == nil && pr.Consumers["control-plane"].Status == cutover.AckReceived {
				return true
			}
		}
		return false
	})
	// Answers to refusals: a burst of 20, then 5 a second of the daemon's clock (50× here).
	got, _ := rec.Snapshot()
	bound := 20 + 5*int(r.Clk.Now().Sub(floodFrom).Seconds()) + 1
	if n := len(got[p+"/cmd/result/"+inst]); n > bound || n >= 10000 {
		t.Errorf("%d results for 10,000 refused commands: refusals must be answered at a bounded rate (at most %d by now)", n, bound)
	}
	cancel()
	if err := g.Wait(); err != nil {
		t.Fatalf("daemon: %v", err)
	}
}
