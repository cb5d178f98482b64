// Command testfold folds `go test -json` into what a person watching `make test` needs: one line
// per package the moment it finishes (its time since the start), every skip with its reason, the
// HIL and E2E figures as they come; at the end the output of every failed test and the totals.
//
//	go test -json ./... | go run ./internal/testfold
//
// It exits 1 if a test or a package failed (or the stream ended before a package finished).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type fold struct {
	w                      io.Writer
	start                  time.Time
	out                    map[string][]string // package/test → its output lines
	failures               []string
	passed, failed, skips  int
	pkgFailed, pkgsRunning map[string]bool
}

func main() {
	f := &fold{w: os.Stdout, start: time.Now(), out: map[string][]string{}, pkgFailed: map[string]bool{}, pkgsRunning: map[string]bool{}}
	if !f.read(os.Stdin) {
		os.Exit(1)
	}
}

// read folds the stream and prints the summary; it says whether everything passed.
func (f *fold) read(r io.Reader) bool {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			fmt.Fprintln(f.w, sc.Text()) // not an event (a build error): as it is
			continue
		}
		f.event(e)
	}
	var running []string
	for p := range f.pkgsRunning {
		running = append(running, p)
	}
	sort.Strings(running)
	for _, p := range running {
		fmt.Fprintf(f.w, "FAIL %s: the test binary ended without a result (killed? timed out?)\n", p)
		f.pkgFailed[p] = true
	}
	if len(f.failures) > 0 {
		fmt.Fprintln(f.w, "---- failures (full output of each failed test) ----")
		for _, k := range f.failures {
			lines := f.out[k]
			if len(lines) > 200 {
				lines = append([]string{"… (" + fmt.Sprint(len(lines)-200) + " lines before)\n"}, lines[len(lines)-200:]...)
			}
			fmt.Fprint(f.w, strings.Join(lines, ""))
		}
	}
	fmt.Fprintf(f.w, "tests: %d passed, %d failed, %d skipped in %s\n", f.passed, f.failed, f.skips, time.Since(f.start).Round(time.Second))
	if f.skips > 0 {
		fmt.Fprintln(f.w, "skipped tests need a server that is not installed (each skip above says which); on Debian:")
		fmt.Fprintln(f.w, "  apt-get install -y mosquitto prometheus; go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10")
		fmt.Fprintln(f.w, "  (CI=true turns a missing server into a failure; .ci/run installs them all)")
	}
	return f.failed == 0 && len(f.pkgFailed) == 0
}

func (f *fold) event(e event) {
	key := e.Package + "/" + e.Test
	switch e.Action {
	case "start":
		f.pkgsRunning[e.Package] = true
	case "output":
		f.out[key] = append(f.out[key], e.Output)
		if e.Test != "" && (strings.Contains(e.Output, "HIL ") || strings.Contains(e.Output, "E2E ") || strings.Contains(e.Output, "could not keep up")) {
			fmt.Fprint(f.w, "      "+strings.TrimLeft(e.Output, " "))
		}
		if e.Test == "" && strings.HasPrefix(e.Output, "panic:") {
			fmt.Fprint(f.w, e.Output)
		}
	case "pass", "fail", "skip":
		if e.Test == "" {
			delete(f.pkgsRunning, e.Package)
			word := map[string]string{"pass": "ok  ", "fail": "FAIL", "skip": "ok  "}[e.Action]
			note := ""
			if e.Action == "skip" {
				note = " [no tests]"
			}
			if e.Action == "fail" {
				f.pkgFailed[e.Package] = true
				if len(f.out[key]) > 0 {
					f.failures = append(f.failures, key) // a build failure or a panic outside a test
				}
			}
			fmt.Fprintf(f.w, "[%4ds] %s %s %.1fs%s\n", int(time.Since(f.start).Seconds()), word, e.Package, e.Elapsed, note)
			return
		}
		switch e.Action {
		case "pass":
			f.passed++
		case "fail":
			f.failed++
			f.failures = append(f.failures, key)
			fmt.Fprintf(f.w, "--- FAIL: %s (%s, %.1fs)\n", e.Test, e.Package, e.Elapsed)
		case "skip":
			f.skips++
			fmt.Fprintf(f.w, "--- SKIP: %s (%s): %s\n", e.Test, e.Package, reason(f.out[key]))
		}
	}
}

// reason is the last line a test logged (its t.Skip message), without its file:line.
func reason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "---") || strings.HasPrefix(l, "===") || l == "" {
			continue
		}
		if _, after, ok := strings.Cut(l, ".go:"); ok {
			if _, msg, ok := strings.Cut(after, ": "); ok {
				return msg
			}
		}
		return l
	}
	return "(no reason given)"
}
