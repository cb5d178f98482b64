// Command firebreak-sim simulates a power room over Modbus TCP: every device of a site config,
// served by an independent Modbus implementation, driven by a scenario on a scaled clock.
//
//	firebreak-sim -site site.yaml -scenario internal-short [-speed N] [-listen 127.0.0.1:5020]
//
// Each connection of the site is served on its own port: the first at -listen, the next at the
// port after it, and so on (port 0 takes free ports and prints them).
//
//	firebreak-sim record -site site.yaml -scenario X -out trace.csv
//
// writes what a perfect poller would have read, in docs/design.md's replay format, as fast as the CPU
// allows, and the ground truth (vent, runaway, smoke, fire panel) as JSON beside it
// (trace.truth.json). The same seed gives the same trace.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/sim"
)

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return // -h: the usage is printed, and asking for it is no failure
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "firebreak-sim:", err)
		var ue *usageError
		if errors.As(err, &ue) || errors.Is(err, config.ErrInvalid) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "record" {
		return record(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("firebreak-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage:
  firebreak-sim -site site.yaml [-scenario NAME|FILE] [-speed N] [-listen 127.0.0.1:5020]
      serve a simulated room over Modbus TCP (one port per connection of the site, from -listen)
  firebreak-sim record -site site.yaml -scenario NAME|FILE -out trace.csv
      write the trace a perfect poller would read (and trace.truth.json), as fast as the CPU allows

flags of the server:
`)
		fs.PrintDefaults()
	}
	site := fs.String("site", "", "site config (YAML) whose devices to simulate")
	scenario := fs.String("scenario", "normal", "scenario file, or the name of a built-in one")
	speed := fs.Float64("speed", 1, "scenario seconds per real second")
	listen := fs.String("listen", "127.0.0.1:5020", "address of the first connection's Modbus TCP listener")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err.Error()}
	}
	if *site == "" {
		return &usageError{"-site is required"}
	}
	if *speed <= 0 || *speed > 1000 {
		return &usageError{fmt.Sprintf("-speed must be in (0, 1000], got %g", *speed)}
	}
	host, portStr, err := net.SplitHostPort(*listen)
	if err != nil {
		return &usageError{fmt.Sprintf("-listen %q: %v", *listen, err)}
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return &usageError{fmt.Sprintf("-listen %q: bad port", *listen)}
	}
	cfg, sc, err := load(*site, *scenario)
	if err != nil {
		return err
	}
	clk := clock.NewScaled(time.Now().UTC(), *speed)
	s, err := sim.New(cfg, sc, clk)
	if err != nil {
		return err
	}
	for i, cn := range cfg.Connections {
		p := 0
		if port != 0 {
			p = port + i
		}
		srv, err := s.Serve(cn.Name, net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			return err
		}
		defer srv.Close()
		fmt.Fprintf(stdout, "connection %s: modbus tcp %s\n", cn.Name, srv.Addr)
	}
	fmt.Fprintf(stdout, "scenario %s: %s (%s at %gx)\n", sc.Name, sc.Description, sc.Duration, *speed)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	seen := 0
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			printTruth(stdout, s, &seen)
			return err
		case <-t.C:
			printTruth(stdout, s, &seen)
		}
	}
}

func printTruth(w io.Writer, s *sim.Simulator, seen *int) {
	tr := s.Truth()
	for _, e := range tr[*seen:] {
		fmt.Fprintf(w, "T+%s %s %s %s\n", e.At.Sub(s.Start()).Round(time.Second), e.Kind, e.Device, e.Detail)
	}
	*seen = len(tr)
}

// load reads the site config and the scenario; a scenario that cannot be had is bad usage.
func load(site, scenario string) (*config.Config, *sim.Scenario, error) {
	cfg, err := config.Load(site)
	if err != nil {
		return nil, nil, err
	}
	sc, err := sim.LoadScenario(scenario)
	if err != nil {
		return nil, nil, &usageError{err.Error()}
	}
	return cfg, sc, nil
}
