// Package testenv starts the real servers integration tests talk to (Mosquitto, and later
// InfluxDB) on free loopback ports, and stops them when the test ends. Outside CI a missing
// server skips the test; with CI=true it fails it, so CI never passes by skipping.
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
func Mosquitto(t testing.TB) string {
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
	var addr string
	for attempt := 0; attempt < 5; attempt++ {
		port := FreePort(t)
		conf := filepath.Join(dir, "mosquitto.conf")
		body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n", port)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(filepath.Join(dir, "mosquitto.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-c", conf)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatalf("start mosquitto: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		a := fmt.Sprintf("127.0.0.1:%d", port)
		if waitListening(a, exited, 10*time.Second) {
			addr = a
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
				logf.Close()
			})
			break
		}
		_ = cmd.Process.Kill()
		logf.Close()
	}
	if addr == "" {
		log, _ := os.ReadFile(filepath.Join(dir, "mosquitto.log"))
		t.Fatalf("mosquitto did not start listening:\n%s", log)
	}
	return "tcp://" + addr
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
