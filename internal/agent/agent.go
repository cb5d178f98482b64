package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/durable"
	"github.com/firebreak-dc/firebreak/internal/mqttx"
	"github.com/firebreak-dc/firebreak/internal/ratelog"
	"github.com/firebreak-dc/firebreak/internal/secrets"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// state is what the agent keeps in state_dir/agent.json, written durably before every ack.
type state struct {
	LastSeq map[string]uint64  `json:"last_seq"`
	Signals map[string]*record `json:"signals"`
}

// record is one signal id: what was run for it and how it went.
type record struct {
	ID       string            `json:"id"`
	Zone     string            `json:"zone"`
	Action   string            `json:"action"`
	Seq      uint64            `json:"seq"`
	DryRun   bool              `json:"dry_run,omitempty"`
	Status   cutover.AckStatus `json:"status"`
	Detail   string            `json:"detail,omitempty"`
	Received time.Time         `json:"received"`
	Runs     []*run            `json:"runs"`
}

// run is one configured action started for a signal.
type run struct {
	Action     string    `json:"action"`
	PID        int       `json:"pid,omitempty"`         // exec: the wrapper's process (its own group)
	StatusFile string    `json:"status_file,omitempty"` // exec: the hook's exit code, written when it ends
	Started    time.Time `json:"started"`
	Deadline   time.Time `json:"deadline"`
	Done       bool      `json:"done"`
	OK         bool      `json:"ok"`
	Detail     string    `json:"detail,omitempty"`
}

// Agent is one firebreak-agent.
type Agent struct {
	cfg   *Config
	log   *zap.Logger
	now   func() time.Time
	st    state
	recv  cutover.Receiver
	mq    *mqttx.Client
	hooks chan hookResult // webhook results, from goroutines owned by Run
	// OnHookStart, if set, is called when an action starts (tests measure the drain latency).
	OnHookStart func(signalID, action string, at time.Time)
	// Refusals and replays are logged at warn, each kind at most every 10 s with a count: a flood
	// on P/drain/+ must not become a flood of log lines.
	garbage, replays, refused ratelog.Log
	// acks holds the last ack published on each ack topic until the broker confirms it: it is
	// sent again after a reconnect, or when its publish failed, so a connection lost between an
	// ack and its PUBACK (a flood on the drain topics can delay a PINGRESP past the ping timeout)
	// loses no ack, heartbeats or not. unsent counts the resends, for the log.
	acks   map[string]*sentAck
	unsent ratelog.Log
}

// sentAck is an ack handed to the MQTT client and the token that says whether it arrived.
type sentAck struct {
	msg wire.Message
	tok paho.Token
}

// maxSignal bounds what the agent reads on P/drain/+: the largest signal the daemon's config
// allows (1,024 targets of 128 bytes) is about 150 KB.
const maxSignal = 1 << 20

type hookResult struct {
	id, action string
	ok         bool
	detail     string
}

type inbound struct {
	topic   string
	payload []byte
}

// New makes an agent; nothing happens until Run.
func New(cfg *Config, log *zap.Logger) *Agent {
	return &Agent{cfg: cfg, log: log, now: time.Now, hooks: make(chan hookResult, 64), acks: map[string]*sentAck{}}
}

// runBase is where a run's files live: .json (the signal), .status (exit code), .log (output).
func (a *Agent) runBase(id, action string) string {
	return filepath.Join(a.cfg.StateDir, "runs", safeName(id+"."+action))
}

func (a *Agent) statePath() string { return filepath.Join(a.cfg.StateDir, "agent.json") }

func (a *Agent) load() error {
	a.st = state{LastSeq: map[string]uint64{}, Signals: map[string]*record{}}
	b, err := os.ReadFile(a.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("agent state: %w", err)
	}
	if err := json.Unmarshal(b, &a.st); err != nil {
		return fmt.Errorf("agent state %s is corrupt: %w (move it aside to start without it; signals already handled would run again)", a.statePath(), err)
	}
	if a.st.LastSeq == nil {
		a.st.LastSeq = map[string]uint64{}
	}
	if a.st.Signals == nil {
		a.st.Signals = map[string]*record{}
	}
	return nil
}

func (a *Agent) save() error {
	// Forget signals handled more than a day ago; their seq is still remembered.
	for id, r := range a.st.Signals {
		if r.Status != cutover.AckDraining && a.now().Sub(r.Received) > 24*time.Hour {
			delete(a.st.Signals, id)
		}
	}
	if err := durable.WriteJSON(a.statePath(), a.st); err != nil {
		return fmt.Errorf("agent state: %w", err)
	}
	return nil
}

