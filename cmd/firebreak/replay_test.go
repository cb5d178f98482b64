package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/configs"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/kpi"
	"github.com/firebreak-dc/firebreak/internal/sim"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// recordAndReplay records a scenario with the simulator's perfect poller, replays it through
// `firebreak replay` and returns the lines and the ground truth.
func recordAndReplay(t *testing.T, scenario string) ([]replayLine, []sim.GroundTruth) {
	t.Helper()
	dir := t.TempDir()
	sc, err := sim.LoadScenario(scenario)
	if err != nil {
		t.Fatal(err)
	}
	siteName := sc.Site
	if siteName == "" {
		siteName = "demo"
	}
	data, _ := configs.FS.ReadFile("sites/" + siteName + ".yaml")
	if sc.Step >= time.Minute && sc.HIL.Interval > 0 {
		// Days of float are recorded as the HIL suite polls them (its hil.interval): a poll a
		// minute of 14 days of 8 × 16 cells is twelve million rows, which says nothing more.
		data = regexp.MustCompile(`interval: [0-9a-z]+`).ReplaceAll(data, []byte("interval: "+sc.HIL.Interval.String()))
	}
	site := filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(site, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(site)
	if err != nil {
		t.Fatal(err)
	}
	tracePath := filepath.Join(dir, "trace.csv")
	f, err := os.Create(tracePath)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	truth, err := sim.Record(cfg, sc, bw)
	if err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	f.Close()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"replay", "-config", site, "-in", tracePath}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var lines []replayLine
	sc2 := bufio.NewScanner(&out)
	sc2.Buffer(make([]byte, 1<<20), 1<<20)
	for sc2.Scan() {
		var l replayLine
		if err := json.Unmarshal(sc2.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc2.Text(), err)
		}
		var raw struct {
			Payload json.RawMessage `json:"payload"`
		}
		_ = json.Unmarshal(sc2.Bytes(), &raw)
		l.Raw = raw.Payload
		lines = append(lines, l)
	}
	return lines, truth
}

type replayLine struct {
	TS      time.Time       `json:"ts"`
	Topic   string          `json:"topic"`
	Raw     json.RawMessage `json:"-"` // the payload as printed
	Payload struct {
		Stage  int       `json:"stage"` // of a risk message: the zone's, whatever changed
		Action string    `json:"action"`
		Sig    string    `json:"sig"`
		Cause  string    `json:"cause"`
		At     time.Time `json:"at"`
		Alarm  struct {
			ID     string `json:"id"`
			Device string `json:"device"`
		} `json:"alarm"`
	} `json:"payload"`
}

func TestReplayInternalShortLeadTimes(t *testing.T) {
	t.Parallel()
	lines, truth := recordAndReplay(t, "internal-short")
	var runaway time.Time
	for _, e := range truth {
		if e.Kind == "runaway" {
			runaway = e.At
		}
	}
	if runaway.IsZero() {
		t.Fatal("the recorded scenario has no runaway")
	}
	first := map[int]time.Time{}
	drains := 0
	for i, l := range lines {
		if i > 0 && l.TS.Before(lines[i-1].TS) {
			t.Fatalf("line %d out of time order", i+1)
		}
		if strings.Contains(l.Topic, "/risk/") {
			if _, ok := first[l.Payload.Stage]; !ok {
				first[l.Payload.Stage] = l.TS
			}
		}
		if strings.Contains(l.Topic, "/drain/") && !strings.HasSuffix(l.Topic, "/status") {
			drains++
			if l.Payload.Sig == "" {
				t.Fatal("replayed drain signal is not signed")
			}
		}
	}
	lead2, lead3 := runaway.Sub(first[2]), runaway.Sub(first[3])
	t.Logf("replay internal-short: stage 2 %s and stage 3 %s before runaway", lead2.Round(time.Second), lead3.Round(time.Second))
	if first[2].IsZero() || lead2 < 20*time.Minute {
		t.Errorf("stage 2 %s before runaway, want at least 20 min", lead2)
	}
	if first[3].IsZero() || lead3 < 10*time.Minute {
		t.Errorf("stage 3 %s before runaway, want at least 10 min", lead3)
	}
	if first[4].IsZero() || first[4].Before(runaway.Add(-time.Minute)) {
		t.Errorf("stage 4 at %v, runaway at %v", first[4], runaway)
	}
	if drains == 0 {
		t.Error("no drain signal in the replay")
	}
	// A flood is bounded: one rack burning from first drift to runaway raises a bounded set of
	// alarms (its hot NTCs' detectors, the voltage collapse, the BMS's own word), not one per
	// sample or per cell.
	alarmsOf := map[string]map[string]bool{}
	for _, l := range lines {
		if strings.HasSuffix(l.Topic, "/events") {
			if alarmsOf[l.Payload.Alarm.Device] == nil {
				alarmsOf[l.Payload.Alarm.Device] = map[string]bool{}
			}
			alarmsOf[l.Payload.Alarm.Device][l.Payload.Alarm.ID] = true
		}
	}
	total := 0
	for _, ids := range alarmsOf {
		total += len(ids)
	}
	t.Logf("replay internal-short: %d alarms for the burning rack, %d in the room", len(alarmsOf["rack-03"]), total)
	if len(alarmsOf["rack-03"]) > 16 || total > 25 {
		t.Errorf("alarm flood: %d alarms for rack-03, %d in all", len(alarmsOf["rack-03"]), total)
	}
}

