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
}

func (c *collector) add(path, msg string, value any) {
	c.errs = append(c.errs, &FieldError{File: c.file, Path: path, Msg: msg, Value: value})
}

func (c *collector) addf(path string, value any, format string, args ...any) {
	c.add(path, fmt.Sprintf(format, args...), value)
}
