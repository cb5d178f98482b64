package wire

import (
	"encoding/json"
	"math"
	"strconv"
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

// TestAppendFloat: telemetry's number formatting is strconv's shortest 'g', byte for byte: every
// 16-bit register value at every decimal scale, values around each bound of the fast path, and a
// spread of arbitrary floats.
func TestAppendFloat(t *testing.T) {
	t.Parallel()
	check := func(v float64) {
		t.Helper()
		if got, want := string(appendFloat(nil, v)), strconv.FormatFloat(v, 'g', -1, 64); got != want {
			t.Fatalf("%v: %q, strconv %q", v, got, want)
		}
	}
	for _, p := range []float64{1, 10, 100, 1000, 1e4, 1e5, 1e6, 1e7} {
		for r := -32768; r <= 65535; r++ {
			check(float64(r) / p)
			check(float64(r) * 0.1 / p * 10)
		}
	}
	for _, v := range []float64{0, math.Copysign(0, -1), 1e-3, 0.00099999, 1e-4, 999999.999999, 1e6, 999999, 1e6 - 0.5,
		123456.7891234, 0.1 + 0.2, math.Pi, -math.E, 1e300, 5e-324, math.Inf(1), math.NaN()} {
		check(v)
	}
	rng := uint64(7)
	for i := 0; i < 200000; i++ {
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		check(math.Float64frombits(rng))
		check(float64(rng%2000000) / 1000 * float64(1-int(rng>>62&1)*2))
	}
}

// TestTelemetryKeysFollowTheBatch: the cached keys of a device's points are its batch's, even
// when a batch names other points (or fewer) than the last, or another device (whose keys are
// shared) has the same points in another order.
func TestTelemetryKeysFollowTheBatch(t *testing.T) {
	t.Parallel()
	e := NewEncoder("fb", "site", "i-1", "boot")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for k, names := range [][]string{{"a", "b", "c"}, {"b", "x"}, {"c", "b", "a"}, {"a", "b", "c", "d"}, {"x", "a\\"}} {
		b := sample.Batch{Device: []string{"r", "s"}[k%2], At: at}
		for i, n := range names {
			b.Samples = append(b.Samples, sample.Sample{Point: n, Value: float64(i), Quality: sample.Good})
		}
		var got struct{ Values, Quality map[string]any }
		if err := json.Unmarshal(e.Telemetry(b).Payload, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Values) != len(names) || len(got.Quality) != len(names) {
			t.Fatalf("%v: %v", names, got)
		}
		for i, n := range names {
			if got.Values[n] != float64(i) || got.Quality[n] != "good" {
				t.Fatalf("%v: %s = %v (%v)", names, n, got.Values[n], got.Quality[n])
			}
		}
	}
}

// TestTelemetryIntoReusesTheBuffer: into a written message's buffer (any length, any contents),
// the payload is the same bytes Telemetry makes, and it is in that buffer when it has room for
// the device's messages (a ninth more than the largest so far).
func TestTelemetryIntoReusesTheBuffer(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := sample.Batch{Device: "rack-01", At: at, Samples: []sample.Sample{
		{Point: "t", Value: 24.5, Quality: sample.Good}, {Point: "v", Value: 3.301, Quality: sample.Good},
		{Point: "bad", Value: 1, Quality: sample.CommLost}}}
	fresh, reusing := NewEncoder("fb", "site", "i-1", "boot"), NewEncoder("fb", "site", "i-1", "boot")
	stale := append(make([]byte, 0, 1024), `{"stale":"left over from the last message, longer than this one will be ...................................................................................................."}`...)
	for i, buf := range [][]byte{nil, make([]byte, 3), stale} {
		want := fresh.Telemetry(b)
		got := reusing.TelemetryInto(buf, b)
		if string(got.Payload) != string(want.Payload) || got.Topic != want.Topic {
			t.Fatalf("buffer %d: %s on %s, want %s on %s", i, got.Payload, got.Topic, want.Payload, want.Topic)
		}
		if cap(buf) >= 2*len(want.Payload) && &got.Payload[0] != &buf[:1][0] {
			t.Fatalf("buffer %d (cap %d, payload %d bytes): not reused", i, cap(buf), len(want.Payload))
		}
	}
}
