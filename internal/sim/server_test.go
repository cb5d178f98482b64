package sim

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/configs"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/sample"
)

// TestServedOverRealModbusTCP polls every device of the demo site from the simulator over real
// Modbus TCP with our client: goburrow against simonvetter, two implementations that share no code.
func TestServedOverRealModbusTCP(t *testing.T) {
	t.Parallel()
	data, _ := configs.FS.ReadFile("sites/demo.yaml")
	cfg, err := config.Parse(data, "demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := LoadScenario("normal")
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewManual(time.Date(2022, 10, 15, 15, 0, 0, 0, time.UTC))
	s, err := New(cfg, sc, clk)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := s.Serve("gw-1", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ep, _ := collectors.ParseEndpoint("tcp://" + srv.Addr)
	rd, err := collectors.NewReader(ep, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	p := &collectors.Poller{Conn: "gw-1", Reader: rd, Clock: clk, Log: zap.NewNop()}
	for _, d := range cfg.Devices {
		dev, err := cfg.Collector(d)
		if err != nil {
			t.Fatal(err)
		}
		b := p.Poll(dev)
		if b.Err != nil {
			t.Fatalf("%s: %v", d.Name, b.Err)
		}
		for _, smp := range b.Samples {
			if smp.Quality != sample.Good {
				t.Errorf("%s.%s: quality %v", d.Name, smp.Point, smp.Quality)
			}
			if smp.Role == "module_temperature" && (smp.Value < 22 || smp.Value > 27) {
				t.Errorf("%s.%s = %.1f °C, want room temperature", d.Name, smp.Point, smp.Value)
			}
			if smp.Role == "cell_voltage" && (smp.Value < 3.9 || smp.Value > 4.2) {
				t.Errorf("%s.%s = %.3f V", d.Name, smp.Point, smp.Value)
			}
		}
	}
	// An unknown unit is a gateway exception, a range past the map an illegal address: both are
	// exceptions (the link stays up), never values.
	_, err = rd.Read(99, collectors.Input, 0, 1)
	var ex *collectors.ExceptionError
	if !errors.As(err, &ex) || ex.Code != 11 {
		t.Errorf("unknown unit: %v", err)
	}
	_, err = rd.Read(1, collectors.Input, 1000, 1)
	if !errors.As(err, &ex) || ex.Code != 2 {
		t.Errorf("unmapped range: %v", err)
	}
}
