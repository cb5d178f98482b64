package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sync/errgroup"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/testenv"
)

// BenchmarkServe500Devices runs firebreak-sim as its own process serving 500 rack BMSs (three
// gateways) at speed 1, polls every device once a second over Modbus TCP from this process, and
// reports the simulator's CPU (% of one core, from /proc) and RSS. It measures for
// FIREBREAK_BENCH_SECONDS (default 20) after a 3 s warm-up, once, whatever b.N.
func BenchmarkServe500Devices(b *testing.B) {
	const devices, gateways = 500, 3
	seconds := benchSeconds()
	dir := b.TempDir()
	bin := filepath.Join(dir, "firebreak-sim")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	base := freeRun(b, gateways)
	var site strings.Builder
	fmt.Fprintf(&site, "site: bench\ninstance: b1\nstate_dir: %s\nconnections:\n", dir)
	for g := 0; g < gateways; g++ {
		fmt.Fprintf(&site, "  - {name: gw-%d, url: \"tcp://127.0.0.1:%d\", timeout: 2s, max_gap: 16}\n", g+1, base+g)
	}
	site.WriteString("devices:\n")
	for d := 0; d < devices; d++ {
		fmt.Fprintf(&site, "  - {name: rack-%03d, connection: gw-%d, unit_id: %d, profile: li-ion-rack, zone: z}\n", d+1, d%gateways+1, d/gateways+1)
	}
	site.WriteString("zones: [{name: z, cut_scope: [d]}]\ndomains: [{name: d, targets: [t]}]\n")
	cfg, simPID := serveSite(b, bin, dir, site.String(), base, gateways)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan sample.Batch, 4096)
	var grp errgroup.Group
	pollers := map[string]*collectors.Poller{}
	for _, cn := range cfg.Connections {
		ep, _ := collectors.ParseEndpoint(cn.URL)
		rd, err := collectors.NewReader(ep, cn.Timeout)
		if err != nil {
			b.Fatal(err)
		}
		pollers[cn.Name] = &collectors.Poller{Conn: cn.Name, Reader: rd, Clock: clock.Real{}, Out: out, Log: zap.NewNop()}
	}
	for _, d := range cfg.Devices {
		dev, err := cfg.Collector(d)
		if err != nil {
			b.Fatal(err)
		}
		pollers[d.Connection].Devices = append(pollers[d.Connection].Devices, dev)
	}
	for _, p := range pollers {
		grp.Go(func() error { return p.Run(ctx) })
	}
	var batches, failed int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for bt := range out {
			batches++
			if bt.Err != nil {
				failed++
			}
		}
	}()
	time.Sleep(3 * time.Second) // warm-up: connections open, the model settles
	b.ResetTimer()
	cpu0, t0 := procCPU(b, simPID), time.Now()
	n0 := batches
	time.Sleep(time.Duration(seconds) * time.Second)
	cpu1, t1 := procCPU(b, simPID), time.Now()
	n1 := batches
	b.StopTimer()
	cancel()
	_ = grp.Wait()
	close(out)
	<-done
	if failed > 0 {
		b.Errorf("%d of %d polls failed", failed, batches)
	}
	pct := 100 * (cpu1 - cpu0).Seconds() / t1.Sub(t0).Seconds()
	b.ReportMetric(pct, "sim-cpu-%")
	b.ReportMetric(float64(procRSS(b, simPID))/(1<<20), "sim-rss-MB")
	b.ReportMetric(float64(n1-n0)/t1.Sub(t0).Seconds(), "device-polls/s")
}

// serveSite writes the site config to dir, starts firebreak-sim (bin) serving it at base (one
// port per gateway), waits until every port answers, and returns the parsed config and the
// simulator's pid; the process is killed when the benchmark ends.
func serveSite(b *testing.B, bin, dir, site string, base, gateways int) (*config.Config, int) {
	b.Helper()
	sitePath := filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(sitePath, []byte(site), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(sitePath)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Metrics.Listen = "127.0.0.1:0"
	cmd := exec.Command(bin, "-site", sitePath, "-scenario", "normal", "-speed", "1", "-listen", fmt.Sprintf("127.0.0.1:%d", base))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// Killed with this process too: a benchmark that panics skips its cleanups, and a simulator
	// left serving 500 devices takes a core's worth of the next measurement.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for g := 0; g < gateways; g++ {
		waitPort(b, base+g)
	}
	return cfg, cmd.Process.Pid
}

