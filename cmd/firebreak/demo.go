package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/configs"
	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/logging"
	"github.com/firebreak-dc/firebreak/internal/mqttx"
	"github.com/firebreak-dc/firebreak/internal/sim"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlags("demo", stderr)
	speed := fs.Float64("speed", 60, "scenario seconds per real second")
	scenario := fs.String("scenario", "internal-short", "built-in scenario name or a scenario file")
	verbose := fs.Bool("v", false, "show the daemon's log")
	record := fs.String("record", "", "also write every poll the daemon saw to this trace file (replay it with firebreak replay -config configs/sites/demo.yaml)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *speed < 1 || *speed > 600 {
		return usagef("-speed must be 1..600, got %g", *speed)
	}
	data, err := configs.FS.ReadFile("sites/demo.yaml")
	if err != nil {
		return err
	}
	cfg, err := config.Parse(data, "configs/sites/demo.yaml")
	if err != nil {
		return err
	}
	sc, err := sim.LoadScenario(*scenario)
	if err != nil {
		return usagef("%v", err)
	}
	stateDir, err := os.MkdirTemp("", "firebreak-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)
	cfg.StateDir = stateDir
	cfg.Metrics.Listen = "127.0.0.1:0" // the log says which port

	// On a scaled clock a signal's validity shrinks with the speed, but MQTT delivery does not:
	// give every signal at least 5 s of real time to reach the control plane.
	cfg.Cutover.Validity = max(cfg.Cutover.Validity, time.Duration(*speed*5)*time.Second)
	// Likewise the control plane's ack: 15 s of scenario time is a quarter of a second at 60×,
	// less than a busy machine takes to deliver a signal and its ack. The demo's control plane
	// acks every signal; an escalation would only say the machine was slow. Heartbeats (10 s of
	// scenario time) stay as they are, and the validity above covers 5 s of them.
	cfg.Cutover.AckTimeout = max(cfg.Cutover.AckTimeout, time.Duration(*speed*5)*time.Second)
	clk := clock.NewScaled(time.Now().UTC().Truncate(time.Second), *speed)
	s, err := sim.New(cfg, sc, clk)
	if err != nil {
		return err
	}
	for i, cn := range cfg.Connections {
		srv, err := s.Serve(cn.Name, "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer srv.Close()
		cfg.Connections[i].URL = "tcp://" + srv.Addr
	}
	broker, err := mqttx.StartBroker("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer broker.Close()
	cfg.MQTT.Brokers = []string{"tcp://" + broker.Addr}

	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	level := zapcore.ErrorLevel
	if *verbose {
		level = zapcore.InfoLevel
	}
	log := logging.Human(level, stderr) // -v: the daemon's log, readable beside the timeline
	if *verbose {
		log = logging.New(level, stderr)
	}

	tl := &timeline{w: stdout, start: s.Start(), pub: pub, clk: clk}
	fmt.Fprintf(stdout, "Firebreak demo: scenario %q (%s), %.0fx speed\n", sc.Name, sc.Description, *speed)
	fmt.Fprintf(stdout, "  room: %d devices on Modbus TCP %s; MQTT broker %s; drain topic %s\n\n",
		len(cfg.Devices), strings.TrimPrefix(cfg.Connections[0].URL, "tcp://"), broker.Addr,
		wire.Topics{P: cfg.MQTT.TopicPrefix + "/" + cfg.Site}.Drain("#"))

	watch, err := tl.subscribe(ctx, "tcp://"+broker.Addr, cfg.MQTT.TopicPrefix+"/"+cfg.Site)
	if err != nil {
		return err
	}
	defer watch.Disconnect(100)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error { return s.Run(gctx) })
	lag := daemon.NewLagWatch(cfg, clk)
	tl.lag, tl.speed = lag, *speed
	opts := daemon.Options{Config: cfg, Clock: clk, Log: log, Version: buildVersion(), SigningKey: key, ShutdownGrace: 2 * time.Second,
		Observe: lag.Observe}
	closeRecord, err := attachRecord(*record, &opts)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeRecord()) }()
	g.Go(func() error { return daemon.Run(gctx, opts) })
	g.Go(func() error {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
				tl.truth(s.Truth())
				tl.flush(false)
			case <-s.Done():
				tl.truth(s.Truth())
				// Let the last messages of the scenario arrive, then stop everything.
				select {
				case <-time.After(500 * time.Millisecond):
				case <-gctx.Done():
				}
				cancel()
				return nil
			}
		}
	})
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		return err
	}
	tl.flush(true)
	if ctx.Err() != nil {
		fmt.Fprintln(stdout, "\n(interrupted)")
		_ = tl.summary(sc) // what happened so far; an interrupted scenario is judged by nothing
		return nil
	}
	return tl.summary(sc)
}

