package daemon_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/kpi"
	"github.com/firebreak-dc/firebreak/internal/sim"
	"github.com/firebreak-dc/firebreak/internal/testenv"
	"github.com/firebreak-dc/firebreak/internal/trace"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// hilRooms is how many scenarios run at once. Each scenario runs at its file's hil.speed (50× by
// default: scenario time that much faster than real time, on one clock shared by simulator and
// daemon, so detector windows and physics see the same seconds). A room polls 35 requests per
// scenario second, i.e. every 20 ms of real time at 50×; on a 2-core machine under the race detector more rooms than
// this make the pollers fall behind, and the daemon then rightly reports stale data (stage 1).
const hilRooms = 3

// hilScenarios is every built-in scenario, the longest first.
var hilScenarios = []string{"normal-day", "float-leak-nmc", "internal-short", "bus-glitch", "frozen-gateway", "frozen-block", "drifting-ntc", "hvac-failure-full", "normal", "sudden-fire", "sensor-faults",
	"bms-silent-fire", "ups-discharge", "lfp-internal-short", "hvac-failure"}

// replayOnly are the scenarios the HIL suite leaves to replay, and where: days of float at 6,000x
// (the most a race-built daemon beside a CPU hog keeps up with) are minutes each, which a suite on
// two cores cannot spare for all four. float-leak-nmc plays here (five days: the leak found, and
// nothing raised on the 31 healthy modules beside it); the LFP leak, the growing micro short and
// two weeks of float with an offset module, a float change and self-tests play through the same
// pipeline in replay.
var replayOnly = map[string]string{"float-micro-short": "internal/floattest", "float-leak-lfp": "internal/floattest",
	"float-normal": "internal/floattest and cmd/firebreak's TestReplayEveryScenario"}

// TestHIL runs each scenario through the whole chain: simulator over real Modbus TCP → daemon →
// real Mosquitto → a control-plane subscriber that verifies each drain signal, and asserts the
// outcome the scenario file writes down.
func TestHIL(t *testing.T) {
	broker := testenv.Mosquitto(t)
	for _, name := range sim.BuiltinScenarios() {
		known := replayOnly[name] != ""
		for _, h := range hilScenarios {
			known = known || h == name
		}
		if !known {
			t.Errorf("scenario %s is in configs/scenarios but not in the HIL suite", name)
		}
	}
	rooms := newRoomQueue(hilRooms)
	for _, name := range hilScenarios {
		t.Run(name, func(t *testing.T) {
			turn := rooms.ticket() // before Parallel: subtests that -run selects take theirs in order
			t.Parallel()
			rooms.enter(turn)
			defer rooms.leave()
			speed := 0.0 // the scenario's hil.speed
			for attempt := 0; ; attempt++ {
				starved := runHIL(t, broker, name, speed, attempt)
				if starved == "" {
					return
				}
				if attempt == hilRetries {
					t.Fatalf("HIL %s: starved at every speed down to %.0fx (%s): this machine cannot run the scenario at a speed its detector windows need", name, speed, starved)
				}
				sc, err := sim.LoadScenario(name)
				if err != nil {
					t.Fatal(err)
				}
				speed = sc.HIL.Speed / float64(int(2)<<attempt)
				t.Logf("HIL %s: the machine could not keep up (%s); running it again at %.0fx", name, starved, speed)
			}
		})
	}
}

// roomQueue lets hilRooms scenarios run at once and gives a free room to the waiting scenario
// that comes first in hilScenarios (the longest first), so that the suite does not end on one long
// room that happened to start last. It never waits for a scenario that is not waiting: go test
// resumes only -parallel subtests at a time, and the first in the list may not be among them.
type roomQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	tickets int
	free    int
	waiting map[int]bool
}

