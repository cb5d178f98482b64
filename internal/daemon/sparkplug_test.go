package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/testenv"
)

// spMetric and spMsg are what the Node test host (internal/sparkplug/testhost/host.js) prints of
// every message it decoded with Eclipse Tahu's decoder.
type spMetric struct {
	Name       string         `json:"name"`
	Alias      *uint64        `json:"alias"`
	Type       string         `json:"type"`
	Value      any            `json:"value"`
	Timestamp  int64          `json:"timestamp"`
	Historical bool           `json:"historical"`
	Quality    *int           `json:"quality"`
	Properties map[string]any `json:"properties"`
}

type spMsg struct {
	Ev        string     `json:"ev"`
	Rule      string     `json:"rule"`
	Detail    string     `json:"detail"`
	Kind      string     `json:"kind"`
	Node      string     `json:"node"`
	Device    string     `json:"device"`
	Seq       *int       `json:"seq"`
	BdSeq     *int64     `json:"bdSeq"`
	Matched   bool       `json:"matched"`
	Wraps     int        `json:"wraps"`
	Timestamp int64      `json:"timestamp"`
	Metrics   []spMetric `json:"metrics"`
}

// spHost is the Node test host as a process: its stdin takes commands, its stdout is kept.
type spHost struct {
	in   io.WriteCloser
	mu   sync.Mutex
	msgs []spMsg
}

func (h *spHost) snapshot() []spMsg {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]spMsg(nil), h.msgs...)
}

func (h *spHost) send(t *testing.T, cmd string) {
	t.Helper()
	if _, err := fmt.Fprintln(h.in, cmd); err != nil {
		t.Fatalf("test host: %s: %v", cmd, err)
	}
}

// count is how many messages match f.
func (h *spHost) count(f func(spMsg) bool) int {
	n := 0
	for _, m := range h.snapshot() {
		if f(m) {
			n++
		}
	}
	return n
}

