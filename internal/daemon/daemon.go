// Package daemon wires Firebreak together: a poller per connection, one goroutine that owns the
// detection engine and the drain planner, and one publisher. It holds no feature logic of its
// own (that is collectors/, alarms/ and cutover/); it owns goroutines, queues and shutdown.
package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/durable"
	"github.com/firebreak-dc/firebreak/internal/influx"
	"github.com/firebreak-dc/firebreak/internal/mqttx"
	"github.com/firebreak-dc/firebreak/internal/outbox"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/secrets"
	"github.com/firebreak-dc/firebreak/internal/sparkplug"
	"github.com/firebreak-dc/firebreak/internal/trace"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// Options are what the daemon runs with.
type Options struct {
	Config     *config.Config
	Clock      clock.Clock
	Log        *zap.Logger
	Version    string
	SigningKey ed25519.PrivateKey
	// SigningKeyError says why there is no SigningKey (a damaged key file, a read-only state_dir
	// with none yet): the daemon then runs anyway and raises cutover.signing_unavailable.
	SigningKeyError string
	// KeyCreated says SigningKey was made for this start (LoadOrCreateKey): after a first start
	// that is a lost key, which the consumers do not know.
	KeyCreated bool
	// ShutdownGrace bounds how long critical messages may still be flushed after ctx ends.
	ShutdownGrace time.Duration
	// Record, if set, receives every successful poll in docs/design.md's trace format, for replay.
	Record io.Writer
	// Observe, if set, sees every batch in the engine loop (benchmarks measure poll timing with
	// it); it must be quick and must not keep the batch.
	Observe func(sample.Batch)
	// OnMetrics, if set, is told the address /metrics listens on (metrics.listen may say port 0).
	OnMetrics func(addr string)
	// Reload, if set, brings new configs to apply (SIGHUP): see Reload.
	Reload <-chan Reload
}

// restoreSelfDischarge loads state_dir's self-discharge history into pipe. It is not written at
// every start (a daemon with no rack at rest for an hour has none yet), so a missing file is no
// loss; a damaged one is set aside and said, and the detector starts its hours again.
func restoreSelfDischarge(st *stateDir, pipe *Pipeline, now time.Time, log *zap.Logger) {
	b, ok := st.read(fileSelfDis, false, now)
	if !ok {
		return
	}
	if err := pipe.RestoreSelfDischarge(b, now); err != nil {
		st.lose(fileSelfDis, err.Error()+"; the self-discharge detector starts its hours again", now)
		return
	}
	log.Info("self-discharge history restored", zap.Int("bytes", len(b)))
}

