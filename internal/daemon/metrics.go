package daemon

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/influx"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/sparkplug"
)

// metrics are the daemon's Prometheus metrics and the state /healthz and /readyz report. They
// are updated by the goroutines that own what they measure (the engine loop, the publisher);
// the HTTP handlers only read.
type metrics struct {
	reg *prometheus.Registry

	pollDuration  *prometheus.HistogramVec
	polls         *prometheus.CounterVec
	samples       *prometheus.CounterVec
	alarms        *prometheus.GaugeVec
	zoneStage     *prometheus.GaugeVec
	drainAction   *prometheus.GaugeVec
	drainAck      *prometheus.GaugeVec
	outbox        prometheus.GaugeFunc
	publish       prometheus.Histogram
	telemetry     *prometheus.CounterVec // published, dropped
	telPublished  prometheus.Counter
	telDropped    prometheus.Counter
	influxFailing func() error // nil without InfluxDB
	peerUp        prometheus.Gauge
	reloads       *prometheus.CounterVec
	reloadOK      prometheus.Gauge
	stateProblem  *prometheus.GaugeVec
	deviceUp      *prometheus.GaugeVec
	lastPoll      *prometheus.GaugeVec
	rackTemp      *prometheus.GaugeVec

	byDevice   map[string]*deviceMetrics // engine loop only
	configured metricsSite               // the site in force: each device, zone and consumer has its series
	byQuality  [8]prometheus.Counter

	engineBeat atomic.Int64 // unix nanos of the engine loop's last turn
	mu         sync.Mutex
	unpolled   map[string]bool // devices with no poll yet
	polled     map[string]bool
	stopping   atomic.Bool
	connected  func() bool
	problems   []problem // what state_dir lost or cannot keep (under mu)
}

// metricsSite is what the metrics know of the site from the start: every configured device,
// zone and consumer has its series before anything happens to it, so that an alert rule has a
// value to read after a restart.
type metricsSite struct {
	Version, Revision string
	Devices           []string
	Zones             []string
	Consumers         []string
	HasPeer           bool
}

func newMetrics(site metricsSite, outboxLen func() int, connected func() bool) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), unpolled: map[string]bool{}, polled: map[string]bool{}, connected: connected,
		byDevice: map[string]*deviceMetrics{}}
	for _, d := range site.Devices {
		m.unpolled[d] = true
	}
	m.pollDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "firebreak_poll_duration_seconds",
		Help:    "Time to poll one device once (all its requests), by device.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"device"})
	m.polls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "firebreak_polls_total",
		Help: "Polls by device and result (ok, failed: the device or its link did not answer)."}, []string{"device", "result"})
	m.samples = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "firebreak_samples_total",
		Help: "Samples by quality."}, []string{"quality"})
	m.alarms = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "firebreak_alarms",
		Help: "Alarms that are not plainly normal, by stage and ISA-18.2 state (unacknowledged, acknowledged, rtn_unacknowledged, shelved, suppressed_by_design, out_of_service)."}, []string{"stage", "state"})
	m.zoneStage = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "firebreak_zone_stage",
		Help: "Each zone's risk stage (0 normal … 4 fire)."}, []string{"zone"})
	m.drainAction = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "firebreak_drain_action",
		Help: "Each zone's drain action: 0 none, 1 prepare, 2 drain, 3 evacuate."}, []string{"zone"})
	m.drainAck = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "firebreak_drain_ack_status",
		Help: "Each consumer's acknowledgement of its zone's current drain signal: 0 none (or no signal), 1 received, 2 draining, 3 drained, 4 failed."}, []string{"zone", "consumer"})
	m.outbox = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "firebreak_outbox_messages",
		Help: "Critical messages not yet acknowledged by the broker."}, func() float64 { return float64(outboxLen()) })
	m.publish = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "firebreak_publish_latency_seconds",
		Help:    "From handing a critical message to the broker to its PUBACK.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}})
	m.telemetry = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "firebreak_telemetry_messages_total",
		Help: "MQTT telemetry messages by result: published (handed to the broker at QoS 0), dropped (the broker was slow or away; critical messages never are)."}, []string{"result"})
	m.telPublished, m.telDropped = m.telemetry.WithLabelValues("published"), m.telemetry.WithLabelValues("dropped")
	m.peerUp = prometheus.NewGauge(prometheus.GaugeOpts{Name: "firebreak_ha_peer_up",
		Help: "1 while the HA peer is heard and online, 0 when redundancy is lost; absent without a peer."})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "firebreak_config_reloads_total",
		Help: "SIGHUP reloads by result (applied, refused)."}, []string{"result"})
	m.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{Name: "firebreak_config_last_reload_successful",
		Help: "1 if the last SIGHUP reload was applied (or none was asked for), 0 if it was refused: the config in force is not the file's."})
	m.stateProblem = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "firebreak_state_problems",
		Help: "1 for each thing the daemon lost of its state_dir or cannot keep durable, by its alarm id (state.<file>.lost, state.<file>.not_durable, cutover.signing_unavailable)."}, []string{"alarm"})
	m.deviceUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "firebreak_device_up",
		Help: "1 if the device's last poll succeeded, 0 if it failed or it has not been polled since the start."}, []string{"device"})
	m.lastPoll = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "firebreak_device_last_success_timestamp_seconds",
		Help: "When the device last answered a poll (Unix seconds); 0 if not since the start."}, []string{"device"})
	m.rackTemp = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "firebreak_rack_temperature_max_celsius",
		Help: "The hottest good reading of a rack's last poll, by role (cell_temperature, module_temperature)."}, []string{"device", "role"})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "firebreak_build_info",
		Help: "Always 1; the labels say which build runs."}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(site.Version, site.Revision, runtime.Version()).Set(1)
	m.reg.MustRegister(m.pollDuration, m.polls, m.samples, m.alarms, m.zoneStage, m.drainAction, m.drainAck, m.outbox, m.publish,
		m.telemetry, m.reloads, m.reloadOK, m.stateProblem, m.deviceUp, m.lastPoll, m.rackTemp, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if site.HasPeer {
		m.reg.MustRegister(m.peerUp)
	}
	for _, r := range []string{"applied", "refused"} {
		m.reloads.WithLabelValues(r)
	}
	m.reloadOK.Set(1)
	m.site(site)
	return m
}