// startSparkplugHost runs the Node test host as primary host hostID of group on broker. It needs
// node and the host's npm packages (make test installs them; .ci/run installs node and npm).
func startSparkplugHost(t *testing.T, broker, hostID, group string) *spHost {
	t.Helper()
	node, err := exec.LookPath("node")
	testenv.Need(t, "node (apt-get install nodejs npm)", err)
	dir, err := filepath.Abs(filepath.Join("..", "sparkplug", "testhost"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = os.Stat(filepath.Join(dir, "node_modules", "sparkplug-payload", "package.json"))
	testenv.Need(t, "the test host's npm packages (npm ci --prefix internal/sparkplug/testhost)", err)
	cmd := exec.Command(node, "host.js", broker, hostID, group)
	cmd.Dir = dir
	h := &spHost{}
	if h.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var m spMsg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = spMsg{Ev: "violation", Rule: "output", Detail: sc.Text()}
			}
			h.mu.Lock()
			h.msgs = append(h.msgs, m)
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("test host stderr: %s", stderr.String())
		}
	})
	return h
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// TestSparkplugPrimaryHost runs the fire of bms-silent-fire (rack-04 heats from an internal short
// and its BMS falls silent at 40 min) with Sparkplug on and a primary host that is not ours:
// the Node test host, which decodes every message with Eclipse Tahu's decoder and checks the
// session rules (births first, seq 0-255 without a gap, aliases, bdSeq). The host goes away for
// 30 s during the fire: everything the node made meanwhile must come afterwards, flagged
// historical, and rebuild the very values the JSON telemetry showed. Then a rebirth on NCMD, the
// silent BMS's DDEATH, the drain as a host sees it, and the NDEATH will when the daemon is
// killed, with the bdSeq of its NBIRTH.
func TestSparkplugPrimaryHost(t *testing.T) {
	t.Parallel()
	broker := testenv.Mosquitto(t)
	const group, edge, hostID = "firebreak-test", "edge-1", "scada"
	host := startSparkplugHost(t, broker, hostID, group)
	hiltest.WaitFor(t, 30*time.Second, "the test host online", func() bool { return host.count(func(m spMsg) bool { return m.Ev == "online" }) == 1 })

	// At 30x: the absence is 15 minutes of the fire (24-39 min: rack-04 heats, its alarms rise),
	// and the BMS falls silent a minute after the host is back.
	r := hiltest.NewRoomAt(t, "spb", "bms-silent-fire", broker, 30)
	p := r.Prefix()
	rec := hiltest.Record(t, broker, "spb-json", false, p+"/dev/+/telemetry", p+"/drain/+")
	ctx, cancel := context.WithCancel(context.Background())
	simDone := make(chan error, 1)
	go func() { simDone <- r.Sim.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-simDone
	})
	child := startChildWith(t, r, r.Key, func(cs *childSpec) {
		cs.Sparkplug = &config.Sparkplug{Enabled: true, GroupID: group, EdgeNodeID: edge, PrimaryHostID: hostID}
	})
	scenario := func() time.Duration { return r.Clk.Now().Sub(r.Sim.Start()) }

	born := func(dev string) func(spMsg) bool {
		return func(m spMsg) bool { return m.Ev == "msg" && m.Kind == "DBIRTH" && m.Device == dev }
	}
	for _, d := range r.Cfg.Devices {
		hiltest.WaitFor(t, 60*time.Second, d.Name+"'s DBIRTH", func() bool { return host.count(born(d.Name)) > 0 })
	}

	// The host goes away for 30 s during the fire: a quiet room sends next to nothing (data by
	// exception), so the absence is when rack-04 heats.
	hiltest.WaitFor(t, 120*time.Second, "scenario minute 24", func() bool { return scenario() >= 24*time.Minute })
	awayFrom, awayReal := r.Clk.Now(), time.Now()
	host.send(t, "offline")
	hiltest.WaitFor(t, 10*time.Second, "the host offline", func() bool { return host.count(func(m spMsg) bool { return m.Ev == "offline" }) == 1 })
	// /metrics says the session is down and what waits for the host.
	metric := func(name string) float64 {
		lines := child.Logged("metrics and health endpoint")
		if len(lines) == 0 {
			return math.NaN()
		}
		resp, err := http.Get("http://" + fmt.Sprint(lines[0]["listen"]) + "/metrics")
		if err != nil {
			return math.NaN()
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var v float64
			if n, _ := fmt.Sscanf(sc.Text(), name+" %g", &v); n == 1 {
				return v
			}
		}
		return math.NaN()
	}
	hiltest.WaitFor(t, 20*time.Second, "/metrics: the session down, data stored", func() bool {
		return metric("firebreak_sparkplug_session_up") == 0 && metric("firebreak_sparkplug_stored_messages") > 0
	})
	time.Sleep(30*time.Second - time.Since(awayReal)) // the rest of the host's absence, not a wait for a condition
	awayTo := r.Clk.Now()
	host.send(t, "online")
	hiltest.WaitFor(t, 60*time.Second, "the stored data sent", func() bool { return len(child.Logged("sparkplug: stored data sent, flagged historical")) > 0 })
	stored := 0
	for _, l := range child.Logged("sparkplug: stored data sent, flagged historical") {
		stored += int(l["messages"].(float64))
	}
	historical := func(m spMsg) bool {
		return m.Ev == "msg" && (m.Kind == "DDATA" || m.Kind == "NDATA") && len(m.Metrics) > 0 && m.Metrics[0].Historical
	}
	hiltest.WaitFor(t, 30*time.Second, fmt.Sprintf("%d historical messages at the host", stored), func() bool { return host.count(historical) >= stored })
	hiltest.WaitFor(t, 20*time.Second, "/metrics: the session up, nothing stored", func() bool {
		return metric("firebreak_sparkplug_session_up") == 1 && metric("firebreak_sparkplug_stored_messages") == 0
	})

	// The silent BMS: rack-04's DDEATH (minute 40).
	hiltest.WaitFor(t, 120*time.Second, "rack-04's DDEATH", func() bool {
		return host.count(func(m spMsg) bool { return m.Ev == "msg" && m.Kind == "DDEATH" && m.Device == "rack-04" }) > 0
	})

	// A rebirth on NCMD: an NBIRTH with the session's bdSeq, the devices born again.
	nbirths := host.count(func(m spMsg) bool { return m.Ev == "msg" && m.Kind == "NBIRTH" })
	host.send(t, "rebirth "+edge)
	hiltest.WaitFor(t, 30*time.Second, "the NBIRTH of the rebirth", func() bool {
		return host.count(func(m spMsg) bool { return m.Ev == "msg" && m.Kind == "NBIRTH" }) > nbirths
	})

	// The drain as a host sees it: the zone's drain action.
	zone := r.Sc.Expect.DrainZone
	hiltest.WaitFor(t, 180*time.Second, "the drain in the node metrics", func() bool {
		return hostView(host.snapshot())[""]["Zones/"+zone+"/Drain/Action"] == "drain"
	})

	// The daemon killed: the broker sends the NDEATH will, with the NBIRTH's bdSeq.
	// (The host may have seen the first session's NDEATH too, if it was still connected when the
	// node published it on the host's offline STATE.)
	ndeath := func(m spMsg) bool { return m.Ev == "msg" && m.Kind == "NDEATH" }
	deaths := host.count(ndeath)
	child.Signal(syscall.SIGKILL)
	hiltest.WaitFor(t, 30*time.Second, "the NDEATH will", func() bool { return host.count(ndeath) > deaths })

	msgs := host.snapshot()
	var nb []spMsg
	var death *spMsg
	wraps := 0
	for i, m := range msgs {
		switch {
		case m.Ev == "violation":
			t.Errorf("host: %s: %s", m.Rule, m.Detail)
		case m.Kind == "NBIRTH":
			nb = append(nb, m)
		case m.Kind == "NDEATH":
			death = &msgs[i]
		}
		wraps = max(wraps, m.Wraps)
	}
	if len(nb) < 3 || len(nb) <= nbirths {
		t.Fatalf("%d NBIRTHs: want the first, the one after the host came back and the rebirth's", len(nb))
	}
	if a, b := nb[nbirths-1].BdSeq, nb[nbirths].BdSeq; a == nil || b == nil || *a != *b {
		t.Errorf("the rebirth's NBIRTH has bdSeq %v, the session's was %v: a rebirth is not a new session", b, a)
	}
	lastBirth := nb[len(nb)-1]
	if death == nil || !death.Matched || death.BdSeq == nil || *death.BdSeq != *lastBirth.BdSeq {
		t.Errorf("NDEATH %+v after the NBIRTH %+v: the will's bdSeq must be the NBIRTH's", death, lastBirth)
	}
	if wraps == 0 {
		t.Error("seq never wrapped from 255 to 0: the run is too short to show it")
	}
	checkHistorical(t, msgs, rec, p, r.Sim.Start(), awayFrom, awayTo, stored)
	checkFireAsHostSees(t, msgs, rec, p, zone)
}

