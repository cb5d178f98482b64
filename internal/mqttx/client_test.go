package mqttx_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/mqttx"
	"github.com/firebreak-dc/firebreak/internal/testenv"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// pki writes a CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files.
func pki(t *testing.T, dir string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"}, IsCA: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", caDER)
	for i, who := range []string{"server", "client"} {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: who},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		if who == "server" {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		write(who+".pem", "CERTIFICATE", der)
		kder, _ := x509.MarshalECPrivateKey(key)
		write(who+".key", "EC PRIVATE KEY", kder)
	}
}

func connected(c *mqttx.Client, within time.Duration) bool {
	select {
	case <-c.Connects():
		return true
	case <-time.After(within):
		return false
	}
}

// TestTLSClientCertAndPassword: a broker that wants TLS, a client certificate and a password is
// reached with the files the config names; a wrong password or no client certificate is not.
func TestTLSClientCertAndPassword(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki(t, dir)
	pwFile := testenv.PasswordFile(t, map[string]string{"firebreak": "s3cret"})
	f := func(n string) string { return filepath.Join(dir, n) }
	broker := testenv.StartMosquittoWith(t, testenv.MosquittoOptions{Scheme: "ssl",
		Global:   fmt.Sprintf("allow_anonymous false\npassword_file %s\n", pwFile),
		Listener: fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n", f("ca.pem"), f("server.pem"), f("server.key"))})

	for _, tc := range []struct {
		name          string
		password      string
		cert, key     string
		wantConnected bool
	}{
		{"cert and password", "s3cret", f("client.pem"), f("client.key"), true},
		{"wrong password", "guess", f("client.pem"), f("client.key"), false},
		{"no client certificate", "s3cret", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := mqttx.Dial(mqttx.Options{Brokers: []string{broker.URL}, ClientID: "tls-" + strings.ReplaceAll(tc.name, " ", "-"),
				Username: "firebreak", Password: tc.password, CAFile: f("ca.pem"), CertFile: tc.cert, KeyFile: tc.key}, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(nil)
			wait := 10 * time.Second
			if !tc.wantConnected {
				wait = 3 * time.Second
			}
			if got := connected(c, wait); got != tc.wantConnected {
				t.Fatalf("connected %v, want %v", got, tc.wantConnected)
			}
			if tc.wantConnected {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := c.Publish(ctx, wire.Message{Topic: "t/x", QoS: 1, Payload: []byte(`{}`)}); err != nil {
					t.Fatalf("publish over TLS: %v", err)
				}
			}
		})
	}
}

func TestTLSConfigErrorsNameTheFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ca, cert, key, want string
	}{
		{filepath.Join(dir, "missing.pem"), "", "", "missing.pem"},
		{notPEM, "", "", "no PEM certificate"},
		{"", filepath.Join(dir, "c.pem"), "", "go together"},
	} {
		if _, err := mqttx.TLSConfig(tc.ca, tc.cert, tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("TLSConfig(%q, %q, %q) = %v, want an error saying %q", tc.ca, tc.cert, tc.key, err, tc.want)
		}
	}
}

// TestFailoverToTheNextBroker: the first broker in the list is down; the client connects to the
// second.
func TestFailoverToTheNextBroker(t *testing.T) {
	t.Parallel()
	live := testenv.Mosquitto(t)
	dead := fmt.Sprintf("tcp://127.0.0.1:%d", testenv.FreePort(t))
	c, err := mqttx.Dial(mqttx.Options{Brokers: []string{dead, live}, ClientID: "failover"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(nil)
	if !connected(c, 15*time.Second) {
		t.Fatal("did not fail over to the second broker")
	}
}

// TestRefusalsAndTakeoverAreSaid: a broker that refuses the credentials is logged at error with
// its reason and a hint (issue 22: 88 refused attempts in 12 s, no log line), not once per
// attempt; and a second client that takes our client id over is named as such.
func TestRefusalsAndTakeoverAreSaid(t *testing.T) {
	t.Parallel()
	pwFile := testenv.PasswordFile(t, map[string]string{"firebreak": "s3cret"})
	broker := testenv.StartMosquittoWith(t, testenv.MosquittoOptions{Global: fmt.Sprintf("allow_anonymous false\npassword_file %s\n", pwFile)})

	core, logs := observer.New(zap.InfoLevel)
	c, err := mqttx.Dial(mqttx.Options{Brokers: []string{broker.URL}, ClientID: "refused", Username: "firebreak", Password: "guess"}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	hiltest.WaitFor(t, 20*time.Second, "a refused connect logged with its reason", func() bool {
		for _, e := range logs.FilterMessage("mqtt connect failed; trying again").All() {
			if e.Level == zap.ErrorLevel && strings.Contains(fmt.Sprint(e.ContextMap()["hint"]), "credentials") {
				return true
			}
		}
		return false
	})
	hiltest.WaitFor(t, 20*time.Second, "several attempts", func() bool {
		return len(logs.FilterMessage("mqtt connect failed; trying again").All()) >= 1 && time.Since(logs.All()[0].Time) > 3*time.Second
	})
	c.Close(nil)
	if n := len(logs.FilterMessage("mqtt connect failed; trying again").All()); n > 2 {
		t.Errorf("%d log lines for the refusals of a few seconds: they must be rate limited", n)
	}

	// Two clients with one client id: the broker drops the older at each connect of the other.
	// Both name the takeover, once each.
	coreA, logsA := observer.New(zap.InfoLevel)
	coreB, logsB := observer.New(zap.InfoLevel)
	a, _ := mqttx.Dial(mqttx.Options{Brokers: []string{broker.URL}, ClientID: "same", Username: "firebreak", Password: "s3cret"}, zap.New(coreA))
	defer a.Close(nil)
	b, _ := mqttx.Dial(mqttx.Options{Brokers: []string{broker.URL}, ClientID: "same", Username: "firebreak", Password: "s3cret"}, zap.New(coreB))
	defer b.Close(nil)
	hiltest.WaitFor(t, 2*time.Minute, "the takeover named by both clients", func() bool {
		return strings.Contains(a.Conflict(), `client id "same"`) && strings.Contains(b.Conflict(), `client id "same"`)
	})
	if na, nb := logsA.FilterMessage("mqtt client id taken over").Len(), logsB.FilterMessage("mqtt client id taken over").Len(); na != 1 || nb != 1 {
		t.Errorf("the takeover was logged %d and %d times, want once by each", na, nb)
	}
}
