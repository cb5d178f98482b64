package sim

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// FaultKind is what a FaultProxy does to one unit's requests.
type FaultKind int

const (
	FaultNone          FaultKind = iota
	FaultDrop                    // close the client's connection instead of answering
	FaultLate                    // answer, but only after Delay (past the client's timeout)
	FaultException               // answer with exception Code, without asking the device
	FaultShort                   // answer with two bytes of data missing (the frame itself consistent)
	FaultGarbled                 // answer with another transaction id, as a confused gateway does
	FaultWrongFunction           // answer with another read function's reply whose first data byte is 2
)

// Fault is one unit's misbehaviour.
type Fault struct {
	Kind  FaultKind
	Delay time.Duration // FaultLate
	Code  byte          // FaultException
}

// FaultProxy stands between Modbus TCP clients and a simulator listener and makes chosen units
// misbehave the way real gateways and devices do, frame by frame, while the others pass untouched.
type FaultProxy struct {
	ln       *listener
	upstream string
	mu       sync.Mutex
	faults   map[byte]Fault
	Addr     string
}

// NewFaultProxy listens on a free loopback port and forwards to upstream.
func NewFaultProxy(upstream string) (*FaultProxy, error) {
	return newFaultProxyOn("127.0.0.1:0", upstream)
}

func newFaultProxyOn(addr, upstream string) (*FaultProxy, error) {
	ln, err := listen(addr)
	if err != nil {
		return nil, fmt.Errorf("fault proxy on %s: %w", addr, err)
	}
	p := &FaultProxy{ln: ln, upstream: upstream, faults: map[byte]Fault{}, Addr: ln.Addr()}
	ln.start(func(c net.Conn) { _ = p.relay(c) })
	return p, nil
}

// Set gives a unit a fault (FaultNone clears it).
func (p *FaultProxy) Set(unit byte, f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults[unit] = f
}

// Close stops the proxy and its connections and waits for them.
func (p *FaultProxy) Close() error { return p.ln.Close() }

// readFrame reads one MBAP frame.
func readFrame(r io.Reader) ([]byte, error) {
	hdr := make([]byte, 7)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[4:]))
	if n < 1 || n > 254 {
		return nil, fmt.Errorf("mbap length %d", n)
	}
	f := make([]byte, 6+n)
	copy(f, hdr)
	if _, err := io.ReadFull(r, f[7:]); err != nil {
		return nil, err
	}
	return f, nil
}

// relay forwards one client's requests one at a time, applying its units' faults.
func (p *FaultProxy) relay(c net.Conn) error {
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return err
	}
	p.ln.track(up, true)
	defer p.ln.track(up, false)
	defer up.Close()
	for {
		req, err := readFrame(c)
		if err != nil {
			return err
		}
		p.mu.Lock()
		f := p.faults[req[6]]
		p.mu.Unlock()
		switch f.Kind {
		case FaultDrop:
			return nil
		case FaultException:
			resp := make([]byte, 9)
			copy(resp, req[:7])
			binary.BigEndian.PutUint16(resp[4:], 3)
			resp[7], resp[8] = req[7]|0x80, f.Code
			if _, err := c.Write(resp); err != nil {
				return err
			}
			continue
		}
		if _, err := up.Write(req); err != nil {
			return err
		}
		resp, err := readFrame(up)
		if err != nil {
			return err
		}
		switch f.Kind {
		case FaultLate:
			t := time.NewTimer(f.Delay)
			<-t.C
		case FaultShort:
			if len(resp) >= 11 && resp[7]&0x80 == 0 {
				resp = resp[:len(resp)-2]
				resp[8] -= 2
				binary.BigEndian.PutUint16(resp[4:], uint16(len(resp)-6))
			}
		case FaultGarbled:
			binary.BigEndian.PutUint16(resp[0:], binary.BigEndian.Uint16(resp[0:])+7)
		case FaultWrongFunction:
			// A two-register reply of the other register read (3 ↔ 4): goburrow v0.1.0 takes
			// any other function code for an exception, and this one's byte count (2) for its
			// code, "illegal data address".
			resp = append(resp[:7:7], req[7]^0x07, 2, 0, 0)
			binary.BigEndian.PutUint16(resp[4:], uint16(len(resp)-6))
		}
		if _, err := c.Write(resp); err != nil {
			return err
		}
	}
}