// NewBootID returns a random id for one run of the daemon.
func NewBootID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Run runs the daemon until ctx ends, then flushes what it can within ShutdownGrace.
func Run(ctx context.Context, o Options) error {
	cfg, log := o.Config, o.Log
	if o.ShutdownGrace == 0 {
		o.ShutdownGrace = 5 * time.Second
	}
	now := o.Clock.Now()
	st := openStateDir(cfg.StateDir, log.With(zap.String("component", "state")))
	key := o.SigningKey
	if key == nil {
		// Drain signals still go out, signed with a key of this boot that the consumers do not
		// know: the alarm and the log say so, and which key it is, so that an operator can
		// give it to them or mend the key file.
		_, key, _ = ed25519.GenerateKey(rand.Reader)
		why := o.SigningKeyError
		if why == "" {
			why = "no signing key was given"
		}
		pub := base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
		st.noSigningKey(fmt.Sprintf("no usable drain-signing key (%s): drain signals are signed with a temporary key %s that the consumers do not know", why, pub))
		log.Error("no usable drain-signing key: signing drain signals with a temporary key the consumers do not know; mend the key file, or give them this key",
			zap.String("reason", why), zap.String("temporary_public_key", pub))
	}
	seqStart := st.seqStart(now)

	bootID := NewBootID()
	pollers, err := build(cfg, o.Clock, log)
	if err != nil {
		return err
	}
	pipeOpts := PipelineOptions{BootID: bootID, Key: key, SeqStart: seqStart, Live: true,
		PersistSeq:     func(n uint64) error { st.write(fileSeq, []byte(strconv.FormatUint(n, 10))); return nil },
		PersistAlarms:  func(s alarms.Snapshot) error { st.writeJSON(fileAlarms, s); return nil },
		PersistPlanner: func(s cutover.PlannerState) error { st.writeJSON(filePlanner, s); return nil },
		// Written when an hour closes: at most one hour of the history is lost to a crash.
		PersistSelfDischarge: func(b []byte) { st.write(fileSelfDis, b) }}
	pipe := NewPipeline(cfg, pipeOpts)
	var snap alarms.Snapshot
	if st.readJSON(fileAlarms, &snap, now) {
		if err := pipe.Restore(snap, now); err != nil {
			st.lose(fileAlarms, "does not fit this config and engine: "+err.Error(), now)
		} else {
			log.Info("alarm state restored", zap.Int("alarms", len(snap.Alarms)))
		}
	}
	restoreSelfDischarge(st, pipe, now, log)
	var plan cutover.PlannerState
	if st.readJSON(filePlanner, &plan, now) {
		pipe.RestorePlanner(plan, now)
		for _, z := range plan.Zones {
			log.Info("drain episode restored", zap.String("zone", z.Zone), zap.String("episode", z.Episode), zap.String("action", string(z.Action)))
		}
	}
	// Written at every start, so that a file missing at a later start is known to be lost.
	st.writeJSON(fileAlarms, pipe.eng.Snapshot())
	st.writeJSON(filePlanner, pipe.plan.State())
	if o.KeyCreated && !st.firstRun {
		st.noSigningKey("signing.key was missing while state_dir holds the other files: a new key was made, which the consumers do not know: " +
			base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey)))
		log.Error("signing.key was missing: drain signals are signed with a new key the consumers do not know; give them this key",
			zap.String("public_key", base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))))
	}
	pipe.OnRisk = func(rc alarms.RiskChange) {
		log.Info("risk", zap.String("scope", rc.Scope.String()), zap.String("name", rc.Name),
			zap.Stringer("from", rc.From), zap.Stringer("to", rc.To), zap.String("reason", rc.Reason))
	}
	enc := pipe.Encoder()

	ob, err := st.openOutbox(cfg.MQTT.OutboxMax, now)
	if err != nil {
		return err
	}
	defer ob.Close()
	if n := ob.Len(); n > 0 {
		log.Info("outbox holds messages from before the restart; they go out first", zap.Int("messages", n))
	}
	operators, err := operatorKeys(cfg)
	if err != nil {
		return err
	}
	password, err := readSecret(cfg, cfg.MQTT.PasswordFile, "FIREBREAK_MQTT_PASSWORD")
	if err != nil {
		return fmt.Errorf("mqtt.password_file: %w", err)
	}
	clientID := cfg.MQTT.ClientID
	if clientID == "" {
		clientID = "firebreak-" + cfg.Site + "-" + cfg.Instance
	}
	// The handlers only sort and hand over: the engine loop owns everything it touches.
	mqLog := log.With(zap.String("component", "mqtt"))
	in := newInbox(ctx, enc.T, cfg.Cutover.Consumers, operators, mqLog)
	link := mqttx.Options{Brokers: cfg.MQTT.Brokers, ClientID: clientID,
		Username: cfg.MQTT.Username, Password: password,
		CAFile: cfg.Resolve(cfg.MQTT.TLS.CAFile), CertFile: cfg.Resolve(cfg.MQTT.TLS.CertFile), KeyFile: cfg.Resolve(cfg.MQTT.TLS.KeyFile)}
	spSession, err := newSparkplug(cfg, link, o.Version, bootID, log.With(zap.String("component", "sparkplug")))
	if err != nil {
		return err
	}
	mo := link
	mo.WillTopic, mo.WillPayload = enc.StatusTopic(), enc.Offline(o.Version, o.Clock.Now())
	mo.Subscriptions = append([]mqttx.Subscription{
		{Topic: enc.CommandTopic(), QoS: 1, Handle: in.command},
		// Acks are retained: a lost one is delivered again on the next connect.
		{Topic: enc.AckTopic(), QoS: 1, Handle: in.ack},
	}, haSubscriptions(cfg, enc, in)...)
	mq, err := mqttx.Dial(mo, mqLog)
	if err != nil {
		return err
	}
	st.mu.Lock()
	st.conflict = mq.Conflict
	st.mu.Unlock()
	influxSink, err := newSink(cfg, log)
	if err != nil {
		return err
	}
	loop := &engineLoop{pipe: pipe, enc: enc, version: o.Version, detectors: detectorsOf(cfg), clk: o.Clock, log: log, ob: ob, operators: operators, observe: o.Observe,
		cfg: cfg, pipeOpts: pipeOpts, reloads: o.Reload,
		stale:     newStaleTracker(cfg, o.Clock.Now()),
		cmdMaxAge: cfg.Commands.MaxAge, instance: cfg.Instance, online: map[string]bool{},
		st: st, stateRaised: map[string]problem{}, refusals: limiter{rate: 5, burst: 20}}
	if loop.ha, err = newHAWatch(cfg, o.Version, o.Clock.Now()); err != nil {
		return err
	}
	loop.m = newMetrics(siteOf(cfg, o.Version, loop.ha != nil), ob.Len, mq.Connected)
	loop.sinks = []Sink{newMQTTTelemetry(enc, mq, loop.m.telPublished, loop.m.telDropped, mqLog)}
	if spSession != nil {
		loop.spb = spSession
		loop.sinks = append(loop.sinks, sparkplugSink{spSession})
		loop.m.watchSparkplug(spSession)
	}
	if influxSink != nil {
		loop.sinks = append(loop.sinks, influxSink)
		loop.influx, loop.influxMeta = influxSink, influxMeta(cfg)
		loop.m.watchInflux(influxSink)
	}
	var serveMetrics func(context.Context) error
	if cfg.Metrics.Listen != "off" {
		if serveMetrics, err = loop.m.serve(cfg.Metrics.Listen, log, o.OnMetrics); err != nil {
			mq.Close(nil)
			return err
		}
	}
	// This boot's retained truth, before anything else goes out: what the last boot left on the
	// broker (the outbox's table of what it published) is restated or cleared.
	prev, err := ob.RetainedQueued()
	if err != nil {
		log.Error("the retained topics of the last boot cannot be read; those this config no longer names are not cleared", zap.Error(err))
	}
	fixed := append([]wire.Message{enc.Status("online", o.Version, o.Clock.Now())}, loop.discovery()...)
	if err := loop.send(loop.restate(prev, fixed, now, true), true); err != nil {
		return err
	}
	if err := loop.stateTick(now); err != nil {
		return err
	}
	log.Info("firebreak running", // the logger of `firebreak run` names the site and instance
		zap.String("boot_id", bootID), zap.Int("devices", len(cfg.Devices)), zap.Uint64("drain_seq", seqStart))

	// The shutdown sequence. Every part is a goroutine of g, and Run returns only when all have:
	//  1. ctx ends (a stop asked for, or a part failing): /readyz says stopping; the pollers
	//     finish the request in flight and stop.
	//  2. the engine loop takes their last batches and closes engineDone;
	//  3. the sinks (MQTT telemetry, InfluxDB) deliver what they hold and stop;
	//  4. the publisher empties the outbox to the broker, for at most ShutdownGrace; what is
	//     left stays in the outbox for the next start;
	//  5. once those are done, the metrics server stops.
	// Past ShutdownGrace+2s, whatever still runs is cancelled (hard): every part honours its
	// context, so each returns within the I/O it has in flight.
	requested := ctx // its end is a stop someone asked for; any other is a failure with a reason
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	hard, hardStop := context.WithCancel(context.Background())
	defer hardStop()
	if o.Record != nil {
		if loop.record, err = trace.NewWriter(o.Record); err != nil {
			return fmt.Errorf("record: %w", err)
		}
		defer loop.record.Close()
	}
	batches := make(chan sample.Batch, pollQueue(cfg))
	loop.polls = newPollGroup(ctx, batches, log)
	loop.polls.pool = loop.recyclePool()
	loop.polls.start(pollers)
	engineDone, pubDone := make(chan struct{}), make(chan struct{})
	var g errgroup.Group
	// The parts of steps 2-4, counted before any starts; the last to finish closes quiet.
	var work atomic.Int32
	work.Store(int32(2 + len(loop.sinks)))
	quiet := make(chan struct{})
	part := func(f func() error) {
		g.Go(func() error {
			defer func() {
				if work.Add(-1) == 0 {
					close(quiet)
				}
			}()
			return f()
		})
	}
	g.Go(func() error { // 1, and the hard deadline
		select {
		case <-ctx.Done():
		case <-quiet: // every part ended by itself
			stop()
		}
		loop.m.stopping.Store(true)
		t := time.NewTimer(o.ShutdownGrace + 2*time.Second)
		defer t.Stop()
		select {
		case <-quiet:
		case <-t.C:
			log.Error("shutdown deadline passed; cancelling what is left (the outbox keeps undelivered messages)",
				zap.Duration("shutdown_timeout", o.ShutdownGrace), zap.Int("outbox", ob.Len()))
			hardStop()
		}
		return nil
	})
	part(func() error { // 2
		defer close(engineDone)
		err := loop.run(ctx, batches, in)
		if err != nil {
			log.Error("the engine loop stopped; the daemon stops with it", zap.Error(err))
			stop() // the pollers must not wait on an engine that is gone
			loop.polls.release()
			for range batches {
			}
		}
		return err
	})
	// 3: the sinks outlive ctx until the engine has taken the pollers' last batches.
	sinkCtx, stopSinks := context.WithCancel(hard)
	defer stopSinks()
	g.Go(func() error {
		select {
		case <-engineDone:
		case <-hard.Done():
		}
		stopSinks()
		return nil
	})
	for _, s := range loop.sinks {
		part(func() error { return s.Run(sinkCtx) })
	}
	// 4: publishing outlives ctx by ShutdownGrace, so that the last alarms and drains go out.
	pubCtx, stopPub := context.WithCancel(hard)
	defer stopPub()
	g.Go(func() error {
		select {
		case <-ctx.Done():
		case <-pubDone:
			return nil
		}
		t := time.NewTimer(o.ShutdownGrace)
		defer t.Stop()
		select {
		case <-t.C:
			stopPub()
		case <-pubDone:
		}
		return nil
	})
	part(func() error {
		defer close(pubDone)
		pub := &criticalPublisher{mq: mq, ob: ob, log: mqLog, observe: loop.m.publish.Observe, failing: st.publisherFailing}
		if err := pub.run(pubCtx, engineDone); err != nil {
			log.Error("shutdown", zap.Error(err))
		}
		return nil
	})
	if serveMetrics != nil { // 5
		metricsCtx, stopMetrics := context.WithCancel(hard)
		defer stopMetrics()
		g.Go(func() error {
			select {
			case <-quiet:
			case <-hard.Done():
			}
			stopMetrics()
			return nil
		})
		g.Go(func() error { return serveMetrics(metricsCtx) })
	}
	err = g.Wait()
	if err == nil && requested.Err() == nil {
		// Exit 0 is for a stop that was asked for; nothing else may look like one.
		err = errors.New("the daemon stopped without being asked to (see the log for the part that ended)")
	}
	final := enc.Status("offline", o.Version, o.Clock.Now())
	mq.Close(&final)
	return err
}

