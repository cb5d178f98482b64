package collectors

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// hostile is a Modbus TCP responder that misbehaves on purpose, one scripted reply per request
// across all connections: what real gateways do on a bad day.
type hostile struct {
	l       net.Listener
	mu      sync.Mutex
	n       int
	replies []func(conn net.Conn, txid uint16, unit byte, qty uint16)
}

func newHostile(t *testing.T, replies ...func(net.Conn, uint16, byte, uint16)) *hostile {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hostile{l: l, replies: replies}
	go h.serve()
	t.Cleanup(func() { l.Close() })
	return h
}

func (h *hostile) serve() {
	for {
		c, err := h.l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			for {
				hdr := make([]byte, 12) // MBAP (7) + function, address, quantity (5)
				if _, err := io.ReadFull(c, hdr); err != nil {
					return
				}
				h.mu.Lock()
				i := h.n
				h.n++
				h.mu.Unlock()
				if i < len(h.replies) {
					h.replies[i](c, binary.BigEndian.Uint16(hdr[0:]), hdr[6], binary.BigEndian.Uint16(hdr[10:]))
				}
			}
		}()
	}
}

// reply writes a read-input-registers response carrying regs.
func reply(c net.Conn, txid uint16, unit byte, regs ...uint16) {
	b := make([]byte, 9+2*len(regs))
	binary.BigEndian.PutUint16(b[0:], txid)
	binary.BigEndian.PutUint16(b[4:], uint16(3+2*len(regs)))
	b[6], b[7], b[8] = unit, 4, byte(2*len(regs))
	for i, r := range regs {
		binary.BigEndian.PutUint16(b[9+2*i:], r)
	}
	c.Write(b)
}

func reader(t *testing.T, addr string, timeout time.Duration) Reader {
	t.Helper()
	r, err := NewReader(Endpoint{Scheme: "tcp", Addr: addr}, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestLateReplyNeverYieldsAWrongValue reproduces goburrow v0.1.0's one-behind hazard: the first
// reply arrives after the timeout. Without closing the connection, the next read would take that
// stale reply (or fail on its transaction id, and every read after it, one behind).
func TestLateReplyNeverYieldsAWrongValue(t *testing.T) {
	t.Parallel()
	// The first reply comes only once the reader has given up on it (not after a fixed sleep,
	// which a busy machine can outlast): too late by construction. The timeout is long, so that
	// the prompt replies after it are prompt enough on a loaded machine too.
	late := make(chan struct{})
	h := newHostile(t,
		func(c net.Conn, txid uint16, unit byte, _ uint16) {
			<-late // the device answers, too late
			reply(c, txid, unit, 111)
		},
		func(c net.Conn, txid uint16, unit byte, _ uint16) { reply(c, txid, unit, 222) },
		func(c net.Conn, txid uint16, unit byte, _ uint16) { reply(c, txid, unit, 333) },
	)
	r := reader(t, h.l.Addr().String(), 2*time.Second)
	_, err := r.Read(1, Input, 0, 1)
	close(late)
	if err == nil {
		t.Fatal("a reply after the timeout was accepted")
	}
	for _, want := range []uint16{222, 333} {
		b, err := r.Read(1, Input, 0, 1)
		if err != nil {
			t.Fatalf("read after a timeout: %v", err)
		}
		if got := binary.BigEndian.Uint16(b); got != want {
			t.Fatalf("read %d, want %d: a stale reply was taken for a fresh one", got, want)
		}
	}
}

func TestShortReplyIsRefused(t *testing.T) {
	t.Parallel()
	h := newHostile(t,
		func(c net.Conn, txid uint16, unit byte, qty uint16) { reply(c, txid, unit, 7) }, // asked for qty, got 1
		func(c net.Conn, txid uint16, unit byte, qty uint16) { reply(c, txid, unit, 1, 2, 3) },
	)
	r := reader(t, h.l.Addr().String(), time.Second)
	_, err := r.Read(1, Input, 0, 3)
	if !errors.Is(err, ErrBadLength) {
		t.Fatalf("short reply: %v", err)
	}
	b, err := r.Read(1, Input, 0, 3)
	if err != nil || len(b) != 6 || binary.BigEndian.Uint16(b[4:]) != 3 {
		t.Fatalf("after a short reply: %v % x", err, b)
	}
}

// TestReconnectBackoff: after a failed connect the reader does not dial again until its backoff
// is due (the devices behind a dead gateway fail fast); the backoff doubles with ±20 % jitter up
// to its cap, and a successful connect resets it.
func TestReconnectBackoff(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens here now: every dial is refused
	r := reader(t, addr, time.Second).(*guardedReader)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	r.back.rand = func() float64 { return 0.5 } // no jitter: the schedule is exact

	if _, err := r.Read(1, Input, 0, 1); err == nil || errors.Is(err, ErrBackoff) {
		t.Fatalf("first read: %v, want a dial error", err)
	}
	for _, wait := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second} {
		if _, err := r.Read(1, Input, 0, 1); !errors.Is(err, ErrBackoff) {
			t.Fatalf("read before the backoff of %s is due: %v", wait, err)
		}
		now = now.Add(wait - time.Millisecond)
		if _, err := r.Read(1, Input, 0, 1); !errors.Is(err, ErrBackoff) {
			t.Fatalf("1 ms before the %s backoff: %v", wait, err)
		}
		now = now.Add(time.Millisecond)
		if _, err := r.Read(1, Input, 0, 1); err == nil || errors.Is(err, ErrBackoff) {
			t.Fatalf("when the %s backoff is due it must dial: %v", wait, err)
		}
	}
	b := backoff{wait: 20 * time.Second, rand: func() float64 { return 0.999 }}
	b.failed(now, errors.New("x"))
	if b.wait != reconnectMax || b.nextTry.Sub(now) > time.Duration(1.2*float64(reconnectMax)) || b.nextTry.Sub(now) < reconnectMax {
		t.Fatalf("capped wait %s, next try in %s", b.wait, b.nextTry.Sub(now))
	}
	b.ok()
	if !b.due(now) || b.wait != 0 {
		t.Fatal("a successful connect did not reset the backoff")
	}
}
