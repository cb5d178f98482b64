// Package testenv starts the real servers integration tests talk to (Mosquitto, InfluxDB 1.8)
// on free loopback ports, and stops them when the test ends. Outside CI a missing
// server skips the test; with CI=true it fails it, so CI never passes by skipping.
package testenv

import (
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Need skips (locally) or fails (CI=true) a test whose dependency is missing.
func Need(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI: %v", what, err)
	}
	t.Skipf("%s not available: %v (CI=true makes this a failure)", what, err)
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Mosquitto starts a real broker on a free loopback port and returns its tcp:// URL.
func Mosquitto(t testing.TB) string { return StartMosquitto(t, false).URL }

// Broker is a real Mosquitto a test can kill and start again on the same port.
type Broker struct {
	URL    string
	t      testing.TB
	bin    string
	conf   string
	logf   *os.File
	cmd    *exec.Cmd
	exited chan error
}

// StartMosquitto starts a real broker on a free loopback port. With persistent, it keeps
// sessions, subscriptions and queued messages on disk (saved every second), so clients with a
// persistent session find them again after Kill and Start.
func StartMosquitto(t testing.TB, persistent bool) *Broker {
	return StartMosquittoWith(t, MosquittoOptions{Persistent: persistent})
}

// MosquittoOptions shape a test broker.
type MosquittoOptions struct {
	Persistent bool
	// Listener is added to the listener line's block (e.g. TLS files, require_certificate);
	// Scheme is the URL scheme clients use ("tcp" when empty, "ssl" for TLS).
	Listener string
	Scheme   string
	// Global is added at the top level (e.g. password_file, allow_anonymous false).
	Global string
}

// StartMosquittoWith is StartMosquitto with options.
func StartMosquittoWith(t testing.TB, o MosquittoOptions) *Broker {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
			if _, statErr := os.Stat(p); statErr == nil {
				bin, err = p, nil
				break
			}
		}
	}
	Need(t, "mosquitto", err)
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "mosquitto.log"))
	if err != nil {
		t.Fatal(err)
	}
	b := &Broker{t: t, bin: bin, conf: filepath.Join(dir, "mosquitto.conf"), logf: logf}
	t.Cleanup(func() {
		b.Kill()
		logf.Close()
	})
	for attempt := 0; attempt < 5; attempt++ {
		port := FreePort(t)
		anon := "allow_anonymous true\n"
		if strings.Contains(o.Global, "allow_anonymous") {
			anon = ""
		}
		body := fmt.Sprintf("per_listener_settings false\n%s%slog_dest stderr\nlog_type error\nlog_type warning\nlistener %d 127.0.0.1\n%s\n",
			anon, o.Global, port, o.Listener)
		if os.Geteuid() == 0 {
			body += "user root\n" // as root, mosquitto would switch to its own user, which cannot write our temp dir
		}
		if o.Persistent {
			body += fmt.Sprintf("persistence true\npersistence_location %s/\nautosave_interval 1\nmax_queued_messages 100000\n", dir)
		} else {
			body += "persistence false\n"
		}
		if err := os.WriteFile(b.conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		scheme := o.Scheme
		if scheme == "" {
			scheme = "tcp"
		}
		b.URL = fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
		if b.start() {
			return b
		}
	}
	log, _ := os.ReadFile(logf.Name())
	t.Fatalf("mosquitto did not start listening:\n%s", log)
	return nil
}

func (b *Broker) start() bool {
	b.cmd = exec.Command(b.bin, "-c", b.conf)
	b.cmd.Stdout, b.cmd.Stderr = b.logf, b.logf
	b.cmd.SysProcAttr = diesWithTest()
	if err := b.cmd.Start(); err != nil {
		b.t.Fatalf("start mosquitto: %v", err)
	}
	b.exited = make(chan error, 1)
	go func() { b.exited <- b.cmd.Wait() }()
	if waitListening(b.URL[strings.Index(b.URL, "://")+3:], b.exited, 10*time.Second) {
		return true
	}
	b.Kill()
	return false
}

// Kill stops the broker with SIGKILL, as a crash would.
func (b *Broker) Kill() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Kill()
	<-b.exited
	b.cmd = nil
}

