package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firebreak-dc/firebreak/configs"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/sim"
)

// TestProbe reads the simulated demo room's rack-01 over real Modbus TCP, with a config and with
// only a URL and a profile: every point with its register, raw bytes, value, quality and role.
func TestProbe(t *testing.T) {
	t.Parallel()
	cfg := hiltest.DemoSite(t)
	sc, _ := sim.LoadScenario("normal")
	s, err := sim.New(cfg, sc, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := s.Serve("gw-1", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	data, _ := configs.FS.ReadFile("sites/demo.yaml")
	site := filepath.Join(t.TempDir(), "site.yaml")
	data = bytes.Replace(data, []byte("tcp://127.0.0.1:5020"), []byte("tcp://"+srv.Addr), 1)
	if err := os.WriteFile(site, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"probe", "-config", site, "-device", "rack-01"},
		{"probe", "-url", "tcp://" + srv.Addr, "-unit", "1", "-profile", "li-ion-rack"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out, &bytes.Buffer{}); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
		for _, want := range []string{"POINT", "cell_temp_max", "input 100", "0x", "good", "cell_temperature", "module_temp_16"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%v: the output lacks %q:\n%s", args, want, out.String())
			}
		}
	}
	// A unit the gateway does not serve answers nothing: a failure, not an empty table.
	if err := run(context.Background(), []string{"probe", "-url", "tcp://" + srv.Addr, "-unit", "99", "-profile", "li-ion-rack", "-timeout", "200ms"},
		&bytes.Buffer{}, &bytes.Buffer{}); err == nil || exitCode(err) != 1 {
		t.Errorf("probing an absent unit: %v", err)
	}
	for _, args := range [][]string{{"probe"}, {"probe", "-config", site}, {"probe", "-config", site, "-device", "nope"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}); exitCode(err) != 2 {
			t.Errorf("%v: %v, want exit 2", args, err)
		}
	}
}
