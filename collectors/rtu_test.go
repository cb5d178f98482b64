package collectors_test

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/sim"
	"github.com/firebreak-dc/firebreak/internal/testenv"
)

// pty opens a pseudo-terminal: the master end for the simulator, the slave's path for the
// serial client (goburrow/serial sets its baud, parity and raw mode like a real port's).
func pty(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	testenv.Need(t, "pseudo-terminals (/dev/ptmx)", err)
	t.Cleanup(func() { m.Close() })
	rc, err := m.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n uint32
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		unlock := uint32(0)
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
			ioErr = e
			return
		}
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
			ioErr = e
		}
	}); err != nil || ioErr != nil {
		t.Fatalf("pty: %v %v", err, ioErr)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

// TestRTUSerial polls the demo's rack over Modbus RTU on a (pseudo) serial line at 19200 8E1,
// through goburrow's RTU client behind our guards: every value is what the simulator holds.
func TestRTUSerial(t *testing.T) {
	t.Parallel()
	master, slave := pty(t)
	cfg := hiltest.DemoSite(t)
	sc, _ := sim.LoadScenario("normal")
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := sim.New(cfg, sc, clock.NewManual(at))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.ServeRTU("gw-1", master) }()
	ep, err := collectors.ParseEndpoint("rtu://" + slave + "?baud=19200&parity=E")
	if err != nil {
		t.Fatal(err)
	}
	rd, err := collectors.NewReader(ep, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p := &collectors.Poller{Reader: rd, Clock: clock.NewManual(at), Log: zap.NewNop()}
	for _, d := range cfg.Devices[:2] {
		dev, _ := cfg.Collector(d)
		b := p.Poll(dev)
		if b.Err != nil {
			t.Fatalf("%s over RTU: %v", d.Name, b.Err)
		}
		want, _ := s.Read(d.Name, b.At)
		for i, smp := range b.Samples {
			if smp.Quality != want.Samples[i].Quality || smp.Value != want.Samples[i].Value {
				t.Errorf("%s.%s: polled %v, the simulator holds %v", d.Name, smp.Point, smp.Value, want.Samples[i].Value)
			}
		}
	}
	rd.Close()
	master.Close()
	<-served
}
