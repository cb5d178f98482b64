// Command firebreak is the edge daemon and its tools: run, check, replay, demo, keygen, command,
// version.
// main only maps the outcome of run to an exit code: 0 ok, 1 runtime failure, 2 bad usage or
// bad config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/firebreak-dc/firebreak/internal/config"
)

// version is set at build time with -ldflags "-X main.version=…"; without it, buildVersion reads
// the module's build info (go install …@v1.2.3 says v1.2.3; a build from a checkout, its commit).
var version = ""

// buildVersion is the version the binary reports (firebreak version, the node status, /metrics).
func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			rev = s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+dirty"
		}
	}
	switch {
	case v != "" && v != "(devel)":
		return v
	case rev != "":
		return "devel-" + rev + dirty
	}
	return "devel"
}

func main() {
	ctx := signals(os.Stderr)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) { // -h printed its usage: no failure
		fmt.Fprintln(os.Stderr, "firebreak:", err)
		os.Exit(exitCode(err))
	}
}

// hup carries SIGHUP to `run`, which reloads its config.
var hup = make(chan struct{}, 1)

// signals: the first SIGINT or SIGTERM ends ctx (a graceful shutdown: the daemon flushes its
// outbox and publishes offline, bounded by shutdown_timeout); a second one exits at once, with
// whatever is not yet delivered kept in the outbox for the next start. SIGHUP goes to hup.
func signals(stderr io.Writer) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		stopping := false
		for s := range ch {
			switch {
			case s == syscall.SIGHUP:
				select {
				case hup <- struct{}{}:
				default: // one reload is already waiting; it will read the file as it is now
				}
			case !stopping:
				stopping = true
				fmt.Fprintf(stderr, "firebreak: %s: shutting down (a second signal stops at once)\n", s)
				cancel()
			default:
				fmt.Fprintf(stderr, "firebreak: second %s: stopping now; undelivered messages stay in the outbox for the next start\n", s)
				os.Exit(130)
			}
		}
	}()
	return ctx
}

// usageError marks bad command-line usage (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

func exitCode(err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) || errors.Is(err, config.ErrInvalid) {
		return 2
	}
	return 1
}

const usage = `usage:
  firebreak run    -config site.yaml          the daemon
  firebreak check  -config site.yaml          validate; print each device's Modbus request plan
  firebreak replay -config site.yaml -in trace.csv [-out events.jsonl]
                                             backtest the detectors on a recorded trace
  firebreak demo   [-speed 60] [-scenario internal-short]
                                             simulator + embedded broker + daemon, one process
  firebreak keygen  -out operator.key          new Ed25519 key; prints the public half for the config
  firebreak command -key K -operator NAME -instance I -prefix P/SITE -command VERB [-alarm ID]
                    [-zone Z] [-duration 2h] [-reason TEXT] [-broker tcp://host:1883]
                                             sign an operator command; with -broker, send it and
                                             print the daemon's result
  firebreak probe  -config site.yaml -device NAME   (or -url URL -unit N -profile P)
                                             read a device once; each point's raw registers,
                                             value, unit, quality and role
  firebreak pubkey -config site.yaml           print the drain-signing public key (for the consumers)
  firebreak version`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("no command\n%s", usage)
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "replay":
		return cmdReplay(ctx, args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "keygen":
		return cmdKeygen(args[1:], stdout, stderr)
	case "command":
		return cmdCommand(ctx, args[1:], stdout, stderr)
	case "probe":
		return cmdProbe(args[1:], stdout, stderr)
	case "pubkey":
		return cmdPubkey(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "firebreak", buildVersion())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return usagef("unknown command %q\n%s", args[0], usage)
}
