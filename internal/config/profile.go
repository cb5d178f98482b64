package config

import (
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/sunspec"
)

// Profile is a device's register map with semantic roles.
type Profile struct {
	Name    string          `yaml:"name"`
	SunSpec *SunSpecOptions `yaml:"sunspec"`
	Points  []ProfilePoint  `yaml:"points"`
}

// ProfilePoint is one entry of a profile; with Repeat it stands for Count points.
type ProfilePoint struct {
	Name     string      `yaml:"name"`
	Register string      `yaml:"register"` // coil | discrete | holding | input
	Address  int         `yaml:"address"`
	Type     string      `yaml:"type"`
	Bit      *int        `yaml:"bit"`
	Length   int         `yaml:"length"` // registers, for type string
	Scale    *float64    `yaml:"scale"`
	Offset   float64     `yaml:"offset"`
	Unit     string      `yaml:"unit"`
	Role     sample.Role `yaml:"role"`
	Order    string      `yaml:"order"`
	Invalid  []uint64    `yaml:"invalid"`
	Range    []float64   `yaml:"range"`
	Repeat   *Repeat     `yaml:"repeat"`
	// SunSpec names a point of a SunSpec model (e.g. 805.CellTmpMax) instead of register,
	// address and type; its address is found on the device at run time.
	SunSpec string `yaml:"sunspec"`
}

// Repeat expands one entry into Count points name_1 … name_Count, Stride registers apart.
type Repeat struct {
	Count  int `yaml:"count"`
	Stride int `yaml:"stride"`
}

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

// Point is a profile point after expansion and parsing: what the collector reads and decodes.
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
	Invalid []uint64
	// Range is the plausible [lo, hi]; HasRange false means any value is plausible.
	Range    [2]float64
	HasRange bool
	// SunSpec is set for a point of a SunSpec model; Address is then unknown until the
	// collector has found the device's model chain.
	SunSpec *SunSpecPoint
}

// Resolved is a profile ready to poll.
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

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// nameRule is what validName checks, for error messages.
var nameRule = fmt.Sprintf("must match [a-z0-9][a-z0-9_-]*, at most %d characters", MaxNameLen)

func validName(s string) bool { return len(s) <= MaxNameLen && nameRe.MatchString(s) }

// resolve parses and expands p, reporting problems under path (e.g. profiles[li-ion-rack]).
func resolve(p Profile, path string, c *collector) *Resolved {
	r := &Resolved{Name: p.Name, SunSpecBase: -1}
	if !validName(p.Name) {
		c.add(path+".name", nameRule, p.Name)
	}
	if p.SunSpec != nil && p.SunSpec.Base != nil {
		switch b := *p.SunSpec.Base; b {
		case 0, 40000, 50000:
			r.SunSpecBase = b
		default:
			c.add(path+".sunspec.base", "must be 0, 40000 or 50000 (or left out to find it)", b)
		}
	}
	if len(p.Points) == 0 {
		c.add(path+".points", "must list at least one point", nil)
	}
	seen := map[string]string{}
	for i, pp := range p.Points {
		pth := fmt.Sprintf("%s.points[%d]", path, i)
		if pp.SunSpec != "" {
			resolveSunSpec(r, pp, pth, seen, c)
			continue
		}
		base, ok := parsePoint(pp, pth, c)
		if !ok {
			continue
		}
		count, stride := 1, 0
		if pp.Repeat != nil {
			count, stride = pp.Repeat.Count, pp.Repeat.Stride
			if count < 1 || count > 1024 {
				c.add(pth+".repeat.count", "must be 1..1024", count)
				continue
			}
			if stride < int(base.Words) && !(base.Type == Bit && stride >= 0) {
				c.addf(pth+".repeat.stride", stride, "must be >= %d (the point's size), or points overlap", base.Words)
				continue
			}
		}
		for k := 0; k < count; k++ {
			pt := base
			if pp.Repeat != nil {
				pt.Name = fmt.Sprintf("%s_%d", pp.Name, k+1)
			}
			addr := pp.Address + k*stride
			if addr+int(pt.Words) > 65536 {
				c.addf(pth+".address", addr, "point %s runs past register 65535", pt.Name)
				break
			}
			pt.Address = uint16(addr)
			if prev, dup := seen[pt.Name]; dup {
				c.addf(pth+".name", pt.Name, "duplicate point name (also at %s)", prev)
				continue
			}
			seen[pt.Name] = pth
			r.Points = append(r.Points, pt)
		}
	}
	return r
}

