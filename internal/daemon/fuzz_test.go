package daemon_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/trace"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// fireTrace is a short trace of the demo site in which the fire panel goes into alarm: enough
// for the pipeline to send a drain signal (evacuate) within its first seconds.
func fireTrace(temp string) string {
	var b strings.Builder
	b.WriteString("time,device,point,value\n")
	t0 := time.Date(2022, 10, 15, 15, 19, 0, 0, time.UTC)
	for s := 0; s < 5; s++ {
		ts := t0.Add(time.Duration(s) * time.Second).Format(time.RFC3339)
		for m := 1; m <= 4; m++ {
			fmt.Fprintf(&b, "%s,rack-01,module_temp_%d,%s\n", ts, m, temp)
		}
		fmt.Fprintf(&b, "%s,panel-1,fire_alarm,%v\n", ts, s >= 2)
	}
	return b.String()
}

// FuzzReplay runs what a trace may hold through the trace reader and the whole pipeline, as
// `firebreak replay` does: the reader refuses it with ErrBadTrace (naming the line), or replay
// finishes; nothing panics or hangs, every message is valid JSON, and every drain signal
// verifies. The seeds are issue 13's hostile traces: non-finite values, times before 1970, in
// year 1, empty or far apart, an empty line.
func FuzzReplay(f *testing.F) {
	for _, seed := range []string{
		fireTrace("25.5"),
		fireTrace("NaN"), fireTrace("nan"), fireTrace("Inf"), fireTrace("+inf"), fireTrace("-inf"), fireTrace("Infinity"), fireTrace("1_000"),
		fireTrace("1e308"), fireTrace(""),
		"time,device,point,value\n-1000,panel-1,fire_alarm,true\n1665846000000,panel-1,fire_alarm,true\n",
		"time,device,point,value\n0001-01-01T00:00:00Z,panel-1,fire_alarm,true\n2022-10-15T15:00:00Z,panel-1,fire_alarm,true\n",
		"time,device,point,value\n,panel-1,fire_alarm,true\n2022-10-15T15:00:00Z,panel-1,fire_alarm,true\n",
		"time,device,point,value\n2022-10-15T15:00:00Z,panel-1,fire_alarm,true\n\n2022-10-15T15:00:01Z,panel-1,fire_alarm,true\n",
		"time,device,point,value\n2022-10-15T15:00:00Z,panel-1,fire_alarm,true\n9999-12-31T23:59:59Z,panel-1,fire_alarm,true\n",
	} {
		f.Add(seed)
	}
	cfg := hiltest.DemoSite(f)
	pub, key, _ := ed25519.GenerateKey(nil)
	f.Fuzz(func(t *testing.T, in string) {
		tr, err := trace.NewReader(strings.NewReader(in), "fuzz.csv", cfg.RegisterMaps())
		if err != nil {
			if !errors.Is(err, trace.ErrBadTrace) {
				t.Fatalf("reader: %v is not ErrBadTrace", err)
			}
			return
		}
		pipe := daemon.NewPipeline(cfg, daemon.PipelineOptions{BootID: "fuzz", Key: key})
		drainTopic := "firebreak/demo-room/drain/"
		err = daemon.Replay(context.Background(), tr, pipe, func(ts time.Time, msgs []wire.Message) error {
			for _, m := range msgs {
				var body map[string]any
				if err := json.Unmarshal(m.Payload, &body); err != nil {
					t.Fatalf("%s: not JSON: %v: %s", m.Topic, err, m.Payload)
				}
				if e, ok := body["error"].(string); ok && strings.HasPrefix(e, "encode") {
					t.Fatalf("%s: a payload that could not be encoded: %s", m.Topic, e)
				}
				if zone, ok := strings.CutPrefix(m.Topic, drainTopic); ok && !strings.Contains(zone, "/") {
					if _, err := cutover.Verify(m.Payload, pub, ts); err != nil {
						t.Fatalf("%s: drain signal does not verify: %v: %s", m.Topic, err, m.Payload)
					}
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, trace.ErrBadTrace) {
			t.Fatalf("replay: %v", err)
		}
	})
}

// TestReplayDrainsDespiteABadSensor: the valid fire trace drains (the fuzz seed is not a trace
// that proves nothing), and a trace whose temperatures are all invalid still sends the drain
// the fire panel calls for.
func TestReplayDrainsDespiteABadSensor(t *testing.T) {
	t.Parallel()
	cfg := hiltest.DemoSite(t)
	_, key, _ := ed25519.GenerateKey(nil)
	for _, temp := range []string{"25.5", ""} {
		tr, err := trace.NewReader(strings.NewReader(fireTrace(temp)), "t.csv", cfg.RegisterMaps())
		if err != nil {
			t.Fatal(err)
		}
		pipe := daemon.NewPipeline(cfg, daemon.PipelineOptions{BootID: "t", Key: key})
		var actions []string
		err = daemon.Replay(context.Background(), tr, pipe, func(_ time.Time, msgs []wire.Message) error {
			for _, m := range msgs {
				if m.Topic == "firebreak/demo-room/drain/b3-battery" {
					var s cutover.Signal
					_ = json.Unmarshal(m.Payload, &s)
					actions = append(actions, string(s.Action))
				}
			}
			return nil
		})
		if err != nil || len(actions) == 0 || actions[0] != string(cutover.Evacuate) {
			t.Errorf("temperatures %q: replay %v, drain actions %v; want evacuate", temp, err, actions)
		}
	}
}
