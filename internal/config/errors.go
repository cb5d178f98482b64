package config

import (
	"errors"
	"fmt"
	"strings"
)

// FieldError is one thing wrong with a config: where (file and field path), what, and the bad
// value. Validate returns every one it finds, joined.
type FieldError struct {
	File  string
	Path  string // e.g. devices[3].unit_id
	Msg   string // e.g. must be 1..247
	Value any    // the bad value, if there is one
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	b.WriteString(e.Path)
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Value != nil {
		fmt.Fprintf(&b, ", got %s", formatValue(e.Value))
	}
	return b.String()
}

// formatValue shows a bad value, shortened: a hostile file may hold a megabyte in one name, and
// the message must stay one readable line.
func formatValue(v any) string {
	s, ok := v.(string)
	if !ok {
		return fmt.Sprintf("%v", v)
	}
	if len(s) > 80 {
		return fmt.Sprintf("%q… (%d bytes)", s[:80], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// ErrInvalid marks every error that says the config (not the machine) is at fault: cmd maps it to
// exit code 2.
var ErrInvalid = errors.New("invalid config")

// invalidError wraps the joined field errors so errors.Is(err, ErrInvalid) holds.
type invalidError struct{ err error }

func (e *invalidError) Error() string   { return e.err.Error() }
func (e *invalidError) Unwrap() []error { return []error{ErrInvalid, e.err} }
func invalid(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return &invalidError{errors.Join(errs...)}
}

// collector gathers field errors under a file name.
type collector struct {
	file string
	errs []error
	seen map[string]bool // paths with an error: the first says what is wrong with the field
}

// add records an error of a field; a field that already has one gets no second (an interval
// that did not decode is not also "out of range": its zero value is not what was written).
func (c *collector) add(path, msg string, value any) {
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	if path != "" && c.seen[path] {
		return
	}
	c.seen[path] = true
	c.errs = append(c.errs, &FieldError{File: c.file, Path: path, Msg: msg, Value: value})
}

// didYouMean is the known name closest to got, when it is close enough to be a typo.
func didYouMean(got string, known []string) string {
	best, bestD := "", 4 // at most 3 edits
	for _, k := range known {
		if d := editDistance(got, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" || bestD >= len(got) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func (c *collector) addf(path string, value any, format string, args ...any) {
	c.add(path, fmt.Sprintf(format, args...), value)
}