// hostView is what a host holds after msgs: each device's (and the node's, "") metrics by name,
// the current values only (historical ones do not update a tag).
func hostView(msgs []spMsg) map[string]map[string]any {
	view := map[string]map[string]any{"": {}}
	names := map[string]map[uint64]string{}
	for _, m := range msgs {
		if m.Ev != "msg" {
			continue
		}
		switch m.Kind {
		case "NBIRTH", "DBIRTH":
			view[m.Device] = map[string]any{}
			names[m.Device] = map[uint64]string{}
			for _, mt := range m.Metrics {
				view[m.Device][mt.Name] = mt.Value
				if mt.Alias != nil {
					names[m.Device][*mt.Alias] = mt.Name
				}
			}
		case "NDATA", "DDATA":
			for _, mt := range m.Metrics {
				if !mt.Historical && mt.Alias != nil && view[m.Device] != nil {
					view[m.Device][names[m.Device][*mt.Alias]] = mt.Value
				}
			}
		}
	}
	return view
}

// checkHistorical: every message stored while the host was away came, flagged historical, with
// its acquisition time inside the absence; and from a point's first historical value on, the
// host's timeline of it (live and historical, by timestamp) gives, at every JSON telemetry
// message of the absence, the value that message had.
func checkHistorical(t *testing.T, msgs []spMsg, rec *hiltest.Recorder, p string, start, from, to time.Time, stored int) {
	t.Helper()
	type obs struct {
		at int64
		v  float64
	}
	timeline := map[string][]obs{} // device/point
	firstHist := map[string]int64{}
	names := map[string]map[uint64]string{}
	outside := map[string]bool{}
	hist := 0
	for _, m := range msgs {
		if m.Ev != "msg" {
			continue
		}
		switch m.Kind {
		case "DBIRTH":
			names[m.Device] = map[uint64]string{}
			for _, mt := range m.Metrics {
				if mt.Alias != nil {
					names[m.Device][*mt.Alias] = mt.Name
				}
				if v, ok := mt.Value.(float64); ok && mt.Type == "Double" && mt.Quality == nil {
					timeline[m.Device+"/"+mt.Name] = append(timeline[m.Device+"/"+mt.Name], obs{mt.Timestamp, v})
				}
			}
		case "DDATA", "NDATA":
			if len(m.Metrics) > 0 && m.Metrics[0].Historical {
				hist++
			}
			if m.Kind == "NDATA" {
				continue
			}
			for _, mt := range m.Metrics {
				if mt.Historical != m.Metrics[0].Historical {
					t.Errorf("a DDATA of %s mixes historical and current metrics", m.Device)
				}
				// A metric's timestamp is when it was polled: a poll taken just before the node
				// saw the host go (the engine loop may lag behind on a busy machine) is stored too (5 minutes of scenario time is 10 s at 30x).
				if mt.Historical && (mt.Timestamp < from.Add(-5*time.Minute).UnixMilli() || mt.Timestamp > to.Add(5*time.Minute).UnixMilli()) && !outside[m.Device] {
					outside[m.Device] = true
					t.Errorf("historical metric of %s at %s, outside the absence %s..%s", m.Device, time.UnixMilli(mt.Timestamp).UTC(), from, to)
				}
				v, ok := mt.Value.(float64)
				if mt.Type != "Double" || mt.Alias == nil || !ok || mt.Quality != nil {
					continue
				}
				key := m.Device + "/" + names[m.Device][*mt.Alias]
				timeline[key] = append(timeline[key], obs{mt.Timestamp, v})
				if _, seen := firstHist[key]; mt.Historical && !seen {
					firstHist[key] = mt.Timestamp
				}
			}
		}
	}
	if hist < stored || stored == 0 {
		t.Errorf("%d historical DDATA and NDATA at the host, the node sent %d", hist, stored)
	}
	for k := range timeline {
		sort.SliceStable(timeline[k], func(i, j int) bool { return timeline[k][i].at < timeline[k][j].at })
	}
	snap, _ := rec.Snapshot()
	checked := 0
	margin := 10 * time.Second // scenario time: the host's going and coming are not instants
	for topic, payloads := range snap {
		var dev string
		if _, err := fmt.Sscanf(topic, p+"/dev/%s", &dev); err != nil {
			continue
		}
		dev = dev[:len(dev)-len("/telemetry")]
		for _, raw := range payloads {
			var tp struct {
				TS     time.Time          `json:"ts"`
				Values map[string]float64 `json:"values"`
			}
			if json.Unmarshal(raw, &tp) != nil || tp.TS.Before(from.Add(margin)) || tp.TS.After(to.Add(-margin)) {
				continue
			}
			at := tp.TS.UnixMilli()
			for pt, v := range tp.Values {
				key := dev + "/" + pt
				first, ok := firstHist[key]
				if !ok || at < first {
					continue
				}
				tl := timeline[key]
				i := sort.Search(len(tl), func(i int) bool { return tl[i].at > at }) - 1
				if i < 0 || (tl[i].v != v && !(math.IsNaN(v) && math.IsNaN(tl[i].v))) {
					got := "nothing"
					if i >= 0 {
						got = fmt.Sprint(tl[i].v)
					}
					t.Errorf("%s at %s: JSON telemetry %v, the host's Sparkplug history %s", key, tp.TS, v, got)
					return
				}
				checked++
			}
		}
	}
	if checked < 100 {
		t.Errorf("only %d telemetry values of the absence checked against the historical data", checked)
	}
	t.Logf("host away from scenario %s to %s: %d historical messages, %d telemetry values of the absence rebuilt from them", from.Sub(start).Round(time.Second), to.Sub(start).Round(time.Second), hist, checked)
}