// Run consumes signals until ctx ends. Hooks still running then keep running; the next Run
// picks them up from the state file and does not start them again.
func (a *Agent) Run(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Join(a.cfg.StateDir, "runs"), 0o700); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	if err := a.load(); err != nil {
		return err
	}
	a.recv = cutover.Receiver{Keys: a.cfg.keys(), LastSeq: a.st.LastSeq}
	password, err := secrets.Read(a.cfg.resolve(a.cfg.PasswordFile), "FIREBREAK_AGENT_MQTT_PASSWORD")
	if err != nil {
		return fmt.Errorf("password_file: %w", err)
	}
	in := make(chan inbound, 256)
	keys := cutover.Receiver{Keys: a.cfg.keys()} // read-only: the handlers only verify
	a.garbage = ratelog.Log{Every: 10 * time.Second, Msg: "messages on the drain topics refused: not signed by a configured key, or too large"}
	a.replays = ratelog.Log{Every: 10 * time.Second, Msg: "drain signals refused as replays: a seq not newer than one seen from that instance", Level: zapcore.ErrorLevel}
	a.refused = ratelog.Log{Every: 10 * time.Second, Msg: "drain signals refused", Level: zapcore.ErrorLevel}
	a.unsent = ratelog.Log{Every: 10 * time.Second, Msg: "acks sent again: the broker had not confirmed them (connection lost, or not connected)"}
	mq, err := mqttx.Dial(mqttx.Options{Brokers: a.cfg.Brokers, ClientID: "firebreak-agent-" + a.cfg.Consumer,
		Username: a.cfg.Username, Password: password,
		CAFile: a.cfg.resolve(a.cfg.TLS.CAFile), CertFile: a.cfg.resolve(a.cfg.TLS.CertFile), KeyFile: a.cfg.resolve(a.cfg.TLS.KeyFile),
		Subscriptions: []mqttx.Subscription{{Topic: wire.Topics{P: a.cfg.TopicPrefix}.Drain(wire.Any), QoS: 1, Handle: func(topic string, payload []byte) {
			// Only what a configured key signed is queued, and that is never dropped: garbage
			// and forgeries, however many, cannot push a real signal out (issue 22).
			if len(payload) == 0 {
				return // a cleared retained signal
			}
			if len(payload) > maxSignal || !keys.Verifiable(payload) {
				a.garbage.Add(a.log, zap.String("example_topic", clipTopic(topic)), zap.Int("bytes", len(payload)))
				return
			}
			select {
			case in <- inbound{topic, append([]byte(nil), payload...)}:
			case <-ctx.Done():
			}
		}}}}, a.log.With(zap.String("component", "mqtt")))
	if err != nil {
		return err
	}
	a.mq = mq
	defer mq.Close(nil)

	var g errgroup.Group
	defer g.Wait() // webhooks in flight finish (each has its timeout)
	for _, id := range sortedIDs(a.st.Signals) {
		r := a.st.Signals[id]
		if r.Status == cutover.AckDraining {
			a.log.Info("resuming a signal whose actions were running when the agent stopped", zap.String("signal_id", id))
			for _, rn := range r.Runs {
				if !rn.Done && rn.StatusFile == "" { // a webhook: sent again, same Idempotency-Key
					a.startWebhook(ctx, &g, r, rn)
				}
			}
		}
	}
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-mq.Connects():
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := mq.CheckSubscriptions(sctx); err != nil {
				a.log.Error("drain signals will not arrive", zap.Error(err))
			}
			cancel()
			a.resendAcks(true)
		case m := <-in:
			if err := a.signal(ctx, &g, m); err != nil {
				return err
			}
		case h := <-a.hooks:
			if r := a.st.Signals[h.id]; r != nil {
				for _, rn := range r.Runs {
					if rn.Action == h.action && !rn.Done {
						rn.Done, rn.OK, rn.Detail = true, h.ok, h.detail
					}
				}
				if err := a.settle(ctx, r); err != nil {
					return err
				}
			}
		case <-poll.C:
			if err := a.pollExec(ctx); err != nil {
				return err
			}
			a.resendAcks(false)
		}
	}
}

