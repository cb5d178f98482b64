package alarms

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

func TestOneHotSensorNeverDrains(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 600; i++ { // ten minutes at a flat 58 °C: hot, but not rising
		r.quiet()
		r.rack("rack-1", 2, 58)
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageWarning {
		t.Fatalf("zone stage %v, want warning: one sensor, however hot, is not confirmation", r.zone())
	}
}

// hotRack is one poll of rack-1 with module_temp_3 at hotC and module_temp_4 following it by
// follow of its rise above the room's 25 °C (a neighbour warming with a hot cell), the rest at 25.
func (r *rig) hotRack(hotC, follow float64) {
	var ss []sample.Sample
	for i := 0; i < 8; i++ {
		v := 25.0
		switch i {
		case 2:
			v = hotC
		case 3:
			v = 25 + follow*(hotC-25)
		}
		ss = append(ss, sample.Sample{Device: "rack-1", Point: fmt.Sprintf("module_temp_%d", i+1), Role: sample.ModuleTemperature, Value: v, Quality: sample.Good, At: r.now})
	}
	r.step(sample.Batch{Device: "rack-1", At: r.now, Samples: ss})
}

// TestHotAndRisingIsConfirmed: hot (≥ 60 °C) and rising is critical when a second sensor moves
// with it (here a neighbour at 2 % of its rise, as the thermal model gives).
func TestHotAndRisingIsConfirmed(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	temp := 40.0
	for i := 0; i < 900 && r.zone() < StageCritical; i++ {
		r.quiet()
		r.hotRack(temp, 0.02)
		r.tick()
		temp += 2.0 / 60 // 2 °C/min
		r.advance(time.Second)
	}
	if r.zone() != StageCritical {
		t.Fatalf("zone stage %v at %.1f °C", r.zone(), temp)
	}
	if temp < 60 || temp > 61 {
		t.Errorf("critical at %.1f °C, want just past 60", temp)
	}
	last := r.risk[len(r.risk)-1]
	if last.To != StageCritical || len(last.Evidence) == 0 || !strings.Contains(last.Reason, "rising") || !strings.Contains(last.Reason, "module_temp_4 warming with it") {
		t.Errorf("critical without its evidence: %+v", last)
	}
}

func TestSpikeIsNotRunaway(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for _, v := range []float64{25, 25, 25, 25, 90, 25, 25, 25, 25, 25} {
		r.quiet()
		r.rack("rack-1", 2, v)
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() >= StageCritical {
		t.Fatalf("a one-sample spike staged the zone to %v", r.zone())
	}
}

func TestSustainedRiseIsRunaway(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	v := 70.0
	for i := 0; i < 8; i++ {
		r.quiet()
		r.rack("rack-1", 2, v)
		r.tick()
		v += 5
		r.advance(time.Second)
	}
	if r.zone() != StageFire {
		t.Fatalf("5 °C/s for 8 s: zone %v, want fire", r.zone())
	}
}

func TestUniformWarmingIsOneSignal(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	c := 40.0
	for i := 0; i < 3600; i++ { // an hour: every sensor of both racks from 40 to 58 °C together
		r.racksAt(c)
		r.one("gas", "offgas", "offgas_ppm", 0.4, sample.Good)
		r.one("panel", "smoke", "smoke", 0, sample.Good)
		r.tick()
		c += 18.0 / 3600
		r.advance(time.Second)
	}
	if r.zone() != StageWarning {
		t.Fatalf("uniform warming to 58 °C: zone %v, want warning (sixteen warm sensors are one signal)", r.zone())
	}
	// Gas is a second, independent signal.
	r.racksAt(c)
	r.one("gas", "offgas", "offgas_ppm", 30, sample.Good)
	if r.zone() != StageCritical {
		t.Fatalf("uniform warmth plus off-gas: zone %v, want critical", r.zone())
	}
}

func TestHotCellInAWarmRoomStillStandsOut(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 120; i++ {
		r.quiet()
		// rack-1: one module at 57 °C while its peers sit at 25.
		r.rack("rack-1", 4, 57)
		r.tick()
		r.advance(time.Second)
	}
	got := r.e.conds["rack-1.module_temp_5.temp_high"]
	if got == nil || strings.HasPrefix(got.source, "uniform:") {
		t.Fatalf("a cell 32 °C above its peers was taken for uniform warming: %+v", got)
	}
}

func TestWidelySpreadRackDoesNotSingleOutItsWarmest(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 60; i++ {
		var ss []sample.Sample
		// A rack with a strong top-to-bottom gradient (airflow): 22 … 36 °C. The top module is 7 °C
		// above the median, but no more unusual than the rest of the spread.
		for m := 0; m < 8; m++ {
			ss = append(ss, sample.Sample{Device: "rack-1", Point: fmt.Sprintf("module_temp_%d", m+1), Role: "module_temperature", Value: 22 + 2*float64(m), Quality: sample.Good, At: r.now})
		}
		r.quiet()
		r.step(sample.Batch{Device: "rack-1", At: r.now, Samples: ss})
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageNormal {
		t.Fatalf("a rack's airflow gradient was taken for a hot module: zone %v, %+v", r.zone(), r.e.Alarms())
	}
}

// TestHotAndRisingAloneIsOneSensor: the same climb with nothing moving with it (its neighbours and
// the room flat) is one sensor: at most a warning, however hot and however fast.
func TestHotAndRisingAloneIsOneSensor(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	temp := 40.0
	for i := 0; i < 1500; i++ { // to 90 °C
		r.quiet()
		r.hotRack(temp, 0)
		r.tick()
		temp += 2.0 / 60
		r.advance(time.Second)
	}
	if r.zone() != StageWarning {
		t.Fatalf("a lone climb to %.0f °C staged the zone to %v, want warning: %+v", temp, r.zone(), r.risk[len(r.risk)-1])
	}
}

// TestHotAndRisingOnAStarvedLink: the demo's bad day on a busy machine. The rack is configured at
// 1 s, but its link stalls (a poll timing out holds up every device behind it): readings come
// 25 to 40 s apart, under the live no-data grace, so the rack is not silent, only sparse. A hot,
// rising, confirmed cell must still be critical near 60 °C, not left at warning until the gas
// comes (before the fix a trend needed five readings in the 2-minute window).
func TestHotAndRisingOnAStarvedLink(t *testing.T) {
	t.Parallel()
	r := &rig{t: t, e: New(topo(), DefaultThresholds(), LivePoller()), now: t0}
	temp := 40.0
	gaps := []time.Duration{25 * time.Second, 40 * time.Second, 29 * time.Second, 36 * time.Second}
	for i := 0; i < 200 && r.zone() < StageCritical; i++ {
		r.quiet()
		r.hotRack(temp, 0.02)
		r.tick()
		g := gaps[i%len(gaps)]
		temp += 2.6 * g.Minutes() // the demo's 2.6 °C/min
		r.advance(g)
	}
	if r.zone() != StageCritical {
		t.Fatalf("zone stage %v at %.1f °C on a sparse link, want critical: %+v", r.zone(), temp, r.risk)
	}
	if temp > 66 {
		t.Errorf("critical only at %.1f °C, want within a few readings of 60 °C", temp)
	}
	for _, c := range r.risk {
		if strings.Contains(c.Reason, "no data") {
			t.Errorf("a sparse but answering link raised %q", c.Reason)
		}
	}
}

// TestHotAndRisingOnATimingOutLink: the demo's worst day on a loaded machine. Its polls time out
// (a second of real time is 30 s of scenario time at 30x) and the poller rests the link, so the
// rack's readings come a minute apart or more: the 2-minute window holds two of them. The trend
// rests on the last three readings whatever their spacing, so the hot, rising, confirmed cell is
// still critical near 60 °C (it stayed at warning until the off-gas came, 6 minutes before runaway).
func TestHotAndRisingOnATimingOutLink(t *testing.T) {
	t.Parallel()
	r := &rig{t: t, e: New(topo(), DefaultThresholds(), LivePoller()), now: t0}
	temp := 40.0
	gaps := []time.Duration{61 * time.Second, 65 * time.Second, 70 * time.Second}
	for i := 0; i < 100 && r.zone() < StageCritical; i++ {
		r.quiet()
		r.hotRack(temp, 0.02)
		r.tick()
		g := gaps[i%len(gaps)]
		temp += 2.6 * g.Minutes()
		r.advance(g)
	}
	if r.zone() != StageCritical {
		t.Fatalf("zone stage %v at %.1f °C with readings a minute apart, want critical", r.zone(), temp)
	}
	if temp > 70 {
		t.Errorf("critical only at %.1f °C, want within a few readings of 60 °C", temp)
	}
}
