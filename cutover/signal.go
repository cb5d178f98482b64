// Package cutover turns zone risk into drain signals for the control plane: a pure planner per
// zone (risk stage → prepare, drain, evacuate; re-sent on a heartbeat while active) and the
// signal's Ed25519 signature over its RFC 8785 canonical JSON. It publishes nothing itself.
package cutover

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/gowebpki/jcs"

	"github.com/firebreak-dc/firebreak/alarms"
)

// Action is what the control plane is asked to do.
type Action string

const (
	Prepare  Action = "prepare"
	Drain    Action = "drain"
	Evacuate Action = "evacuate"
	Cancel   Action = "cancel"
)

// rank orders actions by severity; a signal never steps down except by an explicit cancel.
func (a Action) rank() int {
	switch a {
	case Prepare:
		return 1
	case Drain:
		return 2
	case Evacuate:
		return 3
	}
	return 0
}

// ActionFor is docs/design.md's table: the drain action a zone stage calls for ("" for none).
func ActionFor(s alarms.Stage) Action {
	switch {
	case s >= alarms.StageFire:
		return Evacuate
	case s == alarms.StageCritical:
		return Drain
	case s == alarms.StageWarning:
		return Prepare
	}
	return ""
}

// EvidenceItem is one line of a signal's evidence, as docs/design.md shows it.
type EvidenceItem struct {
	Alarm string  `json:"alarm"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
}

// MarshalJSON writes a value that is not finite as null: a signal must always encode, and the
// engine never hands one over, but a drain signal that cannot be sent is the worst failure this
// program has, so the encoding does not rely on that.
func (e EvidenceItem) MarshalJSON() ([]byte, error) {
	type plain EvidenceItem
	out := struct {
		plain
		Value *float64 `json:"value"`
	}{plain: plain(e)}
	if !math.IsNaN(e.Value) && !math.IsInf(e.Value, 0) {
		out.Value = &e.Value
	}
	return json.Marshal(out)
}

// Signal is docs/design.md's drain signal. Sig covers the canonical JSON of every other field.
type Signal struct {
	V             int            `json:"v"`
	ID            string         `json:"id"`
	Episode       string         `json:"episode"`
	Site          string         `json:"site"`
	Zone          string         `json:"zone"`
	Action        Action         `json:"action"`
	Stage         int            `json:"stage"`
	Domains       []string       `json:"domains"`
	Targets       []string       `json:"targets"`
	Reason        string         `json:"reason"`
	Evidence      []EvidenceItem `json:"evidence"`
	PowerLossETAS int64          `json:"power_loss_eta_s"`
	IssuedAt      time.Time      `json:"issued_at"`
	ValidUntil    time.Time      `json:"valid_until"`
	DryRun        bool           `json:"dry_run,omitempty"`
	Instance      string         `json:"instance"`
	BootID        string         `json:"boot_id"`
	TS            time.Time      `json:"ts"`
	Seq           uint64         `json:"seq"`
	Sig           string         `json:"sig,omitempty"`
}

// SigningBytes is the RFC 8785 canonical JSON of s without its signature.
func SigningBytes(s Signal) ([]byte, error) {
	s.Sig = ""
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode signal: %w", err)
	}
	return jcs.Transform(raw)
}

// receivedSigningBytes is the canonical form of a received payload without its sig member. The
// signature covers what was received, so it re-canonicalises the payload itself (every member,
// also ones this version does not know), not our re-encoding of what we parsed.
func receivedSigningBytes(payload []byte) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, err
	}
	delete(m, "sig")
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return jcs.Transform(raw)
}

// Sign sets s.Sig (standard base64 of the Ed25519 signature).
func Sign(s *Signal, key ed25519.PrivateKey) error {
	b, err := SigningBytes(*s)
	if err != nil {
		return err
	}
	s.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, b))
	return nil
}

// Errors a consumer reports when it refuses a signal.
var (
	ErrBadSignature = errors.New("drain signal: bad signature")
	ErrExpired      = errors.New("drain signal: expired")
	ErrMalformed    = errors.New("drain signal: malformed")
)

// Verify checks a received payload's signature against pub and its expiry against now, and
// returns the signal. Consumers also reject a seq older than the newest they have seen.
func Verify(payload []byte, pub ed25519.PublicKey, now time.Time) (Signal, error) {
	var s Signal
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	sig, err := base64.StdEncoding.DecodeString(s.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return s, ErrBadSignature
	}
	canon, err := receivedSigningBytes(payload)
	if err != nil {
		return s, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !ed25519.Verify(pub, canon, sig) {
		return s, ErrBadSignature
	}
	if now.After(s.ValidUntil) {
		return s, fmt.Errorf("%w: valid until %s, now %s", ErrExpired, s.ValidUntil.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	return s, nil
}

// ParseKey reads an Ed25519 private key: PEM PKCS#8 (openssl genpkey -algorithm ed25519) or a
// base64 32-byte seed. Reading the file is the caller's (internal/secrets): cutover does no I/O.
func ParseKey(data []byte) (ed25519.PrivateKey, error) {
	if blk, _ := pem.Decode(data); blk != nil {
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		ek, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("signing key: PEM holds a %T, want an Ed25519 key", k)
		}
		// A changed byte can leave a key that parses but is another key, which no consumer
		// knows: the public half written beside it (MarshalKey) tells.
		if want, ok := writtenPublicKey(data); ok {
			if got := base64.StdEncoding.EncodeToString(ek.Public().(ed25519.PublicKey)); got != want {
				return nil, fmt.Errorf("signing key: damaged: it is not the key whose public half %s it was written with", want)
			}
		}
		return ek, nil
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key: want PEM PKCS#8 or a base64 %d-byte seed", ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// pubKeyLine starts the line MarshalKey writes before the PEM block with the key's public half,
// which ParseKey checks. Text before a PEM block is explanatory (RFC 7468): OpenSSL and Go's
// pem package skip it, so the file stays a plain PKCS#8 key for every other tool.
const pubKeyLine = "# firebreak ed25519 public key: "

func writtenPublicKey(data []byte) (string, bool) {
	before, _, _ := strings.Cut(string(data), "-----BEGIN")
	for _, line := range strings.Split(before, "\n") {
		if pub, ok := strings.CutPrefix(strings.TrimSpace(line), strings.TrimSpace(pubKeyLine)); ok {
			return strings.TrimSpace(pub), true
		}
	}
	return "", false
}

// MarshalKey writes k as PEM PKCS#8, after a line with its public half so that a damaged file is
// found rather than taken for another key.
func MarshalKey(k ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	head := pubKeyLine + base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey)) + "\n"
	return append([]byte(head), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...), nil
}