// freeRun finds n consecutive free loopback ports.
func freeRun(b *testing.B, n int) int {
	for attempt := 0; attempt < 50; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ok := base+n < 65535
		for i := 1; i < n && ok; i++ {
			l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			l2.Close()
		}
		if ok {
			return base
		}
	}
	b.Fatal("no run of free ports")
	return 0
}

func waitPort(b *testing.B, port int) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("port %d never opened", port)
}

// procCPU is a process's user+system CPU time from /proc/<pid>/stat.
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

func procRSS(b *testing.B, pid int) int64 { return procStatus(b, pid, "VmRSS:") }

// procStatus is a size field of /proc/<pid>/status (VmRSS:, VmHWM:), in bytes.
func procStatus(b *testing.B, pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field) {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkDaemon500x200 runs the daemon (in this process) polling 500 devices of 200 points
// each, once a second, from firebreak-sim (its own process) over four Modbus TCP gateways of 125
// devices, with telemetry to a real Mosquitto: the load Telegraf was measured on beside it (200
// INT16 holding registers per device in 2 requests, 1,000 requests/s). It reports the daemon's
// CPU (% of one core) and RSS (this process: the daemon plus an idle benchmark harness),
// samples/s, the jitter of poll starts (how far each device's poll started from one interval
// after its last), p50 and p99, and how many "poller behind schedule" lines the run logged,
// start included. Goals (issue 18): ≤ 7.5 % of a core, ≤ 60 MB, p99 ≤ 20 ms, no late line.
//
// FIREBREAK_BENCH_SECONDS sets the measured time (default 20, after a 5 s warm-up);
// FIREBREAK_BENCH_CPUPROFILE=<file> writes a CPU profile of the measured time only, and
// FIREBREAK_BENCH_MEMPROFILE=<file> a heap profile at its end (the daemon still running, one
// sample per 4 kB allocated). live-heap-MB is the heap after a collection at the end.
func BenchmarkDaemon500x200(b *testing.B) { benchDaemon(b, 500, 4, false) }

// BenchmarkDaemon500x200Record is BenchmarkDaemon500x200 with -record (every poll written to a
// trace file): the goal is no more than 1.2 × the CPU without it.
func BenchmarkDaemon500x200Record(b *testing.B) { benchDaemon(b, 500, 4, true) }

// BenchmarkDaemon1000x200 is twice the load on eight gateways: goal ≤ 15 % of a core, and a
// start with no "poller behind schedule" line.
func BenchmarkDaemon1000x200(b *testing.B) { benchDaemon(b, 1000, 8, false) }

// benchProfile is the 200-point map of the daemon benchmarks: the rack roles detection reads
// (string, SoC, 8 module and 1 cell temperature, 128 cell voltages) and 59 plain registers,
// every one an INT16 holding register at 0-199, so the plan is 2 requests (125 + 75).
const benchProfile = `profiles:
  - name: bms-200
    points:
      - {name: string_voltage, register: holding, address: 0, type: int16, scale: 0.1, unit: V, role: string_voltage}
      - {name: string_current, register: holding, address: 1, type: int16, scale: 0.1, unit: A, role: string_current}
      - {name: soc, register: holding, address: 2, type: int16, scale: 0.1, unit: "%", role: soc}
      - {name: cell_temp_max, register: holding, address: 3, type: int16, scale: 0.1, unit: degC, role: cell_temperature}
      - {name: module_temp, register: holding, address: 4, type: int16, scale: 0.1, unit: degC, role: module_temperature, repeat: {count: 8, stride: 1}}
      - {name: cell_v, register: holding, address: 12, type: int16, scale: 0.001, unit: V, role: cell_voltage, repeat: {count: 128, stride: 1}}
      - {name: aux, register: holding, address: 140, type: int16, repeat: {count: 60, stride: 1}}
`

func benchDaemon(b *testing.B, devices, gateways int, record bool) {
	if os.Getenv("FIREBREAK_BENCH_MEMPROFILE") != "" {
		// One sample per 4 kB instead of 512 kB: a rack's 10 kB of point states is then
		// counted, not guessed from one allocation in fifty.
		runtime.MemProfileRate = 4096
	}
	seconds := benchSeconds()
	broker := testenv.Mosquitto(b)
	dir := b.TempDir()
	bin := filepath.Join(dir, "firebreak-sim")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	base := freeRun(b, gateways)
	cfg, _ := serveSite(b, bin, dir, benchSite(dir, broker, "", base, gateways, devices), base, gateways)
	for _, d := range cfg.Devices {
		dev, err := cfg.Collector(d)
		if err != nil {
			b.Fatal(err)
		}
		if len(dev.Requests) != 2 || len(dev.Points) != 200 {
			b.Fatalf("device %s: %d points in %d requests, want 200 in 2", d.Name, len(dev.Points), len(dev.Requests))
		}
	}

	var mu sync.Mutex
	last := map[string]time.Time{}
	var jitter []time.Duration
	samples, failed, measuring := 0, 0, false
	observe := func(bt sample.Batch) {
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := last[bt.Device]; ok && measuring {
			jitter = append(jitter, (bt.At.Sub(prev) - time.Second).Abs())
			samples += len(bt.Samples)
			if bt.Err != nil {
				failed++
			}
		}
		last[bt.Device] = bt.At
	}
	// The log is kept at warn and above, as a production daemon's would be read: the late lines
	// are counted, the rest is shown if the benchmark fails.
	core, logs := observer.New(zapcore.WarnLevel)
	opts := daemon.Options{Config: cfg, Clock: clock.Real{}, Log: zap.New(core), Version: "bench", Observe: observe}
	_, opts.SigningKey, _ = ed25519.GenerateKey(nil)
	var rec *os.File
	var recBuf *bufio.Writer
	if record {
		var err error
		if rec, err = os.Create(filepath.Join(dir, "record.csv")); err != nil {
			b.Fatal(err)
		}
		defer rec.Close()
		recBuf = bufio.NewWriterSize(rec, 1<<16) // as `firebreak run -record` writes it
		opts.Record = recBuf
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := time.Now()
	go func() { done <- daemon.Run(ctx, opts) }()
	time.Sleep(5 * time.Second) // warm-up: connections open, plans made, the engine's baselines set
	b.ResetTimer()
	if path := os.Getenv("FIREBREAK_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
	}
	mu.Lock()
	measuring = true
	mu.Unlock()
	usr0, sys0 := selfUserSys(b)
	t0 := time.Now()
	time.Sleep(time.Duration(seconds) * time.Second)
	usr1, sys1 := selfUserSys(b)
	t1 := time.Now()
	rss := procRSS(b, os.Getpid()) // before the heap profile's collection
	pprof.StopCPUProfile()
	if path := os.Getenv("FIREBREAK_BENCH_MEMPROFILE"); path != "" {
		writeHeapProfile(b, path)
	}
	mu.Lock()
	measuring = false
	n, js, bad := samples, append([]time.Duration(nil), jitter...), failed
	mu.Unlock()
	b.StopTimer()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if record {
		if err := recBuf.Flush(); err != nil {
			b.Fatal(err)
		}
		if fi, err := rec.Stat(); err != nil || fi.Size() == 0 {
			b.Fatalf("the trace was not written: %v", err)
		}
	}
	if bad > 0 || len(js) == 0 {
		for _, e := range logs.All() {
			b.Log(e.Message, e.ContextMap())
		}
		b.Fatalf("%d polls failed, %d measured", bad, len(js))
	}
	sort.Slice(js, func(i, j int) bool { return js[i] < js[j] })
	pct := func(q float64) float64 { return float64(js[int(q*float64(len(js)-1))]) / float64(time.Millisecond) }
	wall := t1.Sub(t0).Seconds()
	b.ReportMetric(100*(usr1-usr0+sys1-sys0).Seconds()/wall, "daemon-cpu-%")
	b.ReportMetric(100*(sys1-sys0).Seconds()/wall, "of-it-kernel-%")
	b.ReportMetric(float64(rss)/(1<<20), "rss-MB")
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "live-heap-MB")
	b.ReportMetric(float64(n)/t1.Sub(t0).Seconds(), "samples/s")
	b.ReportMetric(pct(0.5), "jitter-p50-ms")
	b.ReportMetric(pct(0.99), "jitter-p99-ms")
	late := logs.FilterMessage("poller behind schedule").All()
	for _, e := range late {
		b.Logf("%s after the start: %s %v", e.Time.Sub(started).Round(time.Millisecond), e.Message, e.ContextMap())
	}
	b.ReportMetric(float64(len(late)), "late-lines")
}

// benchSeconds is how long a benchmark of a running process measures: FIREBREAK_BENCH_SECONDS,
// 20 by default.
func benchSeconds() int {
	if v, err := strconv.Atoi(os.Getenv("FIREBREAK_BENCH_SECONDS")); err == nil && v > 0 {
		return v
	}
	return 20
}

// benchSite is the daemon benchmarks' site: devices of benchProfile on gateways from port base,
// telemetry to broker, /metrics on metrics (the config's default when empty).
func benchSite(dir, broker, metrics string, base, gateways, devices int) string {
	var site strings.Builder
	fmt.Fprintf(&site, "site: bench\ninstance: b1\nstate_dir: %s\nmqtt: {brokers: [%q]}\n", filepath.Join(dir, "state"), broker)
	if metrics != "" {
		fmt.Fprintf(&site, "metrics: {listen: %q}\n", metrics)
	}
	site.WriteString("connections:\n")
	for g := 0; g < gateways; g++ {
		fmt.Fprintf(&site, "  - {name: gw-%d, url: \"tcp://127.0.0.1:%d\", timeout: 2s}\n", g+1, base+g)
	}
	site.WriteString(benchProfile + "devices:\n")
	for d := 0; d < devices; d++ {
		fmt.Fprintf(&site, "  - {name: rack-%04d, connection: gw-%d, unit_id: %d, profile: bms-200, zone: z}\n", d+1, d%gateways+1, d/gateways+1)
	}
	site.WriteString("zones: [{name: z, cut_scope: [d]}]\ndomains: [{name: d, targets: [t]}]\n")
	return site.String()
}

// BenchmarkRun500x200 is BenchmarkDaemon500x200's load on the daemon as an operator runs it:
// `firebreak run -config` as its own process (built here, no test harness in it), with its CPU
// from /proc over FIREBREAK_BENCH_SECONDS after a 5 s warm-up, its RSS at the end and its peak
// (VmHWM, the start included), samples/s from its /metrics, and its "poller behind schedule"
// lines. Poll-start jitter needs the in-process hook: BenchmarkDaemon500x200 reports it.
func BenchmarkRun500x200(b *testing.B) { benchRun(b, 500, 4) }

// BenchmarkRun1000x200 is BenchmarkRun500x200 at 1,000 devices on eight gateways.
func BenchmarkRun1000x200(b *testing.B) { benchRun(b, 1000, 8) }

func benchRun(b *testing.B, devices, gateways int) {
	seconds := benchSeconds()
	broker := testenv.Mosquitto(b)
	dir := b.TempDir()
	sim, fb := filepath.Join(dir, "firebreak-sim"), filepath.Join(dir, "firebreak")
	for bin, pkg := range map[string]string{sim: ".", fb: "../firebreak"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
	}
	base := freeRun(b, gateways+1)
	metrics := fmt.Sprintf("127.0.0.1:%d", base+gateways)
	serveSite(b, sim, dir, benchSite(dir, broker, metrics, base, gateways, devices), base, gateways)
	cmd := exec.Command(fb, "run", "-config", filepath.Join(dir, "site.yaml"))
	logs, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var late, fatal int
	var lastLines []string
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(logs)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, `"poller behind schedule"`) {
				late++
			}
			if strings.Contains(line, `"level":"error"`) || strings.Contains(line, `"level":"fatal"`) {
				fatal++
			}
			if lastLines = append(lastLines, line); len(lastLines) > 20 {
				lastLines = lastLines[1:]
			}
		}
	}()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	pid := cmd.Process.Pid
	time.Sleep(5 * time.Second) // warm-up, as the in-process benchmark's
	b.ResetTimer()
	n0, cpu0, t0 := benchSamples(b, metrics), procCPU(b, pid), time.Now()
	time.Sleep(time.Duration(seconds) * time.Second)
	n1, cpu1, t1 := benchSamples(b, metrics), procCPU(b, pid), time.Now()
	rss, hwm := procRSS(b, pid), procStatus(b, pid, "VmHWM:")
	b.StopTimer()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	werr := cmd.Wait()
	stopped = true
	<-scanned
	if werr != nil || fatal > 0 || n1 <= n0 {
		for _, l := range lastLines {
			b.Log(l)
		}
		b.Fatalf("firebreak run: exit %v, %d error lines, samples %v -> %v", werr, fatal, n0, n1)
	}
	wall := t1.Sub(t0).Seconds()
	b.ReportMetric(100*(cpu1-cpu0).Seconds()/wall, "daemon-cpu-%")
	b.ReportMetric(float64(rss)/(1<<20), "rss-MB")
	b.ReportMetric(float64(hwm)/(1<<20), "peak-rss-MB")
	b.ReportMetric((n1-n0)/wall, "samples/s")
	b.ReportMetric(float64(late), "late-lines")
}

// benchSamples is the sum of firebreak_samples_total on the daemon's /metrics at addr.
func benchSamples(b *testing.B, addr string) float64 {
	b.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "firebreak_samples_total{") {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				b.Fatalf("/metrics: %q: %v", line, err)
			}
			sum += v
		}
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	return sum
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

// selfUserSys is this process's user and system CPU time.
func selfUserSys(b *testing.B) (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}
