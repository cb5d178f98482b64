package mqttx

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
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