// watchInflux shows the InfluxDB sink's counts (firebreak_influx_points_total{result}) and makes
// /readyz say degraded while its writes fail.
func (m *metrics) watchInflux(s *influx.Sink) {
	for result, f := range map[string]func() int64{"written": s.Written, "dropped": s.Dropped, "failed": s.Failed} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "firebreak_influx_points_total",
			Help:        "InfluxDB points by result: written (the server took them), dropped (the queue was full, or more were held for a retry than its bound of 500,000), failed (the server refused them for good).",
			ConstLabels: prometheus.Labels{"result": result}}, func() float64 { return float64(f()) }))
	}
	m.influxFailing = s.Failing
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// watchSparkplug shows the Sparkplug session: up, messages stored for the primary host, inputs
// it could not take.
func (m *metrics) watchSparkplug(s *sparkplug.Session) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "firebreak_sparkplug_session_up",
		Help: "1 while the Sparkplug edge node's session is established and born (with a primary host: while it is online), 0 otherwise."},
		func() float64 { return b2f(s.Up()) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "firebreak_sparkplug_stored_messages",
		Help: "Sparkplug DDATA and NDATA kept for the primary host while it is away (sent flagged historical once it is back)."},
		func() float64 { return float64(s.Stored()) }))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "firebreak_sparkplug_dropped_total",
		Help: "Polls and engine states the Sparkplug session could not take because it was behind (the JSON topics carried them)."},
		func() float64 { return float64(s.Dropped()) }))
}