func parsePoint(pp ProfilePoint, pth string, c *collector) (Point, bool) {
	n := len(c.errs)
	pt := Point{Name: pp.Name, Scale: 1, Offset: pp.Offset, Unit: pp.Unit, Role: pp.Role, Order: ABCD, Invalid: pp.Invalid}
	if !validName(pp.Name) {
		c.add(pth+".name", nameRule, pp.Name)
	}
	switch pp.Register {
	case "coil":
		pt.Kind = Coil
	case "discrete":
		pt.Kind = Discrete
	case "holding":
		pt.Kind = Holding
	case "input":
		pt.Kind = Input
	default:
		c.add(pth+".register", "must be one of coil, discrete, holding, input", pp.Register)
	}
	if pp.Address < 0 || pp.Address > 65535 {
		c.add(pth+".address", "must be 0..65535", pp.Address)
	}
	t, ok := dataTypeNames[pp.Type]
	if !ok {
		c.add(pth+".type", "must be one of bool, bit, int16, uint16, int32, uint32, int64, uint64, float32, float64, string", pp.Type)
	}
	pt.Type = t
	pt.Words = uint16(t.Words())
	if pt.Kind.IsBit() && ok && t != Bool {
		c.addf(pth+".type", pp.Type, "must be bool for a %s point", pp.Register)
	}
	if !pt.Kind.IsBit() && pt.Kind != 0 && t == Bool {
		c.addf(pth+".type", pp.Type, "bool is for coil and discrete points; use bit with bit: N for a bit of a %s register", pp.Register)
	}
	if t == Bit {
		if pp.Bit == nil || *pp.Bit < 0 || *pp.Bit > 15 {
			var v any
			if pp.Bit != nil {
				v = *pp.Bit
			}
			c.add(pth+".bit", "must be 0..15 for type bit", v)
		} else {
			pt.Bit = uint8(*pp.Bit)
		}
	} else if pp.Bit != nil {
		c.add(pth+".bit", "is only for type bit", *pp.Bit)
	}
	if t == String {
		if pp.Length < 1 || pp.Length > 123 {
			c.add(pth+".length", "must be 1..123 registers for type string", pp.Length)
		} else {
			pt.Words = uint16(pp.Length)
		}
	} else if pp.Length != 0 {
		c.add(pth+".length", "is only for type string", pp.Length)
	}
	if pp.Order != "" {
		o, ok := orderNames[pp.Order]
		if !ok {
			c.add(pth+".order", "must be one of ABCD, CDAB, BADC, DCBA", pp.Order)
		}
		pt.Order = o
	}
	parseScaling(pp, &pt, pth, c)
	if pp.Repeat == nil && pp.Name != "" && !validName(pp.Name) {
		return pt, false
	}
	return pt, len(c.errs) == n
}

