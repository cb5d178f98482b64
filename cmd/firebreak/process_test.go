package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/sim"
	"github.com/firebreak-dc/firebreak/internal/testenv"
)

// TestMain lets a test run this package's main as a process of its own (the test binary with
// FIREBREAK_MAIN=1): signals go to it as they would to the installed binary.
func TestMain(m *testing.M) {
	if os.Getenv("FIREBREAK_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func startFirebreak(t *testing.T, args ...string) *hiltest.Process {
	t.Helper()
	return hiltest.StartProcess(t, []string{"FIREBREAK_MAIN=1"}, args...)
}

const hupSite = `site: hup
instance: fb-1
state_dir: %s
connections: [{name: gw, url: "tcp://%s", timeout: 500ms}]
zones: [{name: z, cut_scope: [d]}]
domains: [{name: d, targets: [t]}]
devices:
  - {name: rack-01, connection: gw, unit_id: 1, profile: li-ion-rack, zone: z}
  - {name: rack-02, connection: gw, unit_id: 2, profile: li-ion-rack, zone: z}
rules: [{name: always, point: rack-01.soc, above: 0, stage: 1}]
detection: {cell_temp_watch_c: %s}
mqtt: {brokers: ["%s"]}
metrics: {listen: "127.0.0.1:0"}
shutdown_timeout: %s
`

// TestSIGHUPReload runs `firebreak run` as a process against the simulator and a real
// Mosquitto. A SIGHUP with a lower cell temperature threshold takes effect (the racks' cells at
// room temperature now raise watch alarms) while the alarm already active stays as it was (no
// clear, no second activation); a broken config and one that changes the instance are refused
// with their reasons logged, and the daemon goes on with the config it has.
func TestSIGHUPReload(t *testing.T) {
	t.Parallel()
	broker := testenv.Mosquitto(t)
	dir := t.TempDir()
	write := func(watch string, withRack2 bool) {
		srvAddr := servedAddr(t, dir)
		body := fmt.Sprintf(hupSite, filepath.Join(dir, "state"), srvAddr, watch, broker, "5s")
		if !withRack2 {
			body = strings.Replace(body, "  - {name: rack-02, connection: gw, unit_id: 2, profile: li-ion-rack, zone: z}\n", "", 1)
		}
		if err := os.WriteFile(filepath.Join(dir, "site.yaml"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("45", true)
	rec := hiltest.Record(t, broker, "hup-watch", false, "firebreak/hup/events", "firebreak/hup/dev/+/telemetry", "firebreak/hup/dev/+/availability")
	fb := startFirebreak(t, "run", "-config", filepath.Join(dir, "site.yaml"))
	events := func(alarm, cause string) int {
		got, _ := rec.Snapshot()
		n := 0
		for _, raw := range got["firebreak/hup/events"] {
			var ev struct {
				Cause string `json:"cause"`
				Alarm struct{ ID string }
			}
			_ = json.Unmarshal(raw, &ev)
			if strings.HasPrefix(ev.Alarm.ID, alarm) && (cause == "" || ev.Cause == cause) {
				n++
			}
		}
		return n
	}
	hiltest.WaitFor(t, 30*time.Second, "the rule's alarm", func() bool { return events("rack-01.soc.rule:always", "activate") == 1 })
	if n := events("rack-01.cell_temp", ""); n != 0 {
		t.Fatalf("cell temperature alarms at 45 C with cells at room temperature: %d", n)
	}

	// A lower threshold, and rack-02 taken out of the config.
	write("20", false)
	_ = fb.Cmd.Process.Signal(syscall.SIGHUP)
	hiltest.WaitFor(t, 20*time.Second, "config reloaded", func() bool { return len(fb.Logged("config reloaded")) == 1 })
	if removed := fmt.Sprint(fb.Logged("config reloaded")[0]["devices_removed"]); removed != "[rack-02]" {
		t.Errorf("devices_removed %s, want [rack-02]", removed)
	}
	hiltest.WaitFor(t, 20*time.Second, "a cell temperature watch alarm under the new threshold", func() bool {
		return events("rack-01.cell_temp", "activate") > 0
	})
	hiltest.WaitFor(t, 10*time.Second, "rack-02's retained availability cleared: it is no device of the daemon's any more", func() bool {
		got, _ := rec.Snapshot()
		msgs := got["firebreak/hup/dev/rack-02/availability"]
		return len(msgs) > 1 && len(msgs[len(msgs)-1]) == 0
	})
	got, _ := rec.Snapshot()
	rack1, rack2 := len(got["firebreak/hup/dev/rack-01/telemetry"]), len(got["firebreak/hup/dev/rack-02/telemetry"])
	hiltest.WaitFor(t, 10*time.Second, "rack-01 polled on", func() bool {
		got, _ := rec.Snapshot()
		return len(got["firebreak/hup/dev/rack-01/telemetry"]) >= rack1+2
	})
	if got, _ := rec.Snapshot(); len(got["firebreak/hup/dev/rack-02/telemetry"]) > rack2+1 {
		t.Errorf("rack-02 still polled after it left the config: %d telemetry messages, then %d", rack2, len(got["firebreak/hup/dev/rack-02/telemetry"]))
	}
	if a, c := events("rack-01.soc.rule:always", "activate"), events("rack-01.soc.rule:always", "clear"); a != 1 || c != 0 {
		t.Fatalf("the rule's alarm across the reload: %d activations, %d clears; want it kept as it was (1, 0)", a, c)
	}

	for _, bad := range []struct{ body, reason string }{
		{"site: hup\nconnections: [{name: gw, url: nope}]\n", "connections[0].url"},
		{strings.Replace(fmt.Sprintf(hupSite, filepath.Join(dir, "state"), servedAddr(t, dir), "20", broker, "5s"), "instance: fb-1", "instance: fb-9", 1), "need a restart: instance"},
	} {
		if err := os.WriteFile(filepath.Join(dir, "site.yaml"), []byte(bad.body), 0o600); err != nil {
			t.Fatal(err)
		}
		n := len(fb.Logged("config reload refused; the running config stays"))
		_ = fb.Cmd.Process.Signal(syscall.SIGHUP)
		hiltest.WaitFor(t, 20*time.Second, "the reload refused: "+bad.reason, func() bool {
			refused := fb.Logged("config reload refused; the running config stays")
			if len(refused) <= n {
				return false
			}
			line, _ := json.Marshal(refused[len(refused)-1])
			return strings.Contains(string(line), bad.reason)
		})
	}
	// Still running on the config it had: telemetry keeps coming.
	got, _ = rec.Snapshot()
	before := len(got["firebreak/hup/dev/rack-01/telemetry"])
	hiltest.WaitFor(t, 10*time.Second, "telemetry after the refused reloads", func() bool {
		got, _ := rec.Snapshot()
		return len(got["firebreak/hup/dev/rack-01/telemetry"]) > before+2
	})
	_ = fb.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-fb.Exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15 s of SIGTERM")
	}
	// Every log line is JSON a strict pipeline takes: no key twice in one object.
	for _, l := range fb.Lines() {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		if dup := duplicateKey(l); dup != "" {
			t.Errorf("log line with %q twice: %s", dup, l)
		}
	}
}

// duplicateKey is a key that appears twice in the top-level JSON object line ("" for none).
func duplicateKey(line string) string {
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		k, _ := tok.(string)
		if seen[k] {
			return k
		}
		seen[k] = true
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return ""
		}
	}
	return ""
}

// servedAddr serves the site's one gateway from a simulator for the test's life (once per dir).
var served sync.Map

func servedAddr(t *testing.T, dir string) string {
	t.Helper()
	if a, ok := served.Load(dir); ok {
		return a.(string)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(hupSite, dir, "127.0.0.1:1", "45", "tcp://127.0.0.1:1", "5s")), "site.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := sim.LoadScenario("normal")
	s, err := sim.New(cfg, sc, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = s.Run(ctx) }()
	srv, err := s.Serve("gw", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); srv.Close() })
	served.Store(dir, srv.Addr)
	return srv.Addr
}

