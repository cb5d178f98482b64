package collectors

import (
	"errors"
	"fmt"
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

// tcpReader is goburrow's Modbus TCP client behind the guards its v0.1.0 needs.
type tcpReader struct {
	h *modbus.TCPClientHandler
	c modbus.Client
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
		return &tcpReader{h: h, c: modbus.NewClient(h)}, nil
	}
	return nil, fmt.Errorf("connection scheme %s: transport not implemented yet (tcp only)", ep.Scheme)
}

func (r *tcpReader) Read(unit uint8, kind config.RegisterKind, start, count uint16) ([]byte, error) {
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
		return nil, err
	}
	want := 2 * int(count)
	if kind.IsBit() {
		want = (int(count) + 7) / 8
	}
	if len(b) != want {
		r.h.Close()
		return nil, fmt.Errorf("%w: %s %d+%d from unit %d: got %d bytes, want %d", ErrBadLength, kind, start, count, unit, len(b), want)
	}
	// goburrow returns a slice of its own frame buffer; keep a copy that outlives the next read.
	return append([]byte(nil), b...), nil
}

func (r *tcpReader) Close() error { return r.h.Close() }