// TestReplayEveryScenario checks the outcome each scenario file writes down on its recorded trace
// (normal-day's 24 hours run through the pipeline in internal/daemon's TestNormalDay instead, and
// the LFP leak and the growing micro short, days each, in internal/floattest: the CLI
// plays two weeks of float in float-normal and a leak in float-leak-nmc).
func TestReplayEveryScenario(t *testing.T) {
	t.Parallel()
	elsewhere := map[string]bool{"normal-day": true, "float-leak-lfp": true, "float-micro-short": true}
	for _, name := range sim.BuiltinScenarios() {
		if elsewhere[name] {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sc, err := sim.LoadScenario(name)
			if err != nil {
				t.Fatal(err)
			}
			lines, truth := recordAndReplay(t, name)
			var runaway, firstPanel time.Time
			for _, e := range truth {
				switch e.Kind {
				case "runaway":
					runaway = e.At
				case "smoke", "heat", "suppression_released", "fire_alarm":
					if firstPanel.IsZero() {
						firstPanel = e.At
					}
				}
			}
			maxStage := 0
			var drainAt time.Time
			detectors := map[string]bool{}
			raised := map[string]time.Time{} // alarm id → first activation
			for _, l := range lines {
				switch {
				case strings.Contains(l.Topic, "/risk/"):
					maxStage = max(maxStage, l.Payload.Stage)
				case strings.Contains(l.Topic, "/drain/"):
					if drainAt.IsZero() && (l.Payload.Action == "drain" || l.Payload.Action == "evacuate") {
						drainAt = l.TS
					}
				case strings.HasSuffix(l.Topic, "/events"):
					id := l.Payload.Alarm.ID
					detectors[id[strings.LastIndex(id, ".")+1:]] = true
					if _, seen := raised[id]; !seen && l.Payload.Cause == "activate" {
						raised[id] = l.Payload.At
					}
				}
			}
			if maxStage != sc.Expect.MaxStage {
				t.Errorf("highest stage %d, the scenario expects %d", maxStage, sc.Expect.MaxStage)
			}
			if !drainAt.IsZero() != sc.Expect.Drain {
				t.Fatalf("drain %v, the scenario expects %v", !drainAt.IsZero(), sc.Expect.Drain)
			}
			if sc.Expect.MinDrainLead > 0 && runaway.Sub(drainAt) < sc.Expect.MinDrainLead {
				t.Errorf("drain %s before runaway, the scenario expects at least %s", runaway.Sub(drainAt), sc.Expect.MinDrainLead)
			}
			if sc.Expect.MaxDrainDelay > 0 && drainAt.Sub(firstPanel) > sc.Expect.MaxDrainDelay {
				t.Errorf("drain %s after the first fire-panel signal, the scenario allows %s", drainAt.Sub(firstPanel), sc.Expect.MaxDrainDelay)
			}
			if name == "sensor-faults" {
				// The silent rack leaves no rows in a trace: replay knows it as no_data (live, comm_lost).
				for _, d := range []string{"stuck", "sensor_fault", "flapping", "no_data"} {
					if !detectors[d] {
						t.Errorf("the %s fault was not raised as such (raised: %v)", d, detectors)
					}
				}
			}
			if limit := sc.Expect.MaxNewAlarms10m; limit > 0 {
				until := runaway
				if until.IsZero() {
					until = sim.RecordEpoch.Add(sc.Duration + time.Minute)
				}
				if n := newAlarmsPeak(lines, until); n > limit {
					t.Errorf("%d new alarms within 10 minutes before the runaway; the scenario allows %d", n, limit)
				}
			}
			for _, want := range sc.Expect.Alarms {
				at, ok := raised[want.ID]
				if !ok || at.Sub(sim.RecordEpoch) > want.By {
					t.Errorf("alarm %s raised %v (at T+%s), the scenario expects it by T+%s", want.ID, ok, at.Sub(sim.RecordEpoch), want.By)
				}
			}
			switch {
			case sc.Expect.MaxDrainDelay > 0:
				t.Logf("replay %s: drain %s after the first fire-panel signal", name, drainAt.Sub(firstPanel).Round(time.Second))
			case !drainAt.IsZero() && !runaway.IsZero():
				t.Logf("replay %s: drain %s before runaway", name, runaway.Sub(drainAt).Round(time.Second))
			}
		})
	}
}

