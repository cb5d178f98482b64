// Package trace reads and writes docs/design.md's replay format: CSV with the header
// time,device,point,value; time in RFC 3339 (UTC) or integer Unix milliseconds; value a number,
// true/false, or empty for a missing or invalid reading. Reading applies each point's range rule
// as the live poller would, and groups rows into one batch per device and time.
package trace

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/internal/sample"
)

// Header is the first line of every trace.
var Header = []string{"time", "device", "point", "value"}

// The limits of what a trace may hold. A row is a time, two names of at most 64 characters and a
// number, so a line of 4 KiB is far more than any real row; a longer one is damage, not data.
// Times are refused outside [MinTime, MaxTime), when one row is more than MaxGap after the one
// before it, and when the trace spans more than MaxSpan: replay ticks through every second, as
// the live daemon does (a day of ticks takes about half a second on a small machine), so a trace
// may not ask it to step through years.
const (
	MaxLineBytes  = 4096
	MaxValueBytes = 64
	MaxGap        = 24 * time.Hour
	MaxSpan       = 31 * 24 * time.Hour
)

var (
	MinTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Reader yields batches from a trace, in time order.
type Reader struct {
	r        *bufio.Reader
	file     string
	line     int
	points   map[string]map[string]collectors.Point
	pending  *sample.Batch
	first    time.Time
	last     time.Time
	haveTime bool   // a row has been read: first and last are set
	lastRaw  string // the last time field as written: a device's rows share one
	fields   [4]string
	err      error
}

// NewReader checks the header; file names the trace in errors. devices is each configured
// device's points (config's RegisterMaps): a row for another device or point is refused.
func NewReader(r io.Reader, file string, devices map[string][]collectors.Point) (*Reader, error) {
	tr := &Reader{r: bufio.NewReaderSize(r, 64<<10), file: file, points: map[string]map[string]collectors.Point{}}
	for name, pts := range devices {
		m := map[string]collectors.Point{}
		for _, p := range pts {
			m[p.Name] = p
		}
		tr.points[name] = m
	}
	hdr, err := tr.readRow()
	if errors.Is(err, io.EOF) {
		return nil, tr.errorf("the trace is empty: the first line must be %q", strings.Join(Header, ","))
	}
	if err != nil {
		return nil, err
	}
	if strings.Join(hdr, ",") != strings.Join(Header, ",") {
		return nil, tr.errorf("header must be %q, got %q", strings.Join(Header, ","), clip(strings.Join(hdr, ",")))
	}
	return tr, nil
}

// ErrBadTrace marks a trace that does not follow the format (exit code 2).
var ErrBadTrace = errors.New("bad trace")

func (t *Reader) errorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s:%d: %s", ErrBadTrace, t.file, t.line, fmt.Sprintf(format, a...))
}

// clip shortens what a trace wrote for an error message: a damaged line may be anything.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// readRow reads the next line and splits it into its fields (quoted as CSV when it has quotes).
// Empty lines and lines over MaxLineBytes are errors: a trace is one row per line.
func (t *Reader) readRow() ([]string, error) {
	t.line++
	raw, err := t.r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull) || len(raw) > MaxLineBytes:
		return nil, t.errorf("line is longer than %d bytes", MaxLineBytes)
	case errors.Is(err, io.EOF) && len(raw) == 0:
		return nil, io.EOF
	case err != nil && !errors.Is(err, io.EOF):
		return nil, t.errorf("%v", err)
	}
	line := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
	if strings.TrimSpace(line) == "" {
		return nil, t.errorf("empty line (a trace has one row per line, and no blank ones)")
	}
	if strings.IndexByte(line, '"') >= 0 {
		cr := csv.NewReader(strings.NewReader(line))
		cr.FieldsPerRecord = -1
		rec, err := cr.Read()
		if err != nil {
			return nil, t.errorf("%v", err)
		}
		return rec, nil
	}
	if strings.Count(line, ",") != len(t.fields)-1 {
		return strings.Split(line, ","), nil // the caller says what the row should be
	}
	for i := range t.fields[:3] {
		j := strings.IndexByte(line, ',')
		t.fields[i], line = line[:j], line[j+1:]
	}
	t.fields[3] = line
	return t.fields[:], nil
}

