package collectors_test

import (
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/sim"
)

// TestShippedProfilesAgainstTheSimulator serves a room built from every shipped profile and polls
// each device over real Modbus TCP: every point decodes to what the simulator holds, good.
func TestShippedProfilesAgainstTheSimulator(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(`
site: profiles
instance: fb-1
state_dir: /tmp/unused
connections: [{name: gw, url: "tcp://127.0.0.1:502", max_gap: 16}]
zones: [{name: z, cut_scope: [d]}]
domains: [{name: d, targets: [t]}]
devices:
  - {name: rack-01, connection: gw, unit_id: 1, profile: li-ion-rack-8x16, zone: z}
  - {name: rack-02, connection: gw, unit_id: 2, profile: li-ion-rack, zone: z}
  - {name: ups-a, connection: gw, unit_id: 10, profile: apc-smart-ups, zone: z}
  - {name: ups-b, connection: gw, unit_id: 11, profile: ups-basic, zone: z}
  - {name: gas-1, connection: gw, unit_id: 20, profile: gas-4-20ma, zone: z}
  - {name: gas-2, connection: gw, unit_id: 21, profile: gas-detector, zone: z}
  - {name: panel-1, connection: gw, unit_id: 30, profile: fire-panel, zone: z}
  - {name: rack-03, connection: gw, unit_id: 3, profile: sunspec-li-ion, zone: z}
`), "profiles.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(cfg.ProfileNames()), 8; got != want {
		t.Errorf("%d built-in profiles %v, this test covers %d: add the new one here", got, cfg.ProfileNames(), want)
	}
	sc, _ := sim.LoadScenario("normal")
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := sim.New(cfg, sc, clock.NewManual(at))
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(time.Minute)
	rd := hiltest.Serve(t, s, "gw")
	p := &collectors.Poller{Reader: rd, Clock: clock.NewManual(at), Log: zap.NewNop()}
	for _, d := range cfg.Devices {
		dev, err := cfg.Collector(d)
		if err != nil {
			t.Fatal(err)
		}
		b := p.Poll(dev)
		if b.Err != nil {
			t.Fatalf("%s (%s): %v", d.Name, d.Profile, b.Err)
		}
		want, _ := s.Read(d.Name, b.At)
		for i, smp := range b.Samples {
			if smp.Quality != sample.Good || smp.Value != want.Samples[i].Value {
				t.Errorf("%s (%s) %s: polled %v (%v), the simulator holds %v", d.Name, d.Profile, smp.Point, smp.Value, smp.Quality, want.Samples[i].Value)
			}
		}
		st := collectors.Stats(dev.Points, dev.Requests)
		t.Logf("%-16s %3d points, %d requests per cycle, %3d registers read, %d discarded", d.Profile, len(dev.Points), st.Requests, st.Read, st.Discarded)
	}
}
