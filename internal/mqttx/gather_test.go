package mqttx

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// recordingConn counts the writes that reach it and keeps their bytes.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
	data   bytes.Buffer
	fail   error
	closed bool
}

func (r *recordingConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return 0, r.fail
	}
	r.writes++
	return r.data.Write(p)
}
func (r *recordingConn) Close() error                     { r.mu.Lock(); r.closed = true; r.mu.Unlock(); return nil }
func (r *recordingConn) SetWriteDeadline(time.Time) error { return nil }
func (r *recordingConn) state() (int, string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writes, r.data.String(), r.closed
}

// TestGatherConnGathersInOrder: writes within the window go out as one, in order, and nothing
// waits longer than the window once written.
func TestGatherConnGathersInOrder(t *testing.T) {
	rc := &recordingConn{}
	c := newGatherConn(rc, 50*time.Millisecond)
	for _, s := range []string{"a", "bb", "ccc"} {
		if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("write %q: %d, %v", s, n, err)
		}
	}
	if w, _, _ := rc.state(); w != 0 {
		t.Fatalf("%d writes before the window passed", w)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if w, data, _ := rc.state(); w > 0 {
			if w != 1 || data != "abbccc" {
				t.Fatalf("%d writes of %q, want one of abbccc", w, data)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("what was gathered never went out")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A large write goes out at once with what waits before it.
	big := bytes.Repeat([]byte("x"), gatherMax)
	if _, err := c.Write([]byte("d")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(big); err != nil {
		t.Fatal(err)
	}
	if w, data, _ := rc.state(); w != 2 || data != "abbcccd" {
		t.Fatalf("after a large write: %d writes, %q", w, data)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if w, data, closed := rc.state(); w != 3 || len(data) != 7+gatherMax || !closed {
		t.Fatalf("Close: %d writes, %d bytes, closed %v", w, len(data), closed)
	}
	if _, err := c.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
}

// TestGatherConnKeepsAWriteError: a failed write closes the connection and fails every write after.
func TestGatherConnKeepsAWriteError(t *testing.T) {
	rc := &recordingConn{fail: io.ErrClosedPipe}
	c := newGatherConn(rc, time.Millisecond)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err) // gathered: the error comes with the flush
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, closed := rc.state(); closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failed write did not close the connection")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := c.Write([]byte("y")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write after a failed flush: %v", err)
	}
}

// TestPublish0IsPahosPublish: a PUBLISH gathered by publish0 reads back, with paho's own packet
// decoder, as the QoS 0 message it was (topic, payload, no retain), between paho's packets and
// not before the CONNECT; and the payload buffer is free once publish0 returns. Remaining lengths
// of one to four bytes are all written.
func TestPublish0IsPahosPublish(t *testing.T) {
	rc := &recordingConn{}
	c := newGatherConn(rc, time.Hour)
	if err := c.publish0("fb/site/dev/r1/telemetry", []byte("{}")); !errors.Is(err, errNotOpened) {
		t.Fatalf("publish0 before the CONNECT: %v, want errNotOpened", err)
	}
	connect := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	connect.ProtocolName, connect.ProtocolVersion, connect.ClientIdentifier, connect.Keepalive = "MQTT", 4, "fb-test", 10
	if err := connect.Write(c); err != nil {
		t.Fatal(err)
	}
	sizes := []int{0, 1, 100, 127 - 2 - 7, 200, 16_383, 70_000, 2_100_000}
	for i, n := range sizes {
		payload := bytes.Repeat([]byte{byte('a' + i)}, n)
		if err := c.publish0(fmt.Sprintf("t/%d", i), payload); err != nil {
			t.Fatalf("publish0 of %d bytes: %v", n, err)
		}
		clear(payload) // the buffer is the caller's again
		ping := packets.NewControlPacket(packets.Pingreq)
		if err := ping.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	_ = c.flushLocked()
	c.mu.Unlock()
	_, data, _ := rc.state()
	r := strings.NewReader(data)
	if p, err := packets.ReadPacket(r); err != nil {
		t.Fatalf("first packet: %v", err)
	} else if _, ok := p.(*packets.ConnectPacket); !ok {
		t.Fatalf("first packet %T, want the CONNECT", p)
	}
	for i, n := range sizes {
		p, err := packets.ReadPacket(r)
		if err != nil {
			t.Fatalf("message %d (%d bytes): %v", i, n, err)
		}
		pub, ok := p.(*packets.PublishPacket)
		if !ok {
			t.Fatalf("message %d: %T, want a PUBLISH", i, p)
		}
		if pub.TopicName != fmt.Sprintf("t/%d", i) || pub.Qos != 0 || pub.Retain || pub.Dup || !bytes.Equal(pub.Payload, bytes.Repeat([]byte{byte('a' + i)}, n)) {
			t.Fatalf("message %d: topic %q qos %d retain %v dup %v, %d payload bytes; want t/%d, qos 0, %d bytes of %q",
				i, pub.TopicName, pub.Qos, pub.Retain, pub.Dup, len(pub.Payload), i, n, rune('a'+i))
		}
		if p, err := packets.ReadPacket(r); err != nil {
			t.Fatalf("after message %d: %v", i, err)
		} else if _, ok := p.(*packets.PingreqPacket); !ok {
			t.Fatalf("after message %d: %T, want paho's PINGREQ", i, p)
		}
	}
	if r.Len() != 0 {
		t.Fatalf("%d bytes left over", r.Len())
	}
	if err := c.publish0("", nil); err == nil {
		t.Fatal("publish0 with an empty topic: no error")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.publish0("t/x", []byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("publish0 after Close: %v, want net.ErrClosed", err)
	}
}
