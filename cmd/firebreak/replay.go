package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/kpi"
	"github.com/firebreak-dc/firebreak/internal/trace"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// cmdReplay backtests the detectors: a recorded trace goes through the same pipeline as the live
// daemon, and every message the daemon would publish for alarms, risk and drain is printed as one
// JSON line {"ts","topic","payload"}, in time order. With -summary it prints the alarm KPIs of
// the run instead (the lines go to -out, if given).
func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("replay", stderr)
	path := fs.String("config", "", "site config (YAML)")
	in := fs.String("in", "", "trace (CSV: time,device,point,value)")
	outPath := fs.String("out", "", "write the events here instead of stdout")
	summary := fs.Bool("summary", false, "print the alarm KPIs of the backtest (alarms per hour, floods, most frequent, chattering, standing, drain) instead of the events")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *in == "" {
		return usagef("-in is required")
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	defer f.Close()
	tr, err := trace.NewReader(bufio.NewReaderSize(f, 1<<20), *in, cfg.RegisterMaps())
	if err != nil {
		return usagef("%v", err)
	}
	out := stdout
	if *summary {
		out = io.Discard
	}
	if *outPath != "" {
		of, err := os.Create(*outPath)
		if err != nil {
			return err
		}
		defer of.Close()
		out = of
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	defer bw.Flush()

	// Replay signs with the site's key when it has one configured, else with a throwaway key: the
	// payloads have the live shape either way.
	var key ed25519.PrivateKey
	if cfg.Cutover.SigningKeyFile != "" {
		if key, _, err = daemon.LoadOrCreateKey(cfg); err != nil {
			return err
		}
	} else if _, key, err = ed25519.GenerateKey(nil); err != nil {
		return err
	}
	pipe := daemon.NewPipeline(cfg, daemon.PipelineOptions{BootID: "replay", Key: key})
	enc := json.NewEncoder(bw)
	kpis := kpi.New()
	emit := func(ts time.Time, msgs []wire.Message) error {
		kpis.Observe(ts, msgs)
		for _, m := range msgs {
			if err := enc.Encode(struct {
				TS      time.Time       `json:"ts"`
				Topic   string          `json:"topic"`
				Payload json.RawMessage `json:"payload"`
			}{ts.UTC(), m.Topic, m.Payload}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := daemon.Replay(ctx, tr, pipe, emit); err != nil {
		if errors.Is(err, trace.ErrBadTrace) {
			return usagef("%v", err)
		}
		return err
	}
	if *summary {
		kpis.Report().Write(stdout, kpis.Start())
	}
	return nil
}
