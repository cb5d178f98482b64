package collectors

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/goburrow/modbus"

	"github.com/firebreak-dc/firebreak/internal/config"
)

// Reader reads one range of one table from one unit. It is owned by a single goroutine (the
// connection's poller) and is never shared: goburrow's transports are not safe to share.
type Reader interface {
	Read(unit uint8, kind config.RegisterKind, start, count uint16) ([]byte, error)
	Close() error
}

// ExceptionError is a Modbus exception response: the device answered, the link is fine.
type ExceptionError struct{ Code byte }

func (e *ExceptionError) Error() string {
	return fmt.Sprintf("modbus exception %d (%s)", e.Code, exceptionName(e.Code))
}

// Unreachable says the exception came from a gateway that cannot reach the unit (codes 10 and 11):
// the device is silent, though the link to the gateway is up.
func (e *ExceptionError) Unreachable() bool { return e.Code == 10 || e.Code == 11 }

func exceptionName(c byte) string {
	switch c {
	case 1:
		return "illegal function"
	case 2:
		return "illegal data address"
	case 3:
		return "illegal data value"
	case 4:
		return "server device failure"
	case 5:
		return "acknowledge"
	case 6:
		return "server device busy"
	case 10:
		return "gateway path unavailable"
	case 11:
		return "gateway target failed to respond"
	}
	return "unknown"
}

// ErrBadLength means a response did not carry the data the request asked for; goburrow v0.1.0
// only checks the byte count against the frame, never against the request.
var ErrBadLength = errors.New("response length does not match the request")

// ErrBackoff says the reader did not try: the last attempt to connect failed, and the next one is
// not due yet. The devices behind the link fail fast instead of each waiting out a dial timeout.
var ErrBackoff = errors.New("not connected; waiting before the next attempt to connect")

// Reconnect backoff after a failed connect: doubling from reconnectMin to reconnectMax, each wait
// spread by ±20 % so that many daemons do not hammer a gateway that comes back in step.
const (
	reconnectMin = 500 * time.Millisecond
	reconnectMax = 30 * time.Second
)

// backoff is the reconnect schedule of one link.
type backoff struct {
	wait    time.Duration // the next wait; 0 before any failure
	nextTry time.Time
	lastErr error
	rand    func() float64 // in [0, 1)
}

// due says whether a connect may be tried at now.
func (b *backoff) due(now time.Time) bool { return b.nextTry.IsZero() || !now.Before(b.nextTry) }

// failed schedules the next attempt after a failed connect.
func (b *backoff) failed(now time.Time, err error) {
	b.wait = min(max(2*b.wait, reconnectMin), reconnectMax)
	jitter := 0.8 + 0.4*b.rand()
	b.nextTry, b.lastErr = now.Add(time.Duration(float64(b.wait)*jitter)), err
}

// ok resets the schedule after a successful connect.
func (b *backoff) ok() { *b = backoff{rand: b.rand} }

// tcpReader is goburrow's Modbus TCP client behind the guards its v0.1.0 needs.
type tcpReader struct {
	h    *modbus.TCPClientHandler
	c    modbus.Client
	up   bool
	back backoff
	now  func() time.Time
}

// NewReader opens nothing yet: the first Read dials. Only Modbus TCP is wired so far.
func NewReader(ep config.Endpoint, timeout time.Duration) (Reader, error) {
	switch ep.Scheme {
	case "tcp":
		h := modbus.NewTCPClientHandler(ep.Addr)
		// A timeout is always set: goburrow treats 0 as "wait forever".
		h.Timeout = timeout
		// We close and reopen on our own terms; goburrow's idle timer would close behind our back.
		h.IdleTimeout = 0
		return &tcpReader{h: h, c: modbus.NewClient(h), now: time.Now, back: backoff{rand: rand.Float64}}, nil
	}
	return nil, fmt.Errorf("connection scheme %s: transport not implemented yet (tcp only)", ep.Scheme)
}

func (r *tcpReader) Read(unit uint8, kind config.RegisterKind, start, count uint16) ([]byte, error) {
	if !r.up {
		now := r.now()
		if !r.back.due(now) {
			return nil, fmt.Errorf("%w (%s, last: %v)", ErrBackoff, r.back.nextTry.Sub(now).Round(time.Millisecond), r.back.lastErr)
		}
		// A dropped connection is dialled again at once; a failed dial waits its backoff.
		if err := r.h.Connect(); err != nil {
			r.back.failed(now, err)
			return nil, fmt.Errorf("connect %s: %w", r.h.Address, err)
		}
		r.up = true
		r.back.ok()
	}
	r.h.SlaveId = unit
	var b []byte
	var err error
	switch kind {
	case config.Coil:
		b, err = r.c.ReadCoils(start, count)
	case config.Discrete:
		b, err = r.c.ReadDiscreteInputs(start, count)
	case config.Holding:
		b, err = r.c.ReadHoldingRegisters(start, count)
	case config.Input:
		b, err = r.c.ReadInputRegisters(start, count)
	default:
		return nil, fmt.Errorf("register kind %v: cannot read", kind)
	}
	if err != nil {
		var me *modbus.ModbusError
		if errors.As(err, &me) {
			return nil, &ExceptionError{Code: me.ExceptionCode}
		}
		// Any other failure (timeout, short frame, a transaction id that does not match) may
		// leave a late reply in the socket; goburrow would then read every later reply one
		// behind. Closing drops it: the next Read dials afresh.
		r.h.Close()
		r.up = false
		return nil, err
	}
	want := 2 * int(count)
	if kind.IsBit() {
		want = (int(count) + 7) / 8
	}
	if len(b) != want {
		r.h.Close()
		r.up = false
		return nil, fmt.Errorf("%w: %s %d+%d from unit %d: got %d bytes, want %d", ErrBadLength, kind, start, count, unit, len(b), want)
	}
	// goburrow returns a slice of its own frame buffer; keep a copy that outlives the next read.
	return append([]byte(nil), b...), nil
}

func (r *tcpReader) Close() error {
	r.up = false
	return r.h.Close()
}