// TestShutdownDeadlineAndSecondSignal: with no broker to flush to, SIGTERM stops the daemon
// within shutdown_timeout (what was not delivered stays in the outbox, and says so); with a long
// shutdown_timeout, a second SIGTERM stops it at once.
func TestShutdownDeadlineAndSecondSignal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	nobody := "tcp://" + ln.Addr().String() // a port with no broker
	ln.Close()
	start := func(timeout string) *hiltest.Process {
		state := filepath.Join(dir, "state-"+timeout)
		body := fmt.Sprintf(hupSite, state, servedAddr(t, dir), "45", nobody, timeout)
		path := filepath.Join(dir, "site-"+timeout+".yaml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		p := startFirebreak(t, "run", "-config", path)
		// Its online status is in the outbox before it says so, waiting for a broker that is not there.
		hiltest.WaitFor(t, 20*time.Second, "the daemon running", func() bool { return len(p.Logged("firebreak running")) == 1 })
		return p
	}

	p := start("2s")
	t0 := time.Now()
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.Exited:
	case <-time.After(15 * time.Second):
		t.Fatal("shutdown_timeout 2s: still running 15 s after SIGTERM")
	}
	took := time.Since(t0)
	// The deadline is 2 s + 2 s hard; the margin is for a loaded machine, still far below the
	// 60 s a deadline that did not hold would take.
	if took > 12*time.Second {
		t.Errorf("shutdown_timeout 2s took %s", took.Round(100*time.Millisecond))
	}
	if !p.Said("stay in the outbox for the next start") {
		t.Error("the shutdown did not say that undelivered messages stay in the outbox")
	}

	q := start("60s")
	_ = q.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-q.Exited:
		t.Fatal("shutdown_timeout 60s with no broker: exited within 2 s of the first SIGTERM")
	case <-time.After(2 * time.Second):
	}
	t1 := time.Now()
	_ = q.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-q.Exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Errorf("after the second SIGTERM: %v, want exit status 130", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a second SIGTERM did not stop the daemon within 5 s")
	}
	if !q.Said("second terminated: stopping now") {
		t.Error("the second signal was not reported")
	}
	t.Logf("shutdown with no broker: %s with shutdown_timeout 2s; a second SIGTERM stopped it in %s",
		took.Round(100*time.Millisecond), time.Since(t1).Round(10*time.Millisecond))
}

func TestDuplicateKeyFinds(t *testing.T) {
	t.Parallel()
	if duplicateKey(`{"msg":"x","site":"a","n":{"site":1},"site":"b"}`) != "site" || duplicateKey(`{"msg":"x","n":{"msg":1}}`) != "" {
		t.Error("duplicateKey does not find a key twice (or finds a nested one)")
	}
}
