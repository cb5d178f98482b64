package collectors

import (
	"math"
	"testing"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

func pt(typ DataType, order WordOrder) Point {
	return Point{Name: "p", Kind: Input, Type: typ, Words: uint16(typ.Words()), Order: order, Scale: 1}
}

func TestDecodeEveryTypeAndOrder(t *testing.T) {
	t.Parallel()
	// 123.456 as float32 is 0x42F6E979; as float64 0x405EDD2F1A9FBE77.
	cases := []struct {
		name  string
		p     Point
		bytes []byte
		want  float64
	}{
		{"int16 negative", pt(Int16, ABCD), []byte{0xFF, 0x85}, -123},
		{"uint16", pt(Uint16, ABCD), []byte{0xFF, 0x85}, 65413},
		{"int16 BADC", pt(Int16, BADC), []byte{0x85, 0xFF}, -123},
		{"int32 ABCD", pt(Int32, ABCD), []byte{0xFF, 0xFE, 0x1D, 0xC0}, -123456},
		{"int32 CDAB", pt(Int32, CDAB), []byte{0x1D, 0xC0, 0xFF, 0xFE}, -123456},
		{"uint32 BADC", pt(Uint32, BADC), []byte{0x01, 0x00, 0x03, 0x02}, 0x00010203},
		{"uint32 DCBA", pt(Uint32, DCBA), []byte{0x03, 0x02, 0x01, 0x00}, 0x00010203},
		{"float32 ABCD", pt(Float32, ABCD), []byte{0x42, 0xF6, 0xE9, 0x79}, float64(float32(123.456))},
		{"float32 CDAB", pt(Float32, CDAB), []byte{0xE9, 0x79, 0x42, 0xF6}, float64(float32(123.456))},
		{"float32 BADC", pt(Float32, BADC), []byte{0xF6, 0x42, 0x79, 0xE9}, float64(float32(123.456))},
		{"float32 DCBA", pt(Float32, DCBA), []byte{0x79, 0xE9, 0xF6, 0x42}, float64(float32(123.456))},
		{"float64 ABCD", pt(Float64, ABCD), []byte{0x40, 0x5E, 0xDD, 0x2F, 0x1A, 0x9F, 0xBE, 0x77}, 123.456},
		{"float64 CDAB", pt(Float64, CDAB), []byte{0xBE, 0x77, 0x1A, 0x9F, 0xDD, 0x2F, 0x40, 0x5E}, 123.456},
		{"int64 ABCD", pt(Int64, ABCD), []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE}, -2},
		{"uint64 DCBA", pt(Uint64, DCBA), []byte{0x01, 0, 0, 0, 0, 0, 0, 0}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeRegisters(tc.p, tc.bytes)
			if err != nil {
				t.Fatal(err)
			}
			if got.Quality != sample.Good || got.Value != tc.want {
				t.Fatalf("got %v (%v), want %v", got.Value, got.Quality, tc.want)
			}
		})
	}
}

