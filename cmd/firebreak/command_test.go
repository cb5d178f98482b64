package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/mqttx"
)

// TestKeygenAndCommand: a key made by keygen signs a command that the daemon's verification
// accepts with the printed public key; keygen never overwrites a key.
func TestKeygenAndCommand(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "alice.key")
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"keygen", "-out", keyFile}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	pub, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out.String()))
	if err != nil || len(pub) != ed25519.PublicKeySize {
		t.Fatalf("keygen printed %q", out.String())
	}
	if err := run(context.Background(), []string{"keygen", "-out", keyFile}, &out, &errOut); err == nil {
		t.Fatal("keygen overwrote an existing key")
	}

	out.Reset()
	args := []string{"command", "-key", keyFile, "-operator", "alice", "-instance", "fb-a1", "-prefix", "firebreak/pangyo-a",
		"-command", "shelve", "-alarm", "rack-03.module_temp_5.temp_high", "-duration", "2h", "-reason", "sensor replaced"}
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || lines[0] != "firebreak/pangyo-a/cmd/fb-a1/shelve" {
		t.Fatalf("output %q", out.String())
	}
	c, err := cutover.VerifyCommand([]byte(lines[1]), "shelve", "fb-a1", map[string]ed25519.PublicKey{"alice": pub}, time.Now(), time.Minute)
	if err != nil {
		t.Fatalf("the daemon would refuse it: %v", err)
	}
	if c.ShelveFor() != 2*time.Hour || c.Reason != "sensor replaced" {
		t.Fatalf("command %+v", c)
	}

	// Sent to a broker where no daemon answers: it says so, and fails.
	b, err := mqttx.StartBroker("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = run(context.Background(), append(args, "-broker", "tcp://"+b.Addr, "-wait", "1s"), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no result on firebreak/pangyo-a/cmd/result/fb-a1") {
		t.Fatalf("no daemon: %v", err)
	}
}
