package collectors_test

import (
	"strings"
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

// sunspecSite is a room with one SunSpec rack (unit 1) and one plain rack (unit 2), with the
// SunSpec profile's points given by points (YAML list items).
func sunspecSite(t *testing.T, points string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(`
site: sunspec
instance: fb-1
state_dir: /tmp/unused
connections: [{name: gw, url: "tcp://127.0.0.1:502", max_gap: 8}]
zones: [{name: z, cut_scope: [d]}]
domains: [{name: d, targets: [t]}]
profiles:
  - name: ss
    points:
`+points+`
devices:
  - {name: rack-01, connection: gw, unit_id: 1, profile: ss, zone: z}
  - {name: rack-02, connection: gw, unit_id: 2, profile: li-ion-rack, zone: z}
`), "sunspec.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// sunspecT0 is when the SunSpec tests' simulated rooms start.
var sunspecT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// sunspecRoom serves cfg's gateway from a simulator of sc over real Modbus TCP.
func sunspecRoom(t *testing.T, cfg *config.Config, sc *sim.Scenario) (*sim.Simulator, collectors.Reader) {
	t.Helper()
	s, err := sim.New(cfg, sc, clock.NewManual(sunspecT0))
	if err != nil {
		t.Fatal(err)
	}
	return s, hiltest.Serve(t, s, "gw")
}

const sunspecPoints = `      - {name: soc, sunspec: 802.SoC, role: soc, range: [0, 100]}
      - {name: string_voltage, sunspec: 804.V, role: string_voltage}
      - {name: cell_temp_max, sunspec: 804.ModTmpMax, role: cell_temperature}
      - {name: module_temp, sunspec: 805.CellTmpMax, role: module_temperature, repeat: {count: 4}}
      - {name: m2_cell_v, sunspec: "805[2].cell.CellV", role: cell_voltage, repeat: {count: 6}}
      - {name: over_temp, sunspec: 802.Evt1, bit: 1, role: bms_alarm}
`

// TestSunSpecDiscoveryAtEachBase: the same device laid out at 40000, 0 and 50000 is found by
// discovery at each, and every point reads what the simulator holds. The simulator's scale
// factors are -3 for cell volts and -1 for temperatures and string volts, so a collector that
// ignored them would read millivolts as volts and see it here.
func TestSunSpecDiscoveryAtEachBase(t *testing.T) {
	t.Parallel()
	cfg := sunspecSite(t, sunspecPoints)
	sc, _ := sim.LoadScenario("normal")
	s, rd := sunspecRoom(t, cfg, sc)
	s.Advance(time.Minute)
	p := &collectors.Poller{Reader: rd, Clock: clock.NewManual(sunspecT0.Add(time.Minute)), Log: zap.NewNop()}
	for _, base := range []uint16{0, 40000, 50000} {
		if err := s.MoveSunSpec("rack-01", base); err != nil {
			t.Fatal(err)
		}
		dev, err := cfg.Collector(cfg.Devices[0])
		if err != nil {
			t.Fatal(err)
		}
		var before strings.Builder
		collectors.WriteDevicePlan(&before, dev)
		if !strings.Contains(before.String(), "SunSpec models [802 804 805]: addresses found on the device at run time") {
			t.Errorf("check before discovery says %q", before.String())
		}
		b := p.Poll(dev)
		if b.Err != nil {
			t.Fatalf("base %d: %v", base, b.Err)
		}
		if _, chain := dev.SunSpec(); chain == nil || chain.Base != base {
			t.Fatalf("base %d: chain %+v", base, chain)
		}
		want, _ := s.Read("rack-01", b.At)
		if len(b.Samples) != len(want.Samples) {
			t.Fatalf("base %d: %d samples, want %d (scale-factor registers must not leak out)", base, len(b.Samples), len(want.Samples))
		}
		for i, smp := range b.Samples {
			if smp.Quality != sample.Good || smp.Value != want.Samples[i].Value || smp.Point != want.Samples[i].Point {
				t.Errorf("base %d %s: polled %v (%v), the simulator holds %s = %v", base, smp.Point, smp.Value, smp.Quality, want.Samples[i].Point, want.Samples[i].Value)
			}
		}
		for _, smp := range b.Samples {
			switch {
			case strings.HasPrefix(smp.Point, "m2_cell_v") && (smp.Value < 2.5 || smp.Value > 4.3),
				strings.HasPrefix(smp.Point, "module_temp") && (smp.Value < 15 || smp.Value > 45):
				t.Errorf("base %d %s = %v: not a plausible cell voltage or temperature (scale factor?)", base, smp.Point, smp.Value)
			}
		}
		var out strings.Builder
		collectors.WriteDevicePlan(&out, dev)
		t.Logf("base %d: %s", base, strings.SplitN(out.String(), "\n", 2)[0])
	}
}

// TestSunSpecPointsTheDeviceLacks: the profile names a fifth module and model 803, which the
// device does not have: those points read invalid, the rest good, and the plan never asks for
// them. A device without the marker is reported as not SunSpec, its points invalid, and the
// plain device on the same connection is unaffected.
func TestSunSpecPointsTheDeviceLacks(t *testing.T) {
	t.Parallel()
	served := sunspecSite(t, sunspecPoints)
	polled := sunspecSite(t, sunspecPoints+`      - {name: module5_temp, sunspec: "805[5].CellTmpMax", role: module_temperature}
      - {name: m2_cell_7, sunspec: "805[2].cell[7].CellV", role: cell_voltage}
      - {name: bank_strings, sunspec: 803.NStr}
`)
	sc, _ := sim.LoadScenario("normal")
	s, rd := sunspecRoom(t, served, sc)
	s.Advance(time.Minute)
	p := &collectors.Poller{Reader: rd, Clock: clock.NewManual(sunspecT0), Log: zap.NewNop()}
	dev, _ := polled.Collector(polled.Devices[0])
	b := p.Poll(dev)
	if b.Err != nil {
		t.Fatal(b.Err)
	}
	lacking := map[string]bool{"module5_temp": true, "m2_cell_7": true, "bank_strings": true}
	for _, smp := range b.Samples {
		want := sample.Good
		if lacking[smp.Point] {
			want = sample.Invalid
		}
		if smp.Quality != want {
			t.Errorf("%s: %v, want %v", smp.Point, smp.Quality, want)
		}
	}
	_, chain := dev.SunSpec()
	for _, r := range dev.Requests {
		if int(r.Start)+int(r.Count) > int(chain.End()) {
			t.Errorf("plan reads %d+%d, past the chain's end %d", r.Start, r.Count, chain.End())
		}
	}

	// The plain rack on unit 2 polled as a SunSpec device: it answers, but has no marker.
	plainAsSunSpec := polled.Devices[0]
	plainAsSunSpec.UnitID = 2
	dev2, _ := polled.Collector(plainAsSunSpec)
	b = p.Poll(dev2)
	if b.Err == nil || !strings.Contains(b.Err.Error(), "SunS") {
		t.Fatalf("a device without the marker: err %v, want one naming the missing 'SunS' marker", b.Err)
	}
	for _, smp := range b.Samples {
		if smp.Quality != sample.Invalid {
			t.Fatalf("%s: %v, want invalid (the device answers; it is not SunSpec)", smp.Point, smp.Quality)
		}
	}
	plain, _ := polled.Collector(polled.Devices[1])
	if b := p.Poll(plain); b.Err != nil || b.Samples[0].Quality != sample.Good {
		t.Fatalf("the plain rack beside it: %v %v", b.Err, b.Samples[0].Quality)
	}
}

// TestSunSpecFoundAgainAfterAFailure: the device goes silent (the gateway answers exception 11)
// and comes back with its models at another base, as after a firmware update; the collector
// reports comm_lost meanwhile and then finds the new layout.
func TestSunSpecFoundAgainAfterAFailure(t *testing.T) {
	t.Parallel()
	cfg := sunspecSite(t, sunspecPoints)
	sc, err := sim.LoadScenario(writeScenario(t, "  - {at: 10s, kind: bms_silent, device: rack-01, duration: 10s}"))
	if err != nil {
		t.Fatal(err)
	}
	s, rd := sunspecRoom(t, cfg, sc)
	p := &collectors.Poller{Reader: rd, Clock: clock.NewManual(sunspecT0), Log: zap.NewNop()}
	dev, _ := cfg.Collector(cfg.Devices[0])
	s.Advance(5 * time.Second)
	if b := p.Poll(dev); b.Err != nil {
		t.Fatal(b.Err)
	}
	s.Advance(10 * time.Second)
	if err := s.MoveSunSpec("rack-01", 50000); err != nil {
		t.Fatal(err)
	}
	b := p.Poll(dev)
	if b.Err == nil || b.Samples[0].Quality != sample.CommLost {
		t.Fatalf("while silent: err %v, quality %v; want comm_lost", b.Err, b.Samples[0].Quality)
	}
	s.Advance(10 * time.Second)
	b = p.Poll(dev)
	if b.Err != nil {
		t.Fatalf("after: %v", b.Err)
	}
	if _, chain := dev.SunSpec(); chain == nil || chain.Base != 50000 {
		t.Fatalf("after: chain %+v, want it found again at 50000", chain)
	}
	want, _ := s.Read("rack-01", b.At)
	for i, smp := range b.Samples {
		if smp.Quality != sample.Good || smp.Value != want.Samples[i].Value {
			t.Errorf("after: %s polled %v (%v), the simulator holds %v", smp.Point, smp.Value, smp.Quality, want.Samples[i].Value)
		}
	}
}

// TestSunSpecProfileErrors: each mistake in a SunSpec point is named with its path.
func TestSunSpecProfileErrors(t *testing.T) {
	for points, want := range map[string]string{
		`      - {name: a, sunspec: 802.Nope}`:                                      `profiles[0].points[0].sunspec: model 802 has no point "Nope"`,
		`      - {name: a, sunspec: 802.SoC, register: holding}`:                    "profiles[0].points[0].register: is given by the SunSpec definition",
		`      - {name: a, sunspec: 802.SoC, bit: 3}`:                               "only on a bitfield point",
		`      - {name: a, sunspec: 802.Evt1, bit: 32}`:                             "must be 0..31",
		`      - {name: a, sunspec: "805[2].CellTmpMax", repeat: {count: 2}}`:       "leaves no index open",
		`      - {name: a, sunspec: 805.cell.CellV, repeat: {count: 2, stride: 4}}`: "repeat.stride: is given by the SunSpec layout",
	} {
		_, err := config.Parse([]byte(`
site: s
instance: fb-1
state_dir: /tmp/unused
connections: [{name: gw, url: "tcp://127.0.0.1:502"}]
zones: [{name: z, cut_scope: [d]}]
domains: [{name: d, targets: [t]}]
profiles:
  - name: ss
    points:
`+points+`
devices: [{name: r, connection: gw, unit_id: 1, profile: ss, zone: z}]
`), "bad.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s\n  got %v\n  want %q", points, err, want)
		}
	}
}
