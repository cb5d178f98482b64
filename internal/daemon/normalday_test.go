package daemon_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/configs"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/sim"
)

// TestNormalDay drives the live pipeline with the simulator's perfect poller through 24 hours of
// load and HVAC cycles, as fast as the CPU allows, polling every 5 s: nothing may stage.
func TestNormalDay(t *testing.T) {
	t.Parallel()
	data, _ := configs.FS.ReadFile("sites/demo.yaml")
	cfg, err := config.Parse(data, "demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const step = 10 * time.Second
	for i := range cfg.Devices {
		cfg.Devices[i].Interval = step
	}
	sc, err := sim.LoadScenario("normal-day")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.New(cfg, sc, clock.NewManual(sim.RecordEpoch))
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	pipe := daemon.NewPipeline(cfg, daemon.PipelineOptions{BootID: "test", Key: key})
	var published int
	for el := time.Duration(0); el < sc.Duration; el += step {
		s.Advance(step)
		at := sim.RecordEpoch.Add(el + step)
		for _, dev := range s.Devices() {
			b, err := s.Read(dev, at)
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := pipe.Step(b)
			if err != nil {
				t.Fatal(err)
			}
			published += len(msgs)
			for _, m := range msgs {
				t.Errorf("at %s: %s %s", el, m.Topic, m.Payload)
			}
		}
		msgs, err := pipe.Tick(at)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			t.Errorf("at %s: %s %s", el, m.Topic, m.Payload)
		}
		if published > 20 {
			t.FailNow()
		}
	}
}
