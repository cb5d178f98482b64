// Package packaging holds the systemd unit, the example /etc/firebreak layout and (at the repo
// root) the Dockerfile; its tests keep them true to the daemon.
package packaging_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/testenv"
)

// installExample lays the example /etc/firebreak out under a temporary directory, as a site would
// install it (its absolute /etc/firebreak paths pointing there), with the broker's CA file in
// place unless withoutCA, and returns the config's path.
func installExample(t *testing.T, withoutCA bool) string {
	t.Helper()
	etc := t.TempDir()
	data, err := os.ReadFile("etc/firebreak/b3.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.ReplaceAll(string(data), "/etc/firebreak/", etc+"/"))
	for _, f := range []string{"b3.yaml", "profiles/README.md", "tls/ca.pem"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(etc, f)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(etc, "b3.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if !withoutCA {
		if err := os.WriteFile(filepath.Join(etc, "tls/ca.pem"), []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(etc, "b3.yaml")
}

// TestExampleConfigLoads: the example /etc/firebreak/b3.yaml is a valid config once installed, and
// refused, naming the field, while the broker's CA file it names is missing.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := config.Load(installExample(t, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(installExample(t, true)); err == nil || !strings.Contains(err.Error(), "mqtt.tls.ca_file: cannot be read") {
		t.Errorf("without its CA file: %v", err)
	}
	if cfg.HA.Peer == "" || cfg.StateDir != "/var/lib/firebreak/b3" {
		t.Errorf("the example should show an HA pair member with the unit's state directory: %+v %s", cfg.HA, cfg.StateDir)
	}
}

func directives(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			out[k] = append(out[k], v)
		}
	}
	return out
}

// TestSystemdUnit: the unit runs `firebreak run` on the room's config with the hardening the
// operations guide promises, reloads with SIGHUP, outwaits shutdown_timeout, and systemd itself
// finds nothing wrong with it (systemd-analyze verify: unknown keys, bad values).
func TestSystemdUnit(t *testing.T) {
	unit := "systemd/firebreak@.service"
	d := directives(t, unit)
	want := map[string]string{
		"ExecStart": "/usr/local/bin/firebreak run -config /etc/firebreak/%i.yaml", "ExecReload": "/bin/kill -HUP $MAINPID",
		"DynamicUser": "yes", "StateDirectory": "firebreak/%i", "ProtectSystem": "strict", "ProtectHome": "yes",
		"NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "PrivateTmp": "yes", "Restart": "always",
	}
	for k, v := range want {
		if got := d[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s=%v, want %q", k, got, v)
		}
	}
	stop, err := time.ParseDuration(d["TimeoutStopSec"][0])
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	cfg, err := config.Load(installExample(t, false))
	if err != nil {
		t.Fatal(err)
	}
	if stop <= cfg.ShutdownTimeout+2*time.Second {
		t.Errorf("TimeoutStopSec %s does not outwait shutdown_timeout %s (+2 s)", stop, cfg.ShutdownTimeout)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze not found (CI installs systemd)")
		}
		t.Skip("systemd-analyze not found")
	}
	// verify wants ExecStart to exist: point it at this test binary. The agent's unit too.
	for _, u := range []struct{ file, name, bin string }{
		{unit, "firebreak@b3.service", "/usr/local/bin/firebreak"},
		{"systemd/firebreak-agent.service", "firebreak-agent.service", "/usr/local/bin/firebreak-agent"},
	} {
		body, _ := os.ReadFile(u.file)
		p := filepath.Join(t.TempDir(), u.name)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(body), u.bin, os.Args[0])), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", "--man=no", p).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Fatalf("systemd-analyze verify %s: %v\n%s", u.file, err, out)
		}
	}
	path := filepath.Join(t.TempDir(), "firebreak@b3.service")
	body, _ := os.ReadFile(unit)
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(body), "/usr/local/bin/firebreak", os.Args[0])), 0o644); err != nil {
		t.Fatal(err)
	}
	sec, err := exec.Command(analyze, "security", "--offline=yes", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, sec)
	}
	lines := strings.Split(strings.TrimSpace(string(sec)), "\n")
	t.Logf("%s", lines[len(lines)-1])
}