// SunSpecOptions are a profile's SunSpec settings.
type SunSpecOptions struct {
	// Base is where the 'SunS' marker is (0, 40000 or 50000); unset, discovery tries all three.
	Base *int `yaml:"base"`
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

// sunspecPoint parses a point given by `sunspec:` instead of register, address and type.
func sunspecPoint(pp ProfilePoint, pth string, c *collector) (Point, bool) {
	n := len(c.errs)
	pt := Point{Name: pp.Name, Scale: 1, Offset: pp.Offset, Unit: pp.Unit, Role: pp.Role, Order: ABCD, Kind: Holding, Invalid: pp.Invalid}
	if !validName(pp.Name) {
		c.add(pth+".name", nameRule, pp.Name)
	}
	for field, set := range map[string]bool{"register": pp.Register != "", "address": pp.Address != 0, "type": pp.Type != "",
		"length": pp.Length != 0, "order": pp.Order != ""} {
		if set {
			c.addf(pth+"."+field, nil, "is given by the SunSpec definition of %s; leave it out", pp.SunSpec)
		}
	}
	ref, err := sunspec.ParseRef(pp.SunSpec)
	if err != nil {
		c.add(pth+".sunspec", err.Error(), pp.SunSpec)
		return pt, false
	}
	m, _ := sunspec.Lookup(ref.Model)
	mp, _ := m.Point(ref.Point, ref.Group != "")
	ss := &SunSpecPoint{Ref: ref, Offset: mp.Offset, Size: mp.Size, SFOffset: -1}
	if mp.SF != "" {
		sf, _ := m.Point(mp.SF, false)
		ss.SFOffset = sf.Offset
	}
	if pt.Unit == "" {
		pt.Unit = mp.Unit
	}
	switch mp.Type {
	case "int16", "sunssf":
		pt.Type, pt.Invalid = Int16, append(pt.Invalid, 0x8000)
	case "uint16", "enum16", "bitfield16", "count":
		pt.Type, pt.Invalid = Uint16, append(pt.Invalid, 0xFFFF)
	case "acc16":
		pt.Type, pt.Invalid = Uint16, append(pt.Invalid, 0)
	case "int32":
		pt.Type, pt.Invalid = Int32, append(pt.Invalid, 0x80000000)
	case "uint32", "enum32", "bitfield32":
		pt.Type, pt.Invalid = Uint32, append(pt.Invalid, 0xFFFFFFFF)
	case "acc32":
		pt.Type, pt.Invalid = Uint32, append(pt.Invalid, 0)
	case "float32":
		pt.Type = Float32
	case "string":
		pt.Type = String
	default:
		c.addf(pth+".sunspec", pp.SunSpec, "points of SunSpec type %s cannot be read yet", mp.Type)
	}
	pt.Words = uint16(mp.Size)
	if pp.Bit != nil {
		// A flag of a bitfield: bit N of the value, which is bit N%16 of its own register
		// (the high word comes first in SunSpec).
		bits := 16 * mp.Size
		if !strings.HasPrefix(mp.Type, "bitfield") || *pp.Bit < 0 || *pp.Bit >= bits {
			c.addf(pth+".bit", *pp.Bit, "must be 0..%d and only on a bitfield point (%s is %s)", bits-1, ref.Point, mp.Type)
		} else {
			ss.Offset += mp.Size - 1 - *pp.Bit/16
			ss.Size = 1
			pt.Type, pt.Bit, pt.Words, pt.Invalid = Bit, uint8(*pp.Bit%16), 1, nil
		}
	}
	parseScaling(pp, &pt, pth, c)
	pt.SunSpec = ss
	return pt, len(c.errs) == n
}

// resolveSunSpec adds a SunSpec point, or with repeat one per model instance or group entry:
// repeat fills the innermost index the reference leaves open (805.cell.CellTmp with count 16 is
// cells 1..16 of the first module; 805.CellTmpMax with count 8 is modules 1..8).
func resolveSunSpec(r *Resolved, pp ProfilePoint, pth string, seen map[string]string, c *collector) {
	base, ok := sunspecPoint(pp, pth, c)
	if !ok {
		return
	}
	ref := base.SunSpec.Ref
	count := 1
	if pp.Repeat != nil {
		count = pp.Repeat.Count
		switch {
		case count < 1 || count > 1024:
			c.add(pth+".repeat.count", "must be 1..1024", count)
			return
		case pp.Repeat.Stride != 0:
			c.add(pth+".repeat.stride", "is given by the SunSpec layout; leave it out", pp.Repeat.Stride)
			return
		case (ref.Group != "" && ref.Index != 0) || (ref.Group == "" && ref.Instance != 0):
			c.addf(pth+".repeat", nil, "%s leaves no index open to repeat over (write e.g. 805.cell.CellTmp or 805.CellTmpMax)", pp.SunSpec)
			return
		}
	}
	for k := 0; k < count; k++ {
		pt := base
		ss := *base.SunSpec
		if ss.Ref.Instance == 0 && (pp.Repeat == nil || ss.Ref.Group != "") {
			ss.Ref.Instance = 1
		}
		if ss.Ref.Group != "" && ss.Ref.Index == 0 && pp.Repeat == nil {
			ss.Ref.Index = 1
		}
		if pp.Repeat != nil {
			pt.Name = fmt.Sprintf("%s_%d", pp.Name, k+1)
			if ss.Ref.Group != "" {
				ss.Ref.Index = k + 1
			} else {
				ss.Ref.Instance = k + 1
			}
		}
		pt.SunSpec = &ss
		if prev, dup := seen[pt.Name]; dup {
			c.addf(pth+".name", pt.Name, "duplicate point name (also at %s)", prev)
			continue
		}
		seen[pt.Name] = pth
		r.Points = append(r.Points, pt)
	}
}

// parseScaling takes what every point may have however it is addressed: scale, role and range.
func parseScaling(pp ProfilePoint, pt *Point, pth string, c *collector) {
	if pp.Scale != nil {
		if *pp.Scale == 0 || math.IsNaN(*pp.Scale) || math.IsInf(*pp.Scale, 0) {
			c.add(pth+".scale", "must be a finite non-zero number", *pp.Scale)
		}
		pt.Scale = *pp.Scale
	}
	if pp.Role != sample.NoRole && !pp.Role.Known() {
		c.add(pth+".role", "is not a role the detector knows (see DESIGN's list)", pp.Role)
	}
	if pp.Range != nil {
		if len(pp.Range) != 2 || !(pp.Range[0] < pp.Range[1]) {
			c.add(pth+".range", "must be [lo, hi] with lo < hi", fmt.Sprint(pp.Range))
		} else {
			pt.Range = [2]float64{pp.Range[0], pp.Range[1]}
			pt.HasRange = true
		}
	}
}