// Next returns the next batch, or io.EOF after the last.
func (t *Reader) Next() (sample.Batch, error) {
	if t.err != nil {
		return sample.Batch{}, t.err
	}
	for {
		rec, err := t.readRow()
		switch {
		case errors.Is(err, io.EOF):
			t.err = io.EOF
			if t.pending != nil {
				b := *t.pending
				t.pending = nil
				return b, nil
			}
			return sample.Batch{}, io.EOF
		case err != nil:
			t.err = err
			return sample.Batch{}, t.err
		}
		if len(rec) != 4 {
			t.err = t.errorf("want 4 fields (time,device,point,value), got %d", len(rec))
			return sample.Batch{}, t.err
		}
		s, err := t.parse(rec)
		if err != nil {
			t.err = err
			return sample.Batch{}, err
		}
		if t.pending != nil && (t.pending.Device != s.Device || !t.pending.At.Equal(s.At)) {
			b := *t.pending
			t.pending = &sample.Batch{Device: s.Device, At: s.At, Samples: []sample.Sample{s}}
			return b, nil
		}
		if t.pending == nil {
			t.pending = &sample.Batch{Device: s.Device, At: s.At}
		}
		t.pending.Samples = append(t.pending.Samples, s)
	}
}

func (t *Reader) parse(rec []string) (sample.Sample, error) {
	at := t.last
	if !t.haveTime || rec[0] != t.lastRaw {
		var err error
		if at, err = ParseTime(rec[0]); err != nil {
			return sample.Sample{}, t.errorf("time %q: %v", clip(rec[0]), err)
		}
		if t.haveTime && at.Before(t.last) {
			return sample.Sample{}, t.errorf("time %s is before the previous row's %s: rows must be in time order", rec[0], t.last.Format(time.RFC3339Nano))
		}
		if t.haveTime && at.Sub(t.last) > MaxGap {
			return sample.Sample{}, t.errorf("time %s is %s after the previous row's %s: more than %s without a row is two traces, not one", rec[0],
				at.Sub(t.last).Round(time.Second), t.last.Format(time.RFC3339Nano), MaxGap)
		}
		if !t.haveTime {
			t.first = at
		}
		if at.Sub(t.first) > MaxSpan {
			return sample.Sample{}, t.errorf("time %s is %s after the trace's first row: a trace spans at most %s (31 days); split a longer recording",
				rec[0], at.Sub(t.first).Round(time.Hour), MaxSpan)
		}
		t.lastRaw, t.haveTime = rec[0], true
	}
	t.last = at
	pts, ok := t.points[rec[1]]
	if !ok {
		return sample.Sample{}, t.errorf("device %q is not in the config", clip(rec[1]))
	}
	pt, ok := pts[rec[2]]
	if !ok {
		return sample.Sample{}, t.errorf("device %s has no point %q in its profile", rec[1], clip(rec[2]))
	}
	s := sample.Sample{Device: rec[1], Point: rec[2], Role: pt.Role, At: at}
	switch v := strings.TrimSpace(rec[3]); v {
	case "":
		s.Quality = sample.Invalid
	case "true":
		s.Value, s.Quality = 1, sample.Good
	case "false":
		s.Value, s.Quality = 0, sample.Good
	default:
		f, err := ParseValue(v)
		if err != nil {
			return s, t.errorf("value %q of %s.%s %v", clip(v), rec[1], rec[2], err)
		}
		s.Value, s.Quality = f, sample.Good
		if pt.HasRange && (f < pt.Range[0] || f > pt.Range[1]) {
			s.Quality = sample.OutOfRange
		}
	}
	return s, nil
}

// ParseValue reads a trace value: a plain decimal number (sign, digits, a point, an exponent),
// finite. strconv.ParseFloat alone would take NaN, Inf, Infinity, hex floats and 1_000; none of
// them is a reading, and a NaN that reached the detectors could stop a drain signal.
func ParseValue(v string) (float64, error) {
	if len(v) > MaxValueBytes {
		return 0, fmt.Errorf("is longer than %d characters", MaxValueBytes)
	}
	if !plainNumber(v) {
		return 0, errors.New("is not a number, true, false or empty (numbers are plain decimals like -12.5 or 1e3; no NaN or Inf)")
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, errors.New("is beyond the range of a 64-bit float")
	}
	return f, nil
}

