package wire

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

// TestTelemetryIsValidJSON: the hand-written telemetry payload parses, carries the envelope,
// every good value (strings too) exactly, no value for a bad or non-finite sample, and every
// point's quality, whatever the names contain.
func TestTelemetryIsValidJSON(t *testing.T) {
	t.Parallel()
	e := NewEncoder("fb", "site", "i-1", "boot")
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	b := sample.Batch{Device: "rack-01", At: at, Samples: []sample.Sample{
		{Point: "t", Value: 24.5, Quality: sample.Good},
		{Point: "big", Value: 1e21, Quality: sample.Good},
		{Point: "tiny", Value: -3.25e-7, Quality: sample.Good},
		{Point: "nan", Value: math.NaN(), Quality: sample.Good},
		{Point: "bad", Value: 32767, Quality: sample.Invalid},
		{Point: "serial", Text: "SN \"42\"\n", Quality: sample.Good},
		{Point: "odd \"name\" <é>", Value: 1, Quality: sample.Good},
	}}
	m := e.Telemetry(b)
	var got struct {
		TS       time.Time         `json:"ts"`
		Instance string            `json:"instance"`
		BootID   string            `json:"boot_id"`
		Seq      uint64            `json:"seq"`
		Values   map[string]any    `json:"values"`
		Quality  map[string]string `json:"quality"`
	}
	if err := json.Unmarshal(m.Payload, &got); err != nil {
		t.Fatalf("%v in %s", err, m.Payload)
	}
	if !got.TS.Equal(at) || got.Instance != "i-1" || got.BootID != "boot" || got.Seq != 1 {
		t.Fatalf("envelope %+v", got)
	}
	want := map[string]any{"t": 24.5, "big": 1e21, "tiny": -3.25e-7, "serial": "SN \"42\"\n", "odd \"name\" <é>": 1.0}
	if len(got.Values) != len(want) {
		t.Fatalf("values %v, want %v", got.Values, want)
	}
	for k, v := range want {
		if got.Values[k] != v {
			t.Errorf("%s: %v, want %v", k, got.Values[k], v)
		}
	}
	if len(got.Quality) != 7 || got.Quality["bad"] != "invalid" || got.Quality["t"] != "good" {
		t.Fatalf("quality %v", got.Quality)
	}
	if m.QoS != 0 || m.Retain || m.Critical {
		t.Fatalf("flags %+v", m)
	}
}
