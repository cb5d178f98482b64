package config

import (
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/firebreak-dc/firebreak/collectors"
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
	// Deadband is how far the value must move before Sparkplug reports it again (0: any change).
	Deadband *float64 `yaml:"deadband"`
	Repeat   *Repeat  `yaml:"repeat"`
	// SunSpec names a point of a SunSpec model (e.g. 805.CellTmpMax) instead of register,
	// address and type; its address is found on the device at run time.
	SunSpec string `yaml:"sunspec"`
}

// Repeat expands one entry into Count points name_1 … name_Count, Stride registers apart.
// PerModule, if set, says that the points sit PerModule to a battery module, in order: with 2,
// name_1 and name_2 are module 1's, name_3 and name_4 module 2's. The detector then compares a
// module's sensors with each other (twins) and with the modules next to it.
type Repeat struct {
	Count     int `yaml:"count"`
	Stride    int `yaml:"stride"`
	PerModule int `yaml:"per_module"`
}

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// nameRule is what validName checks, for error messages.
var nameRule = fmt.Sprintf("must match [a-z0-9][a-z0-9_-]*, at most %d characters", MaxNameLen)

func validName(s string) bool { return len(s) <= MaxNameLen && nameRe.MatchString(s) }

// resolve parses and expands p, reporting problems under path (e.g. profiles[li-ion-rack]).
func resolve(p Profile, path string, c *collector) *collectors.Resolved {
	r := &collectors.Resolved{Name: p.Name, SunSpecBase: -1}
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
			if stride < int(base.Words) && !(base.Type == collectors.Bit && stride >= 0) {
				c.addf(pth+".repeat.stride", stride, "must be >= %d (the point's size), or points overlap", base.Words)
				continue
			}
			if pm := pp.Repeat.PerModule; pm < 0 || pm > count || (pm > 0 && count%pm != 0) {
				c.addf(pth+".repeat.per_module", pm, "must divide repeat.count (%d): the points of each module, in order", count)
				continue
			}
		}
		for k := 0; k < count; k++ {
			pt := base
			if pp.Repeat != nil {
				pt.Name = fmt.Sprintf("%s_%d", pp.Name, k+1)
				if pm := pp.Repeat.PerModule; pm > 0 {
					pt.Module = k/pm + 1
				}
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

func parsePoint(pp ProfilePoint, pth string, c *collector) (collectors.Point, bool) {
	n := len(c.errs)
	pt := collectors.Point{Name: pp.Name, Scale: 1, Offset: pp.Offset, Unit: pp.Unit, Role: pp.Role, Order: collectors.ABCD, Invalid: pp.Invalid}
	if !validName(pp.Name) {
		c.add(pth+".name", nameRule, pp.Name)
	}
	switch pp.Register {
	case "coil":
		pt.Kind = collectors.Coil
	case "discrete":
		pt.Kind = collectors.Discrete
	case "holding":
		pt.Kind = collectors.Holding
	case "input":
		pt.Kind = collectors.Input
	default:
		c.add(pth+".register", "must be one of coil, discrete, holding, input", pp.Register)
	}
	if pp.Address < 0 || pp.Address > 65535 {
		c.add(pth+".address", "must be 0..65535", pp.Address)
	}
	t, ok := collectors.ParseDataType(pp.Type)
	if !ok {
		c.add(pth+".type", "must be one of bool, bit, int16, uint16, int32, uint32, int64, uint64, float32, float64, string", pp.Type)
	}
	pt.Type = t
	pt.Words = uint16(t.Words())
	if pt.Kind.IsBit() && ok && t != collectors.Bool {
		c.addf(pth+".type", pp.Type, "must be bool for a %s point", pp.Register)
	}
	if !pt.Kind.IsBit() && pt.Kind != 0 && t == collectors.Bool {
		c.addf(pth+".type", pp.Type, "bool is for coil and discrete points; use bit with bit: N for a bit of a %s register", pp.Register)
	}
	if t == collectors.Bit {
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
	if t == collectors.String {
		if pp.Length < 1 || pp.Length > 123 {
			c.add(pth+".length", "must be 1..123 registers for type string", pp.Length)
		} else {
			pt.Words = uint16(pp.Length)
		}
	} else if pp.Length != 0 {
		c.add(pth+".length", "is only for type string", pp.Length)
	}
	if pp.Order != "" {
		o, ok := collectors.ParseWordOrder(pp.Order)
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

// sunspecPoint parses a point given by `sunspec:` instead of register, address and type.
func sunspecPoint(pp ProfilePoint, pth string, c *collector) (collectors.Point, bool) {
	n := len(c.errs)
	pt := collectors.Point{Name: pp.Name, Scale: 1, Offset: pp.Offset, Unit: pp.Unit, Role: pp.Role, Order: collectors.ABCD, Kind: collectors.Holding, Invalid: pp.Invalid}
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
	ss := &collectors.SunSpecPoint{Ref: ref, Offset: mp.Offset, Size: mp.Size, SFOffset: -1}
	if mp.SF != "" {
		sf, _ := m.Point(mp.SF, false)
		ss.SFOffset = sf.Offset
	}
	if pt.Unit == "" {
		pt.Unit = mp.Unit
	}
	switch mp.Type {
	case "int16", "sunssf":
		pt.Type, pt.Invalid = collectors.Int16, append(pt.Invalid, 0x8000)
	case "uint16", "enum16", "bitfield16", "count":
		pt.Type, pt.Invalid = collectors.Uint16, append(pt.Invalid, 0xFFFF)
	case "acc16":
		pt.Type, pt.Invalid = collectors.Uint16, append(pt.Invalid, 0)
	case "int32":
		pt.Type, pt.Invalid = collectors.Int32, append(pt.Invalid, 0x80000000)
	case "uint32", "enum32", "bitfield32":
		pt.Type, pt.Invalid = collectors.Uint32, append(pt.Invalid, 0xFFFFFFFF)
	case "acc32":
		pt.Type, pt.Invalid = collectors.Uint32, append(pt.Invalid, 0)
	case "float32":
		pt.Type = collectors.Float32
	case "string":
		pt.Type = collectors.String
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
			pt.Type, pt.Bit, pt.Words, pt.Invalid = collectors.Bit, uint8(*pp.Bit%16), 1, nil
		}
	}
	parseScaling(pp, &pt, pth, c)
	pt.SunSpec = ss
	return pt, len(c.errs) == n
}

// resolveSunSpec adds a SunSpec point, or with repeat one per model instance or group entry:
// repeat fills the innermost index the reference leaves open (805.cell.CellTmp with count 16 is
// cells 1..16 of the first module; 805.CellTmpMax with count 8 is modules 1..8).
func resolveSunSpec(r *collectors.Resolved, pp ProfilePoint, pth string, seen map[string]string, c *collector) {
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
		case pp.Repeat.PerModule < 0 || pp.Repeat.PerModule > count || (pp.Repeat.PerModule > 0 && count%pp.Repeat.PerModule != 0):
			c.addf(pth+".repeat.per_module", pp.Repeat.PerModule, "must divide repeat.count (%d): the points of each module, in order", count)
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
			if pm := pp.Repeat.PerModule; pm > 0 {
				pt.Module = k/pm + 1
			}
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
func parseScaling(pp ProfilePoint, pt *collectors.Point, pth string, c *collector) {
	if pp.Scale != nil {
		if *pp.Scale == 0 || math.IsNaN(*pp.Scale) || math.IsInf(*pp.Scale, 0) {
			c.add(pth+".scale", "must be a finite non-zero number", *pp.Scale)
		}
		pt.Scale = *pp.Scale
	}
	if pp.Role != sample.NoRole && !pp.Role.Known() {
		c.add(pth+".role", "is not a role the detector knows (see docs/design.md's list)", pp.Role)
	}
	if pp.Range != nil {
		if len(pp.Range) != 2 || !(pp.Range[0] < pp.Range[1]) {
			c.add(pth+".range", "must be [lo, hi] with lo < hi", fmt.Sprint(pp.Range))
		} else {
			pt.Range = [2]float64{pp.Range[0], pp.Range[1]}
			pt.HasRange = true
		}
	}
	if pp.Deadband != nil {
		if v := *pp.Deadband; !(v >= 0) || math.IsInf(v, 0) {
			c.add(pth+".deadband", "must be a finite number, 0 or more (in the point's unit)", v)
		} else {
			pt.Deadband = v
		}
	}
}
