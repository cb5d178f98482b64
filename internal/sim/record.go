package sim

import (
	"fmt"
	"io"
	"time"

	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/trace"
)

// RecordEpoch is scenario time 0 of every recording, so that one seed gives one trace.
var RecordEpoch = time.Date(2022, 10, 15, 15, 0, 0, 0, time.UTC)

// Record runs the scenario as fast as the CPU allows and writes what a perfect poller would have
// read (each device at its configured interval) to w in the replay format. It returns the ground
// truth.
func Record(cfg *config.Config, sc *Scenario, w io.Writer) ([]GroundTruth, error) {
	s, err := New(cfg, sc, clock.NewManual(RecordEpoch))
	if err != nil {
		return nil, err
	}
	tw, err := trace.NewWriter(w)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	interval := map[string]time.Duration{}
	for _, d := range cfg.Devices {
		interval[d.Name] = d.Interval
	}
	next := map[string]time.Duration{}
	for el := time.Duration(0); el <= sc.Duration; el += sc.Step {
		if el > 0 {
			s.Advance(sc.Step)
		}
		for _, dev := range s.Devices() {
			if el < next[dev] {
				continue
			}
			next[dev] = el + interval[dev]
			b, err := s.Read(dev, RecordEpoch.Add(el))
			if err != nil {
				return nil, err
			}
			if b.Err != nil {
				continue // a silent device leaves no rows: replay judges it by its stale limit
			}
			if err := tw.Write(b); err != nil {
				return nil, fmt.Errorf("trace: %w", err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	return s.Truth(), nil
}
