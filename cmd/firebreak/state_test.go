package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/secrets"
	"github.com/firebreak-dc/firebreak/internal/testenv"
)

// stateSite is a room whose rule drains at the first poll (stage 3) and re-sends the signal
// every second: every start shows at once whether drain signals still go out, verified, at a
// seq the control plane accepts.
const stateSite = `site: st
instance: fb-1
state_dir: %s
connections: [{name: gw, url: "tcp://%s", timeout: 500ms}]
zones: [{name: z, cut_scope: [d]}]
domains: [{name: d, targets: [t]}]
devices:
  - {name: rack-01, connection: gw, unit_id: 1, profile: li-ion-rack, zone: z}
rules: [{name: fire, point: rack-01.soc, above: 0, stage: 3}]
mqtt: {brokers: ["%s"], topic_prefix: %s}
metrics: {listen: "127.0.0.1:0"}
cutover: {heartbeat: 1s, validity: 1m, ack_timeout: 1h}
shutdown_timeout: 5s
`

// stateRun is one `firebreak run` of stateSite and what it published.
type stateRun struct {
	p      *hiltest.Process
	rec    *hiltest.Recorder
	prefix string
}

func startStateRun(t *testing.T, stateDir, simAddr, broker, prefix string) *stateRun {
	t.Helper()
	site := filepath.Join(t.TempDir(), "site.yaml")
	if err := os.WriteFile(site, []byte(fmt.Sprintf(stateSite, stateDir, simAddr, broker, prefix)), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := hiltest.Record(t, broker, "rec-"+prefix, false, prefix+"/st/drain/z", prefix+"/st/alarm/+")
	return &stateRun{p: startFirebreak(t, "run", "-config", site), rec: rec, prefix: prefix}
}

// signals returns the drain signals that verify with one of keys and that a receiver which has
// seen lastSeq accepts.
func (r *stateRun) signals(keys []ed25519.PublicKey, lastSeq uint64) []cutover.Signal {
	got, _ := r.rec.Snapshot()
	rcv := &cutover.Receiver{Keys: keys, LastSeq: map[string]uint64{"fb-1": lastSeq}}
	var out []cutover.Signal
	for _, raw := range got[r.prefix+"/st/drain/z"] {
		if s, err := rcv.Check(raw, time.Now()); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// alarm returns the retained state of an alarm, if it was published.
func (r *stateRun) alarm(id string) (map[string]any, bool) {
	got, _ := r.rec.Snapshot()
	msgs := got[r.prefix+"/st/alarm/"+id]
	if len(msgs) == 0 {
		return nil, false
	}
	var a map[string]any
	return a, json.Unmarshal(msgs[len(msgs)-1], &a) == nil
}

// readyz returns /readyz's status code and body.
func (r *stateRun) readyz(t *testing.T) (int, string) {
	t.Helper()
	lines := r.p.Logged("metrics and health endpoint")
	if len(lines) == 0 {
		return 0, ""
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/readyz", lines[0]["listen"]))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *stateRun) stop(t *testing.T) {
	t.Helper()
	r.p.Signal(syscall.SIGTERM)
	select {
	case <-r.p.Exited:
	case <-time.After(time.Minute):
		t.Fatal("the daemon did not stop within a minute of SIGTERM")
	}
}

func pubOf(t *testing.T, path string) ed25519.PublicKey {
	t.Helper()
	k, err := secrets.SigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public().(ed25519.PublicKey)
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDamagedStateDir damages each file of state_dir in each way a bad day does (deleted,
// truncated to 0 and to half, a flipped byte in the middle, random bytes, plain text, edge
// values), and makes state_dir read-only and full, then starts `firebreak run` as a process on
// it. Each time the daemon comes up and watches the room: its alarm and /readyz say what was
// lost (or is no longer durable), the damaged file is kept aside, and the drain still goes out,
// verified, at a seq above every one the instance sent before it (issue 21: a damaged file made
// the daemon exit or crash-loop, and a seq file of 2^64-1 made consumers drop every signal).
func TestDamagedStateDir(t *testing.T) {
	t.Parallel()
	broker := testenv.Mosquitto(t)
	simAddr := servedAddr(t, t.TempDir())

	// A state_dir of a daemon that has drained: every file is there.
	prepared := filepath.Join(t.TempDir(), "state")
	prep := startStateRun(t, prepared, simAddr, broker, "prep")
	var keys []ed25519.PublicKey
	hiltest.WaitFor(t, time.Minute, "the key and two drain signals of the first run", func() bool {
		if keys == nil {
			if _, err := os.Stat(filepath.Join(prepared, "signing.key")); err != nil {
				return false
			}
			keys = []ed25519.PublicKey{pubOf(t, filepath.Join(prepared, "signing.key"))}
		}
		return len(prep.signals(keys, 0)) >= 2
	})
	prep.stop(t)
	var lastSeq uint64
	for _, s := range prep.signals(keys, 0) {
		lastSeq = max(lastSeq, s.Seq)
	}
	for _, f := range []string{"alarms.json", "cutover.json", "cutover.seq", "outbox.db", "signing.key"} {
		if _, err := os.Stat(filepath.Join(prepared, f)); err != nil {
			t.Fatalf("the first run left no %s: %v", f, err)
		}
	}

	middle := func(b []byte) []byte { b[len(b)/2] ^= 0x20; return b }
	damages := []struct {
		kind string
		f    func(b []byte) []byte // nil: delete the file
	}{
		{"deleted", nil},
		{"truncated to 0", func([]byte) []byte { return []byte{} }},
		{"truncated to half", func(b []byte) []byte { return b[:len(b)/2] }},
		{"a flipped byte in the middle", middle},
		{"random bytes", func(b []byte) []byte {
			r := make([]byte, max(len(b), 64))
			rand.New(rand.NewSource(7)).Read(r)
			return r
		}},
		{"plain text", func([]byte) []byte { return []byte("hello, this is not state\n") }},
	}
	type row struct {
		name, file string
		f          func([]byte) []byte
		alarm      string // the alarm that must say what was lost
		newKey     bool   // drains are signed with a key this start made (logged at error)
	}
	var rows []row
	for _, file := range []string{"alarms.json", "cutover.json", "cutover.seq", "outbox.db", "signing.key"} {
		for _, d := range damages {
			r := row{name: file + " " + d.kind, file: file, f: d.f, alarm: "state." + file + ".lost"}
			if file == "signing.key" {
				r.alarm, r.newKey = "cutover.signing_unavailable", true
			}
			if file == "outbox.db" && d.kind == "a flipped byte in the middle" {
				// bbolt keeps free pages: flip a byte inside a stored message instead, which its
				// checksum finds.
				r.name, r.f = "outbox.db a flipped byte in each stored message", func(b []byte) []byte {
					// free pages hold old copies too: flip every one, so a live one is among them
					for i := 0; ; i++ {
						j := bytes.Index(b[i:], []byte(`"p":{`))
						if j < 0 {
							return b
						}
						i += j
						b[i+8] ^= 0x01
					}
				}
			}
			rows = append(rows, r)
		}
	}
	for _, v := range []string{"18446744073709551615", "-1", "99999999999999999"} {
		rows = append(rows, row{name: "cutover.seq holding " + v, file: "cutover.seq", f: func([]byte) []byte { return []byte(v) }, alarm: "state.cutover.seq.lost"})
	}

	sem := make(chan struct{}, 3) // daemons at once: each is a race-enabled process
	for i, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			sem <- struct{}{}
			defer func() { <-sem }()
			dir := filepath.Join(t.TempDir(), "state")
			copyDir(t, prepared, dir)
			path := filepath.Join(dir, r.file)
			before, _ := os.ReadFile(path)
			if r.f == nil {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(path, r.f(append([]byte(nil), before...)), 0o600); err != nil {
				t.Fatal(err)
			}
			damaged, _ := os.ReadFile(path)
			run := startStateRun(t, dir, simAddr, broker, fmt.Sprintf("row%d", i))
			want := keys
			if r.newKey {
				hiltest.WaitFor(t, time.Minute, "the key of this start, logged at error", func() bool {
					for _, l := range run.p.Lines() {
						var m map[string]any
						if json.Unmarshal([]byte(l), &m) != nil || m["level"] != "error" {
							continue
						}
						for _, k := range []string{"temporary_public_key", "public_key"} {
							if s, ok := m[k].(string); ok {
								b, _ := base64.StdEncoding.DecodeString(s)
								want = []ed25519.PublicKey{b}
								return len(b) == ed25519.PublicKeySize
							}
						}
					}
					return false
				})
			}
			hiltest.WaitFor(t, time.Minute, "a drain signal that verifies and whose seq the control plane accepts", func() bool {
				return len(run.signals(want, lastSeq)) > 0
			})
			hiltest.WaitFor(t, 30*time.Second, "the alarm "+r.alarm, func() bool {
				a, ok := run.alarm(r.alarm)
				return ok && a["active"] == true
			})
			hiltest.WaitFor(t, 30*time.Second, "/readyz naming "+r.alarm, func() bool {
				_, body := run.readyz(t)
				return strings.Contains(body, r.alarm)
			})
			a, _ := run.alarm(r.alarm)
			t.Logf("%s: %v", r.alarm, a["text"])
			switch {
			case r.newKey && r.f != nil:
				if now, _ := os.ReadFile(path); !bytes.Equal(now, damaged) {
					t.Errorf("the damaged key file was changed: a key the consumers may know must never be overwritten")
				}
			case r.f != nil:
				aside, _ := filepath.Glob(path + ".damaged-*")
				if len(aside) != 1 {
					t.Fatalf("the damaged file was not kept aside: %v", aside)
				}
				if kept, _ := os.ReadFile(aside[0]); !bytes.Equal(kept, damaged) {
					t.Errorf("the file kept aside is not the damaged file as it was")
				}
			}
			run.stop(t)
		})
	}

	for _, fs := range []struct{ name, alarm string }{{"read-only", "state.alarms.json.not_durable"}, {"full", "state.alarms.json.not_durable"}} {
		t.Run(fs.name+" state_dir", func(t *testing.T) {
			t.Parallel()
			sem <- struct{}{}
			defer func() { <-sem }()
			dir := testenv.Tmpfs(t, "4m")
			copyDir(t, prepared, dir)
			switch fs.name {
			case "read-only":
				if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
					t.Fatalf("remount ro: %v %s", err, out)
				}
			case "full":
				_ = os.WriteFile(filepath.Join(dir, "ballast"), make([]byte, 8<<20), 0o600) // fails when the disk is full
			}
			run := startStateRun(t, dir, simAddr, broker, "fs-"+fs.name)
			hiltest.WaitFor(t, time.Minute, "a drain signal that verifies and whose seq the control plane accepts", func() bool {
				return len(run.signals(keys, lastSeq)) > 0
			})
			hiltest.WaitFor(t, 30*time.Second, "the alarm "+fs.alarm, func() bool {
				a, ok := run.alarm(fs.alarm)
				return ok && a["active"] == true
			})
			hiltest.WaitFor(t, 30*time.Second, "/readyz: not ready, degraded", func() bool {
				code, body := run.readyz(t)
				return code == http.StatusServiceUnavailable && strings.Contains(body, "degraded: "+fs.alarm)
			})
			if fs.name == "full" {
				// Room again: the writes are retried and the state is durable again.
				if err := os.Remove(filepath.Join(dir, "ballast")); err != nil {
					t.Fatal(err)
				}
				hiltest.WaitFor(t, 30*time.Second, "the alarm cleared once state_dir has room", func() bool {
					a, ok := run.alarm(fs.alarm)
					return ok && a["active"] == false
				})
			}
			run.stop(t)
		})
	}

	// The outbox damaged under a running daemon (its pages overwritten): bbolt trips on them, the
	// file stops being used, the daemon says so (alarm, /readyz 503) and goes on delivering from
	// memory; the process never panics (issue 22: an outbox error stopped the publisher quietly).
	t.Run("outbox.db damaged while running", func(t *testing.T) {
		t.Parallel()
		sem <- struct{}{}
		defer func() { <-sem }()
		dir := filepath.Join(t.TempDir(), "state")
		copyDir(t, prepared, dir)
		run := startStateRun(t, dir, simAddr, broker, "live-damage")
		hiltest.WaitFor(t, time.Minute, "a first drain signal", func() bool { return len(run.signals(keys, lastSeq)) > 0 })
		f, err := os.OpenFile(filepath.Join(dir, "outbox.db"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		junk := make([]byte, 64<<10)
		rand.New(rand.NewSource(3)).Read(junk)
		if _, err := f.WriteAt(junk, 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
		seen := len(run.signals(keys, lastSeq))
		hiltest.WaitFor(t, time.Minute, "the alarm state.outbox.db.not_durable", func() bool {
			a, ok := run.alarm("state.outbox.db.not_durable")
			return ok && a["active"] == true
		})
		hiltest.WaitFor(t, 30*time.Second, "/readyz: not ready, degraded", func() bool {
			code, body := run.readyz(t)
			return code == http.StatusServiceUnavailable && strings.Contains(body, "state.outbox.db.not_durable")
		})
		hiltest.WaitFor(t, time.Minute, "drain signals still delivered", func() bool { return len(run.signals(keys, lastSeq)) > seen+1 })
		if run.p.Said("panic:") {
			t.Fatal("the daemon panicked")
		}
		run.stop(t)
	})
}