// TestDockerfile: multi-stage, a static build, and a non-root user in the final image.
func TestDockerfile(t *testing.T) {
	body, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var froms []string
	user := ""
	for _, l := range strings.Split(string(body), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "FROM":
			froms = append(froms, f[1])
		case "USER":
			user = f[1]
		}
	}
	if len(froms) < 2 {
		t.Errorf("want a multi-stage build, FROM lines: %v", froms)
	}
	if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
		t.Errorf("the final image runs as %q, want a non-root user", user)
	}
	if !strings.Contains(string(body), "CGO_ENABLED=0") || !strings.Contains(string(body), "./cmd/firebreak") {
		t.Error("want a static build of ./cmd/firebreak")
	}
}

// TestMosquittoACL runs a real Mosquitto with packaging/mosquitto/firebreak.acl: only the
// daemons publish drain signals and state, a consumer acks only under its own name, only an
// operator reaches the command topics, a dashboard only reads (issue 22: garbage floods on
// P/drain/+ and the command topics came from clients that had no business there).
func TestMosquittoACL(t *testing.T) {
	t.Parallel()
	users := map[string]string{}
	for _, u := range []string{"fb-b3-a", "fb-b3-b", "control-plane", "operator-alice", "dashboard"} {
		users[u] = "pw-" + u
	}
	pw := testenv.PasswordFile(t, users)
	acl, _ := filepath.Abs("mosquitto/firebreak.acl")
	broker := testenv.StartMosquittoWith(t, testenv.MosquittoOptions{Global: fmt.Sprintf("allow_anonymous false\npassword_file %s\nacl_file %s\n", pw, acl)})
	connect := func(user string) paho.Client {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(broker.URL).SetClientID("acl-" + user).SetUsername(user).SetPassword("pw-" + user))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("%s connect: %v", user, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c
	}
	var mu sync.Mutex
	got := map[string]bool{}
	daemon := connect("fb-b3-a")
	if tok := daemon.Subscribe("firebreak/pangyo-dc1/#", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got[m.Topic()+" "+string(m.Payload())] = true
		mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	const P = "firebreak/pangyo-dc1/"
	cases := []struct {
		user, topic string
		allowed     bool
	}{
		{"fb-b3-b", P + "drain/b3-battery", true},
		{"control-plane", P + "drain/b3-battery", false},
		{"control-plane", P + "drain/b3-battery/ack/control-plane", true},
		{"control-plane", P + "drain/b3-battery/ack/someone-else", false},
		{"control-plane", P + "cmd/fb-b3-a/ack", false},
		{"dashboard", P + "cmd/fb-b3-a/ack", false},
		{"dashboard", P + "drain/b3-battery", false},
		{"operator-alice", P + "cmd/fb-b3-a/ack", true},
		{"operator-alice", P + "drain/b3-battery", false},
	}
	clients := map[string]paho.Client{}
	for i, c := range cases {
		if clients[c.user] == nil {
			clients[c.user] = connect(c.user)
		}
		if tok := clients[c.user].Publish(c.topic, 1, false, fmt.Sprint(i)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	// A last message through the broker after all of them: once it is in, so is every allowed one.
	if tok := clients["fb-b3-b"].Publish(P+"node/fb-b3-b/status", 1, false, "end"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	hiltest.WaitFor(t, 30*time.Second, "the last message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got[P+"node/fb-b3-b/status end"]
	})
	mu.Lock()
	defer mu.Unlock()
	for i, c := range cases {
		if arrived := got[c.topic+" "+fmt.Sprint(i)]; arrived != c.allowed {
			t.Errorf("%s publishing on %s: arrived %v, the ACL should allow it: %v", c.user, c.topic, arrived, c.allowed)
		}
	}
}
