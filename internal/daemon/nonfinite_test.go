package daemon_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/trace"
)

// TestNonFiniteAndHugeAtEveryEntryPoint: every place a number enters Firebreak from outside (a
// register, a trace, the config, an operator command, a consumer's ack, and the engine itself as
// the last line) turns NaN, infinity and absurd magnitudes into a refusal or a bad quality,
// never into a number downstream. Each row names its entry point.
func TestNonFiniteAndHugeAtEveryEntryPoint(t *testing.T) {
	t.Parallel()
	f32 := func(v float32) []byte {
		b := make([]byte, 4)
		binary.BigEndian.PutUint32(b, math.Float32bits(v))
		return b
	}
	f64 := func(v float64) []byte {
		b := make([]byte, 8)
		binary.BigEndian.PutUint64(b, math.Float64bits(v))
		return b
	}
	u64max := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	decode := func(typ collectors.DataType, scale, offset float64, regs []byte) error {
		d, err := collectors.DecodeRegisters(collectors.Point{Name: "p", Type: typ, Words: uint16(len(regs) / 2), Order: collectors.ABCD, Scale: scale, Offset: offset}, regs)
		if err != nil {
			return err
		}
		if d.Quality == sample.Good {
			return errors.New("decoded as a good value: " + formatFloat(d.Value))
		}
		return nil
	}
	parseValue := func(v string) error {
		if _, err := trace.ParseValue(v); err == nil {
			return errors.New("accepted")
		}
		return nil
	}
	site := func(extra string) error {
		_, err := config.Parse([]byte(`
site: s1
instance: fb-1
state_dir: /tmp/x
connections: [{name: gw, url: "tcp://127.0.0.1:502"}]
zones: [{name: z, cut_scope: [d]}]
domains: [{name: d, targets: [t]}]
devices: [{name: r1, connection: gw, unit_id: 1, profile: li-ion-rack, zone: z}]
`+extra), "site.yaml")
		if err == nil {
			return errors.New("accepted")
		}
		return nil
	}
	now := time.Date(2022, 10, 15, 15, 19, 0, 0, time.UTC)
	operators := map[string]ed25519.PublicKey{}
	command := func(payload string) error {
		_, err := cutover.VerifyCommand([]byte(payload), "shelve", "fb-1", operators, now, time.Minute)
		if !errors.Is(err, cutover.ErrCmdMalformed) {
			return errors.New("not refused as malformed: " + errString(err))
		}
		return nil
	}
	ack := func(payload string) error {
		_, err := cutover.ParseAck([]byte(payload), "z", "cp")
		if !errors.Is(err, cutover.ErrBadAck) {
			return errors.New("not refused as a bad ack: " + errString(err))
		}
		return nil
	}
	cfg := hiltest.DemoSite(t)
	_, key, _ := ed25519.GenerateKey(nil)
	engine := func(v float64) error {
		pipe := daemon.NewPipeline(cfg, daemon.PipelineOptions{BootID: "t", Key: key})
		for s := 0; s < 10; s++ {
			at := now.Add(time.Duration(s) * time.Second)
			msgs, err := pipe.Step(sample.Batch{Device: "rack-01", At: at, Samples: []sample.Sample{
				{Device: "rack-01", Point: "module_temp_1", Role: "module_temperature", Value: v, Quality: sample.Good, At: at}}})
			if err != nil {
				return err
			}
			for _, m := range msgs {
				if !json.Valid(m.Payload) || strings.Contains(string(m.Payload), `"error":"encode`) {
					return errors.New(m.Topic + ": " + string(m.Payload))
				}
			}
		}
		for _, a := range pipe.Alarms() {
			if math.IsNaN(a.Value) || math.IsInf(a.Value, 0) {
				return errors.New("alarm " + a.ID + " holds " + formatFloat(a.Value))
			}
		}
		return nil
	}

	for _, tc := range []struct {
		entry, input string
		check        func() error
	}{
		{"codec", "float32 NaN", func() error { return decode(collectors.Float32, 1, 0, f32(float32(math.NaN()))) }},
		{"codec", "float32 +Inf", func() error { return decode(collectors.Float32, 1, 0, f32(float32(math.Inf(1)))) }},
		{"codec", "float64 -Inf", func() error { return decode(collectors.Float64, 1, 0, f64(math.Inf(-1))) }},
		{"codec", "float64 max × scale 10", func() error { return decode(collectors.Float64, 10, 0, f64(math.MaxFloat64)) }},
		{"codec", "uint64 max × scale 1e300", func() error { return decode(collectors.Uint64, 1e300, 0, u64max) }},
		{"trace", "NaN", func() error { return parseValue("NaN") }},
		{"trace", "-Infinity", func() error { return parseValue("-Infinity") }},
		{"trace", "1e400", func() error { return parseValue("1e400") }},
		{"trace", "1_000", func() error { return parseValue("1_000") }},
		{"config", "threshold .inf", func() error { return site("detection: {cell_temp_crit_c: .inf}") }},
		{"config", "rule limit .nan", func() error { return site("rules: [{name: x, point: r1.soc, above: .nan, stage: 1}]") }},
		{"config", "threshold 1e999", func() error { return site("detection: {co_warn_ppm: 1e999}") }},
		{"config", "unit_id 1e30", func() error {
			return site("devices: [{name: r2, connection: gw, unit_id: 1e30, profile: li-ion-rack, zone: z}]")
		}},
		{"commands", "v 1e400", func() error { return command(`{"v":1e400,"command":"shelve"}`) }},
		{"commands", "v NaN", func() error { return command(`{"v":NaN,"command":"shelve"}`) }},
		{"commands", "duration 1e400h", func() error {
			// A signature of the right shape, so that the duration is what is judged.
			return command(`{"v":1,"command":"shelve","instance":"fb-1","alarm":"a","duration":"1e400h","operator":"o","ts":"2022-10-15T15:19:00Z","nonce":"n","sig":"` +
				base64.StdEncoding.EncodeToString(make([]byte, ed25519.SignatureSize)) + `"}`)
		}},
		{"commands", "ts in year 10000", func() error { return command(`{"v":1,"command":"shelve","ts":"10000-01-01T00:00:00Z"}`) }},
		{"acks", "seq 1e400", func() error { return ack(`{"v":1,"consumer":"cp","zone":"z","seq":1e400,"status":"received"}`) }},
		{"acks", "seq -1", func() error { return ack(`{"v":1,"consumer":"cp","zone":"z","seq":-1,"status":"received"}`) }},
		{"acks", "seq Infinity", func() error { return ack(`{"v":1,"consumer":"cp","zone":"z","seq":Infinity,"status":"received"}`) }},
		{"engine", "a good NaN reading", func() error { return engine(math.NaN()) }},
		{"engine", "a good +Inf reading", func() error { return engine(math.Inf(1)) }},
		{"engine", "a good 1e308 reading", func() error { return engine(1e308) }},
	} {
		if err := tc.check(); err != nil {
			t.Errorf("%s, %s: %v", tc.entry, tc.input, err)
		}
	}
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