// deviceAlarms is P/dev/<device>/alarms for every configured device an alarm event of msgs is
// about.
func (l *engineLoop) deviceAlarms(msgs []wire.Message) []wire.Message {
	var touched []string
	seen := map[string]bool{}
	for _, m := range msgs {
		if ev := m.Event; ev != nil && !seen[ev.Alarm.Device] {
			seen[ev.Alarm.Device] = true
			if _, ok := l.detectors[ev.Alarm.Device]; ok {
				touched = append(touched, ev.Alarm.Device)
			}
		}
	}
	if len(touched) == 0 {
		return nil
	}
	all := l.pipe.Alarms()
	out := make([]wire.Message, 0, len(touched))
	for _, d := range touched {
		out = append(out, l.enc.DeviceAlarms(d, l.detectors[d], all, l.clk.Now()))
	}
	return out
}

// detectorsOf is, per configured device, every detector that may raise an alarm on it.
func detectorsOf(cfg *config.Config) map[string][]alarms.DetectorID {
	out := map[string][]alarms.DetectorID{}
	for _, d := range cfg.Devices {
		var roles []sample.Role
		if r := cfg.Points(d); r != nil {
			for _, p := range r.Points {
				roles = append(roles, p.Role)
			}
		}
		out[d.Name] = alarms.DetectorsFor(roles)
	}
	return out
}

