// Package scripttest runs data-driven test scripts in the style of etcd's raft: a file in
// testdata/ holds cases, each its input commands, a line "----", the expected output and a blank
// line, so that inputs and outputs are read side by side and reviewed like code. With rewrite,
// the expected outputs are written from what the code does (review the diff). The cores that use
// it (alarms, cutover) say what their commands are; this package only reads, compares and writes.
package scripttest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Case is one case of a script.
type Case struct {
	Preamble []string // comments and blank lines before the case
	Input    []string
	Expected string
	Line     int // of the case's first input line
}

// Parse reads a script.
func Parse(path string) ([]Case, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cases []Case
	var pre, exp []string
	var cur *Case
	inExpected := false
	finish := func() {
		cur.Expected = strings.Join(exp, "\n")
		cases = append(cases, *cur)
		cur, inExpected, exp = nil, false, nil
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case cur == nil && (strings.HasPrefix(line, "#") || strings.TrimSpace(line) == ""):
			pre = append(pre, line)
		case cur == nil:
			cur = &Case{Preamble: pre, Input: []string{line}, Line: n}
			pre = nil
		case !inExpected && line == "----":
			inExpected = true
		case !inExpected:
			cur.Input = append(cur.Input, line)
		case strings.TrimSpace(line) == "":
			finish()
			pre = []string{""}
		default:
			exp = append(exp, line)
		}
	}
	if cur != nil {
		if !inExpected {
			return nil, fmt.Errorf("%s:%d: case without ----", path, cur.Line)
		}
		finish()
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("%s: no cases", path)
	}
	return cases, nil
}

// RunAll runs every script in testdata/ (*.txt) as a subtest named for its file, each case
// through the runner newRun makes for that script (state is kept across a script's cases, not
// across scripts).
func RunAll(t *testing.T, rewrite bool, newRun func(t *testing.T, path string) func(Case) string) {
	t.Helper()
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no scripts in testdata/")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { Run(t, f, rewrite, newRun(t, f)) })
	}
}

// Run runs every case of the script at path, in order, through run, which returns the case's
// output; it fails each case whose output is not the expected one, or, with rewrite, writes the
// script anew with the outputs run gave.
func Run(t *testing.T, path string, rewrite bool, run func(Case) string) {
	t.Helper()
	cases, err := Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, c := range cases {
		got := run(c)
		if rewrite {
			for _, p := range c.Preamble {
				out.WriteString(p + "\n")
			}
			out.WriteString(strings.Join(c.Input, "\n") + "\n----\n")
			if got != "" {
				out.WriteString(got + "\n")
			}
			continue
		}
		if got != c.Expected {
			t.Errorf("%s:%d: %s\n--- got:\n%s\n--- want:\n%s", path, c.Line, c.Input[0], got, c.Expected)
		}
	}
	if rewrite {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
