package sparkplug

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/firebreak-dc/firebreak/internal/mqttx"
	"github.com/firebreak-dc/firebreak/internal/sparkplug/spb"
	"github.com/firebreak-dc/firebreak/internal/testenv"
)

type seen struct {
	topic string
	p     *spb.Payload
}

// TestSessionStoresWhileTheHostIsAway, over a real Mosquitto: no birth until the primary host is
// online; its offline STATE ends the session (an NDEATH with the session's bdSeq); polls made
// meanwhile come after the next births, flagged historical, in order, with seq going on.
func TestSessionStoresWhileTheHostIsAway(t *testing.T) {
	broker := testenv.Mosquitto(t)
	var mu sync.Mutex
	var got []seen
	host := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("host"))
	if tok := host.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer host.Disconnect(100)
	if tok := host.Subscribe("spBv1.0/g/#", 1, func(_ paho.Client, m paho.Message) {
		var p spb.Payload
		if err := proto.Unmarshal(m.Payload(), &p); err != nil {
			t.Errorf("%s: %v", m.Topic(), err)
		}
		mu.Lock()
		got = append(got, seen{m.Topic(), &p})
		mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	state := func(online bool, ts int64) {
		tok := host.Publish("spBv1.0/STATE/scada", 1, true, fmt.Sprintf(`{"online":%t,"timestamp":%d}`, online, ts))
		tok.Wait()
	}
	count := func(kind string, historical bool) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range got {
			if s.topic == "spBv1.0/g/"+kind+"/n1" || (len(s.topic) > len("spBv1.0/g/"+kind+"/n1/") && s.topic[:len("spBv1.0/g/"+kind+"/n1/")] == "spBv1.0/g/"+kind+"/n1/") {
				if !historical || (len(s.p.Metrics) > 0 && s.p.Metrics[0].GetIsHistorical()) {
					n++
				}
			}
		}
		return n
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("waited for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	s, err := New(Options{Model: testModel(), MQTT: mqttx.Options{Brokers: []string{broker}, ClientID: "edge"}, PrimaryHost: "scada", StateDir: t.TempDir(), Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	at := t0
	poll := func(temp float64) {
		at = at.Add(time.Second)
		s.Offer(batch("rack-1", at, temp, 3.9))
	}
	poll(20)
	time.Sleep(300 * time.Millisecond)
	if n := count(NBIRTH, false); n != 0 {
		t.Fatalf("%d NBIRTHs before the primary host is online", n)
	}
	state(true, 1)
	wait("the births", func() bool { return count(DBIRTH, false) == 1 })
	state(false, 2)
	wait("the NDEATH", func() bool { return count(NDEATH, false) == 1 })
	for i := range 20 {
		poll(21 + float64(i))
	}
	time.Sleep(time.Second) // the polls of the absence reach the store
	state(true, 3)
	wait("the historical data", func() bool { return count(DDATA, true) == 20 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestDamagedStateDegrades: a damaged store and forward file is set aside and a new one used, a
// bdSeq file that is not a number starts again at 0; neither keeps the node from starting.
func TestDamagedStateDegrades(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sparkplug.db"), bytes.Repeat([]byte("not a bbolt file "), 512), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sparkplug-bdseq"), []byte("seventeen\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Model: testModel(), StateDir: dir, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatalf("a damaged state file stopped the node: %v", err)
	}
	defer s.store.Close()
	if err := s.store.Durable(); err != nil {
		t.Errorf("the new store is not durable: %v", err)
	}
	aside, _ := filepath.Glob(filepath.Join(dir, "sparkplug.db.damaged-*"))
	if len(aside) != 1 {
		t.Errorf("damaged file not set aside: %v", aside)
	}
	if got := s.nextBdSeq(); got != 0 {
		t.Errorf("bdSeq after an unreadable file: %d, want 0", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "sparkplug-bdseq")); string(b) != "0\n" {
		t.Errorf("bdSeq file now %q", b)
	}
}
