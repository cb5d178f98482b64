// Package trace reads and writes DESIGN's replay format: CSV with the header
// time,device,point,value; time in RFC 3339 (UTC) or integer Unix milliseconds; value a number,
// true/false, or empty for a missing or invalid reading. Reading applies each point's range rule
// as the live poller would, and groups rows into one batch per device and time.
package trace

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/sample"
)

// Header is the first line of every trace.
var Header = []string{"time", "device", "point", "value"}

// Reader yields batches from a trace, in time order.
type Reader struct {
	r       *csv.Reader
	file    string
	line    int
	points  map[string]map[string]config.Point
	pending *sample.Batch
	last    time.Time
	lastRaw string // the last time field as written: a device's rows share one
	err     error
}

// NewReader checks the header; file names the trace in errors.
func NewReader(r io.Reader, file string, cfg *config.Config) (*Reader, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // counted here, with a message that says what the row should be
	cr.ReuseRecord = true
	tr := &Reader{r: cr, file: file, points: map[string]map[string]config.Point{}}
	for _, d := range cfg.Devices {
		m := map[string]config.Point{}
		if res := cfg.Points(d); res != nil {
			for _, p := range res.Points {
				m[p.Name] = p
			}
		}
		tr.points[d.Name] = m
	}
	hdr, err := cr.Read()
	tr.line = 1
	if err != nil {
		return nil, tr.errorf("reading the header: %v", err)
	}
	if strings.Join(hdr, ",") != strings.Join(Header, ",") {
		return nil, tr.errorf("header must be %q, got %q", strings.Join(Header, ","), strings.Join(hdr, ","))
	}
	return tr, nil
}

// ErrBadTrace marks a trace that does not follow the format (exit code 2).
var ErrBadTrace = errors.New("bad trace")

func (t *Reader) errorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s:%d: %s", ErrBadTrace, t.file, t.line, fmt.Sprintf(format, a...))
}

// Next returns the next batch, or io.EOF after the last.
func (t *Reader) Next() (sample.Batch, error) {
	if t.err != nil {
		return sample.Batch{}, t.err
	}
	for {
		rec, err := t.r.Read()
		t.line++
		if errors.Is(err, io.EOF) {
			t.err = io.EOF
			if t.pending != nil {
				b := *t.pending
				t.pending = nil
				return b, nil
			}
			return sample.Batch{}, io.EOF
		}
		if err != nil {
			t.err = t.errorf("%v", err)
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
	if rec[0] != t.lastRaw {
		var err error
		if at, err = ParseTime(rec[0]); err != nil {
			return sample.Sample{}, t.errorf("time %q: %v", rec[0], err)
		}
		t.lastRaw = rec[0]
	}
	if at.Before(t.last) {
		return sample.Sample{}, t.errorf("time %s is before the previous row's %s: rows must be in time order", rec[0], t.last.Format(time.RFC3339Nano))
	}
	t.last = at
	pts, ok := t.points[rec[1]]
	if !ok {
		return sample.Sample{}, t.errorf("device %q is not in the config", rec[1])
	}
	pt, ok := pts[rec[2]]
	if !ok {
		return sample.Sample{}, t.errorf("device %s has no point %q in its profile", rec[1], rec[2])
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
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return s, t.errorf("value %q of %s.%s is not a number, true, false or empty", v, rec[1], rec[2])
		}
		s.Value, s.Quality = f, sample.Good
		if pt.HasRange && (f < pt.Range[0] || f > pt.Range[1]) {
			s.Quality = sample.OutOfRange
		}
	}
	return s, nil
}

// ParseTime reads RFC 3339 or integer Unix milliseconds.
func ParseTime(s string) (time.Time, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errors.New("want RFC 3339 or integer Unix milliseconds")
	}
	return t.UTC(), nil
}

// Writer writes a trace.
type Writer struct{ w *csv.Writer }

// NewWriter writes the header.
func NewWriter(w io.Writer) (*Writer, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(Header); err != nil {
		return nil, err
	}
	return &Writer{w: cw}, nil
}

// Write writes a batch. A value that was read is written even when implausible (replay applies
// the range rule again); a sentinel or a missing reading is empty.
func (w *Writer) Write(b sample.Batch) error {
	for _, s := range b.Samples {
		v := ""
		if (s.Quality == sample.Good || s.Quality == sample.OutOfRange) && s.Text == "" {
			v = strconv.FormatFloat(s.Value, 'g', -1, 64) // exact: replay must see the very value
		}
		if err := w.w.Write([]string{s.At.UTC().Format(time.RFC3339Nano), s.Device, s.Point, v}); err != nil {
			return err
		}
	}
	return nil
}

// Close flushes.
func (w *Writer) Close() error {
	w.w.Flush()
	return w.w.Error()
}