// Start starts the broker again, on the same port, after Kill.
func (b *Broker) Start() {
	b.t.Helper()
	if !b.start() {
		log, _ := os.ReadFile(b.logf.Name())
		b.t.Fatalf("mosquitto did not start again on %s:\n%s", b.URL, log)
	}
}

// waitListening polls until addr accepts a connection, the process exits, or the timeout passes.
func waitListening(addr string, exited <-chan error, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, in a test helper
	}
	return false
}

// InfluxDB18 starts a real InfluxDB 1.8 (influxd, from `go install
// github.com/influxdata/influxdb/cmd/influxd@v1.8.10`) on free loopback ports with database db,
// and returns its http:// URL.
func InfluxDB18(t testing.TB, db string) string {
	t.Helper()
	bin, err := exec.LookPath("influxd")
	if err != nil {
		gopath := os.Getenv("GOPATH")
		if gopath == "" {
			home, _ := os.UserHomeDir()
			gopath = filepath.Join(home, "go")
		}
		if _, statErr := os.Stat(filepath.Join(gopath, "bin", "influxd")); statErr == nil {
			bin, err = filepath.Join(gopath, "bin", "influxd"), nil
		}
	}
	Need(t, "influxd (InfluxDB 1.8)", err)
	dir := t.TempDir()
	httpPort, rpcPort := FreePort(t), FreePort(t)
	conf := filepath.Join(dir, "influxdb.conf")
	body := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:%d"
  log-enabled = false
[monitor]
  store-enabled = false
`, rpcPort, filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), httpPort)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", httpPort)
	serve(t, "influxd", dir, addr, exec.Command(bin, "-config", conf))
	url := "http://" + addr
	if _, err := Influx18Query(url, "", "CREATE DATABASE "+db); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return url
}

// Influx18Query runs an InfluxQL query through the 1.x /query endpoint and returns the JSON body.
func Influx18Query(url, db, q string) ([]byte, error) {
	form := neturl.Values{"q": {q}}
	if db != "" {
		form.Set("db", db)
	}
	resp, err := http.PostForm(url+"/query", form)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("query %q: %s: %s", q, resp.Status, body)
	}
	return body, nil
}

// Tmpfs mounts a tmpfs of size (e.g. "2m") on a new temporary directory for the test and unmounts
// it when the test ends: a real filesystem a test can fill up or remount read-only. It needs
// root, which CI has; elsewhere the test is skipped (CI=true: failed).
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		Need(t, "mounting a tmpfs (root)", fmt.Errorf("%v: %s", err, out))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// PasswordFile writes a Mosquitto password file for users (name → password) with
// mosquitto_passwd and returns its path; a missing mosquitto_passwd skips (CI=true: fails).
func PasswordFile(t testing.TB, users map[string]string) string {
	t.Helper()
	passwd, err := exec.LookPath("mosquitto_passwd")
	Need(t, "mosquitto_passwd", err)
	path := filepath.Join(t.TempDir(), "passwd")
	first := true
	for _, u := range sortedNames(users) {
		args := []string{"-b", path, u, users[u]}
		if first {
			args, first = append([]string{"-c"}, args...), false
		}
		if out, err := exec.Command(passwd, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
	}
	return path
}

func sortedNames(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Prometheus starts Debian's Prometheus server on a free loopback port, scraping targets (host:port)
// every second, and returns its base URL.
func Prometheus(t testing.TB, targets ...string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	Need(t, "prometheus (apt-get install prometheus)", err)
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = fmt.Sprintf("%q", tg)
	}
	body := fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: firebreak\n    static_configs: [{targets: [%s]}]\n",
		strings.Join(quoted, ", "))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	serve(t, "prometheus", dir, addr, exec.Command(bin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn"))
	return "http://" + addr
}

// serve starts a server process logging to dir/<name>.log, kills it when the test ends, and waits
// until it listens on addr (the test fails with its log if it does not).
// diesWithTest has a server killed with the test binary: cleanups do not run when -timeout or a
// panic ends it, and a mosquitto left listening outlived a timed-out run by an hour.
func diesWithTest() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }

func serve(t testing.TB, name, dir, addr string, cmd *exec.Cmd) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = diesWithTest()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
	})
	if !waitListening(addr, exited, 30*time.Second) {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("%s did not start listening on %s:\n%s", name, addr, log)
	}
}
