// Package collectors owns Modbus polling: request planning, register decoding, transports with
// their guards, and the per-connection owner goroutines that turn devices into sample batches.
// It never writes to a device, and it never reports a number it did not read: a value that is a
// sentinel, implausible or missing becomes a sample with a bad quality, not a number.
//
// Decoding and planning are pure functions over values (tested without I/O); sockets live in
// transport.go and the scheduling loop in poller.go.
package collectors

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

// Decoded is one point's value out of a response.
type Decoded struct {
	Value   float64
	Text    string
	Quality sample.Quality
}

// normalize puts b (the point's registers as received) into big-endian ABCD order, in place of a
// copy. All four orders are their own inverse, so Encode uses it too.
func normalize(b []byte, o WordOrder) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	reorder(out, o)
	return out
}

// reorder puts b, in word order o, into big-endian order in place.
func reorder(out []byte, o WordOrder) {
	switch o {
	case CDAB: // words reversed, bytes within words kept
		n := len(out) / 2
		for i := 0; i < n/2; i++ {
			j := n - 1 - i
			out[2*i], out[2*j] = out[2*j], out[2*i]
			out[2*i+1], out[2*j+1] = out[2*j+1], out[2*i+1]
		}
	case BADC: // bytes within each word swapped
		for i := 0; i+1 < len(out); i += 2 {
			out[i], out[i+1] = out[i+1], out[i]
		}
	case DCBA: // fully little-endian
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
}

// DecodeRegisters decodes a register point from regs, the 2*pt.Words bytes it spans.
func DecodeRegisters(pt Point, regs []byte) (Decoded, error) { return decodeRegisters(&pt, regs) }

// decodeRegisters is DecodeRegisters without copying the point: the poller's hot path.
func decodeRegisters(pt *Point, regs []byte) (Decoded, error) {
	if len(regs) != 2*int(pt.Words) {
		return Decoded{}, fmt.Errorf("point %s: got %d bytes, want %d", pt.Name, len(regs), 2*pt.Words)
	}
	if pt.Type == String {
		s := strings.TrimRight(string(normalize(regs, pt.Order)), "\x00 ")
		return Decoded{Text: s, Quality: sample.Good}, nil
	}
	if len(regs) > 8 {
		return Decoded{}, fmt.Errorf("point %s: type %v is not a register type", pt.Name, pt.Type)
	}
	var word [8]byte // numbers are at most four registers: put in order on the stack
	b := word[:len(regs)]
	copy(b, regs)
	reorder(b, pt.Order)
	var raw uint64
	var v float64
	switch pt.Type {
	case Bit:
		raw = uint64(binary.BigEndian.Uint16(b))
		v = float64((raw >> pt.Bit) & 1)
		return Decoded{Value: v, Quality: sample.Good}, nil
	case Int16:
		raw = uint64(binary.BigEndian.Uint16(b))
		v = float64(int16(raw))
	case Uint16:
		raw = uint64(binary.BigEndian.Uint16(b))
		v = float64(raw)
	case Int32:
		raw = uint64(binary.BigEndian.Uint32(b))
		v = float64(int32(raw))
	case Uint32:
		raw = uint64(binary.BigEndian.Uint32(b))
		v = float64(raw)
	case Int64:
		raw = binary.BigEndian.Uint64(b)
		v = float64(int64(raw))
	case Uint64:
		raw = binary.BigEndian.Uint64(b)
		v = float64(raw)
	case Float32:
		raw = uint64(binary.BigEndian.Uint32(b))
		v = float64(math.Float32frombits(uint32(raw)))
	case Float64:
		raw = binary.BigEndian.Uint64(b)
		v = math.Float64frombits(raw)
	default:
		return Decoded{}, fmt.Errorf("point %s: type %v is not a register type", pt.Name, pt.Type)
	}
	return finish(pt, raw, v), nil
}

// DecodeBit decodes a coil or discrete point: bit i of a packed Modbus bit response.
func DecodeBit(pt Point, bits []byte, i int) (Decoded, error) {
	if i < 0 || i/8 >= len(bits) {
		return Decoded{}, fmt.Errorf("point %s: bit %d outside a %d-byte response", pt.Name, i, len(bits))
	}
	v := float64((bits[i/8] >> (i % 8)) & 1)
	return Decoded{Value: v, Quality: sample.Good}, nil
}

// finish applies the sentinel, scale, offset and plausibility rules.
func finish(pt *Point, raw uint64, v float64) Decoded {
	for _, bad := range pt.Invalid {
		if raw == bad {
			return Decoded{Quality: sample.Invalid}
		}
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Decoded{Quality: sample.Invalid}
	}
	if pt.Scale != 1 || pt.Offset != 0 {
		v = scaled(pt, v) // only scaling brings float noise; a raw float stays as sent
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Decoded{Quality: sample.Invalid} // a huge raw value times the scale
		}
	}
	if pt.HasRange && (v < pt.Range[0] || v > pt.Range[1]) {
		return Decoded{Value: v, Quality: sample.OutOfRange}
	}
	return Decoded{Value: v, Quality: sample.Good}
}

