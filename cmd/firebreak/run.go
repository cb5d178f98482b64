package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/internal/clock"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/daemon"
	"github.com/firebreak-dc/firebreak/internal/logging"
	"github.com/firebreak-dc/firebreak/internal/mqttx"
)

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("firebreak "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err // the usage is printed; exit 0
		}
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, usagef("-config is required")
	}
	return config.Load(path)
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer) (err error) {
	fs := newFlags("run", stderr)
	path := fs.String("config", "", "site config (YAML)")
	debug := fs.Bool("debug", false, "debug logging")
	record := fs.String("record", "", "also write every successful poll to this trace file (docs/design.md's replay format)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	level := zapcore.InfoLevel
	if *debug {
		level = zapcore.DebugLevel
	}
	log := logging.New(level, stderr).With(zap.String("site", cfg.Site), zap.String("instance", cfg.Instance))
	defer log.Sync()
	// A key that cannot be had (a damaged file, a read-only state_dir with none yet) does not
	// keep the daemon from watching the room: it runs, and raises cutover.signing_unavailable.
	key, created, err := daemon.LoadOrCreateKey(cfg)
	keyErr := ""
	switch {
	case err != nil:
		keyErr = err.Error()
	case created:
		log.Warn("created a new drain-signing key in state_dir; give its public key to the control plane",
			zap.String("public_key", base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))))
	default:
		log.Info("drain-signing key loaded", zap.String("public_key", base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))))
	}
	embedded := cfg.MQTT.Embedded.Listen
	if embedded != "" {
		b, err := mqttx.StartBroker(cfg.MQTT.Embedded.Listen)
		if err != nil {
			return err
		}
		defer b.Close()
		log.Info("embedded MQTT broker listening", zap.String("addr", b.Addr))
		if len(cfg.MQTT.Brokers) == 0 {
			cfg.MQTT.Brokers = []string{"tcp://" + b.Addr}
		}
	}
	reloads := make(chan daemon.Reload)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			log.Info("SIGHUP: reloading the config", zap.String("config", *path))
			nu, err := loadConfig(*path)
			if err == nil && embedded != "" && len(nu.MQTT.Brokers) == 0 {
				nu.MQTT.Brokers = cfg.MQTT.Brokers // as at start: the embedded broker
			}
			select {
			case reloads <- daemon.Reload{Config: nu, Err: err}:
			case <-ctx.Done():
				return
			}
		}
	}()
	opts := daemon.Options{Config: cfg, Clock: clock.Real{}, Log: log, Version: buildVersion(), SigningKey: key, SigningKeyError: keyErr, KeyCreated: created,
		ShutdownGrace: cfg.ShutdownTimeout, Reload: reloads}
	closeRecord, err := attachRecord(*record, &opts)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeRecord()) }()
	return daemon.Run(ctx, opts)
}

// attachRecord opens the trace file of -record (none for an empty path) as opts.Record; its
// closer flushes and closes it and says if the tail of the trace could not be written (a full
// disk must not pass unnoticed).
func attachRecord(path string, opts *daemon.Options) (func() error, error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<16)
	opts.Record = bw
	return func() error {
		if err := errors.Join(bw.Flush(), f.Close()); err != nil {
			return fmt.Errorf("record %s: %w", path, err)
		}
		return nil
	}, nil
}

// configOnly parses the flags of a subcommand whose one flag is -config, and loads the config.
func configOnly(name string, args []string, stderr io.Writer) (*config.Config, error) {
	fs := newFlags(name, stderr)
	path := fs.String("config", "", "site config (YAML)")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	return loadConfig(*path)
}

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	cfg, err := configOnly("check", args, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: site %s, instance %s: %d connections, %d devices, %d zones: ok\n",
		cfg.File, cfg.Site, cfg.Instance, len(cfg.Connections), len(cfg.Devices), len(cfg.Zones))
	if cfg.HA.Peer != "" {
		fmt.Fprintf(stdout, "HA pair with %s: its status is watched (lost after %s unheard), its drain episodes joined\n", cfg.HA.Peer, cfg.HA.StaleAfter)
	} else {
		fmt.Fprintln(stdout, "single instance (no ha.peer): nothing takes over if this daemon stops")
	}
	if cfg.Metrics.Listen != "off" {
		fmt.Fprintf(stdout, "metrics, health and readiness on http://%s/metrics, /healthz, /readyz\n", cfg.Metrics.Listen)
	}
	for _, d := range cfg.Devices {
		dev, err := cfg.Collector(d)
		if err != nil {
			return err
		}
		collectors.WriteDevicePlan(stdout, dev)
	}
	return nil
}

func cmdPubkey(args []string, stdout, stderr io.Writer) error {
	cfg, err := configOnly("pubkey", args, stderr)
	if err != nil {
		return err
	}
	pub, file, err := daemon.PublicKey(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(pub))
	fmt.Fprintf(stderr, "(the public half of %s: give it to every consumer of the drain signals)\n", file)
	return nil
}