func TestDecodeScaleSentinelRangeBit(t *testing.T) {
	t.Parallel()
	temp := pt(Int16, ABCD)
	temp.Scale, temp.Offset = 0.1, 0
	temp.Invalid = []uint64{0x7FFF}
	temp.Range, temp.HasRange = [2]float64{-40, 250}, true

	check := func(name string, p Point, b []byte, wantQ sample.Quality, wantV float64) {
		t.Helper()
		got, err := DecodeRegisters(p, b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Quality != wantQ || (wantQ == sample.Good && math.Abs(got.Value-wantV) > 1e-9) {
			t.Errorf("%s: got %v %v, want %v %v", name, got.Value, got.Quality, wantV, wantQ)
		}
	}
	check("scaled", temp, []byte{0x01, 0xC2}, sample.Good, 45.0)
	check("sentinel", temp, []byte{0x7F, 0xFF}, sample.Invalid, 0)
	check("spike out of range", temp, []byte{0x0B, 0xB8}, sample.OutOfRange, 0) // 300.0
	off := pt(Uint16, ABCD)
	off.Scale, off.Offset = 2, -10
	check("offset", off, []byte{0x00, 0x0A}, sample.Good, 10)
	nan := pt(Float32, ABCD)
	check("NaN is never a number", nan, []byte{0x7F, 0xC0, 0x00, 0x00}, sample.Invalid, 0)

	bit := pt(Bit, ABCD)
	bit.Bit = 9
	check("bit 9 set", bit, []byte{0x02, 0x00}, sample.Good, 1)
	check("bit 9 clear", bit, []byte{0xFD, 0xFF}, sample.Good, 0)

	s := Point{Name: "s", Type: String, Words: 3, Order: ABCD, Scale: 1}
	got, _ := DecodeRegisters(s, []byte("UPS\x00\x00\x00"))
	if got.Text != "UPS" {
		t.Errorf("string: %q", got.Text)
	}
	if _, err := DecodeRegisters(temp, []byte{0x01}); err == nil {
		t.Error("a short slice decoded")
	}
}

func TestDecodeBitsLSBFirst(t *testing.T) {
	t.Parallel()
	p := Point{Name: "b", Kind: Discrete, Type: Bool, Words: 1}
	bits := []byte{0b0000_0100, 0b0000_0001}
	for i, want := range map[int]float64{0: 0, 2: 1, 8: 1, 9: 0} {
		got, err := DecodeBit(p, bits, i)
		if err != nil || got.Value != want {
			t.Errorf("bit %d: got %v %v, want %v", i, got.Value, err, want)
		}
	}
	if _, err := DecodeBit(p, bits, 16); err == nil {
		t.Error("bit past the response decoded")
	}
}

func TestEncodeIsDecodesInverse(t *testing.T) {
	t.Parallel()
	for _, typ := range []DataType{Int16, Uint16, Int32, Uint32, Int64, Uint64, Float32, Float64} {
		for _, o := range []WordOrder{ABCD, CDAB, BADC, DCBA} {
			p := pt(typ, o)
			p.Scale, p.Offset = 0.5, 3
			b := EncodeRegisters(p, 103.5)
			got, err := DecodeRegisters(p, b)
			if err != nil || got.Value != 103.5 {
				t.Errorf("%v %v: round trip gave %v %v", typ, o, got.Value, err)
			}
		}
	}
	p := pt(Int16, ABCD)
	p.Invalid = []uint64{0x7FFF}
	if got, _ := DecodeRegisters(p, EncodeRaw(p, 0x7FFF)); got.Quality != sample.Invalid {
		t.Errorf("raw sentinel decoded as %v", got.Quality)
	}
}

// TestScaledIsRoundSig: the fast path of scaling (a whole number by a power of ten) gives the
// very float the general one (multiply, add, round to 12 digits) gives, for every 16-bit raw
// value, signed and unsigned, at every scale it takes, and for 32-bit values at their ends.
func TestScaledIsRoundSig(t *testing.T) {
	scales := []float64{0.1, 0.01, 0.001, 0.0001, 0.00001, 10, 100, 1000, 10000, 100000, 1e-1, 1.0 / 1000}
	check := func(v, scale float64) {
		pt := &Point{Scale: scale}
		if got, want := scaled(pt, v), roundSig(v*scale, 12); got != want || math.Signbit(got) != math.Signbit(want) {
			t.Fatalf("%g × %g: fast %v, rounded %v", v, scale, got, want)
		}
	}
	for _, sc := range scales {
		for r := 0; r <= math.MaxUint16; r++ {
			check(float64(r), sc)
			check(float64(int16(uint16(r))), sc)
		}
		for _, v := range []float64{math.MaxInt32, math.MinInt32, math.MaxUint32, 999999999, 1e9 + 7, -123456789} {
			check(v, sc)
		}
	}
	// Outside the fast path (an offset, a scale that is no power of ten), the general one.
	if got := scaled(&Point{Scale: 0.1, Offset: -40}, 655); got != 25.5 {
		t.Fatalf("655 × 0.1 - 40 = %v, want 25.5", got)
	}
	if got := scaled(&Point{Scale: 0.25}, 3); got != 0.75 {
		t.Fatalf("3 × 0.25 = %v", got)
	}
}