// checkFireAsHostSees: the racks' temperatures rose at the host, rack-04's alarms went active,
// and the zone's stage and drain signal id are the daemon's.
func checkFireAsHostSees(t *testing.T, msgs []spMsg, rec *hiltest.Recorder, p, zone string) {
	t.Helper()
	names := map[string]map[uint64]string{}
	firstTemp, maxTemp, maxStage := math.NaN(), math.Inf(-1), 0.0
	alarmed := false
	for _, m := range msgs {
		if m.Ev != "msg" {
			continue
		}
		if m.Kind == "NBIRTH" || m.Kind == "DBIRTH" {
			names[m.Device] = map[uint64]string{}
		}
		for _, mt := range m.Metrics {
			name := mt.Name
			if mt.Alias != nil {
				if name != "" {
					names[m.Device][*mt.Alias] = name
				}
				name = names[m.Device][*mt.Alias]
			}
			v, _ := mt.Value.(float64)
			switch {
			case m.Device == "rack-04" && name == "cell_temp_max" && mt.Quality == nil:
				if math.IsNaN(firstTemp) {
					firstTemp = v
				}
				maxTemp = math.Max(maxTemp, v)
			case m.Device == "" && name == "Zones/"+zone+"/Stage":
				maxStage = math.Max(maxStage, v)
			case m.Device == "rack-04" && len(name) > 7 && name[:7] == "Alarms/" && mt.Type == "Boolean" && mt.Value == true:
				alarmed = true
			}
		}
	}
	if !(maxTemp >= firstTemp+10) {
		t.Errorf("rack-04's hottest cell at the host: %v °C at first, at most %v °C: the fire did not show", firstTemp, maxTemp)
	}
	if maxStage < 3 {
		t.Errorf("zone %s's stage at the host reached %v, want the drain's 3", zone, maxStage)
	}
	if !alarmed {
		t.Error("no alarm of rack-04 went active at the host")
	}
	view := hostView(msgs)
	id, _ := view[""]["Zones/"+zone+"/Drain/Signal ID"].(string)
	snap, _ := rec.Snapshot()
	found := false
	for _, raw := range snap[p+"/drain/"+zone] {
		var s struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &s) == nil && s.ID == id {
			found = true
		}
	}
	if id == "" || !found {
		t.Errorf("the host's drain signal id %q is not one the daemon sent on %s/drain/%s", id, p, zone)
	}
}