// discovery is the Home Assistant discovery configs of the config in force (none when off).
func (l *engineLoop) discovery() []wire.Message {
	if !l.cfg.MQTT.HomeAssist.Enabled {
		return nil
	}
	return wire.Discovery(l.cfg.MQTT.HomeAssist.Prefix, l.enc, DiscoverySite(l.cfg, l.version))
}

// siteOf is what the metrics must have series for from the start.
func siteOf(cfg *config.Config, version string, hasPeer bool) metricsSite {
	s := metricsSite{Version: version, Revision: revision(), Consumers: cfg.Cutover.Consumers, HasPeer: hasPeer}
	for _, d := range cfg.Devices {
		s.Devices = append(s.Devices, d.Name)
	}
	for _, z := range cfg.Zones {
		s.Zones = append(s.Zones, z.Name)
	}
	return s
}

// revision is the VCS revision the binary was built from, "" when the build does not say.
func revision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, st := range bi.Settings {
			if st.Key == "vcs.revision" {
				return st.Value
			}
		}
	}
	return ""
}

// Queue sizes: critical messages go through the outbox, never a channel that could drop them.
const (
	telemetryQueue = 1024
	batchQueue     = 256
	// telemetryFree is how many written telemetry buffers are kept for the next messages: a few
	// are in use at a time; those of a queue that filled while the broker was slow are let go.
	telemetryFree = 64
)

