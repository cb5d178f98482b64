// Package agent is firebreak-agent, the reference consumer of Firebreak's drain signals for a
// control plane. It subscribes to P/drain/+, accepts a signal only as cutover.Receiver does
// (signed by a configured daemon key, not expired, seq newer than seen), runs the actions
// configured for the signal's targets once per signal id, also across its own restarts, and
// reports its progress on P/drain/<zone>/ack/<consumer>. It never writes to a device.
package agent

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/firebreak-dc/firebreak/internal/relpath"
	"gopkg.in/yaml.v3"
)

// Config is the agent's YAML config.
type Config struct {
	Brokers      []string `yaml:"brokers"`
	TopicPrefix  string   `yaml:"topic_prefix"` // P: <topic_prefix>/<site> of the daemons
	Consumer     string   `yaml:"consumer"`     // its name in the daemons' cutover.consumers
	Zones        []string `yaml:"zones"`        // only these zones; empty for all
	PublicKeys   []string `yaml:"public_keys"`  // base64 Ed25519 keys of the daemons (two for an HA pair)
	StateDir     string   `yaml:"state_dir"`
	RunDryRun    bool     `yaml:"run_dry_run"` // run hooks for dry-run signals too (with FIREBREAK_DRY_RUN=true)
	Username     string   `yaml:"username"`
	PasswordFile string   `yaml:"password_file"`
	TLS          struct {
		CAFile   string `yaml:"ca_file"`
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"tls"`
	Actions []Action `yaml:"actions"`

	File string `yaml:"-"`
}

// Action is what to do for some targets: run a program or call a webhook.
type Action struct {
	Name    string   `yaml:"name"`
	Targets []string `yaml:"targets"` // "*" for every target
	// On lists the signal actions it runs for (prepare, drain, evacuate, cancel); empty: all.
	On      []string `yaml:"on"`
	Exec    *Exec    `yaml:"exec"`
	Webhook *Webhook `yaml:"webhook"`
}

// Exec runs a program: the signal on stdin and in FIREBREAK_* environment variables. Exit 0 is
// success. It runs in its own process group and outlives an agent restart.
type Exec struct {
	Command []string      `yaml:"command"`
	Timeout time.Duration `yaml:"timeout"`
}

// Webhook POSTs the signal as JSON with an Idempotency-Key header (the signal id and the action
// name); 2xx is success.
type Webhook struct {
	URL       string        `yaml:"url"`
	Timeout   time.Duration `yaml:"timeout"`
	TokenFile string        `yaml:"token_file"` // sent as a bearer token
}

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// LoadConfig reads and validates a config file; every problem is reported with its field.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(data, path)
}

// ErrInvalid marks a config error (exit code 2).
var ErrInvalid = errors.New("invalid agent config")

// ParseConfig is LoadConfig on bytes.
func ParseConfig(data []byte, file string) (*Config, error) {
	c := Config{File: file}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, file, err)
	}
	var errs []error
	bad := func(field, msg string, v any) {
		errs = append(errs, fmt.Errorf("%s: %s: %s, got %v", file, field, msg, v))
	}
	if len(c.Brokers) == 0 {
		bad("brokers", "must list a broker", "[]")
	}
	if c.TopicPrefix == "" || strings.ContainsAny(c.TopicPrefix, "#+") {
		bad("topic_prefix", "must be the daemons' <topic_prefix>/<site>, without wildcards", fmt.Sprintf("%q", c.TopicPrefix))
	}
	if !nameRe.MatchString(c.Consumer) {
		bad("consumer", "must match [a-z0-9][a-z0-9_-]*", fmt.Sprintf("%q", c.Consumer))
	}
	if len(c.PublicKeys) == 0 {
		bad("public_keys", "must list the daemons' drain-signing public keys", "[]")
	}
	for i, k := range c.PublicKeys {
		if b, err := base64.StdEncoding.DecodeString(k); err != nil || len(b) != ed25519.PublicKeySize {
			bad(fmt.Sprintf("public_keys[%d]", i), "must be the base64 of a 32-byte Ed25519 public key", fmt.Sprintf("%q", k))
		}
	}
	if c.StateDir == "" {
		bad("state_dir", "must be set", `""`)
	}
	names := map[string]bool{}
	for i, a := range c.Actions {
		p := fmt.Sprintf("actions[%d]", i)
		if !nameRe.MatchString(a.Name) || names[a.Name] {
			bad(p+".name", "must be a unique name matching [a-z0-9][a-z0-9_-]*", fmt.Sprintf("%q", a.Name))
		}
		names[a.Name] = true
		if len(a.Targets) == 0 {
			bad(p+".targets", `must list targets, or "*"`, "[]")
		}
		for _, on := range a.On {
			switch on {
			case "prepare", "drain", "evacuate", "cancel":
			default:
				bad(p+".on", "must be prepare, drain, evacuate or cancel", fmt.Sprintf("%q", on))
			}
		}
		switch {
		case (a.Exec == nil) == (a.Webhook == nil):
			bad(p, "must have exactly one of exec and webhook", "")
		case a.Exec != nil && len(a.Exec.Command) == 0:
			bad(p+".exec.command", "must name a program", "[]")
		case a.Webhook != nil && !strings.HasPrefix(a.Webhook.URL, "http://") && !strings.HasPrefix(a.Webhook.URL, "https://"):
			bad(p+".webhook.url", "must be an http:// or https:// URL", fmt.Sprintf("%q", a.Webhook.URL))
		}
		if a.Exec != nil && a.Exec.Timeout == 0 {
			c.Actions[i].Exec.Timeout = 10 * time.Minute
		}
		if a.Webhook != nil && a.Webhook.Timeout == 0 {
			c.Actions[i].Webhook.Timeout = 10 * time.Second
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w:\n%w", ErrInvalid, errors.Join(errs...))
	}
	return &c, nil
}

// CheckHooks says, before the agent starts, what of its actions cannot run: an exec program that
// does not exist or is not executable, a webhook token file that cannot be read. A hook found
// missing 27 minutes later, when the prepare comes, is a drain that does not happen.
func (c *Config) CheckHooks() error {
	var errs []error
	for i, a := range c.Actions {
		p := fmt.Sprintf("%s: actions[%d] (%s)", c.File, i, a.Name)
		switch {
		case a.Exec != nil:
			prog := a.Exec.Command[0]
			if strings.Contains(prog, "/") {
				st, err := os.Stat(prog)
				switch {
				case err != nil:
					errs = append(errs, fmt.Errorf("%s.exec.command: %w", p, err))
				case st.IsDir() || st.Mode()&0o111 == 0:
					errs = append(errs, fmt.Errorf("%s.exec.command: %s is not an executable file (chmod +x?)", p, prog))
				}
			} else if _, err := exec.LookPath(prog); err != nil {
				errs = append(errs, fmt.Errorf("%s.exec.command: %w", p, err))
			}
		case a.Webhook != nil && a.Webhook.TokenFile != "":
			if f, err := os.Open(c.resolve(a.Webhook.TokenFile)); err != nil {
				errs = append(errs, fmt.Errorf("%s.webhook.token_file: %w", p, err))
			} else {
				f.Close()
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: its hooks cannot run:\n%w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}

// resolve makes a path relative to the config file absolute.
func (c *Config) resolve(p string) string { return relpath.Resolve(c.File, p) }

func (c *Config) keys() []ed25519.PublicKey {
	var out []ed25519.PublicKey
	for _, k := range c.PublicKeys {
		b, _ := base64.StdEncoding.DecodeString(k)
		out = append(out, ed25519.PublicKey(b))
	}
	return out
}

// matches says whether an action runs for a signal's action and targets, and for which targets.
func (a Action) matches(action string, targets []string) []string {
	if len(a.On) > 0 {
		ok := false
		for _, on := range a.On {
			ok = ok || on == action
		}
		if !ok {
			return nil
		}
	}
	var out []string
	for _, t := range targets {
		for _, want := range a.Targets {
			if want == "*" || want == t {
				out = append(out, t)
				break
			}
		}
	}
	return out
}
