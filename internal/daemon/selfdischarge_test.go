package daemon_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/sim"
	"github.com/firebreak-dc/firebreak/internal/trace"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// floatScenarios are the days-long scenarios of the self_discharge detector.
var floatScenarios = []string{"float-leak-nmc", "float-leak-lfp", "float-normal", "float-micro-short"}

// floatRun is what a replay of a recorded float scenario raised.
type floatRun struct {
	start    time.Time
	raised   map[string]alarms.Alarm // self_discharge alarms at activation, by id
	last     map[string]alarms.Alarm // and as last updated
	maxStage int
	reasons  []string // the zone's stage changes above normal
	truth    []sim.GroundTruth
}

// replayFloat records a scenario as a perfect poller at its HIL interval would have read it,
// and replays the trace through the daemon's pipeline: days of float in seconds, nothing live.
func replayFloat(t testing.TB, name string, edit func(*config.Config)) (*sim.Scenario, floatRun) {
	t.Helper()
	sc, err := sim.LoadScenario(name)
	if err != nil {
		t.Fatal(err)
	}
	return sc, replayScenario(t, sc, edit)
}

// replayScenario is replayFloat of a scenario in hand.
func replayScenario(t testing.TB, sc *sim.Scenario, edit func(*config.Config)) floatRun {
	t.Helper()
	name := sc.Name
	cfg, err := sim.SiteConfig(sc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Devices {
		if sc.HIL.Interval > 0 {
			cfg.Devices[i].Interval = sc.HIL.Interval
		}
	}
	if sc.HIL.NoDataGrace > 0 {
		cfg.Detection.NoDataGrace = sc.HIL.NoDataGrace
	}
	if edit != nil {
		edit(cfg)
	}
	var buf bytes.Buffer
	truth, err := sim.Record(cfg, sc, &buf)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := trace.NewReader(&buf, name+".csv", cfg.RegisterMaps())
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	pipe := daemon.NewPipeline(cfg, daemon.PipelineOptions{BootID: "replay", Key: key})
	run := floatRun{start: sim.RecordEpoch, raised: map[string]alarms.Alarm{}, last: map[string]alarms.Alarm{}, truth: truth}
	err = daemon.Replay(context.Background(), tr, pipe, func(_ time.Time, msgs []wire.Message) error {
		for _, m := range msgs {
			if m.Risk != nil {
				run.maxStage = max(run.maxStage, m.Risk.Stage)
				if m.Risk.Change != nil && m.Risk.Stage > 0 {
					run.reasons = append(run.reasons, fmt.Sprintf("T+%s stage %d: %s", m.Risk.TS.Sub(run.start).Round(time.Minute), m.Risk.Stage, m.Risk.Reason))
				}
			}
			if ev := m.Event; ev != nil && ev.Alarm.Detector == string(alarms.SelfDischarge) {
				if _, seen := run.raised[ev.Alarm.ID]; !seen && ev.Cause == alarms.CauseActivate {
					run.raised[ev.Alarm.ID] = ev.Alarm
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Updates of an alarm's value are no events: its estimate as it stands at the end is the
	// engine's.
	for _, a := range pipe.Alarms() {
		if a.Detector == string(alarms.SelfDischarge) && a.Active {
			run.last[a.ID] = a
		}
	}
	return run
}

// judgeFloat checks a run against the scenario's expect: which self_discharge alarms, by when,
// with what estimate.
func judgeFloat(t *testing.T, sc *sim.Scenario, raisedAt func(id string) (time.Duration, float64, string, bool), all []string) {
	t.Helper()
	want := map[string]bool{}
	for _, l := range sc.Expect.SelfDischarge {
		want[l.ID] = true
		at, leak, text, ok := raisedAt(l.ID)
		if !ok {
			t.Errorf("%s: %s was never raised", sc.Name, l.ID)
			continue
		}
		t.Logf("%s: %s raised at T+%s: %s", sc.Name, l.ID, at.Round(time.Minute), text)
		if l.LeakMA > 0 && (leak < l.LeakMA/2 || leak > l.LeakMA*2) {
			t.Errorf("%s: %s estimates %.1f mA; the leak is %g mA (a factor of 2 allowed)", sc.Name, l.ID, leak, l.LeakMA)
		}
	}
	for _, id := range all {
		if !want[id] {
			_, _, text, _ := raisedAt(id)
			t.Errorf("%s: %s raised, and the scenario has no leak there: %s", sc.Name, id, text)
		}
	}
	for _, a := range sc.Expect.Alarms {
		if !strings.HasSuffix(a.ID, "."+string(alarms.SelfDischarge)) {
			continue
		}
		if at, _, _, ok := raisedAt(a.ID); ok && at > a.By {
			t.Errorf("%s: %s raised at T+%s, the scenario expects it by T+%s", sc.Name, a.ID, at.Round(time.Minute), a.By)
		}
	}
}

// TestSelfDischargeReplay plays each float scenario (days of float, a leak or none) as a recorded
// trace through replay, and judges it by its expect: the leak found in time with its estimate
// within a factor of 2, and no self_discharge alarm anywhere else (the offset module, the float
// change, the self-tests, two weeks of normal float).
func TestSelfDischargeReplay(t *testing.T) {
	t.Parallel()
	for _, name := range floatScenarios {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sc, run := replayFloat(t, name, nil)
			var all []string
			for id := range run.raised {
				all = append(all, id)
			}
			judgeFloat(t, sc, func(id string) (time.Duration, float64, string, bool) {
				a, ok := run.raised[id]
				if !ok {
					return 0, 0, "", false
				}
				// When it was raised; its estimate as it stood last (a window's worth of
				// falling hours makes it).
				l := run.last[id]
				return a.Since.Sub(run.start), l.Value, a.Text + " … last: " + l.Text, true
			}, all)
			if run.maxStage != sc.Expect.MaxStage {
				t.Errorf("%s: highest zone stage %d, the scenario expects %d:\n%s", name, run.maxStage, sc.Expect.MaxStage, strings.Join(run.reasons, "\n"))
			}
		})
	}
}

// TestSelfDischargeSurvivesARestart replays float-leak-nmc into one pipeline up to T+90h (the
// leak found at about T+75h), keeps what a daemon keeps in state_dir (the alarm snapshot and the
// self-discharge history, each as last persisted), and goes on from there in a new pipeline. With
// the history restored the alarm stands through the restart and its estimate holds; without it
// (the counter-check) the restored alarm clears for want of a condition, so the test can fail.
func TestSelfDischargeSurvivesARestart(t *testing.T) {
	t.Parallel()
	sc, err := sim.LoadScenario("float-leak-nmc")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := sim.SiteConfig(sc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Devices {
		cfg.Devices[i].Interval = sc.HIL.Interval
	}
	cfg.Detection.NoDataGrace = sc.HIL.NoDataGrace
	var buf bytes.Buffer
	if _, err := sim.Record(cfg, sc, &buf); err != nil {
		t.Fatal(err)
	}
	cut := sim.RecordEpoch.Add(90 * time.Hour)
	const id = "rack-02.cell_v_33.self_discharge"
	_, key, _ := ed25519.GenerateKey(nil)
	run := func(restore bool) (clearedAfter bool, last alarms.Alarm) {
		tr, err := trace.NewReader(bytes.NewReader(buf.Bytes()), "float-leak-nmc.csv", cfg.RegisterMaps())
		if err != nil {
			t.Fatal(err)
		}
		var snap alarms.Snapshot
		var history []byte
		opts := daemon.PipelineOptions{BootID: "one", Key: key,
			PersistAlarms:        func(s alarms.Snapshot) error { snap = s; return nil },
			PersistSelfDischarge: func(b []byte) { history = b }}
		pipe := daemon.NewPipeline(cfg, opts)
		second := false
		err = daemon.Replay(context.Background(), tr, pipe, func(ts time.Time, msgs []wire.Message) error {
			if second {
				for _, m := range msgs {
					if ev := m.Event; ev != nil && ev.Alarm.ID == id && ev.Cause == alarms.CauseClear {
						clearedAfter = true
					}
				}
				return nil
			}
			if !ts.Before(cut) {
				// The restart: what state_dir holds goes into a new pipeline, which the rest of
				// the trace drives.
				second = true
				if len(history) == 0 || len(snap.Alarms) == 0 {
					t.Fatalf("nothing persisted by T+90h: %d bytes of history, %d alarms", len(history), len(snap.Alarms))
				}
				next := daemon.NewPipeline(cfg, daemon.PipelineOptions{BootID: "two", Key: key})
				if err := next.Restore(snap, ts); err != nil {
					t.Fatal(err)
				}
				if restore {
					if err := next.RestoreSelfDischarge(history, ts); err != nil {
						t.Fatal(err)
					}
				}
				*pipe = *next
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range pipe.Alarms() {
			if a.ID == id {
				last = a
			}
		}
		return clearedAfter, last
	}
	cleared, last := run(true)
	if cleared || !last.Active {
		t.Fatalf("with its history restored the leak's alarm must stand through the restart: cleared %v, at the end %+v", cleared, last)
	}
	if last.Value < 5 || last.Value > 20 {
		t.Errorf("after the restart the estimate is %.1f mA; the leak is 10 mA", last.Value)
	}
	t.Logf("after a restart at T+90h: %s", last.Text)
	if cleared, _ := run(false); !cleared {
		t.Errorf("counter-check: without the history the restored alarm should have cleared after the restart (it did not: the test proves nothing)")
	}
}

// BenchmarkSelfDischargeSensitivity is docs/design.md's table of the smallest leak found: a
// constant leak from day 1 in one cell of rack-02 (module 3), at the 1 mV resolution of the
// BMS's registers, polled every 10 minutes, for NMC and LFP; how long after the leak started its
// alarm came, and the estimate at the end. Run it with
// go test -run '^$' -bench SelfDischargeSensitivity -benchtime 1x ./internal/daemon/
func BenchmarkSelfDischargeSensitivity(b *testing.B) {
	for range b.N {
		for _, chem := range []string{"nmc", "lfp"} {
			for _, ma := range []float64{2, 3, 5, 7, 10, 15, 20, 30, 50} {
				sc, err := sim.LoadScenario("float-leak-nmc")
				if err != nil {
					b.Fatal(err)
				}
				sc.Chemistry, sc.Duration = chem, 240*time.Hour
				sc.Events[0].LeakMA, sc.Events[0].MaxMA = ma, ma
				run := replayScenario(b, sc, nil)
				const id = "rack-02.cell_v_33.self_discharge"
				a, ok := run.raised[id]
				found := "not within 9 days"
				if ok {
					found = fmt.Sprintf("%.1f days", a.Since.Sub(run.start.Add(24*time.Hour)).Hours()/24)
				}
				others := len(run.raised)
				if ok {
					others--
				}
				// Printed, not logged: a benchmark's log keeps ten lines.
				fmt.Printf("self_discharge %s %4.0f mA: found %-18s estimate at the end %5.1f mA; other modules raised: %d\n", chem, ma, found, run.last[id].Value, others)
			}
		}
	}
}