// scaled is v × scale + offset rounded to 12 significant digits (roundSig). A whole number of at
// most ten digits (a 16- or 32-bit register) scaled by a power of ten with no offset, most scaled
// points, is divided instead: the exact quotient's nearest float64, which is what the rounding
// gives, at a fraction of its cost (TestScaledIsRoundSig checks every 16-bit value).
func scaled(pt *Point, v float64) float64 {
	if pt.Offset == 0 && v == math.Trunc(v) && math.Abs(v) < 1e10 {
		for k, p := range pow10 {
			if pt.Scale == 1/p {
				if k == 0 {
					break
				}
				return v / p
			}
			if pt.Scale == p && math.Abs(v*p) < 1e12 {
				return v * p // exact, and of at most 12 digits: what the rounding leaves alone
			}
		}
	}
	return roundSig(v*pt.Scale+pt.Offset, 12)
}

// pow10 are the scales taken the fast way: 10^0 ... 10^5 and their inverses.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5}

// roundSig rounds v to n significant digits: raw × 0.1 is 524.8000000000001 in binary floating
// point, and a value should read, log and record as the 524.8 the device meant.
func roundSig(v float64, n int) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	p := math.Pow(10, float64(n-1)-math.Floor(math.Log10(math.Abs(v))))
	if math.IsInf(p, 0) || p == 0 || math.IsInf(v*p, 0) {
		return v // a denormal or a huge value: nothing to round (found by FuzzDecodeRegisters)
	}
	return math.Round(v*p) / p
}

// EncodeRegisters is the inverse of DecodeRegisters for the simulator: it writes the value v (in
// engineering units) into the point's registers, in the point's order. Values beyond the type
// saturate, as a device's firmware would clamp them.
func EncodeRegisters(pt Point, v float64) []byte {
	b := make([]byte, 2*pt.Words)
	raw := (v - pt.Offset) / pt.Scale
	sat := func(lo, hi float64) float64 { return math.Max(lo, math.Min(hi, math.Round(raw))) }
	switch pt.Type {
	case Bit:
		if v != 0 {
			binary.BigEndian.PutUint16(b, 1<<pt.Bit)
		}
	case Int16:
		binary.BigEndian.PutUint16(b, uint16(int16(sat(math.MinInt16, math.MaxInt16))))
	case Uint16:
		binary.BigEndian.PutUint16(b, uint16(sat(0, math.MaxUint16)))
	case Int32:
		binary.BigEndian.PutUint32(b, uint32(int32(sat(math.MinInt32, math.MaxInt32))))
	case Uint32:
		binary.BigEndian.PutUint32(b, uint32(sat(0, math.MaxUint32)))
	case Int64:
		binary.BigEndian.PutUint64(b, uint64(int64(sat(math.MinInt64, math.MaxInt64))))
	case Uint64:
		binary.BigEndian.PutUint64(b, uint64(sat(0, math.MaxUint64)))
	case Float32:
		binary.BigEndian.PutUint32(b, math.Float32bits(float32(raw)))
	case Float64:
		binary.BigEndian.PutUint64(b, math.Float64bits(raw))
	}
	return normalize(b, pt.Order)
}

// EncodeRaw writes a raw register pattern (a sentinel such as 0x7FFF), in the point's order.
func EncodeRaw(pt Point, raw uint64) []byte {
	if pt.Words > 4 {
		return make([]byte, 2*pt.Words)
	}
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, raw)
	return normalize(b[8-2*int(pt.Words):], pt.Order)
}
