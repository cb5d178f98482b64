package daemon

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/sample"
)

// Reload is a request to apply a new config (SIGHUP): the caller has loaded and validated it, or
// says in Err why it could not.
type Reload struct {
	Config *config.Config
	Err    error
}

// pollGroup runs the pollers of the config in force and lets the engine loop replace them. The
// batches channel closes once no poller is left and none may start any more (release).
type pollGroup struct {
	parent context.Context
	out    chan<- sample.Batch
	pool   *sample.Pool // the pollers' sample slices (engineLoop.recycle)
	log    *zap.Logger
	all    sync.WaitGroup // every poller ever started, plus one hold until release
	once   sync.Once
	cancel context.CancelFunc
	done   chan struct{} // closes when the current set has stopped
}

func newPollGroup(parent context.Context, out chan sample.Batch, log *zap.Logger) *pollGroup {
	g := &pollGroup{parent: parent, out: out, log: log}
	g.all.Add(1)
	go func() {
		g.all.Wait()
		close(out)
	}()
	return g
}

// start runs a new set of pollers.
func (g *pollGroup) start(pollers []*collectors.Poller) {
	ctx, cancel := context.WithCancel(g.parent)
	var set sync.WaitGroup
	for _, p := range pollers {
		p.Out, p.Samples = g.out, g.pool
		g.all.Add(1)
		set.Add(1)
		go func() {
			defer g.all.Done()
			defer set.Done()
			if err := p.Run(ctx); err != nil {
				g.log.Error("poller stopped", zap.String("connection", p.Conn), zap.Error(err))
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		set.Wait()
		close(done)
	}()
	g.cancel, g.done = cancel, done
}

// stop asks the current set to stop; done closes when it has.
func (g *pollGroup) stop() <-chan struct{} {
	g.cancel()
	return g.done
}

// release says no set will start any more.
func (g *pollGroup) release() { g.once.Do(g.all.Done) }

// restartOnly are the settings a reload cannot change: who this instance is, where it keeps its
// state and how it reaches the broker and its peer. A new config that changes one is refused.
func restartOnly(old, nu *config.Config) []string {
	var out []string
	for _, f := range []struct {
		name string
		a, b any
	}{
		{"site", old.Site, nu.Site}, {"instance", old.Instance, nu.Instance}, {"state_dir", old.StateDir, nu.StateDir},
		{"mqtt", old.MQTT, nu.MQTT}, {"influx", old.Influx, nu.Influx}, {"metrics", old.Metrics, nu.Metrics},
		{"ha", old.HA, nu.HA}, {"cutover.signing_key_file", old.Cutover.SigningKeyFile, nu.Cutover.SigningKeyFile},
		{"cutover.mode", old.Cutover.Mode, nu.Cutover.Mode}, {"shutdown_timeout", old.ShutdownTimeout, nu.ShutdownTimeout},
		{"sparkplug", old.Sparkplug, nu.Sparkplug}, // its ids are its session's
	} {
		if !reflect.DeepEqual(f.a, f.b) {
			out = append(out, f.name)
		}
	}
	return out
}

// reload applies a new config without losing alarm state: the old pollers stop (their last
// batches still go through the old pipeline), a new pipeline is built for the new config and
// given the old one's alarms, drain episodes and message sequence, and the new pollers start.
// Anything wrong with the new config refuses it, logged with the reason; the old one stays.
func (l *engineLoop) reload(r Reload, batches <-chan sample.Batch) error {
	refuse := func(why string, err error) {
		l.log.Error("config reload refused; the running config stays", zap.String("reason", why), zap.Error(err))
		l.m.reloads.WithLabelValues("refused").Inc()
		l.m.reloadOK.Set(0)
	}
	if r.Err != nil {
		refuse("the new config does not load", r.Err)
		return nil
	}
	nu := r.Config
	if fields := restartOnly(l.cfg, nu); len(fields) > 0 {
		refuse("changes settings that need a restart: "+strings.Join(fields, ", "), nil)
		return nil
	}
	operators, err := operatorKeys(nu)
	if err != nil {
		refuse("commands.operators", err)
		return nil
	}
	pollers, err := build(nu, l.clk, l.log)
	if err != nil {
		refuse("the devices cannot be set up", err)
		return nil
	}
	// The old pollers stop; what they polled meanwhile is taken with the old config.
	stopped := l.polls.stop()
	for waiting := true; waiting; {
		select {
		case b := <-batches:
			if err := l.batch(b); err != nil {
				return err
			}
		case <-stopped:
			waiting = false
		}
	}
	for drained := false; !drained; {
		select {
		case b := <-batches:
			if err := l.batch(b); err != nil {
				return err
			}
		default:
			drained = true
		}
	}
	now := l.clk.Now()
	pipe, err := l.pipe.rebuilt(nu, l.pipeOpts, now)
	if err != nil {
		// The old pipeline and its state are untouched: poll on with the old config.
		refuse("the alarm state does not carry over", err)
		old, berr := build(l.cfg, l.clk, l.log)
		if berr != nil {
			return fmt.Errorf("config reload: restarting the old pollers: %w", berr)
		}
		l.polls.start(old)
		return nil
	}
	before := deviceNames(l.cfg)
	l.pipe, l.cfg, l.operators, l.cmdMaxAge = pipe, nu, operators, nu.Commands.MaxAge
	l.detectors = detectorsOf(nu)
	if l.influx != nil {
		l.influxMeta = influxMeta(nu) // the sink's own tags stay the start's: influx needs a restart
	}
	if l.in != nil {
		l.in.set(nu.Cutover.Consumers, operators)
	}
	l.stale = newStaleTracker(nu, now)
	if l.spb != nil {
		// The Sparkplug node is born again with the new config's devices and points.
		l.spb.Remodel(sparkplugModel(nu, l.version, l.enc.BootID))
	}
	l.m.expect(deviceNames(nu))
	l.polls.start(pollers)
	l.m.reloads.WithLabelValues("applied").Inc()
	l.m.reloadOK.Set(1)
	l.m.site(siteOf(nu, l.version, l.ha != nil))
	added, removed := diff(before, deviceNames(nu))
	l.log.Info("config reloaded", zap.Int("devices", len(nu.Devices)), zap.Strings("devices_added", added),
		zap.Strings("devices_removed", removed), zap.Int("alarms_kept", len(pipe.Alarms())))
	// The retained truth of the new config: discovery announced again, new zones and devices
	// stated, and every topic of what was removed cleared (a device no longer polled must not
	// stay "online" on every dashboard).
	for _, d := range removed {
		delete(l.online, d)
	}
	prev, err := l.ob.RetainedQueued()
	if err != nil {
		l.log.Error("the retained topics cannot be read; those the new config no longer names are not cleared", zap.Error(err))
	}
	if err := l.put(l.restate(prev, l.discovery(), now, false)); err != nil {
		return err
	}
	if l.ha != nil && l.ha.lost {
		// The restored alarm waits for its condition like any other: say it holds.
		out, err := l.pipe.Redundancy(l.ha.peer, true, "HA peer "+l.ha.peer+" still lost after a config reload", now)
		if perr := l.put(out); perr != nil {
			return perr
		}
		return err
	}
	return nil
}

func deviceNames(cfg *config.Config) []string {
	var out []string
	for _, d := range cfg.Devices {
		out = append(out, d.Name)
	}
	return out
}

func diff(before, after []string) (added, removed []string) {
	in := func(xs []string, x string) bool {
		for _, y := range xs {
			if y == x {
				return true
			}
		}
		return false
	}
	for _, a := range after {
		if !in(before, a) {
			added = append(added, a)
		}
	}
	for _, b := range before {
		if !in(after, b) {
			removed = append(removed, b)
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	return added, removed
}

// rebuilt is a pipeline for cfg that goes on from p: the same encoder (so the envelope seq keeps
// rising), the drain seq, every alarm that is not plainly normal, every zone's and rack's stage,
// and the open drain episodes.
func (p *Pipeline) rebuilt(cfg *config.Config, o PipelineOptions, now time.Time) (*Pipeline, error) {
	o.Encoder, o.SeqStart = p.enc, p.plan.Seq()
	np := NewPipeline(cfg, o)
	np.OnRisk, np.OnDrain = p.OnRisk, p.OnDrain
	if err := np.Restore(p.eng.Snapshot(), now); err != nil {
		return nil, err
	}
	np.RestorePlanner(p.plan.State(), now)
	np.eng.RestoreStages(p.eng.Stages(), now)
	// The self-discharge hours of the racks still configured go on (the open hour starts again).
	if err := np.eng.RestoreSelfDischarge(p.eng.SelfDischargeState(), now); err != nil {
		return nil, err
	}
	return np, nil
}