// pollQueue is the size of the pollers' queue to the engine loop: batchQueue, or two seconds of
// every device's polls if that is more. A poller waiting on a full queue polls late, so the queue
// takes what the engine loop may fall behind by (a slow fsync, a burst of alarms) without
// holding up the schedule; it holds only what waits.
func pollQueue(cfg *config.Config) int {
	n := 0
	for _, d := range cfg.Devices {
		n += int(2*time.Second/max(d.Interval, 100*time.Millisecond)) + 1
	}
	return max(n, batchQueue)
}

// rawCommand is an operator command or a consumer's drain ack, as it arrived.
type rawCommand struct {
	topic   string
	payload []byte
	// oversize is the length of a payload over wire.MaxCommandBytes, which was not kept.
	oversize int
	ack      bool
	// From the HA peer: its status, or a drain signal on P/drain/<zone> (ours come back too).
	peerStatus, peerSignal bool
}

// operatorKeys decodes commands.operators (validated by config).
func operatorKeys(cfg *config.Config) (map[string]ed25519.PublicKey, error) {
	out := map[string]ed25519.PublicKey{}
	for _, op := range cfg.Commands.Operators {
		k, err := base64.StdEncoding.DecodeString(op.PublicKey)
		if err != nil || len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("commands.operators %s: bad public key", op.Name)
		}
		out[op.Name] = ed25519.PublicKey(k)
	}
	return out, nil
}

// DiscoverySite is what Home Assistant discovery announces for a config: every device with a
// known profile, every zone and consumer, the daemon (and its HA peer).
func DiscoverySite(cfg *config.Config, version string) wire.Site {
	site := wire.Site{Version: version, Consumers: cfg.Cutover.Consumers, Instances: []string{cfg.Instance}}
	if cfg.HA.Peer != "" {
		site.Instances = append(site.Instances, cfg.HA.Peer)
		sort.Strings(site.Instances) // both daemons of a pair announce the same configs
	}
	for _, z := range cfg.Zones {
		site.Zones = append(site.Zones, z.Name)
	}
	for _, d := range cfg.Devices {
		if r := cfg.Points(d); r != nil {
			// Five polls missed, and at least 10 s: a telemetry entity nobody feeds any more.
			expire := max(10, int(math.Ceil(5*d.Interval.Seconds())))
			site.Devices = append(site.Devices, wire.Device{Name: d.Name, Zone: d.Zone, Model: d.Profile, Points: r.Points, ExpireAfterS: expire})
		}
	}
	return site
}

// readSecret reads a secret from a file named in the config, else from the environment variable.
func readSecret(cfg *config.Config, file, env string) (string, error) {
	return secrets.Read(cfg.Resolve(file), env)
}

// build plans every device and makes the pollers: one per connection, or max_in_flight.
func build(cfg *config.Config, clk clock.Clock, log *zap.Logger) ([]*collectors.Poller, error) {
	// A connection with max_in_flight N is N TCP connections to the gateway, each with its own
	// owner goroutine; its devices are dealt out among them in config order.
	byConn := map[string][]*collectors.Poller{}
	var pollers []*collectors.Poller
	for _, cn := range cfg.Connections {
		ep, err := collectors.ParseEndpoint(cn.URL)
		if err != nil {
			return nil, fmt.Errorf("connection %s: %w", cn.Name, err)
		}
		for k := 0; k < max(cn.MaxInFlight, 1); k++ {
			rd, err := collectors.NewReader(ep, cn.Timeout)
			if err != nil {
				return nil, fmt.Errorf("connection %s: %w", cn.Name, err)
			}
			name := cn.Name
			if cn.MaxInFlight > 1 {
				name = fmt.Sprintf("%s#%d", cn.Name, k+1)
			}
			p := &collectors.Poller{Conn: name, Reader: rd, Clock: clk, Log: log.With(zap.String("component", "poller"), zap.String("connection", name))}
			byConn[cn.Name] = append(byConn[cn.Name], p)
			pollers = append(pollers, p)
		}
	}
	dealt := map[string]int{}
	for _, d := range cfg.Devices {
		dev, err := cfg.Collector(d)
		if err != nil {
			return nil, err
		}
		ps := byConn[d.Connection]
		p := ps[dealt[d.Connection]%len(ps)]
		dealt[d.Connection]++
		p.Devices = append(p.Devices, dev)
	}
	return pollers, nil
}