// newAlarmsPeak is the most new alarms in any 10 minutes before until, as internal/kpi counts
// them (one suppressed by design as it is raised was never annunciated).
func newAlarmsPeak(lines []replayLine, until time.Time) int {
	s := kpi.New()
	for _, l := range lines {
		if !strings.HasSuffix(l.Topic, "/events") {
			continue
		}
		var ev wire.EventPayload
		if json.Unmarshal(l.Raw, &ev) == nil {
			s.Observe(l.TS, []wire.Message{{Event: &ev}})
		}
	}
	return s.PeakBefore(until)
}

func TestRecordIsDeterministic(t *testing.T) {
	t.Parallel()
	data, _ := configs.FS.ReadFile("sites/demo.yaml")
	cfg, _ := config.Parse(data, "demo.yaml")
	sc, _ := sim.LoadScenario("normal")
	sc.Duration = 2 * time.Minute
	var a, b bytes.Buffer
	if _, err := sim.Record(cfg, sc, &a); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Record(cfg, sc, &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) || a.Len() < 1000 {
		t.Fatalf("two recordings with one seed differ (%d vs %d bytes)", a.Len(), b.Len())
	}
	sc.Seed++
	var c bytes.Buffer
	sim.Record(cfg, sc, &c)
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("another seed gave the same trace: the noise is not seeded")
	}
}

// TestReplayHostileTraces: `firebreak replay` refuses issue 13's traces with exit code 2 and the
// line that is wrong (before, a NaN made it exit 1 because the drain signal could not be encoded,
// and a time of year 1 or an empty one made it loop for hours).
func TestReplayHostileTraces(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	site := demoSiteFile(t, dir)
	const h, row = "time,device,point,value\n", "2022-10-15T15:00:00Z,panel-1,fire_alarm,true\n"
	for in, want := range map[string]string{
		h + "2022-10-15T15:00:00Z,rack-01,module_temp_1,NaN\n" + row: `trace.csv:2: value "NaN" of rack-01.module_temp_1 is not a number`,
		h + "-1000,panel-1,fire_alarm,true\n" + row:                  `trace.csv:2: time "-1000": is outside 1970..2200`,
		h + "0001-01-01T00:00:00Z,panel-1,fire_alarm,true\n" + row:   `trace.csv:2: time "0001-01-01T00:00:00Z": is outside`,
		h + ",panel-1,fire_alarm,true\n" + row:                       `trace.csv:2: time "": is empty`,
		h + row + "\n" + row:                                         `trace.csv:3: empty line`,
	} {
		path := filepath.Join(dir, "trace.csv")
		if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
			t.Fatal(err)
		}
		err := run(context.Background(), []string{"replay", "-config", site, "-in", path}, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: exit %d, %v; want 2 with %q", in, exitCode(err), err, want)
		}
	}
}

// TestReplayStopsOnSIGTERM: a replay busy ticking through a long trace stops at the first
// SIGTERM (exit 1, "shutting down") instead of running to its end (exit 0). Issue 13: a replay
// looping through a trace's times went on for 10 minutes after SIGTERM.
func TestReplayStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	site := demoSiteFile(t, dir)
	// 31 days, one row a day: about a minute of ticks under the race detector, nearly all of it
	// inside the tick loop between two rows.
	var b strings.Builder
	b.WriteString("time,device,point,value\n")
	for d := 0; d < 31; d++ {
		fmt.Fprintf(&b, "%s,panel-1,fire_alarm,false\n", time.Date(2022, 10, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(d)*24*time.Hour).Format(time.RFC3339))
	}
	in, out := filepath.Join(dir, "trace.csv"), filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startFirebreak(t, "replay", "-config", site, "-in", in, "-out", out)
	hiltest.WaitFor(t, time.Minute, "replay to open its output", func() bool { _, err := os.Stat(out); return err == nil })
	p.Signal(syscall.SIGTERM)
	select {
	case err := <-p.Exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !p.Said("shutting down") {
			t.Fatalf("replay after SIGTERM: %v (want exit 1 after 'shutting down'); stderr: %v", err, p.Lines())
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("replay still running 3 minutes after SIGTERM")
	}
}

// demoSiteFile writes the demo site's config into dir and returns its path.
func demoSiteFile(t *testing.T, dir string) string {
	t.Helper()
	data, _ := configs.FS.ReadFile("sites/demo.yaml")
	site := filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(site, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return site
}