// timeline prints what a facility engineer and the control plane would see, in scenario time.
type timeline struct {
	lag       *daemon.LagWatch
	speed     float64
	mu        sync.Mutex
	pending   []line
	w         io.Writer
	start     time.Time
	pub       ed25519.PublicKey
	topics    wire.Topics
	clk       clock.Clock
	seenTruth int
	firstSig  map[cutover.Action]time.Time
	runaway   time.Time
	alarms    int
	badSig    int
	late      int
	maxStage  int
	drained   map[string]bool
}

func (t *timeline) at(ts time.Time) string {
	d := ts.Sub(t.start)
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("T+%02d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// printf queues a line of the timeline at its scenario time ts; flush prints them in that order.
func (t *timeline) printf(ts time.Time, format string, a ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending = append(t.pending, line{ts, time.Now(), fmt.Sprintf(format, a...)})
}

type line struct {
	ts, arrived time.Time
	text        string
}

// reorder is how long (real time) a line waits for one stamped earlier: the room's truth, the
// daemon's messages and the control plane's acks arrive by different paths, and at high speed a
// few milliseconds are scenario seconds.
const reorder = 300 * time.Millisecond

// flush prints, in scenario-time order, the lines that have waited reorder (all of them, at the end).
func (t *timeline) flush(all bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sort.SliceStable(t.pending, func(i, j int) bool { return t.pending[i].ts.Before(t.pending[j].ts) })
	keep := t.pending[:0]
	for i, l := range t.pending {
		if !all && time.Since(l.arrived) < reorder {
			// Lines stamped after one still waiting wait too, so the order holds.
			keep = append(keep, t.pending[i:]...)
			break
		}
		fmt.Fprintf(t.w, "%s  %s\n", t.at(l.ts), l.text)
	}
	t.pending = keep
}

func (t *timeline) truth(events []sim.GroundTruth) {
	for _, e := range events[t.seenTruth:] {
		if e.Kind == sim.TruthRunaway {
			t.runaway = e.At
		}
		where := ""
		if e.Device != "" {
			where = " in " + e.Device
		}
		if e.Detail != "" {
			where += " (" + e.Detail + ")"
		}
		t.printf(e.At, "    [room] %s%s", strings.ReplaceAll(string(e.Kind), "_", " "), where)
	}
	t.seenTruth = len(events)
}

func (t *timeline) subscribe(ctx context.Context, broker, prefix string) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker(broker).SetClientID("demo-control-plane").SetOrderMatters(false)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("demo watcher: connect: %v", tok.Error())
	}
	// Only what the timeline prints: telemetry is most of the traffic and would only slow it.
	t.topics = wire.Topics{P: prefix}
	filters := map[string]byte{t.topics.Risk(wire.Any): 1, t.topics.Events(): 1, t.topics.Drain(wire.Any): 1, t.topics.DrainStatus(wire.Any): 1}
	tok := c.SubscribeMultiple(filters, func(cl paho.Client, m paho.Message) {
		if ack := t.handle(m.Topic(), m.Payload()); ack != nil {
			// The demo's control plane acknowledges at once and "moves the traffic" in no time;
			// a real one is firebreak-agent (docs/cutover.md). Not waited on: handlers must not block.
			for _, st := range []cutover.AckStatus{cutover.AckReceived, cutover.AckDrained} {
				ack.Status, ack.TS = st, time.Now().UTC()
				b, _ := json.Marshal(ack)
				cl.Publish(t.topics.DrainAck(ack.Zone, ack.Consumer), 1, true, b)
			}
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("demo watcher: subscribe: %v", tok.Error())
	}
	return c, nil
}

// handle prints a message; for a drain signal seen for the first time it returns the ack the
// demo's control plane sends.
func (t *timeline) handle(topic string, payload []byte) *cutover.Ack {
	tp, _ := t.topics.Parse(topic)
	switch tp.Kind {
	case wire.KindRisk:
		var r wire.RiskPayload
		if json.Unmarshal(payload, &r) != nil || r.Change == nil || r.Change.Scope != alarms.ScopeZone.String() {
			return nil
		}
		t.mu.Lock()
		t.maxStage = max(t.maxStage, r.Stage)
		t.mu.Unlock()
		t.printf(r.TS, "RISK  zone %s: stage %d → %d (%s): %s", r.Zone, r.Change.From, r.Stage, r.StageName, r.Reason)
	case wire.KindEvents:
		var e wire.EventPayload
		if json.Unmarshal(payload, &e) != nil {
			return nil
		}
		t.mu.Lock()
		t.alarms++
		t.mu.Unlock()
		// What a person watching needs: every alarm of stage 2 and more, and the sensor and comms
		// faults (stage 1) that the sensor-faults scenario exists to show; the stage-1 process
		// alarms are in the RISK lines.
		info, _ := alarms.Detector(alarms.DetectorID(e.Alarm.Detector))
		fault := info.Modality == alarms.SensorHealth || info.Modality == alarms.Comms
		if (e.Cause == alarms.CauseActivate || e.Cause == alarms.CauseEscalate) && (e.Alarm.Stage >= alarms.StageWarning || fault) {
			t.printf(e.TS, "ALARM %s (stage %d): %s", e.Alarm.ID, e.Alarm.Stage, e.Alarm.Text)
		}
	case wire.KindDrainStatus:
		t.progress(payload)
	case wire.KindDrain:
		sig, err := cutover.Verify(payload, t.pub, t.clk.Now())
		if errors.Is(err, cutover.ErrExpired) {
			// Genuine, but delivered after its validity: the control plane must not act on it.
			// On an overloaded machine at high speed, real delivery delays become minutes of
			// scenario time; counted, not a failure of the demo.
			t.mu.Lock()
			t.late++
			t.mu.Unlock()
			return nil
		}
		if err != nil {
			t.mu.Lock()
			t.badSig++
			t.mu.Unlock()
			t.printf(t.clk.Now(), "DRAIN signal REFUSED by the control plane: %v", err)
			return nil
		}
		t.mu.Lock()
		if t.firstSig == nil {
			t.firstSig = map[cutover.Action]time.Time{}
		}
		_, seen := t.firstSig[sig.Action]
		if !seen {
			t.firstSig[sig.Action] = sig.IssuedAt
		}
		t.mu.Unlock()
		if !seen {
			t.printf(sig.IssuedAt, "DRAIN %s → control plane: %s zone %s, domains %v, targets %v, power loss within %ds (seq %d, signature verified)",
				strings.ToUpper(string(sig.Action)), sig.Action, sig.Zone, sig.Domains, sig.Targets, sig.PowerLossETAS, sig.Seq)
			return &cutover.Ack{V: 1, Consumer: "control-plane", Zone: sig.Zone, SignalID: sig.ID, Seq: sig.Seq}
		}
	}
	return nil
}

// progress prints when the daemon records a consumer's drained ack.
func (t *timeline) progress(payload []byte) {
	var pr wire.DrainProgressPayload
	if json.Unmarshal(payload, &pr) != nil {
		return
	}
	for name, c := range pr.Consumers {
		if c.Status != cutover.AckDrained || c.TookS == nil {
			continue
		}
		t.mu.Lock()
		if t.drained == nil {
			t.drained = map[string]bool{}
		}
		first := !t.drained[pr.SignalID+name]
		t.drained[pr.SignalID+name] = true
		t.mu.Unlock()
		if first {
			t.printf(c.At, "ACKED %s reports %s of zone %s done, %.1fs (scenario time) after the signal", name, pr.Action, pr.Zone, *c.TookS)
		}
	}
}

func (t *timeline) summary(sc *sim.Scenario) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "\nSummary: highest zone stage %d, %d alarm events, %d drain signals refused for their signature.\n", t.maxStage, t.alarms, t.badSig)
	if t.late > 0 {
		fmt.Fprintf(t.w, "%d drain signals (re-sends) arrived after their validity and were ignored: this machine could not deliver them in time at this speed.\n", t.late)
	}
	drainAt, drained := t.firstSig[cutover.Drain]
	if !drained {
		if e, ok := t.firstSig[cutover.Evacuate]; ok {
			drainAt, drained = e, true
		}
	}
	switch {
	case drained && !t.runaway.IsZero():
		fmt.Fprintf(t.w, "The drain went out at %s, %s before thermal runaway at %s.\n",
			t.at(drainAt), t.runaway.Sub(drainAt).Round(time.Second), t.at(t.runaway))
	case drained:
		fmt.Fprintf(t.w, "The drain went out at %s.\n", t.at(drainAt))
	default:
		fmt.Fprintln(t.w, "No drain signal was sent.")
	}
	lagged := ""
	if t.lag != nil {
		lagged = t.lag.Lagged()
	}
	if lagged != "" {
		fmt.Fprintf(t.w, "This machine could not keep up at %.0fx (%s): the detectors saw late or sparse data; try a lower -speed.\n", t.speed, lagged)
	}
	var err error
	switch {
	case t.badSig > 0:
		return fmt.Errorf("demo: %d drain signals failed verification", t.badSig)
	case drained != sc.Expect.Drain:
		err = fmt.Errorf("demo: scenario %s expects drain=%v, got %v", sc.Name, sc.Expect.Drain, drained)
	case drained && !t.runaway.IsZero() && t.runaway.Sub(drainAt) < sc.Expect.MinDrainLead:
		err = fmt.Errorf("demo: drain led runaway by %s, the scenario expects at least %s", t.runaway.Sub(drainAt).Round(time.Second), sc.Expect.MinDrainLead)
	}
	if err != nil && lagged != "" {
		return fmt.Errorf("%w (%w)", err, errLagged)
	}
	return err
}

// errLagged marks a demo whose outcome missed the scenario's while the machine could not keep up
// with its speed: the machine's failure, not the detectors'.
var errLagged = errors.New("the machine could not keep up with the speed")
