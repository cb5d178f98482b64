package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/simonvetter/modbus"
)

// RTUServer serves a connection's devices as RTU frames over TCP, as a serial-to-Ethernet
// converter in transparent mode does: no MBAP header, a CRC on every frame, one request at a
// time per client. simonvetter's server speaks only Modbus TCP, so the framing here is our own;
// the client side (goburrow's RTU packager) is not, so the two still check each other.
type RTUServer struct {
	ln   *listener
	h    *handler
	Addr string
}

// ServeRTUOverTCP starts an RTU-over-TCP listener for the devices of one connection.
func (s *Simulator) ServeRTUOverTCP(conn, addr string) (*RTUServer, error) {
	units := s.byConn[conn]
	if units == nil {
		return nil, fmt.Errorf("connection %q has no devices to serve", conn)
	}
	ln, err := listen(addr)
	if err != nil {
		return nil, fmt.Errorf("rtu over tcp server: %w", err)
	}
	sv := &RTUServer{ln: ln, h: &handler{s: s, units: units}, Addr: ln.Addr()}
	ln.start(func(c net.Conn) {
		_ = sv.serve(c) // one client's stream ending is not the server's error
	})
	return sv, nil
}

// Close stops the listener, drops its clients and waits for their goroutines.
func (sv *RTUServer) Close() error { return sv.ln.Close() }

// Stream is what RTU frames travel on: a TCP connection, or the simulator's end of a serial line
// (a pty master in the tests).
type Stream interface {
	io.ReadWriter
	SetReadDeadline(time.Time) error
}

// ServeRTU answers RTU read requests for the devices of one connection on a serial stream, until
// the stream fails (then it returns the error).
func (s *Simulator) ServeRTU(conn string, rw Stream) error {
	units := s.byConn[conn]
	if units == nil {
		return fmt.Errorf("connection %q has no devices to serve", conn)
	}
	sv := &RTUServer{h: &handler{s: s, units: units}}
	return sv.serve(rw)
}

func (sv *RTUServer) serve(c Stream) error {
	err := sv.answer(c)
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// answer answers read requests (functions 1-4, 8-byte frames) until the client goes or sends
// something else, which ends the stream: without a length field there is no resynchronising.
func (sv *RTUServer) answer(c Stream) error {
	req := make([]byte, 8)
	for {
		if err := c.SetReadDeadline(time.Now().Add(5 * time.Minute)); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, req); err != nil {
			return err
		}
		if crc16(req[:6]) != binary.LittleEndian.Uint16(req[6:]) {
			return errors.New("rtu: request with a bad CRC") // a real slave stays silent
		}
		unit, fc := req[0], req[1]
		addr, qty := binary.BigEndian.Uint16(req[2:]), binary.BigEndian.Uint16(req[4:])
		var data []byte
		var err error
		switch fc {
		case 1, 2:
			kind := collectors.Coil
			if fc == 2 {
				kind = collectors.Discrete
			}
			var bits []bool
			if bits, err = sv.h.readBits(unit, kind, addr, qty); err == nil {
				data = make([]byte, (len(bits)+7)/8)
				for i, b := range bits {
					if b {
						data[i/8] |= 1 << (i % 8)
					}
				}
			}
		case 3, 4:
			kind := collectors.Holding
			if fc == 4 {
				kind = collectors.Input
			}
			var regs []uint16
			if regs, err = sv.h.readRegs(unit, kind, addr, qty); err == nil {
				data = make([]byte, 2*len(regs))
				for i, r := range regs {
					binary.BigEndian.PutUint16(data[2*i:], r)
				}
			}
		default:
			err = modbus.ErrIllegalFunction
		}
		var resp []byte
		if err != nil {
			resp = []byte{unit, fc | 0x80, exceptionCode(err)}
		} else {
			resp = append([]byte{unit, fc, byte(len(data))}, data...)
		}
		resp = binary.LittleEndian.AppendUint16(resp, crc16(resp))
		if _, err := c.Write(resp); err != nil {
			return err
		}
		if fc < 1 || fc > 4 {
			return fmt.Errorf("rtu: function %d is not served", fc)
		}
	}
}

func exceptionCode(err error) byte {
	switch {
	case errors.Is(err, modbus.ErrIllegalFunction):
		return 1
	case errors.Is(err, modbus.ErrIllegalDataAddress):
		return 2
	case errors.Is(err, modbus.ErrGWTargetFailedToRespond):
		return 11
	}
	return 4 // server device failure
}

// crc16 is the Modbus RTU CRC (polynomial 0xA001, initial 0xFFFF), sent low byte first.
func crc16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, x := range b {
		crc ^= uint16(x)
		for i := 0; i < 8; i++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}