// plainNumber says whether s is [+-]digits[.digits][e[+-]digits] with at least one digit.
func plainNumber(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i, digits = i+1, digits+1
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i, digits = i+1, digits+1
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i, exp = i+1, exp+1
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}

// ParseTime reads RFC 3339 or integer Unix milliseconds, within [MinTime, MaxTime).
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("is empty; want RFC 3339 or integer Unix milliseconds")
	}
	var t time.Time
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		t = time.UnixMilli(ms).UTC()
	} else if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
		return time.Time{}, errors.New("want RFC 3339 or integer Unix milliseconds")
	}
	if t.Before(MinTime) || !t.Before(MaxTime) {
		return time.Time{}, fmt.Errorf("is outside %d..%d: a recorded time is after 1970 and before 2200", MinTime.Year(), MaxTime.Year())
	}
	return t.UTC(), nil
}

// Writer writes a trace: CSV as encoding/csv writes it (TestWriterIsCSV), formatted by hand, a
// batch's time once, in a buffer that goes to the underlying writer in blocks: `run -record`
// writes every poll, and must cost little beside the poll itself.
type Writer struct {
	w   io.Writer
	buf []byte
	err error
	// The time of the last sample, formatted.
	lastAt time.Time
	atText []byte
}

// writerBlock is how much the Writer gathers before it writes.
const writerBlock = 32 << 10

// NewWriter writes the header.
func NewWriter(w io.Writer) (*Writer, error) {
	tw := &Writer{w: w, buf: make([]byte, 0, writerBlock+4096)}
	for i, h := range Header {
		if i > 0 {
			tw.buf = append(tw.buf, ',')
		}
		tw.buf = appendField(tw.buf, h)
	}
	tw.buf = append(tw.buf, '\n')
	return tw, tw.flush()
}

// Write writes a batch. A value that was read is written even when implausible (replay applies
// the range rule again); a sentinel or a missing reading is empty.
func (w *Writer) Write(b sample.Batch) error {
	if w.err != nil {
		return w.err
	}
	for _, s := range b.Samples {
		if !s.At.Equal(w.lastAt) || w.atText == nil {
			w.lastAt = s.At
			w.atText = s.At.UTC().AppendFormat(w.atText[:0], time.RFC3339Nano)
		}
		w.buf = append(w.buf, w.atText...)
		w.buf = append(w.buf, ',')
		w.buf = appendField(w.buf, s.Device)
		w.buf = append(w.buf, ',')
		w.buf = appendField(w.buf, s.Point)
		w.buf = append(w.buf, ',')
		if (s.Quality == sample.Good || s.Quality == sample.OutOfRange) && s.Text == "" {
			w.buf = strconv.AppendFloat(w.buf, s.Value, 'g', -1, 64) // exact: replay must see the very value
		}
		w.buf = append(w.buf, '\n')
		if len(w.buf) >= writerBlock {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *Writer) flush() error {
	if w.err == nil && len(w.buf) > 0 {
		_, w.err = w.w.Write(w.buf)
		w.buf = w.buf[:0]
	}
	return w.err
}

// Close writes what is gathered.
func (w *Writer) Close() error { return w.flush() }

// appendField appends a CSV field as encoding/csv writes it: quoted (its quotes doubled) when it
// holds a comma, a quote, a line break, starts with a space, or is `\.`.
func appendField(buf []byte, f string) []byte {
	r, _ := utf8.DecodeRuneInString(f)
	if f != `\.` && !strings.ContainsAny(f, "\",\r\n") && (f == "" || !unicode.IsSpace(r)) {
		return append(buf, f...)
	}
	buf = append(buf, '"')
	for i := 0; i < len(f); i++ {
		if f[i] == '"' {
			buf = append(buf, '"')
		}
		buf = append(buf, f[i])
	}
	return append(buf, '"')
}
