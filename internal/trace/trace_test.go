package trace

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/configs"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/sample"
)

func demo(t *testing.T) *config.Config {
	t.Helper()
	data, _ := configs.FS.ReadFile("sites/demo.yaml")
	cfg, err := config.Parse(data, "demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRoundTripAndBatching(t *testing.T) {
	t.Parallel()
	at := time.Date(2022, 10, 15, 15, 0, 0, 0, time.UTC)
	in := []sample.Batch{
		{Device: "rack-01", At: at, Samples: []sample.Sample{
			{Device: "rack-01", Point: "module_temp_3", Value: 25.1, Quality: sample.Good, At: at},
			{Device: "rack-01", Point: "cell_temp_max", Quality: sample.Invalid, At: at},
			{Device: "rack-01", Point: "module_temp_4", Value: 6553.5, Quality: sample.OutOfRange, At: at},
		}},
		{Device: "panel-1", At: at, Samples: []sample.Sample{{Device: "panel-1", Point: "smoke", Value: 1, Quality: sample.Good, At: at}}},
	}
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	for _, b := range in {
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&buf, "t.csv", demo(t).RegisterMaps())
	if err != nil {
		t.Fatal(err)
	}
	var got []sample.Batch
	for {
		b, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b)
	}
	if len(got) != 2 || len(got[0].Samples) != 3 || got[1].Device != "panel-1" {
		t.Fatalf("batches: %+v", got)
	}
	s := got[0].Samples
	if s[0].Value != 25.1 || s[0].Quality != sample.Good || s[0].Role != "module_temperature" {
		t.Errorf("good sample: %+v", s[0])
	}
	if s[1].Quality != sample.Invalid {
		t.Errorf("empty value: %+v", s[1])
	}
	if s[2].Quality != sample.OutOfRange {
		t.Errorf("the range rule was not applied on replay: %+v", s[2])
	}
}

func TestErrorsNameTheLine(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"time,device,value\n": "header must be",
		"time,device,point,value\n2022-10-15T15:00:00Z,rack-99,soc,1\n":                       "t.csv:2: device \"rack-99\" is not in the config",
		"time,device,point,value\n2022-10-15T15:00:00Z,rack-01,nope,1\n":                      "t.csv:2: device rack-01 has no point \"nope\"",
		"time,device,point,value\n1665846000000,rack-01,soc,1\n1665845999000,rack-01,soc,1\n": "t.csv:3: time 1665845999000 is before",
		"time,device,point,value\nyesterday,rack-01,soc,1\n":                                  "t.csv:2: time \"yesterday\"",
		"time,device,point,value\n2022-10-15T15:00:00Z,rack-01,soc,warm\n":                    "t.csv:2: value \"warm\" of rack-01.soc is not a number",
	}
	// Issue 13: what a hostile or damaged trace holds. No non-finite number and no time that
	// would make replay step through millennia gets past the reader.
	const h, ok = "time,device,point,value\n", "2022-10-15T15:00:00Z,rack-01,soc,1\n"
	for _, v := range []string{"NaN", "nan", "Inf", "+inf", "-inf", "Infinity", "1_000", "0x1p3", "1e400", "-1e999", "1e", ".", "--1", strings.Repeat("9", 65)} {
		cases[h+"2022-10-15T15:00:00Z,rack-01,module_temp_1,"+v+"\n"] = "t.csv:2: value"
	}
	cases[h+ok+"\n"+ok] = "t.csv:3: empty line"
	cases[h+"-1000,rack-01,soc,1\n"] = "t.csv:2: time \"-1000\": is outside 1970..2200"
	cases[h+"0001-01-01T00:00:00Z,rack-01,soc,1\n"] = "t.csv:2: time \"0001-01-01T00:00:00Z\": is outside"
	cases[h+",rack-01,soc,1\n"+ok] = "t.csv:2: time \"\": is empty"
	cases[h+ok+"2024-10-15T15:00:00Z,rack-01,soc,1\n"] = "t.csv:3: time 2024-10-15T15:00:00Z is 17544h0m0s after the previous row's"
	var month strings.Builder
	month.WriteString(h)
	for d := 0; d <= 32; d++ {
		fmt.Fprintf(&month, "%s,rack-01,soc,1\n", time.Date(2022, 10, 1+d, 0, 0, 0, 0, time.UTC).Format(time.RFC3339))
	}
	cases[month.String()] = "t.csv:34: time 2022-11-02T00:00:00Z is 768h0m0s after the trace's first row: a trace spans at most"
	cases[h+ok+"99999999999999,rack-01,soc,1\n"] = "t.csv:3: time \"99999999999999\": is outside"
	cases[h+ok+"2022-10-15T15:00:00Z,rack-01,soc,"+strings.Repeat("1", 5000)+"\n"] = "t.csv:3: line is longer than 4096 bytes"
	cases[h+ok+"2022-10-15T15:00:00Z,rack-01,soc,1,2\n"] = "t.csv:3: want 4 fields (time,device,point,value), got 5"
	for in, want := range cases {
		r, err := NewReader(strings.NewReader(in), "t.csv", demo(t).RegisterMaps())
		for err == nil {
			_, err = r.Next()
		}
		if errors.Is(err, io.EOF) || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrBadTrace) {
			t.Errorf("%q: got %v, want %q", in, err, want)
		}
	}
}

// TestWriterIsCSV: the hand-written trace is what encoding/csv writes for the same rows, names
// that need quoting included, over several blocks.
func TestWriterIsCSV(t *testing.T) {
	names := []string{"rack-01", "a,b", `say "hi"`, " lead", "\u00a0nbsp", "ünïcode", `\.`, "line\nbreak", "cr\rx", "", "tab\tin"}
	at := time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC)
	var b sample.Batch
	for i := 0; i < 4000; i++ {
		s := sample.Sample{Device: names[i%len(names)], Point: names[(i/len(names))%len(names)], Value: float64(i) / 7, Quality: sample.Quality(i % 4), At: at.Add(time.Duration(i/10) * time.Second)}
		if i%13 == 0 {
			s.Text = "text"
		}
		b.Samples = append(b.Samples, s)
	}
	var got bytes.Buffer
	w, err := NewWriter(&got)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	cw := csv.NewWriter(&want)
	_ = cw.Write(Header)
	for _, s := range b.Samples {
		v := ""
		if (s.Quality == sample.Good || s.Quality == sample.OutOfRange) && s.Text == "" {
			v = strconv.FormatFloat(s.Value, 'g', -1, 64)
		}
		_ = cw.Write([]string{s.At.UTC().Format(time.RFC3339Nano), s.Device, s.Point, v})
	}
	cw.Flush()
	if got.String() != want.String() {
		g, wl := strings.Split(got.String(), "\n"), strings.Split(want.String(), "\n")
		for i := range min(len(g), len(wl)) {
			if g[i] != wl[i] {
				t.Fatalf("line %d: %q, encoding/csv %q", i+1, g[i], wl[i])
			}
		}
		t.Fatalf("%d lines, encoding/csv %d", len(g), len(wl))
	}
}