// engineLoop owns the pipeline: nothing else touches the engine or the planner.
type engineLoop struct {
	pipe      *Pipeline
	enc       *wire.Encoder
	clk       clock.Clock
	log       *zap.Logger
	ob        *outbox.Outbox
	operators map[string]ed25519.PublicKey
	cmdMaxAge time.Duration
	instance  string
	sinks     []Sink       // MQTT telemetry, and InfluxDB when configured
	recycle   *sample.Pool // the polls' samples go back here (recyclePool); nil: not recycled
	record    *trace.Writer
	observe   func(sample.Batch)
	stale     *staleTracker
	online    map[string]bool
	ha        *haWatch // nil without an HA peer
	st        *stateDir
	in        *inbox
	// refusals bounds how fast refused commands are answered; unanswered counts the others.
	refusals   limiter
	unanswered int
	// stateRaised are the state alarms raised now, by id.
	stateRaised map[string]problem
	m           *metrics
	polls       *pollGroup
	next        time.Time // the next tick

	// For SIGHUP: the config in force, what rebuilding the pipeline needs, and the requests.
	cfg       *config.Config
	version   string
	detectors map[string][]alarms.DetectorID // per device, the detectors that may raise an alarm on it
	// lastSignal is each zone's last signal id logged at info (its re-sends are logged at debug).
	lastSignal map[string]string
	// spb, when Sparkplug is on, also takes the engine's state after every write.
	spb *sparkplug.Session
	// influx, when configured, also takes the events measurement (alarm events, risk, drain).
	influx     *influx.Sink
	influxMeta influx.Meta
	pipeOpts   PipelineOptions
	reloads    <-chan Reload
	// availPending are availability changes not yet written (see availability).
	availPending []wire.Message
}

func (l *engineLoop) run(ctx context.Context, batches <-chan sample.Batch, in *inbox) error {
	l.in = in
	// Ticks fall on whole seconds and carry their scheduled time. Tick T is performed just before
	// the first batch stamped at or after T, as replay does; only if no batch comes for a second
	// does the timer perform it. So a poll stamped just before T but delivered just after is still
	// seen before T's tick, and a trace of this run replays to the same messages.
	const fallback = time.Second
	l.next = l.clk.Now().Truncate(time.Second).Add(time.Second)
	timer := l.clk.NewTimer(l.next.Add(fallback).Sub(l.clk.Now()))
	armed := l.next
	defer func() { timer.Stop() }()
	defer l.polls.release()
	// rearm sets the timer for the next tick's fallback; after a batch only if a tick was
	// performed (500 batches a second would each make a timer for the same deadline), after
	// the timer fired always.
	rearm := func(fired bool) {
		if !fired && armed.Equal(l.next) {
			return
		}
		timer.Stop()
		timer, armed = l.clk.NewTimer(l.next.Add(fallback).Sub(l.clk.Now())), l.next
	}
	stopping := ctx.Done()
	for {
		select {
		case b, ok := <-batches:
			if !ok {
				return l.flushAvailability()
			}
			if err := l.batch(b); err != nil {
				return err
			}
			rearm(false)
		case c := <-in.protocol:
			if err := l.command(c); err != nil {
				return err
			}
		case c := <-in.commands:
			if err := l.command(c); err != nil {
				return err
			}
		case c := <-in.refused:
			if err := l.command(c); err != nil {
				return err
			}
		case r := <-l.reloads:
			if stopping == nil {
				l.log.Warn("config reload refused: shutting down")
				continue
			}
			if err := l.reload(r, batches); err != nil {
				return err
			}
		case <-stopping:
			// No more pollers will start: once these have stopped, batches closes and the loop
			// ends after the last of them.
			l.polls.release()
			stopping = nil
		case <-timer.C():
			if err := l.tickUntil(l.clk.Now().Add(-fallback)); err != nil {
				return err
			}
			rearm(true)
		}
	}
}

// tickUntil performs every tick up to t.
func (l *engineLoop) tickUntil(t time.Time) error {
	l.m.beat(l.clk.Now())
	if !l.next.After(t) {
		if err := l.flushAvailability(); err != nil {
			return err
		}
	}
	for !l.next.After(t) {
		msgs, err := l.pipe.Tick(l.next)
		if perr := l.put(msgs); perr != nil {
			return perr
		}
		if err != nil {
			return err
		}
		for _, sb := range l.stale.due(l.next) {
			l.telemeter(sb)
		}
		if err := l.stateTick(l.next); err != nil {
			return err
		}
		if l.ha != nil {
			if err := l.haTick(l.next); err != nil {
				return err
			}
		}
		l.next = l.next.Add(time.Second)
	}
	return nil
}