// signal handles one message on P/drain/<zone>.
func (a *Agent) signal(ctx context.Context, g *errgroup.Group, m inbound) error {
	zone := m.topic[strings.LastIndexByte(m.topic, '/')+1:]
	if len(a.cfg.Zones) > 0 && !contains(a.cfg.Zones, zone) {
		return nil
	}
	if len(m.payload) == 0 {
		return nil // a cleared retained signal
	}
	s, err := a.recv.CheckOn(m.payload, zone, a.now())
	switch {
	case errors.Is(err, cutover.ErrReplayed):
		// Heartbeats of a signal already handled are not replays (same id, new seq); a seq that
		// goes back is someone re-publishing an old signal, or a daemon that lost its seq.
		a.replays.Add(a.log, zap.String("zone", zone), zap.Error(err))
		return nil
	case err != nil:
		a.refused.Add(a.log, zap.String("zone", zone), zap.Error(err))
		return nil
	}
	a.st.LastSeq = a.recv.LastSeq
	if r := a.st.Signals[s.ID]; r != nil {
		// The same signal again (a heartbeat, or the daemon re-sending for want of an ack): tell
		// it where we are; never run anything twice.
		r.Seq = s.Seq
		if err := a.save(); err != nil {
			return err
		}
		a.ack(r)
		return nil
	}
	r := &record{ID: s.ID, Zone: s.Zone, Action: string(s.Action), Seq: s.Seq, DryRun: s.DryRun, Status: cutover.AckReceived, Received: a.now()}
	a.st.Signals[s.ID] = r
	a.log.Info("drain signal accepted", zap.String("zone", s.Zone), zap.String("action", string(s.Action)), zap.String("id", s.ID),
		zap.Uint64("seq", s.Seq), zap.Bool("dry_run", s.DryRun), zap.String("reason", s.Reason))
	if err := a.save(); err != nil {
		return err
	}
	a.ack(r)
	if s.DryRun && !a.cfg.RunDryRun {
		r.Status, r.Detail = cutover.AckDrained, "dry run: nothing done (run_dry_run is off)"
		return a.settleSaved(ctx, r)
	}
	for _, act := range a.cfg.Actions {
		targets := act.matches(string(s.Action), s.Targets)
		if len(targets) == 0 {
			continue
		}
		rn := &run{Action: act.Name, Started: a.now()}
		r.Runs = append(r.Runs, rn)
		if err := os.WriteFile(a.runBase(r.ID, act.Name)+".json", m.payload, 0o600); err != nil {
			return fmt.Errorf("state_dir: %w", err)
		}
		if act.Exec != nil {
			rn.Deadline = rn.Started.Add(act.Exec.Timeout)
			if err := a.startExec(r, rn, act, s, m.payload, targets); err != nil {
				rn.Done, rn.Detail = true, err.Error()
			}
		} else {
			rn.Deadline = rn.Started.Add(act.Webhook.Timeout)
		}
		if a.OnHookStart != nil {
			a.OnHookStart(s.ID, act.Name, rn.Started)
		}
	}
	if len(r.Runs) == 0 {
		r.Status, r.Detail = cutover.AckDrained, "no action is configured for these targets"
		return a.settleSaved(ctx, r)
	}
	r.Status = cutover.AckDraining
	if err := a.save(); err != nil { // the runs are on disk before anything else: a restart resumes them
		return err
	}
	a.ack(r)
	for _, rn := range r.Runs {
		if !rn.Done && rn.StatusFile == "" {
			a.startWebhook(ctx, g, r, rn)
		}
	}
	return a.settle(ctx, r)
}

