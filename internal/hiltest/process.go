package hiltest

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Process is a program a test runs as a process of its own (usually the test binary again, with
// an environment variable its TestMain acts on), so that signals reach it as they reach an
// installed daemon. It keeps every line the process writes to stderr.
type Process struct {
	Cmd *exec.Cmd
	// Exited receives the process's exit once.
	Exited chan error
	mu     sync.Mutex
	lines  []string
}

// StartProcess runs the test binary with args and env added to the test's environment. The
// process is killed when the test ends; if the test failed, its stderr is logged.
func StartProcess(t *testing.T, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{Cmd: exec.Command(os.Args[0], args...), Exited: make(chan error, 1)}
	p.Cmd.Env = append(os.Environ(), env...)
	stderr, err := p.Cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
		p.Exited <- p.Cmd.Wait()
	}()
	t.Cleanup(func() {
		p.Signal(syscall.SIGKILL)
		if t.Failed() {
			for _, l := range p.Lines() {
				t.Log("process: " + l)
			}
		}
	})
	return p
}

// Signal sends s to the process.
func (p *Process) Signal(s syscall.Signal) { _ = p.Cmd.Process.Signal(s) }

// Lines is what the process has written to stderr so far.
func (p *Process) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Logged returns the JSON log lines whose msg is msg, decoded.
func (p *Process) Logged(msg string) []map[string]any {
	var out []map[string]any
	for _, l := range p.Lines() {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// Said says whether some line contains s.
func (p *Process) Said(s string) bool {
	for _, l := range p.Lines() {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}
