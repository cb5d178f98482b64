// Package sunspec knows the SunSpec battery models (802 battery base, 803 lithium-ion bank, 804
// lithium-ion string, 805 lithium-ion module): their point layouts, embedded in models.txt, how a
// profile names one of their points, and how a device's model chain is found ('SunS' at 40000, 0
// or 50000, then model headers to the 0xFFFF end marker). It does no I/O itself: discovery reads
// through a function the caller gives, so the collector and the tests share it.
package sunspec

import (
	_ "embed"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Marker is the 'SunS' well-known value at the base address, as two registers.
var Marker = [2]uint16{0x5375, 0x6E53}

// Bases are the base addresses discovery tries, in order (40000 is by far the most common).
var Bases = []uint16{40000, 0, 50000}

// EndID is the model id that ends a chain.
const EndID = 0xFFFF

// Point is one point of a model: its register offset from the model's ID register (or, in a
// repeating group, from the start of one group entry), size in registers and scale factor.
type Point struct {
	Name   string
	Type   string // int16, uint16, enum16, bitfield32, uint32, sunssf, string, pad …
	Size   int
	Offset int
	SF     string // name of the scale-factor point in the model's fixed block, "" for none
	Unit   string
}

// Group is a model's repeating group: entries of Len registers after the fixed block, as many
// as the model length leaves room for.
type Group struct {
	Name   string
	Points []Point
	Len    int
}

// Model is one model's layout.
type Model struct {
	ID    uint16
	Name  string
	Fixed []Point // from ID (offset 0) and L (offset 1) on
	Len   int     // registers of the fixed block, ID and L included
	Group *Group
}

// Point finds a point of the fixed block or, with group true, of the repeating group.
func (m *Model) Point(name string, group bool) (Point, bool) {
	pts := m.Fixed
	if group {
		if m.Group == nil {
			return Point{}, false
		}
		pts = m.Group.Points
	}
	for _, p := range pts {
		if p.Name == name {
			return p, true
		}
	}
	return Point{}, false
}

//go:embed models.txt
var modelsText string

var models = mustParse(modelsText)

// Lookup returns the embedded definition of model id.
func Lookup(id uint16) (*Model, bool) {
	m, ok := models[id]
	return m, ok
}

// IDs lists the models whose definitions are embedded, ascending.
func IDs() []uint16 {
	var out []uint16
	for id := range models {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func typeSize(t string) (int, bool) {
	switch t {
	case "int16", "uint16", "enum16", "bitfield16", "acc16", "count", "sunssf", "pad":
		return 1, true
	case "int32", "uint32", "enum32", "bitfield32", "acc32", "float32":
		return 2, true
	case "int64", "uint64", "acc64":
		return 4, true
	case "string":
		return 0, true
	}
	return 0, false
}

func mustParse(text string) map[uint16]*Model {
	m, err := parse(text)
	if err != nil {
		panic("sunspec: models.txt: " + err.Error())
	}
	return m
}

func parse(text string) (map[uint16]*Model, error) {
	out := map[uint16]*Model{}
	var cur *Model
	for n, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		where := fmt.Sprintf("line %d", n+1)
		switch f[0] {
		case "model":
			id, err := strconv.ParseUint(f[1], 10, 16)
			if err != nil || len(f) != 3 {
				return nil, fmt.Errorf("%s: want model <id> <name>", where)
			}
			cur = &Model{ID: uint16(id), Name: f[2]}
			out[cur.ID] = cur
			continue
		case "group":
			if cur == nil || len(f) != 2 || cur.Group != nil {
				return nil, fmt.Errorf("%s: a group needs a model and one name", where)
			}
			cur.Group = &Group{Name: f[1]}
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("%s: point before any model", where)
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("%s: want <name> <type>", where)
		}
		p := Point{Name: f[0], Type: f[1]}
		size, ok := typeSize(p.Type)
		if !ok {
			return nil, fmt.Errorf("%s: unknown type %q", where, p.Type)
		}
		p.Size = size
		for _, opt := range f[2:] {
			switch {
			case strings.HasPrefix(opt, "sf="):
				p.SF = opt[3:]
			case strings.HasPrefix(opt, "u="):
				p.Unit = opt[2:]
			default:
				n, err := strconv.Atoi(opt)
				if err != nil || n < 1 {
					return nil, fmt.Errorf("%s: unknown option %q", where, opt)
				}
				p.Size = n
			}
		}
		if p.Size == 0 {
			return nil, fmt.Errorf("%s: %s needs a size", where, p.Name)
		}
		if g := cur.Group; g != nil {
			p.Offset = g.Len
			g.Points = append(g.Points, p)
			g.Len += p.Size
		} else {
			p.Offset = cur.Len
			cur.Fixed = append(cur.Fixed, p)
			cur.Len += p.Size
		}
	}
	for id, m := range out {
		check := func(p Point) error {
			if p.SF == "" {
				return nil
			}
			sf, ok := m.Point(p.SF, false)
			if !ok || sf.Type != "sunssf" {
				return fmt.Errorf("model %d: %s's scale factor %s is not a sunssf point of the fixed block", id, p.Name, p.SF)
			}
			return nil
		}
		for _, p := range m.Fixed {
			if err := check(p); err != nil {
				return nil, err
			}
		}
		if m.Group != nil {
			for _, p := range m.Group.Points {
				if err := check(p); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// Ref is how a profile names a point: "805.CellTmpMax" (the first model 805 of the chain),
// "805[3].CellTmpMax" (the third), "805.cell[2].CellTmp" (the second entry of its repeating
// group), or "805[3].cell[2].CellTmp". Instance and Index are 1-based; 0 means left open (a
// profile's repeat fills it in).
type Ref struct {
	Model    uint16
	Instance int
	Group    string // "" for a point of the fixed block
	Index    int
	Point    string
}

func (r Ref) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", r.Model)
	if r.Instance > 0 {
		fmt.Fprintf(&b, "[%d]", r.Instance)
	}
	if r.Group != "" {
		b.WriteString("." + r.Group)
		if r.Index > 0 {
			fmt.Fprintf(&b, "[%d]", r.Index)
		}
	}
	return b.String() + "." + r.Point
}

// ParseRef parses and checks a reference against the embedded definitions.
func ParseRef(s string) (Ref, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 2 && len(parts) != 3 {
		return Ref{}, errors.New(`want <model>[<n>].<point> or <model>[<n>].<group>[<i>].<point>, e.g. 805.CellTmpMax or 805[2].cell[3].CellTmp`)
	}
	var r Ref
	name, n, err := indexed(parts[0])
	if err != nil {
		return Ref{}, err
	}
	id, err := strconv.ParseUint(name, 10, 16)
	if err != nil {
		return Ref{}, fmt.Errorf("model %q is not a model number", name)
	}
	r.Model, r.Instance = uint16(id), n
	m, ok := Lookup(r.Model)
	if !ok {
		return Ref{}, fmt.Errorf("model %d is not one Firebreak knows (it has %v)", id, IDs())
	}
	if len(parts) == 3 {
		if r.Group, r.Index, err = indexed(parts[1]); err != nil {
			return Ref{}, err
		}
		if m.Group == nil || m.Group.Name != r.Group {
			return Ref{}, fmt.Errorf("model %d has no repeating group %q%s", id, r.Group, groupHint(m))
		}
	}
	r.Point = parts[len(parts)-1]
	p, ok := m.Point(r.Point, r.Group != "")
	if !ok {
		return Ref{}, fmt.Errorf("model %d has no point %q in its %s", id, r.Point, blockName(r))
	}
	if p.Type == "pad" {
		return Ref{}, fmt.Errorf("%s is padding, not a point", r.Point)
	}
	return r, nil
}

func blockName(r Ref) string {
	if r.Group != "" {
		return "group " + r.Group
	}
	return "fixed block"
}

func groupHint(m *Model) string {
	if m.Group == nil {
		return " (it has none)"
	}
	return fmt.Sprintf(" (its group is %q)", m.Group.Name)
}

// indexed splits "805[3]" into "805" and 3; "805" gives 0.
func indexed(s string) (string, int, error) {
	open := strings.IndexByte(s, '[')
	if open < 0 {
		return s, 0, nil
	}
	if !strings.HasSuffix(s, "]") {
		return "", 0, fmt.Errorf("%q: an index is written [n]", s)
	}
	n, err := strconv.Atoi(s[open+1 : len(s)-1])
	if err != nil || n < 1 {
		return "", 0, fmt.Errorf("%q: an index is a number from 1", s)
	}
	return s[:open], n, nil
}

// Instance is one model found in a device's chain.
type Instance struct {
	ID    uint16
	Start uint16 // address of its ID register
	Len   uint16 // its L: registers after ID and L
}

// Chain is what discovery found on a device.
type Chain struct {
	Base   uint16
	Models []Instance
}

// nth returns the n-th (1-based) instance of model id.
func (c *Chain) nth(id uint16, n int) (Instance, bool) {
	for _, in := range c.Models {
		if in.ID == id {
			if n--; n == 0 {
				return in, true
			}
		}
	}
	return Instance{}, false
}

// Locate gives the address of the point at offset off (of a point size registers long) of the
// fixed block or group entry r names, and whether the device has it: the model instance exists
// and its length reaches the point.
func (c *Chain) Locate(r Ref, off, size int) (uint16, bool) {
	in, ok := c.nth(r.Model, max(r.Instance, 1))
	m, known := Lookup(r.Model)
	if !ok || !known {
		return 0, false
	}
	rel := off
	if r.Group != "" {
		rel = m.Len + (max(r.Index, 1)-1)*m.Group.Len + off
	}
	if rel+size > 2+int(in.Len) {
		return 0, false
	}
	return in.Start + uint16(rel), true
}

// Read reads count holding registers from start, as big-endian bytes.
type Read func(start, count uint16) ([]byte, error)

// ErrNotSunSpec says no base address holds the 'SunS' marker.
var ErrNotSunSpec = errors.New("no SunSpec marker 'SunS' at 40000, 0 or 50000")

// Absent says whether a read error means "no such register" (Modbus exception 2), which
// discovery takes as "not here" rather than a failure.
type Absent func(error) bool

// maxModels bounds a chain: a device whose headers never reach 0xFFFF is broken, not endless.
const maxModels = 256

// Discover finds the chain: the marker at base (or, with base < 0, at each of Bases in turn),
// then each model header until the end marker. A header that cannot be read because the
// register does not exist ends the chain (some devices omit the end marker); any other error
// is returned as it is.
func Discover(read Read, absent Absent, base int) (Chain, error) {
	bases := Bases
	if base >= 0 {
		bases = []uint16{uint16(base)}
	}
	var c Chain
	found := false
	for _, b := range bases {
		data, err := read(b, 2)
		if err != nil {
			if absent(err) {
				continue
			}
			return Chain{}, fmt.Errorf("sunspec marker at %d: %w", b, err)
		}
		if len(data) == 4 && be(data, 0) == Marker[0] && be(data, 1) == Marker[1] {
			c.Base, found = b, true
			break
		}
	}
	if !found {
		if base >= 0 {
			return Chain{}, fmt.Errorf("no SunSpec marker 'SunS' at %d", base)
		}
		return Chain{}, ErrNotSunSpec
	}
	addr := int(c.Base) + 2
	for len(c.Models) < maxModels {
		if addr+2 > 65536 {
			return Chain{}, fmt.Errorf("sunspec model chain runs past register 65535 (at %d)", addr)
		}
		data, err := read(uint16(addr), 2)
		if err != nil {
			if absent(err) {
				return c, nil
			}
			return Chain{}, fmt.Errorf("sunspec model header at %d: %w", addr, err)
		}
		if len(data) != 4 {
			return Chain{}, fmt.Errorf("sunspec model header at %d: got %d bytes, want 4", addr, len(data))
		}
		id, l := be(data, 0), be(data, 1)
		if id == EndID {
			return c, nil
		}
		if m, ok := Lookup(id); ok && int(l)+2 < m.Len {
			return Chain{}, fmt.Errorf("sunspec model %d at %d: length %d is shorter than its fixed block (%d)", id, addr, l, m.Len-2)
		}
		c.Models = append(c.Models, Instance{ID: id, Start: uint16(addr), Len: l})
		addr += 2 + int(l)
	}
	return Chain{}, fmt.Errorf("sunspec model chain at %d has more than %d models and no end marker", c.Base, maxModels)
}

func be(b []byte, i int) uint16 { return uint16(b[2*i])<<8 | uint16(b[2*i+1]) }

// Shape is what a device built for a test or the simulator carries: instances of each model
// and, for a model with a repeating group, entries per instance.
type Shape struct {
	ID        uint16
	Instances int
	Entries   int
}

// ShapeOf is the smallest chain shape holding every reference: per model, as many instances and
// group entries as the references name, in model order.
func ShapeOf(refs []Ref) []Shape {
	by := map[uint16]*Shape{}
	for _, r := range refs {
		s := by[r.Model]
		if s == nil {
			s = &Shape{ID: r.Model}
			by[r.Model] = s
		}
		s.Instances = max(s.Instances, r.Instance, 1)
		s.Entries = max(s.Entries, r.Index)
	}
	out := make([]Shape, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// CommonLen is the length (L) of the common model 1 every SunSpec device starts with.
const CommonLen = 66

// Build lays out a chain at base: the common model 1, then each shape's instances in order.
func Build(base uint16, shapes []Shape) (Chain, error) {
	c := Chain{Base: base, Models: []Instance{{ID: 1, Start: base + 2, Len: CommonLen}}}
	addr := int(base) + 2 + 2 + CommonLen
	for _, s := range shapes {
		m, ok := Lookup(s.ID)
		if !ok {
			return Chain{}, fmt.Errorf("model %d is not known", s.ID)
		}
		l := m.Len - 2
		if m.Group != nil {
			l += s.Entries * m.Group.Len
		}
		for i := 0; i < s.Instances; i++ {
			c.Models = append(c.Models, Instance{ID: s.ID, Start: uint16(addr), Len: uint16(l)})
			addr += 2 + l
		}
	}
	if addr+2 > 65536 {
		return Chain{}, fmt.Errorf("a chain at %d of %v does not fit below register 65536", base, shapes)
	}
	return c, nil
}

// End is the address of the end marker after the chain.
func (c *Chain) End() uint16 {
	if len(c.Models) == 0 {
		return c.Base + 2
	}
	last := c.Models[len(c.Models)-1]
	return last.Start + 2 + last.Len
}
