package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/sim"
)

func record(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("firebreak-sim record", flag.ContinueOnError)
	fs.SetOutput(stderr)
	site := fs.String("site", "", "site config (YAML) whose devices to record")
	scenario := fs.String("scenario", "", "scenario file, or the name of a built-in one")
	out := fs.String("out", "", "trace file to write (CSV); the ground truth goes beside it as .truth.json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err.Error()}
	}
	if *site == "" || *scenario == "" || *out == "" {
		return &usageError{"record needs -site, -scenario and -out"}
	}
	cfg, sc, err := load(*site, *scenario)
	if err != nil {
		return err
	}
	truth, err := Record(cfg, sc, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "recorded %s (%s) to %s\n", sc.Name, sc.Duration, *out)
	for _, e := range truth {
		fmt.Fprintf(stdout, "  T+%s %s %s\n", e.At.Sub(sim.RecordEpoch), e.Kind, e.Device)
	}
	return nil
}

// truthEvent is one line of the ground-truth file.
type truthEvent struct {
	At       time.Time `json:"at"`
	ElapsedS float64   `json:"elapsed_s"`
	Kind     string    `json:"kind"`
	Device   string    `json:"device,omitempty"`
	Detail   string    `json:"detail,omitempty"`
}

// Record writes the trace and, beside it, its ground truth; it returns the truth.
func Record(cfg *config.Config, sc *sim.Scenario, out string) ([]sim.GroundTruth, error) {
	f, err := os.Create(out)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	truth, err := sim.Record(cfg, sc, bw)
	if err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	var evs []truthEvent
	for _, e := range truth {
		evs = append(evs, truthEvent{At: e.At, ElapsedS: e.At.Sub(sim.RecordEpoch).Seconds(), Kind: string(e.Kind), Device: e.Device, Detail: e.Detail})
	}
	tb, _ := json.MarshalIndent(struct {
		Scenario string       `json:"scenario"`
		Seed     uint64       `json:"seed"`
		Start    time.Time    `json:"start"`
		Events   []truthEvent `json:"events"`
	}{sc.Name, sc.Seed, sim.RecordEpoch, evs}, "", "  ")
	truthPath := strings.TrimSuffix(out, ".csv") + ".truth.json"
	if err := os.WriteFile(truthPath, append(tb, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("truth: %w", err)
	}
	return truth, nil
}
