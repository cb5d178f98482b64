package collectors

import (
	"encoding/binary"
	"math"
	"net"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

var fuzzTypes = []DataType{Bit, Int16, Uint16, Int32, Uint32, Int64,
	Uint64, Float32, Float64, String}

func words(t DataType, n int) uint16 {
	switch t {
	case Int32, Uint32, Float32:
		return 2
	case Int64, Uint64, Float64:
		return 4
	case String:
		return uint16(max(1, min(n, 64)))
	}
	return 1
}

// FuzzDecodeRegisters: whatever a device sends, decoding never panics, and a sample it calls
// good is a finite number inside the point's range. Seeds: testdata/fuzz/FuzzDecodeRegisters.
func FuzzDecodeRegisters(f *testing.F) {
	f.Add(uint8(7), uint8(1), 0.1, []byte{0x7f, 0xc0, 0x00, 0x00}) // float32 NaN
	f.Add(uint8(2), uint8(0), 1.0, []byte{0x7f, 0xff})
	f.Fuzz(func(t *testing.T, typ, order uint8, scale float64, data []byte) {
		pt := Point{Name: "p", Type: fuzzTypes[int(typ)%len(fuzzTypes)], Order: WordOrder(order%4 + 1),
			Bit: order % 16, Scale: scale, Invalid: []uint64{0x7FFF}, Range: [2]float64{-1e6, 1e6}, HasRange: true}
		pt.Words = words(pt.Type, len(data)/2)
		regs := make([]byte, 2*int(pt.Words))
		copy(regs, data)
		d, err := DecodeRegisters(pt, regs)
		if err != nil {
			t.Fatalf("a response of the right length was refused: %v", err)
		}
		if d.Quality == sample.Good && pt.Type != String {
			if math.IsNaN(d.Value) || math.IsInf(d.Value, 0) || d.Value < -1e6 || d.Value > 1e6 {
				t.Fatalf("%v decoded as good: %v", pt.Type, d.Value)
			}
		}
		if _, err := DecodeRegisters(pt, regs[:len(regs)-1]); err == nil {
			t.Fatal("a short response was decoded")
		}
	})
}

// FuzzResponse: a Modbus TCP responder answers a read of 4 input registers with the fuzzed PDU
// (wrapped in a correct MBAP header, or sent raw). Read never panics and never returns data of
// another length than asked; afterwards a correct reply is read correctly (a garbled frame must
// not leave the connection one reply behind). Seeds: testdata/fuzz/FuzzResponse.
func FuzzResponse(f *testing.F) {
	f.Add(true, []byte{4, 8, 0, 1, 0, 2, 0, 3, 0, 4})  // a correct reply
	f.Add(true, []byte{4, 4, 0, 1, 0, 2})              // too short for the request
	f.Add(true, []byte{0x84, 2})                       // exception: illegal data address
	f.Add(false, []byte{0, 0, 0, 0, 0, 5, 1, 4, 2, 0}) // a raw frame with a stale transaction id
	f.Fuzz(func(t *testing.T, wrap bool, pdu []byte) {
		if len(pdu) > 300 {
			return
		}
		h := newHostile(t,
			func(c net.Conn, txid uint16, unit byte, _ uint16) {
				if !wrap {
					c.Write(pdu)
					return
				}
				b := make([]byte, 7+len(pdu))
				binary.BigEndian.PutUint16(b[0:], txid)
				binary.BigEndian.PutUint16(b[4:], uint16(1+len(pdu)))
				b[6] = unit
				copy(b[7:], pdu)
				c.Write(b)
			},
			func(c net.Conn, txid uint16, unit byte, _ uint16) { reply(c, txid, unit, 11, 22, 33, 44) })
		// A second: the correct reply after a garbled one must not time out on a loaded machine.
		r := reader(t, h.l.Addr().String(), time.Second)
		if b, err := r.Read(1, Input, 0, 4); err == nil && len(b) != 8 {
			t.Fatalf("got %d bytes for 4 registers", len(b))
		}
		b, err := r.Read(1, Input, 0, 4)
		if err != nil {
			t.Fatalf("the next, correct reply: %v", err)
		}
		if got := binary.BigEndian.Uint16(b[6:]); got != 44 {
			t.Fatalf("the next reply read %v: a garbled frame left the connection behind", b)
		}
	})
}
