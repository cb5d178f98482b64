package cutover

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/gowebpki/jcs"
)

// The commands of the drain protocol; the alarm commands are the alarm lifecycle's operator
// causes, by the same names (ack, shelve, unshelve, out_of_service, return_to_service).
const (
	VerbDrain  = "drain"
	VerbCancel = "cancel"
)

// Verbs an operator may send on P/cmd/<instance>/<verb>.
var Verbs = func() []string {
	var vs []string
	for _, c := range alarms.OperatorCauses() {
		vs = append(vs, c.String())
	}
	return append(vs, VerbDrain, VerbCancel)
}()

// Command is an operator's signed instruction to one daemon. Like a drain signal, Sig is the
// Ed25519 signature over the RFC 8785 canonical JSON of the object without sig, by the key the
// daemon's config lists for Operator. Instance binds it to one daemon (a command for the HA peer
// cannot be replayed here); TS and Nonce make it usable once, and only while fresh.
type Command struct {
	V        int       `json:"v"`
	Command  string    `json:"command"`
	Instance string    `json:"instance"`
	Alarm    string    `json:"alarm,omitempty"`    // ack, shelve, unshelve, out_of_service, return_to_service
	Zone     string    `json:"zone,omitempty"`     // drain, cancel
	Action   Action    `json:"action,omitempty"`   // drain: prepare, drain (default) or evacuate
	Duration string    `json:"duration,omitempty"` // shelve: how long, e.g. "2h"
	Reason   string    `json:"reason,omitempty"`
	Operator string    `json:"operator"`
	TS       time.Time `json:"ts"`
	Nonce    string    `json:"nonce"`
	Sig      string    `json:"sig,omitempty"`
}

// Why a command is refused. Each refusal names the command and the reason.
var (
	ErrCmdMalformed       = errors.New("malformed command")
	ErrCmdUnknownOperator = errors.New("unknown operator")
	ErrCmdBadSignature    = errors.New("bad signature")
	ErrCmdStale           = errors.New("stale command")
	ErrCmdWrongInstance   = errors.New("command for another instance")
	ErrCmdReplayed        = errors.New("replayed nonce")
)

// SignCommand sets c.Sig.
func SignCommand(c *Command, key ed25519.PrivateKey) error {
	c.Sig = ""
	raw, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode command: %w", err)
	}
	canon, err := jcs.Transform(raw)
	if err != nil {
		return fmt.Errorf("encode command: %w", err)
	}
	c.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, canon))
	return nil
}

// VerifyCommand checks a command received on P/cmd/<instance>/<verb>: its shape, that it is
// for this instance and this verb, the operator's signature, and that ts is within maxAge of now
// (either way). The caller then spends the nonce (a second use is ErrCmdReplayed).
func VerifyCommand(payload []byte, verb, instance string, operators map[string]ed25519.PublicKey, now time.Time, maxAge time.Duration) (Command, error) {
	var c Command
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%w: %v", ErrCmdMalformed, err)
	}
	// The signature's shape first: nothing that cannot be signed gets as far as naming an
	// operator or an instance back to its sender.
	sig, err := base64.StdEncoding.DecodeString(c.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return c, fmt.Errorf("%w: sig is not a base64 Ed25519 signature", ErrCmdBadSignature)
	}
	if err := c.check(verb); err != nil {
		return c, err
	}
	if c.Instance != instance {
		return c, fmt.Errorf("%w: it names %q, this is %q", ErrCmdWrongInstance, clipField(c.Instance), instance)
	}
	pub, ok := operators[c.Operator]
	if !ok {
		return c, fmt.Errorf("%w %q (not in commands.operators)", ErrCmdUnknownOperator, clipField(c.Operator))
	}
	canon, err := receivedSigningBytes(payload)
	if err != nil {
		return c, fmt.Errorf("%w: %v", ErrCmdMalformed, err)
	}
	if !ed25519.Verify(pub, canon, sig) {
		return c, fmt.Errorf("%w: not signed by operator %q's key", ErrCmdBadSignature, c.Operator)
	}
	if age := now.Sub(c.TS); age > maxAge || age < -maxAge {
		return c, fmt.Errorf("%w: ts %s is %s from now, more than commands.max_age %s", ErrCmdStale,
			c.TS.UTC().Format(time.RFC3339), age.Round(time.Second), maxAge)
	}
	return c, nil
}

// check is the command's shape, before its signature: fields the verb needs and no others.
func (c Command) check(verb string) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrCmdMalformed, fmt.Sprintf(format, a...))
	}
	switch {
	case c.V != 1:
		return bad("v must be 1, got %d", c.V)
	case c.Command != verb:
		return bad("the topic says %q, the payload's command is %q", verb, c.Command)
	case c.Operator == "":
		return bad("operator is missing")
	case c.Nonce == "" || len(c.Nonce) > 128:
		return bad("nonce must be 1..128 characters")
	case c.TS.IsZero():
		return bad("ts is missing")
	}
	cause, isAlarm := alarms.ParseOperatorCause(c.Command)
	switch {
	case isAlarm && cause != alarms.CauseShelve:
		if c.Alarm == "" {
			return bad("%s needs alarm", c.Command)
		}
	case isAlarm:
		if c.Alarm == "" {
			return bad("shelve needs alarm")
		}
		if d, err := time.ParseDuration(c.Duration); err != nil || d <= 0 {
			return bad("shelve needs a positive duration like \"2h\", got %q", c.Duration)
		}
	case c.Command == VerbDrain:
		if c.Zone == "" {
			return bad("drain needs zone")
		}
		switch c.Action {
		case "", Prepare, Drain, Evacuate:
		default:
			return bad("drain action must be prepare, drain or evacuate, got %q", c.Action)
		}
	case c.Command == VerbCancel:
		if c.Zone == "" {
			return bad("cancel needs zone")
		}
	default:
		return bad("unknown command %q (want one of %v)", c.Command, Verbs)
	}
	return nil
}

// Check is the shape the daemon will require of the command (VerifyCommand's check before the
// signature), for a tool to refuse locally what the daemon would refuse.
func (c Command) Check() error { return c.check(c.Command) }

// ShelveFor is a shelve command's duration (valid after VerifyCommand).
func (c Command) ShelveFor() time.Duration {
	d, _ := time.ParseDuration(c.Duration)
	return d
}

// clipField shortens a field of a refused command for its error: the reason goes back to the
// sender and into the log, and must never carry an attacker's megabytes.
func clipField(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
