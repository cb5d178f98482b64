package collectors

import (
	"fmt"

	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/sunspec"
)

// The register map's vocabulary: what a point is to the collector. internal/config reads
// profiles into these; the collector, the codec and the simulator use them.

// RegisterKind is the Modbus table a point lives in.
type RegisterKind uint8

const (
	Coil RegisterKind = iota + 1
	Discrete
	Holding
	Input
)

func (k RegisterKind) String() string {
	switch k {
	case Coil:
		return "coil"
	case Discrete:
		return "discrete"
	case Holding:
		return "holding"
	case Input:
		return "input"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// IsBit says whether the table holds single bits (coils, discrete inputs) rather than registers.
func (k RegisterKind) IsBit() bool { return k == Coil || k == Discrete }

// DataType is how a point's raw registers decode.
type DataType uint8

const (
	Bool DataType = iota + 1
	Bit
	Int16
	Uint16
	Int32
	Uint32
	Int64
	Uint64
	Float32
	Float64
	String
)

var dataTypeNames = map[string]DataType{
	"bool": Bool, "bit": Bit, "int16": Int16, "uint16": Uint16, "int32": Int32, "uint32": Uint32,
	"int64": Int64, "uint64": Uint64, "float32": Float32, "float64": Float64, "string": String,
}

func (t DataType) String() string {
	for n, v := range dataTypeNames {
		if v == t {
			return n
		}
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Words is how many 16-bit registers a value of t takes (strings take their Length).
func (t DataType) Words() int {
	switch t {
	case Int32, Uint32, Float32:
		return 2
	case Int64, Uint64, Float64:
		return 4
	}
	return 1
}

// WordOrder names where the bytes of a multi-register value go: ABCD is big-endian throughout;
// CDAB swaps words; BADC swaps bytes within words; DCBA is little-endian throughout.
type WordOrder uint8

const (
	ABCD WordOrder = iota + 1
	CDAB
	BADC
	DCBA
)

var orderNames = map[string]WordOrder{"ABCD": ABCD, "CDAB": CDAB, "BADC": BADC, "DCBA": DCBA}

func (o WordOrder) String() string {
	for n, v := range orderNames {
		if v == o {
			return n
		}
	}
	return fmt.Sprintf("order(%d)", uint8(o))
}

// Point is one point of a register map, expanded and parsed: what the collector reads and
// decodes. internal/config builds them from a profile.
type Point struct {
	Name    string
	Kind    RegisterKind
	Address uint16
	Words   uint16 // registers (or bits for coil/discrete) it spans
	Type    DataType
	Bit     uint8
	Order   WordOrder
	Scale   float64
	Offset  float64
	Unit    string
	Role    sample.Role
	// Module is the battery module the point sits on (1-based), 0 when the profile does not say.
	Module  int
	Invalid []uint64
	// Range is the plausible [lo, hi]; HasRange false means any value is plausible.
	Range    [2]float64
	HasRange bool
	// Deadband is how far the value must move from the last one reported before Sparkplug
	// reports it again (0: any change). Polling and detection ignore it.
	Deadband float64
	// SunSpec is set for a point of a SunSpec model; Address is then unknown until the
	// collector has found the device's model chain.
	SunSpec *SunSpecPoint
}

// Resolved is a register map ready to poll (a profile, once internal/config has read it).
type Resolved struct {
	Name   string
	Points []Point
	// SunSpecBase is where discovery looks for the 'SunS' marker: -1 for all of 40000, 0
	// and 50000. It only matters when some point has SunSpec set.
	SunSpecBase int
}

// HasSunSpec says whether some point's address comes from SunSpec discovery.
func (r *Resolved) HasSunSpec() bool {
	for _, p := range r.Points {
		if p.SunSpec != nil {
			return true
		}
	}
	return false
}

// ParseDataType reads a data type's name (int16, float32, …).
func ParseDataType(name string) (DataType, bool) {
	t, ok := dataTypeNames[name]
	return t, ok
}

// ParseWordOrder reads a word order's name (ABCD, CDAB, BADC, DCBA).
func ParseWordOrder(name string) (WordOrder, bool) {
	o, ok := orderNames[name]
	return o, ok
}

// SunSpecPoint places a point of a SunSpec model: its address is found at run time from the
// device's model chain, and its value is raw × 10^SF × scale + offset when it has a scale factor.
type SunSpecPoint struct {
	Ref    sunspec.Ref
	Offset int // registers from the model's ID register, or from its group entry
	Size   int // registers the model point spans (a bit point reads one of them)
	// SFOffset is the offset of its scale factor in the model's fixed block, -1 for none.
	SFOffset int
}