func newRoomQueue(n int) *roomQueue {
	q := &roomQueue{free: n, waiting: map[int]bool{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// ticket is the caller's place in the queue: taken before t.Parallel, in hilScenarios' order.
func (q *roomQueue) ticket() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.tickets++
	return q.tickets - 1
}

// enter waits for a room that no waiting scenario with an earlier ticket than i wants.
func (q *roomQueue) enter(i int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.waiting[i] = true
	for q.free == 0 || q.earlier(i) {
		q.cond.Wait()
	}
	delete(q.waiting, i)
	q.free--
	q.cond.Broadcast() // the next in line may take a room still free
}

func (q *roomQueue) earlier(i int) bool {
	for j := range q.waiting {
		if j < i {
			return true
		}
	}
	return false
}

func (q *roomQueue) leave() {
	q.mu.Lock()
	q.free++
	q.mu.Unlock()
	q.cond.Broadcast()
}

type controlPlane struct {
	mu       sync.Mutex
	pub      ed25519.PublicKey
	clk      clock.Clock
	signals  []cutover.Signal
	refused  []string
	maxStage int
	reasons  []string
	lastSeq  uint64
	byTopic  map[string][]json.RawMessage // every alarm, event, risk and drain message, in order
	// Telemetry is checked as it comes, not kept: each payload whole (JSON, every good value's
	// point in its quality) and its seq above the one before on its topic. The samples' and the
	// payloads' buffers are recycled (sample.Pool, the MQTT sink's free list): one reused too
	// early shows here as a torn or repeated message.
	telemetry int
	telSeq    map[string]uint64
	telBad    []string
}

func (cp *controlPlane) handle(topic string, payload []byte) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if strings.HasSuffix(topic, "/telemetry") {
		cp.checkTelemetry(topic, payload)
		return
	}
	if cp.byTopic == nil {
		cp.byTopic = map[string][]json.RawMessage{}
	}
	cp.byTopic[topic] = append(cp.byTopic[topic], append(json.RawMessage(nil), payload...))
	switch {
	case strings.HasSuffix(topic, "/status"): // the daemon's record of the consumers' acks
	case strings.Contains(topic, "/drain/"):
		s, err := cutover.Verify(payload, cp.pub, cp.clk.Now())
		if err != nil {
			cp.refused = append(cp.refused, err.Error())
			return
		}
		if s.Seq <= cp.lastSeq {
			cp.refused = append(cp.refused, fmt.Sprintf("seq %d after %d", s.Seq, cp.lastSeq))
			return
		}
		cp.lastSeq = s.Seq
		cp.signals = append(cp.signals, s)
	case strings.Contains(topic, "/risk/"):
		var r wire.RiskPayload
		if err := json.Unmarshal(payload, &r); err == nil && r.Change != nil && r.Change.Scope == "zone" {
			cp.maxStage = max(cp.maxStage, r.Stage)
			cp.reasons = append(cp.reasons, fmt.Sprintf("stage %d: %s", r.Stage, r.Reason))
		}
	}
}

func (cp *controlPlane) checkTelemetry(topic string, payload []byte) {
	cp.telemetry++
	var p struct {
		Seq     uint64            `json:"seq"`
		Values  map[string]any    `json:"values"`
		Quality map[string]string `json:"quality"`
	}
	bad := func(why string) {
		if len(cp.telBad) < 5 {
			cp.telBad = append(cp.telBad, fmt.Sprintf("%s: %s: %.200s", topic, why, payload))
		}
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		bad(err.Error())
		return
	}
	if len(p.Quality) == 0 {
		bad("no quality")
	}
	for k := range p.Values {
		if p.Quality[k] != "good" {
			bad(fmt.Sprintf("a value of %s, whose quality is %q", k, p.Quality[k]))
		}
	}
	if cp.telSeq == nil {
		cp.telSeq = map[string]uint64{}
	}
	if last, ok := cp.telSeq[topic]; ok && p.Seq <= last {
		bad(fmt.Sprintf("seq %d after %d", p.Seq, last))
	}
	cp.telSeq[topic] = p.Seq
}

// activations lists the alarms raised before until, a line each, for a failure to show what the
// flood was.
func activations(events []json.RawMessage, start, until time.Time) string {
	var b strings.Builder
	for _, raw := range events {
		var ev wire.EventPayload
		if json.Unmarshal(raw, &ev) == nil && ev.Cause == alarms.CauseActivate && ev.At.Before(until) {
			fmt.Fprintf(&b, "  T+%s %s (stage %d): %s\n", ev.At.Sub(start).Round(time.Second), ev.Alarm.ID, ev.Alarm.Stage, ev.Alarm.Text)
		}
	}
	return b.String()
}

// hilRetries is how many times a starved scenario runs again, each time at half the speed.
const hilRetries = 2

// runHIL runs one scenario at speed (0: its hil.speed) and judges it, unless the machine starved
// the run: then it returns why, and judges nothing.
func runHIL(t *testing.T, broker, scenario string, speed float64, attempt int) string {
	r := hiltest.NewRoomAt(t, fmt.Sprintf("hil-%s-%d", scenario, attempt), scenario, broker, speed)
	cfg, sc, clk, s, key, pub := r.Cfg, r.Sc, r.Clk, r.Sim, r.Key, r.Pub
	hilSpeed := sc.HIL.Speed
	if speed > 0 {
		hilSpeed = speed
	}
	starve := daemon.NewLagWatch(cfg, clk)

	cp := &controlPlane{pub: pub, clk: clk}
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("cp-%s-%d", scenario, attempt)).SetOrderMatters(true) // in order: the replay comparison needs the sequence as published
	sub := paho.NewClient(opts)
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("control plane connect: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	prefix := cfg.MQTT.TopicPrefix + "/" + cfg.Site
	tok := sub.SubscribeMultiple(map[string]byte{prefix + "/drain/+": 1, prefix + "/drain/+/status": 1, prefix + "/risk/+": 1, prefix + "/events": 1, prefix + "/alarm/+": 1, prefix + "/dev/+/telemetry": 0},
		func(_ paho.Client, m paho.Message) { cp.handle(m.Topic(), m.Payload()) })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.Run(gctx) })
	// The fire scenarios also record what the daemon polled, to show that replay says the same;
	// not where a device fails its polls: the trace format has no row for a failed poll, so replay
	// can only see it as missing data (README says so).
	// A scenario with no fault on its links (no silent BMS, no link event) has no poll that fails
	// unless the machine could not serve the simulator in time: that run lagged (LagWatch).
	failingPolls, linkFaults := false, false
	for _, e := range sc.Events {
		failingPolls = failingPolls || e.Kind == "bms_silent"
		linkFaults = linkFaults || strings.HasPrefix(e.Kind, "link_")
	}
	if !failingPolls && !linkFaults {
		starve.FailedPollsLag()
	}
	tracePath := ""
	var traceFile *os.File
	if sc.Expect.Drain && !failingPolls {
		tracePath = filepath.Join(t.TempDir(), "polled.csv")
		var err error
		if traceFile, err = os.Create(tracePath); err != nil {
			t.Fatal(err)
		}
		defer traceFile.Close()
	}
	g.Go(func() error {
		o := daemon.Options{Config: cfg, Clock: clk, Log: zap.NewNop(), Version: "test", SigningKey: key, ShutdownGrace: 2 * time.Second,
			Observe: starve.Observe}
		if traceFile != nil {
			o.Record = traceFile
		}
		return daemon.Run(gctx, o)
	})
	realLimit := time.Duration(float64(sc.Duration)/hilSpeed) + time.Minute
	check := time.NewTicker(100 * time.Millisecond)
	defer check.Stop()
	deadline := time.After(realLimit)
	for done := false; !done; {
		select {
		case <-s.Done():
			done = true
		case <-deadline:
			t.Errorf("scenario did not finish within %s of real time", realLimit)
			done = true
		case <-check.C:
			if why := starve.Lagged(); why != "" {
				cancel()
				_ = g.Wait()
				return why
			}
		}
	}
	// The last sample of the scenario is seconds of scenario time behind its end: let it through.
	if err := clock.Sleep(ctx, clk, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := g.Wait(); err != nil {
		t.Fatalf("daemon: %v", err)
	}
	if why := starve.Lagged(); why != "" {
		return why
	}

	cp.mu.Lock()
	defer cp.mu.Unlock()
	if tracePath != "" {
		// A replay of the trace is the same only if the live engine saw the polls in time: a poll
		// delivered more than the tick fallback (1 s) late may follow a tick it preceded in the
		// trace. Then the comparison cannot be made (running again slower costs minutes and, on a
		// loaded machine, lags again): the run says so plainly, and the rest is judged as always.
		if late := starve.WorstDelivery(); late <= time.Second {
			sameAsReplay(t, cfg, tracePath, key, cp.byTopic, time.Time{})
		} else {
			t.Logf("HIL %s: the live-replay comparison was NOT made: polls reached the engine up to %s late at %.0fx (a loaded machine)", scenario, late.Round(10*time.Millisecond), hilSpeed)
		}
	}
	if len(cp.refused) > 0 {
		t.Errorf("the control plane refused signals: %v", cp.refused)
	}
	if cp.telemetry == 0 || len(cp.telBad) > 0 {
		t.Errorf("%d telemetry messages, broken ones among them: %v", cp.telemetry, cp.telBad)
	}
	var runaway, firstAlarm time.Time
	for _, e := range s.Truth() {
		switch e.Kind {
		case "runaway":
			runaway = e.At
		case "smoke", "heat", "suppression_released", "fire_alarm":
			if firstAlarm.IsZero() {
				firstAlarm = e.At
			}
		}
	}
	if sc.Expect.Runaway != !runaway.IsZero() {
		t.Errorf("runaway expected %v, happened %v", sc.Expect.Runaway, !runaway.IsZero())
	}
	if cp.maxStage != sc.Expect.MaxStage {
		t.Errorf("highest zone stage %d, scenario expects %d; zone changes:\n%s", cp.maxStage, sc.Expect.MaxStage, strings.Join(cp.reasons, "\n"))
	}
	if limit := sc.Expect.MaxNewAlarms10m; limit > 0 {
		s := kpi.New()
		for _, raw := range cp.byTopic[prefix+"/events"] {
			var ev wire.EventPayload
			if json.Unmarshal(raw, &ev) == nil {
				s.Observe(ev.At, []wire.Message{{Event: &ev}})
			}
		}
		until := runaway
		if until.IsZero() {
			until = s.Start().Add(sc.Duration + time.Minute)
		}
		n := s.PeakBefore(until)
		t.Logf("HIL %s: at most %d new alarms in 10 minutes before the runaway (scenario allows %d)", scenario, n, limit)
		if n > limit {
			t.Errorf("%d new alarms within 10 minutes before the runaway; the scenario allows %d; raised before it:\n%s", n, limit, activations(cp.byTopic[prefix+"/events"], s.Start(), until))
		}
	}
	for _, want := range sc.Expect.Alarms {
		raised := time.Time{}
		for _, raw := range cp.byTopic[prefix+"/events"] {
			var ev wire.EventPayload
			if json.Unmarshal(raw, &ev) == nil && ev.Alarm.ID == want.ID && ev.Cause == alarms.CauseActivate {
				raised = ev.At
				break
			}
		}
		if raised.IsZero() {
			t.Errorf("alarm %s was never raised; the scenario expects it by T+%s", want.ID, want.By)
			continue
		}
		t.Logf("HIL %s: %s raised at T+%s (scenario expects by T+%s)", scenario, want.ID, raised.Sub(s.Start()).Round(time.Second), want.By)
		if raised.Sub(s.Start()) > want.By {
			t.Errorf("alarm %s raised at T+%s, scenario expects it by T+%s", want.ID, raised.Sub(s.Start()).Round(time.Second), want.By)
		}
	}
	var leaks []string
	for topic := range cp.byTopic {
		if id, ok := strings.CutPrefix(topic, prefix+"/alarm/"); ok && strings.HasSuffix(id, "."+string(alarms.SelfDischarge)) {
			leaks = append(leaks, id)
		}
	}
	hiltest.JudgeLeaks(t, sc, func(id string) (time.Duration, float64, string, bool) {
		var at time.Time
		for _, raw := range cp.byTopic[prefix+"/events"] {
			var ev wire.EventPayload
			if json.Unmarshal(raw, &ev) == nil && ev.Alarm.ID == id && ev.Cause == alarms.CauseActivate {
				at = ev.At
				break
			}
		}
		states := cp.byTopic[prefix+"/alarm/"+id]
		var last wire.AlarmPayload
		if at.IsZero() || len(states) == 0 || json.Unmarshal(states[len(states)-1], &last) != nil {
			return 0, 0, "", false
		}
		// The estimate as the retained alarm last stated it: restated as it firms up.
		return at.Sub(s.Start()), last.Value, last.Text, true
	}, leaks)
	var drain *cutover.Signal
	for i, sig := range cp.signals {
		if sig.Action == cutover.Drain || sig.Action == cutover.Evacuate {
			drain = &cp.signals[i]
			break
		}
	}
	if !sc.Expect.Drain {
		// A prepare is not a drain (a scenario at stage 2 prepares); a stage 1 scenario sends
		// nothing at all, which max_stage above holds it to.
		if drain != nil {
			t.Fatalf("scenario %s must not drain; got %s: %s", scenario, drain.Action, drain.Reason)
		}
		ids := map[string]bool{}
		for _, sig := range cp.signals {
			ids[sig.ID] = true
		}
		t.Logf("HIL %s: no drain, highest stage %d, %d prepare signal ids (%d messages with heartbeats), as expected", scenario, cp.maxStage, len(ids), len(cp.signals))
		return ""
	}
	if drain == nil {
		t.Fatalf("no drain signal arrived (%d signals)", len(cp.signals))
	}
	if drain.Zone != sc.Expect.DrainZone {
		t.Errorf("drain for zone %s, want %s", drain.Zone, sc.Expect.DrainZone)
	}
	if len(drain.Targets) == 0 || len(drain.Domains) == 0 {
		t.Errorf("drain names no domains or targets: %+v", drain)
	}
	if sc.Expect.MaxDrainDelay > 0 {
		if firstAlarm.IsZero() {
			t.Fatal("the scenario expects a drain after the first fire-panel signal, and there was none")
		}
		delay := drain.IssuedAt.Sub(firstAlarm)
		t.Logf("HIL %s: drain (%s) issued %s after the first fire-panel signal (scenario allows %s)", scenario, drain.Action, delay.Round(100*time.Millisecond), sc.Expect.MaxDrainDelay)
		if delay > sc.Expect.MaxDrainDelay {
			t.Errorf("drain %s after the first fire-panel signal, scenario allows %s", delay, sc.Expect.MaxDrainDelay)
		}
	}
	for _, at := range []struct {
		action cutover.Action
		limit  time.Duration
		sig    *cutover.Signal
	}{{cutover.Prepare, sc.Expect.MaxPrepareAt, first(cp.signals, cutover.Prepare)}, {drain.Action, sc.Expect.MaxDrainAt, drain}} {
		if at.limit == 0 {
			continue
		}
		if at.sig == nil {
			t.Errorf("no %s signal; the scenario expects one by T+%s", at.action, at.limit)
			continue
		}
		when := at.sig.IssuedAt.Sub(s.Start())
		t.Logf("HIL %s: %s at T+%s (scenario expects by T+%s)", scenario, at.action, when.Round(time.Second), at.limit)
		if when > at.limit {
			t.Errorf("%s at T+%s, scenario expects it by T+%s", at.action, when.Round(time.Second), at.limit)
		}
	}
	if !runaway.IsZero() {
		lead := runaway.Sub(drain.IssuedAt)
		t.Logf("HIL %s: drain issued %s before runaway (scenario expects at least %s): %s", scenario, lead.Round(time.Second), sc.Expect.MinDrainLead, drain.Reason)
		if lead < sc.Expect.MinDrainLead {
			t.Errorf("drain lead time %s, scenario expects at least %s", lead.Round(time.Second), sc.Expect.MinDrainLead)
		}
	}
	return ""
}