// site makes the series of every configured device, zone and consumer (at start and after a
// reload); those of the site before that are no longer configured go.
func (m *metrics) site(site metricsSite) {
	gone := func(before, now []string) []string {
		var out []string
		for _, n := range before {
			if !slices.Contains(now, n) {
				out = append(out, n)
			}
		}
		return out
	}
	for _, d := range gone(m.configured.Devices, site.Devices) {
		for _, v := range []*prometheus.GaugeVec{m.deviceUp, m.lastPoll, m.rackTemp} {
			v.DeletePartialMatch(prometheus.Labels{"device": d})
		}
	}
	for _, z := range gone(m.configured.Zones, site.Zones) {
		for _, v := range []*prometheus.GaugeVec{m.zoneStage, m.drainAction, m.drainAck} {
			v.DeletePartialMatch(prometheus.Labels{"zone": z})
		}
	}
	for _, c := range gone(m.configured.Consumers, site.Consumers) {
		m.drainAck.DeletePartialMatch(prometheus.Labels{"consumer": c})
	}
	for _, d := range site.Devices {
		m.deviceUp.WithLabelValues(d)
		m.lastPoll.WithLabelValues(d)
	}
	for _, z := range site.Zones {
		m.zoneStage.WithLabelValues(z)
		m.drainAction.WithLabelValues(z)
		for _, c := range site.Consumers {
			m.drainAck.WithLabelValues(z, c)
		}
	}
	m.configured = site
}

// batch records one poll.
func (m *metrics) batch(b sample.Batch) {
	if m == nil {
		return
	}
	result := "ok"
	if b.Err != nil {
		result = "failed"
	}
	// The engine loop is the only caller: the per-device series are looked up once, not hashed
	// from their labels on every poll (500 polls a second on a large hall).
	dm := m.byDevice[b.Device]
	if dm == nil {
		dm = &deviceMetrics{ok: m.polls.WithLabelValues(b.Device, "ok"), failed: m.polls.WithLabelValues(b.Device, "failed"),
			took: m.pollDuration.WithLabelValues(b.Device), up: m.deviceUp.WithLabelValues(b.Device), last: m.lastPoll.WithLabelValues(b.Device)}
		m.byDevice[b.Device] = dm
		m.mu.Lock()
		delete(m.unpolled, b.Device)
		m.polled[b.Device] = true
		m.mu.Unlock()
	}
	if result == "ok" {
		dm.ok.Inc()
		dm.up.Set(1)
		dm.last.Set(float64(b.At.UnixNano()) / 1e9)
	} else {
		dm.failed.Inc()
		dm.up.Set(0)
	}
	if b.Took > 0 {
		dm.took.Observe(b.Took.Seconds())
	}
	var counts [8]int
	cell, module := math.Inf(-1), math.Inf(-1)
	for _, s := range b.Samples {
		if int(s.Quality) < len(counts) {
			counts[s.Quality]++
		}
		if s.Quality == sample.Good {
			switch s.Role {
			case sample.CellTemperature:
				cell = max(cell, s.Value)
			case sample.ModuleTemperature:
				module = max(module, s.Value)
			}
		}
	}
	for _, t := range []struct {
		v    float64
		g    *prometheus.Gauge
		role sample.Role
	}{{cell, &dm.cellMax, sample.CellTemperature}, {module, &dm.moduleMax, sample.ModuleTemperature}} {
		if math.IsInf(t.v, -1) || math.IsNaN(t.v) {
			continue
		}
		if *t.g == nil {
			*t.g = m.rackTemp.WithLabelValues(b.Device, string(t.role))
		}
		(*t.g).Set(t.v)
	}
	for q, n := range counts {
		if n > 0 {
			if m.byQuality[q] == nil {
				m.byQuality[q] = m.samples.WithLabelValues(sample.Quality(q).String())
			}
			m.byQuality[q].Add(float64(n))
		}
	}
}

type deviceMetrics struct {
	ok, failed         prometheus.Counter
	took               prometheus.Observer
	up, last           prometheus.Gauge
	cellMax, moduleMax prometheus.Gauge
}

// state records the alarms, zone stages, drain actions and consumers' acks after they changed.
func (m *metrics) state(as []alarms.Alarm, zones map[string]alarms.Stage, actions map[string]cutover.Action, acks map[string]map[string]cutover.AckStatus) {
	if m == nil {
		return
	}
	m.alarms.Reset()
	for _, a := range as {
		m.alarms.WithLabelValues(strconv.Itoa(int(a.Stage)), a.State.String()).Inc()
	}
	for z, st := range zones {
		m.zoneStage.WithLabelValues(z).Set(float64(st))
	}
	rank := map[cutover.Action]float64{cutover.Prepare: 1, cutover.Drain: 2, cutover.Evacuate: 3}
	ackRank := map[cutover.AckStatus]float64{cutover.AckReceived: 1, cutover.AckDraining: 2, cutover.AckDrained: 3, cutover.AckFailed: 4}
	for z, a := range actions {
		m.drainAction.WithLabelValues(z).Set(rank[a])
		for _, c := range m.configured.Consumers {
			m.drainAck.WithLabelValues(z, c).Set(ackRank[acks[z][c]])
		}
	}
}