// batch takes one device poll.
func (l *engineLoop) batch(b sample.Batch) error {
	if err := l.tickUntil(b.At); err != nil {
		return err
	}
	if l.observe != nil {
		l.observe(b)
	}
	l.stale.seen(b)
	l.m.batch(b)
	if err := l.availability(b); err != nil {
		return err
	}
	if l.record != nil && b.Err == nil {
		if err := l.record.Write(b); err != nil {
			l.log.Error("recording the polled trace failed; recording stops", zap.Error(err))
			l.record = nil
		}
	}
	msgs, err := l.pipe.Step(b)
	if perr := l.put(msgs); perr != nil {
		return perr
	}
	if err != nil {
		return err
	}
	l.telemeter(b)
	// Nothing reads the samples any more: the engine copied what it keeps, the trace and the
	// telemetry are written, the sinks are done with them (recyclePool).
	l.recycle.Put(b.Samples)
	return nil
}

// recyclePool is where the engine loop hands back the samples of the polls it has taken, and the
// pollers take theirs from: only if every sink is done with a batch when Offer returns (MQTT
// telemetry encodes it there; InfluxDB and Sparkplug queue it for their own goroutines, so
// with either the samples are left to the garbage collector). nil: no recycling.
func (l *engineLoop) recyclePool() *sample.Pool {
	for _, s := range l.sinks {
		if _, ok := s.(*mqttTelemetry); !ok {
			return nil
		}
	}
	l.recycle = &sample.Pool{}
	return l.recycle
}

// telemeter offers a batch to every sink (MQTT telemetry, InfluxDB); one that is behind drops it.
func (l *engineLoop) telemeter(b sample.Batch) {
	for _, s := range l.sinks {
		s.Offer(b)
	}
}

// put writes messages to the outbox: durably, before anything is published.
func (l *engineLoop) put(msgs []wire.Message) error { return l.send(msgs, false) }

// send is put; with restate, msgs are the whole retained truth and the outbox forgets every
// retained state it recorded before (see Outbox.Restate).
func (l *engineLoop) send(msgs []wire.Message, restate bool) error {
	if restate {
		if err := l.flushAvailability(); err != nil {
			return err
		}
	} else {
		msgs = append(msgs, l.deviceAlarms(msgs)...)
		if len(msgs) > 0 && len(l.availPending) > 0 {
			// Queued availability came before: it goes first, in the same transaction.
			msgs = append(l.availPending, msgs...)
			l.availPending = nil
		}
	}
	return l.write(msgs, restate)
}

// write is send's durable part: msgs into the outbox (restated or put), then what follows from
// them being there (InfluxDB events, metrics, the log).
func (l *engineLoop) write(msgs []wire.Message, restate bool) error {
	var dropped int
	var err error
	if restate {
		dropped, err = l.ob.Restate(msgs)
	} else {
		dropped, err = l.ob.Put(msgs)
	}
	if err != nil {
		return err
	}
	if l.influx != nil {
		for _, p := range influx.EventPoints(l.influxMeta, msgs) {
			l.influx.OfferEvent(p)
		}
	}
	if len(msgs) > 0 {
		l.m.state(l.pipe.Alarms(), l.pipe.ZoneStages(), l.pipe.Actions(), l.pipe.Acks())
		l.sparkplugState(msgs)
	}
	if dropped > 0 {
		l.log.Error("outbox full: oldest undelivered messages dropped (mqtt.outbox_max)", zap.Int("messages", dropped))
	}
	// Logged once durable, so a log line is a promise that the message will reach the broker.
	for _, m := range msgs {
		if ev := m.Event; ev != nil {
			l.log.Info("alarm event", zap.String("event_id", ev.EventID), zap.String("alarm", ev.Alarm.ID), zap.Stringer("cause", ev.Cause),
				zap.Time("at", ev.At), zap.Stringer("state", ev.Alarm.State), zap.Int("stage", int(ev.Alarm.Stage)))
		}
		if s := m.Signal; s != nil {
			// A signal's first sending is news; its heartbeat re-sends (the same id, every
			// cutover.heartbeat) are debug, or a long drain fills the log.
			level := zapcore.InfoLevel
			if l.lastSignal[s.Zone] == s.ID {
				level = zapcore.DebugLevel
			}
			if l.lastSignal == nil {
				l.lastSignal = map[string]string{}
			}
			l.lastSignal[s.Zone] = s.ID
			l.log.Log(level, "drain signal", zap.String("zone", s.Zone), zap.String("action", string(s.Action)),
				zap.String("id", s.ID), zap.Uint64("seq", s.Seq), zap.String("boot_id", s.BootID), zap.Time("at", s.IssuedAt))
		}
	}
	return nil
}

