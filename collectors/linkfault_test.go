package collectors_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/sim"
)

// TestScenarioLinkFaults: a scenario file schedules link faults; the simulator's listener then
// applies them to that unit only, for their duration.
func TestScenarioLinkFaults(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "links.yaml")
	if err := os.WriteFile(path, []byte(`name: links
description: rack-02's gateway path fails for twenty seconds, then recovers
duration: 2m
seed: 1
chemistry: nmc
ambient_c: 24
ups_load_pct: 45
events:
  - {at: 0s, kind: link_exception, device: rack-02, code: 4, duration: 20s}
expect: {max_stage: 0}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	sc, err := sim.LoadScenario(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := hiltest.DemoSite(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := sim.New(cfg, sc, clock.NewManual(at))
	if err != nil {
		t.Fatal(err)
	}
	rd := hiltest.Serve(t, s, "gw-1")
	s.Advance(5 * time.Second)
	p := &collectors.Poller{Reader: rd, Clock: clock.NewManual(at), Log: zap.NewNop()}
	poll := func(name string) sample.Batch {
		for _, d := range cfg.Devices {
			if d.Name == name {
				dev, _ := cfg.Collector(d)
				return p.Poll(dev)
			}
		}
		t.Fatalf("no device %s", name)
		return sample.Batch{}
	}
	if b := poll("rack-02"); b.Err != nil || b.Samples[0].Quality != sample.Invalid {
		t.Fatalf("rack-02 during its fault: err %v, quality %v, want exception 4 as invalid points", b.Err, b.Samples[0].Quality)
	}
	if b := poll("rack-01"); b.Err != nil || b.Samples[0].Quality != sample.Good {
		t.Fatalf("rack-01 beside it: err %v, quality %v", b.Err, b.Samples[0].Quality)
	}
	s.Advance(30 * time.Second)
	if b := poll("rack-02"); b.Err != nil || b.Samples[0].Quality != sample.Good {
		t.Fatalf("rack-02 after its fault: err %v, quality %v", b.Err, b.Samples[0].Quality)
	}
	if _, err := sim.LoadScenario(writeScenario(t, "  - {at: 0s, kind: link_late, device: rack-02}")); err == nil {
		t.Fatal("link_late without a delay was accepted")
	}
}

func writeScenario(t *testing.T, event string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bad.yaml")
	body := "name: bad\ndescription: x\nduration: 1m\nseed: 1\nchemistry: nmc\nambient_c: 24\nups_load_pct: 45\nevents:\n" + event + "\nexpect: {max_stage: 0}\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