// expect makes /readyz wait for a first poll of devices not polled yet (after a reload).
func (m *metrics) expect(devices []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := m.polled
	m.unpolled = map[string]bool{}
	for _, d := range devices {
		if !seen[d] {
			m.unpolled[d] = true
		}
	}
}

func (m *metrics) beat(now time.Time) {
	if m != nil {
		m.engineBeat.Store(now.UnixNano())
	}
}

// healthStale is how long the engine loop may go without a turn before /healthz fails: it turns
// at least once a second (its tick) whatever the devices do.
const healthStale = 10 * time.Second

func (m *metrics) health() (bool, string) {
	last := m.engineBeat.Load()
	if last == 0 {
		return false, "engine loop not started"
	}
	if age := time.Since(time.Unix(0, last)); age > healthStale {
		return false, fmt.Sprintf("engine loop last turned %s ago", age.Round(time.Second))
	}
	return true, "ok"
}

// stateProblems shows what state_dir lost or cannot keep (engine loop).
func (m *metrics) stateProblems(ps []problem) {
	m.stateProblem.Reset()
	for _, p := range ps {
		m.stateProblem.WithLabelValues(p.Source + "." + p.Kind).Set(1)
	}
	m.mu.Lock()
	m.problems = ps
	m.mu.Unlock()
}

// ready says whether the daemon can keep its promises. What it lost at start it works without
// (ready, "ok; degraded: …"); state it cannot keep durable and drain signals no consumer can
// verify make it not ready ("degraded: …").
func (m *metrics) ready() (bool, string) {
	var why, notes []string
	m.mu.Lock()
	for _, p := range m.problems {
		if p.Ready {
			notes = append(notes, p.Source+"."+p.Kind+": "+p.Text)
		} else {
			why = append(why, "degraded: "+p.Source+"."+p.Kind+": "+p.Text)
		}
	}
	m.mu.Unlock()
	if ok, msg := m.health(); !ok {
		why = append(why, msg)
	}
	if m.stopping.Load() {
		why = append(why, "shutting down")
	}
	if !m.connected() {
		why = append(why, "not connected to the MQTT broker")
	}
	m.mu.Lock()
	var unpolled []string
	for d := range m.unpolled {
		unpolled = append(unpolled, d)
	}
	m.mu.Unlock()
	if len(unpolled) > 0 {
		sort.Strings(unpolled)
		why = append(why, "no poll yet of "+strings.Join(unpolled, ", "))
	}
	if m.influxFailing != nil {
		if err := m.influxFailing(); err != nil {
			notes = append(notes, "influx: writes fail: "+err.Error())
		}
	}
	if len(why) > 0 {
		return false, strings.Join(append(why, notes...), "; ")
	}
	if len(notes) > 0 {
		return true, "ok; degraded: " + strings.Join(notes, "; ")
	}
	return true, "ok"
}

// serve runs the HTTP endpoint until ctx ends: /metrics (Prometheus text), /healthz (the engine
// loop turns), /readyz (healthy, connected to the broker, every device polled at least once, not
// shutting down). A listen error is returned at once, so a bad metrics.listen stops the start.
func (m *metrics) serve(listen string, log *zap.Logger, bound func(string)) (func(context.Context) error, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen %s: %w", listen, err)
	}
	if bound != nil {
		bound(ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	check := func(f func() (bool, string)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			ok, msg := f()
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if !ok {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			fmt.Fprintln(w, msg)
		}
	}
	mux.Handle("/healthz", check(m.health))
	mux.Handle("/readyz", check(m.ready))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("metrics and health endpoint", zap.String("listen", ln.Addr().String()))
	return func(ctx context.Context) error {
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error {
			<-gctx.Done() // the daemon is done with it, or Serve failed
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			return nil
		})
		g.Go(func() error {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics.listen %s: %w", listen, err)
			}
			return nil
		})
		return g.Wait()
	}, nil
}
