package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/sim"
)

// TestMaxInFlight: four devices behind one Modbus TCP gateway each answer 600 ms late (within
// the timeout). One request in flight cannot keep a 1 s schedule for them (a cycle takes 2.4 s);
// with max_in_flight 4 the daemon opens four connections, each device gets its own, and every
// device is polled each second.
func TestMaxInFlight(t *testing.T) {
	t.Parallel()
	site := `
site: inflight
instance: fb-1
state_dir: /tmp/unused
connections: [{name: gw, url: "tcp://127.0.0.1:502", timeout: 2s, max_in_flight: %d}]
zones: [{name: z, cut_scope: [d]}]
domains: [{name: d, targets: [t]}]
devices:
  - {name: ups-01, connection: gw, unit_id: 1, profile: ups-basic, zone: z}
  - {name: ups-02, connection: gw, unit_id: 2, profile: ups-basic, zone: z}
  - {name: ups-03, connection: gw, unit_id: 3, profile: ups-basic, zone: z}
  - {name: ups-04, connection: gw, unit_id: 4, profile: ups-basic, zone: z}
`
	scPath := filepath.Join(t.TempDir(), "late.yaml")
	var events string
	for i := 1; i <= 4; i++ {
		events += fmt.Sprintf("  - {at: 0s, kind: link_late, device: ups-0%d, delay: 600ms}\n", i)
	}
	if err := os.WriteFile(scPath, []byte("name: late\ndescription: every UPS answers late\nduration: 1h\nseed: 1\nchemistry: nmc\nambient_c: 24\nups_load_pct: 45\nevents:\n"+events+"expect: {max_stage: 0}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sc, err := sim.LoadScenario(scPath)
	if err != nil {
		t.Fatal(err)
	}
	rtu := strings.Replace(fmt.Sprintf(site, 2), "tcp://", "rtuovertcp://", 1)
	if _, err := config.Parse([]byte(rtu), "x.yaml"); err == nil || !strings.Contains(err.Error(), "max_in_flight") {
		t.Fatalf("max_in_flight 2 on an RTU-over-TCP converter: %v, want refused", err)
	}

	polled := func(inFlight int) map[string]int {
		cfg, err := config.Parse([]byte(fmt.Sprintf(site, inFlight)), "inflight.yaml")
		if err != nil {
			t.Fatal(err)
		}
		s, err := sim.New(cfg, sc, clock.Real{})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := s.Serve("gw", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		simCtx, stopSim := context.WithCancel(context.Background())
		defer stopSim()
		go s.Run(simCtx) // applies the link faults to the served connection
		cfg.Connections[0].URL = "tcp://" + srv.Addr
		pollers, err := build(cfg, clock.Real{}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		if len(pollers) != inFlight {
			t.Fatalf("max_in_flight %d: %d pollers", inFlight, len(pollers))
		}
		out := make(chan sample.Batch, 1000)
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
		defer cancel()
		done := make(chan struct{})
		for _, p := range pollers {
			p.Out = out
			go func() { p.Run(ctx); done <- struct{}{} }()
		}
		for range pollers {
			<-done
		}
		close(out)
		got := map[string]int{}
		for b := range out {
			if b.Err == nil {
				got[b.Device]++
			}
		}
		return got
	}
	one, four := polled(1), polled(4)
	t.Logf("good polls in 6 s per device: max_in_flight 1: %v; max_in_flight 4: %v", one, four)
	for _, d := range []string{"ups-01", "ups-02", "ups-03", "ups-04"} {
		if one[d] > 3 { // 4 devices × 600 ms in series: a 2.4 s cycle
			t.Errorf("max_in_flight 1: %s polled %d times in 6 s; four devices 600 ms late each cannot be", d, one[d])
		}
		if four[d] < 5 { // 6 expected; one request in flight allows at most 3
			t.Errorf("max_in_flight 4: %s polled %d times in 6 s, want about 6 (one a second)", d, four[d])
		}
	}
}