// sameAsReplay replays the trace the live daemon recorded and compares, topic by topic, every
// alarm, event, risk and drain message up to the trace's end: the same messages in the same order,
// but for what names the run (boot_id, the envelope seq, event_id and the signature over them).
//
// Messages stamped before from are left out on both sides (zero: compare everything).
func sameAsReplay(t *testing.T, cfg *config.Config, tracePath string, key ed25519.PrivateKey, live map[string][]json.RawMessage, from time.Time) int {
	t.Helper()
	f, err := os.Open(tracePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := trace.NewReader(f, tracePath, cfg.RegisterMaps())
	if err != nil {
		t.Fatal(err)
	}
	pipe := daemon.NewPipeline(cfg, daemon.PipelineOptions{BootID: "replay", Key: key, Live: true})
	replayed := map[string][]json.RawMessage{}
	var end time.Time
	err = daemon.Replay(context.Background(), tr, pipe, func(ts time.Time, msgs []wire.Message) error {
		end = ts
		for _, m := range msgs {
			replayed[m.Topic] = append(replayed[m.Topic], m.Payload)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	norm := func(raw json.RawMessage) (string, time.Time) {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("payload %s: %v", raw, err)
		}
		ts, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(m["ts"]))
		for _, k := range []string{"boot_id", "seq", "sig", "event_id"} {
			delete(m, k)
		}
		b, _ := json.Marshal(m)
		return string(b), ts
	}
	compared := 0
	for topic, lv := range live {
		var want []string
		for _, raw := range lv {
			var restated struct{ Change *wire.RiskChangeOf }
			if strings.Contains(topic, "/risk/") && json.Unmarshal(raw, &restated) == nil && restated.Change == nil {
				continue // the start's retained truth: a live daemon's, not a replay's
			}
			if s, ts := norm(raw); !ts.After(end) && !ts.Before(from) {
				want = append(want, s)
			}
		}
		var got []string
		for _, raw := range replayed[topic] {
			if s, ts := norm(raw); !ts.Before(from) {
				got = append(got, s)
			}
		}
		for i := 0; i < len(want) || i < len(got); i++ {
			switch {
			case i >= len(got):
				t.Fatalf("%s: live published %d messages, replay %d; first missing:\n%s", topic, len(want), len(got), want[i])
			case i >= len(want):
				t.Fatalf("%s: replay printed %d messages, live %d; first extra:\n%s", topic, len(got), len(want), got[i])
			case got[i] != want[i]:
				t.Fatalf("%s message %d differs:\nlive   %s\nreplay %s", topic, i, want[i], got[i])
			}
			compared++
		}
	}
	for topic := range replayed {
		if _, ok := live[topic]; !ok {
			t.Fatalf("replay printed on %s, which the live daemon never published", topic)
		}
	}
	if compared == 0 {
		t.Fatal("nothing to compare")
	}
	t.Logf("HIL replay of the daemon's own trace printed the same %d messages", compared)
	return compared
}

// first is the first signal of an action (nil for none).
func first(signals []cutover.Signal, a cutover.Action) *cutover.Signal {
	for i := range signals {
		if signals[i].Action == a {
			return &signals[i]
		}
	}
	return nil
}