func (l *engineLoop) availability(b sample.Batch) error {
	was, known := l.online[b.Device]
	now := b.Err == nil
	if known && was == now {
		return nil
	}
	l.online[b.Device] = now
	msg := ""
	if b.Err != nil {
		msg = b.Err.Error()
		l.log.Warn("device offline", zap.String("device", b.Device), zap.Error(b.Err))
	} else if known {
		l.log.Info("device back online", zap.String("device", b.Device))
	}
	// Queued, and written with the next messages or at the next tick (within a second): a start
	// of 1,000 devices is a few transactions (fsyncs), not 1,000 that hold up the first cycle.
	l.availPending = append(l.availPending, l.enc.Availability(b.Device, now, b.At, msg, b.At))
	if len(l.availPending) >= availabilityGroup {
		return l.flushAvailability()
	}
	return nil
}

// availabilityGroup bounds how many availability changes wait for one outbox write.
const availabilityGroup = 256

// flushAvailability writes the availability changes queued by availability.
func (l *engineLoop) flushAvailability() error {
	if len(l.availPending) == 0 {
		return nil
	}
	msgs := l.availPending
	l.availPending = nil
	return l.write(msgs, false)
}

// newSink makes the Influx sink, or nil when influx.url is empty. The token comes from
// influx.token_file or FIREBREAK_INFLUX_TOKEN, never from the config itself.
func newSink(cfg *config.Config, log *zap.Logger) (*influx.Sink, error) {
	if cfg.Influx.URL == "" {
		return nil, nil
	}
	token, err := readSecret(cfg, cfg.Influx.TokenFile, "FIREBREAK_INFLUX_TOKEN")
	if err != nil {
		return nil, fmt.Errorf("influx.token_file: %w", err)
	}
	return influx.New(influx.Options{URL: cfg.Influx.URL, Token: token, Bucket: cfg.Influx.Bucket, Org: cfg.Influx.Org, Meta: influxMeta(cfg)},
		log.With(zap.String("component", "influx"))), nil
}

// influxMeta is what every InfluxDB point is tagged with: the site, this daemon, the zones.
func influxMeta(cfg *config.Config) influx.Meta {
	m := influx.Meta{Site: cfg.Site, Instance: cfg.Instance, Zones: map[string]string{}}
	for _, d := range cfg.Devices {
		m.Zones[d.Name] = d.Zone
	}
	return m
}

// PublicKey is the drain-signing public key the daemon of cfg signs with, and the file it is in,
// without making one: `firebreak pubkey` prints it for the consumers' configs.
func PublicKey(cfg *config.Config) (ed25519.PublicKey, string, error) {
	path := filepath.Join(cfg.StateDir, fileKey)
	if cfg.Cutover.SigningKeyFile != "" {
		path = cfg.Resolve(cfg.Cutover.SigningKeyFile)
	}
	k, err := secrets.SigningKey(path)
	if errors.Is(err, os.ErrNotExist) && cfg.Cutover.SigningKeyFile == "" {
		return nil, path, fmt.Errorf("%s does not exist yet: the daemon makes its key there at its first start (or set cutover.signing_key_file)", path)
	}
	if err != nil {
		return nil, path, fmt.Errorf("%s: %w", path, err)
	}
	return k.Public().(ed25519.PublicKey), path, nil
}

// LoadOrCreateKey returns the configured signing key, or the one in state_dir, creating it on the
// first start (like an ssh host key); the caller logs its public half for the consumers.
func LoadOrCreateKey(cfg *config.Config) (ed25519.PrivateKey, bool, error) {
	if cfg.Cutover.SigningKeyFile != "" {
		path := cfg.Resolve(cfg.Cutover.SigningKeyFile)
		k, err := secrets.SigningKey(path)
		if err != nil {
			return nil, false, fmt.Errorf("cutover.signing_key_file %s: %w", path, err)
		}
		return k, false, nil
	}
	// A key file that exists but cannot be read is never replaced: the consumers know its key.
	path := filepath.Join(cfg.StateDir, fileKey)
	if k, err := secrets.SigningKey(path); err == nil {
		return k, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("%s: %w (it is left as it is)", path, err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("state_dir: %w", err)
	}
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	pemBytes, err := cutover.MarshalKey(k)
	if err != nil {
		return nil, false, err
	}
	if err := durable.WriteFile(path, pemBytes); err != nil {
		return nil, false, fmt.Errorf("cannot create the signing key %s: %w", path, err)
	}
	return k, true, nil
}
