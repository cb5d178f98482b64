// Command firebreak-agent is the reference control-plane consumer of Firebreak's drain signals:
// it verifies each signal, runs the configured actions once per signal, and acknowledges its
// progress. See docs/cutover.md. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/firebreak-dc/firebreak/internal/agent"
	"github.com/firebreak-dc/firebreak/internal/logging"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "firebreak-agent:", err)
		if errors.Is(err, agent.ErrInvalid) || errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage: firebreak-agent -config agent.yaml [-debug]")

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("firebreak-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "agent config (YAML)")
	debug := fs.Bool("debug", false, "debug logging")
	if err := fs.Parse(args); err != nil || *path == "" || fs.NArg() > 0 {
		return errUsage
	}
	cfg, err := agent.LoadConfig(*path)
	if err != nil {
		return err
	}
	if err := cfg.CheckHooks(); err != nil {
		return err
	}
	level := zapcore.InfoLevel
	if *debug {
		level = zapcore.DebugLevel
	}
	log := logging.New(level, stderr).With(zap.String("consumer", cfg.Consumer))
	defer log.Sync()
	log.Info("firebreak-agent running", zap.Strings("brokers", cfg.Brokers), zap.String("topics", wire.Topics{P: cfg.TopicPrefix}.Drain(wire.Any)),
		zap.Int("actions", len(cfg.Actions)))
	return agent.New(cfg, log).Run(ctx)
}