// startExec starts an exec action through a small shell wrapper in its own process group: the
// signal is on its stdin (from a file) and in its environment, and its exit code is written to a
// status file when it ends, so an agent that restarts meanwhile finds the outcome.
func (a *Agent) startExec(r *record, rn *run, act Action, s cutover.Signal, payload []byte, targets []string) error {
	base := a.runBase(r.ID, act.Name)
	rn.StatusFile = base + ".status"
	_ = os.Remove(rn.StatusFile)
	logf, err := os.OpenFile(base+".log", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%s: %w", act.Name, err)
	}
	defer logf.Close()
	const wrapper = `"$@" < "$FIREBREAK_SIGNAL_FILE"; code=$?; echo $code > "$FIREBREAK_STATUS_FILE.tmp" && mv "$FIREBREAK_STATUS_FILE.tmp" "$FIREBREAK_STATUS_FILE"`
	cmd := exec.Command("/bin/sh", append([]string{"-c", wrapper, "firebreak-hook"}, act.Exec.Command...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(),
		"FIREBREAK_SIGNAL_FILE="+base+".json", "FIREBREAK_STATUS_FILE="+rn.StatusFile,
		"FIREBREAK_SIGNAL_ID="+s.ID, "FIREBREAK_EPISODE="+s.Episode,
		"FIREBREAK_ACTION="+string(s.Action), "FIREBREAK_ZONE="+s.Zone, "FIREBREAK_STAGE="+strconv.Itoa(s.Stage),
		"FIREBREAK_DOMAINS="+envField(strings.Join(s.Domains, ",")), "FIREBREAK_TARGETS="+envField(strings.Join(targets, ",")),
		"FIREBREAK_TARGETS_FILE="+base+".targets",
		"FIREBREAK_POWER_LOSS_ETA_S="+strconv.FormatInt(s.PowerLossETAS, 10), "FIREBREAK_DRY_RUN="+strconv.FormatBool(s.DryRun),
		"FIREBREAK_REASON="+envField(s.Reason))
	if len(payload) <= maxEnvField {
		cmd.Env = append(cmd.Env, "FIREBREAK_SIGNAL="+string(payload)) // small enough; the file is the contract
	}
	if err := os.WriteFile(base+".targets", []byte(strings.Join(targets, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("%s: %w", act.Name, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: start %v: %w", act.Name, act.Exec.Command, err)
	}
	rn.PID = cmd.Process.Pid
	// Reaped in pollExec (Wait4), not by a goroutine that would tie the agent's shutdown to the hook.
	_ = cmd.Process.Release()
	a.log.Info("action started", zap.String("signal_id", r.ID), zap.String("action", act.Name), zap.Int("pid", rn.PID),
		zap.Strings("targets", targets))
	return nil
}

// pollExec settles exec actions that ended, timed out, or vanished.
func (a *Agent) pollExec(ctx context.Context) error {
	for _, id := range sortedIDs(a.st.Signals) {
		r := a.st.Signals[id]
		if r.Status != cutover.AckDraining {
			continue
		}
		changed := false
		for _, rn := range r.Runs {
			if rn.Done || rn.StatusFile == "" {
				continue
			}
			var ws syscall.WaitStatus
			reaped, _ := syscall.Wait4(rn.PID, &ws, syscall.WNOHANG, nil) // our child: reap it; otherwise ECHILD
			if b, err := os.ReadFile(rn.StatusFile); err == nil {
				code, _ := strconv.Atoi(strings.TrimSpace(string(b)))
				rn.Done, rn.OK = true, code == 0
				if code != 0 {
					rn.Detail = fmt.Sprintf("%s exited with %d (log: %s)", rn.Action, code, strings.TrimSuffix(rn.StatusFile, ".status")+".log")
				}
				changed = true
				continue
			}
			gone := reaped == rn.PID || syscall.Kill(rn.PID, 0) == syscall.ESRCH
			switch {
			case gone:
				rn.Done, rn.Detail = true, rn.Action+" ended without reporting its exit code (killed?)"
				changed = true
			case a.now().After(rn.Deadline):
				_ = syscall.Kill(-rn.PID, syscall.SIGKILL)
				rn.Done, rn.Detail = true, fmt.Sprintf("%s timed out after %s and was killed", rn.Action, rn.Deadline.Sub(rn.Started))
				changed = true
			}
		}
		if changed {
			if err := a.settle(ctx, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// startWebhook POSTs the signal in a goroutine owned by g; its result comes back on a.hooks.
func (a *Agent) startWebhook(ctx context.Context, g *errgroup.Group, r *record, rn *run) {
	var act Action
	for _, x := range a.cfg.Actions {
		if x.Name == rn.Action {
			act = x
		}
	}
	if act.Webhook == nil {
		rn.Done, rn.Detail = true, rn.Action+" is no longer configured"
		return
	}
	payload, err := os.ReadFile(a.runBase(r.ID, rn.Action) + ".json") // the signal as received
	if err != nil {
		rn.Done, rn.Detail = true, fmt.Sprintf("%s: %v", act.Name, err)
		return
	}
	token := ""
	if act.Webhook.TokenFile != "" {
		t, err := secrets.Read(a.cfg.resolve(act.Webhook.TokenFile), "")
		if err != nil {
			rn.Done, rn.Detail = true, fmt.Sprintf("%s: token_file: %v", act.Name, err)
			return
		}
		token = t
	}
	id, name, url, timeout := r.ID, act.Name, act.Webhook.URL, act.Webhook.Timeout
	g.Go(func() error {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		res := hookResult{id: id, action: name}
		req, err := http.NewRequestWithContext(hctx, http.MethodPost, url, bytes.NewReader(payload))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", id+"."+name)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			var resp *http.Response
			if resp, err = http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					err = fmt.Errorf("HTTP %s", resp.Status)
				}
			}
		}
		res.ok = err == nil
		if err != nil {
			res.detail = fmt.Sprintf("%s: POST %s: %v", name, url, err)
		}
		select {
		case a.hooks <- res:
		case <-ctx.Done(): // the agent is stopping: the next Run sends it again
		}
		return nil
	})
}

// settle moves a signal to drained or failed once every action is done.
func (a *Agent) settle(ctx context.Context, r *record) error {
	if r.Status != cutover.AckDraining {
		return nil
	}
	var failed []string
	for _, rn := range r.Runs {
		if !rn.Done {
			return nil
		}
		if !rn.OK {
			failed = append(failed, rn.Detail)
		}
	}
	r.Status, r.Detail = cutover.AckDrained, ""
	if len(failed) > 0 {
		r.Status, r.Detail = cutover.AckFailed, strings.Join(failed, "; ")
	}
	level := zapcore.InfoLevel
	if r.Status == cutover.AckFailed {
		level = zapcore.ErrorLevel // a drain that did not happen: someone must look now
	}
	a.log.Log(level, "signal done", zap.String("signal_id", r.ID), zap.String("status", string(r.Status)), zap.String("detail", r.Detail))
	return a.settleSaved(ctx, r)
}

func (a *Agent) settleSaved(ctx context.Context, r *record) error {
	if err := a.save(); err != nil {
		return err
	}
	a.ack(r)
	return nil
}

// ack publishes the record's status (retained, QoS 1); resendAcks sees that it arrives.
func (a *Agent) ack(r *record) {
	b, _ := json.Marshal(cutover.Ack{V: 1, Consumer: a.cfg.Consumer, Zone: r.Zone, SignalID: r.ID, Seq: r.Seq,
		Status: r.Status, Detail: r.Detail, TS: a.now().UTC()})
	m := wire.Message{Topic: wire.Topics{P: a.cfg.TopicPrefix}.DrainAck(r.Zone, a.cfg.Consumer), QoS: 1, Retain: true, Payload: b}
	// Not waited for: the loop goes on reading signals while the PUBACK is queued behind whatever
	// the broker is sending us. One connection keeps the order of a topic's acks; only the last
	// of each topic is kept for a resend, so a resend never puts an older status back.
	a.acks[m.Topic] = &sentAck{msg: m, tok: a.mq.PublishAsync(m)}
}

// resendAcks forgets the acks the broker confirmed and sends again those whose publish failed;
// after a reconnect (all) it also sends those still waiting, which the lost connection took.
func (a *Agent) resendAcks(all bool) {
	for topic, s := range a.acks {
		select {
		case <-s.tok.Done():
			if s.tok.Error() == nil {
				delete(a.acks, topic)
				continue
			}
			if !a.mq.Connected() {
				continue
			}
		default:
			if !all {
				continue
			}
		}
		a.unsent.Add(a.log, zap.String("example_topic", topic))
		s.tok = a.mq.PublishAsync(s.msg)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func sortedIDs(m map[string]*record) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// safeName keeps file names to [A-Za-z0-9._-].
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, s)
}

// clipTopic shortens a topic for a log line.
func clipTopic(t string) string {
	if len(t) > 128 {
		return t[:128] + "…"
	}
	return t
}

// maxEnvField bounds one environment variable of a hook: Linux refuses any one over 128 KiB
// ("argument list too long"), and a hook must always start. The whole signal is in
// FIREBREAK_SIGNAL_FILE (and on stdin), the targets one a line in FIREBREAK_TARGETS_FILE.
const maxEnvField = 16 << 10

// envField is v, or empty with a note when it is longer than maxEnvField.
func envField(v string) string {
	if len(v) > maxEnvField {
		return "(too long for the environment: see FIREBREAK_SIGNAL_FILE)"
	}
	return v
}
