package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestFold(t *testing.T) {
	stream := strings.Join([]string{
		`{"Action":"start","Package":"p/a"}`,
		`{"Action":"start","Package":"p/b"}`,
		`{"Action":"run","Package":"p/a","Test":"TestSkip"}`,
		`{"Action":"output","Package":"p/a","Test":"TestSkip","Output":"    x_test.go:12: mosquitto not available: not found (CI=true makes this a failure)\n"}`,
		`{"Action":"output","Package":"p/a","Test":"TestSkip","Output":"--- SKIP: TestSkip (0.00s)\n"}`,
		`{"Action":"skip","Package":"p/a","Test":"TestSkip","Elapsed":0}`,
		`{"Action":"output","Package":"p/b","Test":"TestBad","Output":"    b_test.go:7: want 3, got 4\n"}`,
		`{"Action":"fail","Package":"p/b","Test":"TestBad","Elapsed":0.5}`,
		`{"Action":"output","Package":"p/a","Test":"TestHIL/x","Output":"    hil_test.go:1: HIL x: drain issued 21m before runaway\n"}`,
		`{"Action":"pass","Package":"p/a","Test":"TestHIL/x","Elapsed":3}`,
		`{"Action":"pass","Package":"p/a","Elapsed":3.2}`,
		`{"Action":"fail","Package":"p/b","Elapsed":0.6}`,
	}, "\n")
	var out bytes.Buffer
	f := &fold{w: &out, start: time.Now(), out: map[string][]string{}, pkgFailed: map[string]bool{}, pkgsRunning: map[string]bool{}}
	if f.read(strings.NewReader(stream)) {
		t.Error("a failed test passed the fold")
	}
	for _, want := range []string{
		"--- SKIP: TestSkip (p/a): mosquitto not available: not found (CI=true makes this a failure)",
		"--- FAIL: TestBad (p/b, 0.5s)", "ok   p/a 3.2s", "FAIL p/b 0.6s", "HIL x: drain issued 21m before runaway",
		"b_test.go:7: want 3, got 4", "tests: 1 passed, 1 failed, 1 skipped", "apt-get install",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the fold lacks %q:\n%s", want, out.String())
		}
	}
	// A package that never reports (its binary killed) is a failure too.
	out.Reset()
	f = &fold{w: &out, start: time.Now(), out: map[string][]string{}, pkgFailed: map[string]bool{}, pkgsRunning: map[string]bool{}}
	if f.read(strings.NewReader(`{"Action":"start","Package":"p/c"}`)) || !strings.Contains(out.String(), "FAIL p/c: the test binary ended without a result") {
		t.Errorf("an unfinished package: %s", out.String())
	}
}
