package sunspec

import (
	"errors"
	"strings"
	"testing"
)

// The block lengths follow from the definitions; they are the lengths SunSpec publishes (802:
// L = 62; 803: 26 + 32 per string; 804: 46 + 16 per module; 805: 42 + 4 per cell), so a
// mistyped size in models.txt shows here.
func TestModelLengths(t *testing.T) {
	for _, c := range []struct {
		id            uint16
		fixedL, group int
	}{{802, 62, 0}, {803, 26, 32}, {804, 46, 16}, {805, 42, 4}} {
		m, ok := Lookup(c.id)
		if !ok {
			t.Fatalf("model %d not embedded", c.id)
		}
		if m.Len-2 != c.fixedL {
			t.Errorf("model %d: fixed L = %d, want %d", c.id, m.Len-2, c.fixedL)
		}
		g := 0
		if m.Group != nil {
			g = m.Group.Len
		}
		if g != c.group {
			t.Errorf("model %d: group length %d, want %d", c.id, g, c.group)
		}
	}
	m, _ := Lookup(805)
	for name, off := range map[string]int{"NCell": 4, "NCyc": 8, "CellTmpMax": 16, "SN": 22, "Tmp_SF": 43} {
		if p, _ := m.Point(name, false); p.Offset != off {
			t.Errorf("805.%s at offset %d, want %d", name, p.Offset, off)
		}
	}
}

func TestParseRef(t *testing.T) {
	good := map[string]Ref{
		"802.SoC":               {Model: 802, Point: "SoC"},
		"805[3].CellTmpMax":     {Model: 805, Instance: 3, Point: "CellTmpMax"},
		"805.cell.CellTmp":      {Model: 805, Group: "cell", Point: "CellTmp"},
		"805[2].cell[16].CellV": {Model: 805, Instance: 2, Group: "cell", Index: 16, Point: "CellV"},
		"804.module[1].ModSoC":  {Model: 804, Group: "module", Index: 1, Point: "ModSoC"},
	}
	for s, want := range good {
		got, err := ParseRef(s)
		if err != nil || got != want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", s, got, err, want)
		}
		if err == nil && got.String() != s {
			t.Errorf("%q prints back as %q", s, got.String())
		}
	}
	bad := map[string]string{
		"SoC":               "want <model>",
		"801.SoC":           "not one Firebreak knows",
		"x.SoC":             "not a model number",
		"802.Nope":          `no point "Nope" in its fixed block`,
		"805.cell.SoC":      `no point "SoC" in its group cell`,
		"805.module.CellV":  `no repeating group "module" (its group is "cell")`,
		"802.cell.CellV":    "(it has none)",
		"805[0].SoC":        "a number from 1",
		"805[2.SoC":         "written [n]",
		"804.Pad1":          "padding",
		"805.cell[1].x.y.z": "want <model>",
	}
	for s, want := range bad {
		if _, err := ParseRef(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRef(%q) = %v, want an error containing %q", s, err, want)
		}
	}
}

var errIllegal = errors.New("exception 2")

// image is a holding-register map; reads outside it fail like a device's exception 2.
type image map[uint16]uint16

func (im image) read(start, count uint16) ([]byte, error) {
	out := make([]byte, 0, 2*count)
	for a := int(start); a < int(start)+int(count); a++ {
		v, ok := im[uint16(a)]
		if !ok {
			return nil, errIllegal
		}
		out = append(out, byte(v>>8), byte(v))
	}
	return out, nil
}

func (im image) put(c Chain, end bool) {
	im[c.Base], im[c.Base+1] = Marker[0], Marker[1]
	for _, m := range c.Models {
		for a := int(m.Start); a < int(m.Start)+2+int(m.Len); a++ {
			im[uint16(a)] = 0
		}
		im[m.Start], im[m.Start+1] = m.ID, m.Len
	}
	if end {
		im[c.End()], im[c.End()+1] = EndID, 0
	}
}

func isIllegal(err error) bool { return errors.Is(err, errIllegal) }

func TestDiscoverAtEachBase(t *testing.T) {
	for _, base := range []uint16{0, 40000, 50000} {
		built, err := Build(base, []Shape{{ID: 802, Instances: 1}, {ID: 804, Instances: 2, Entries: 8}, {ID: 805, Instances: 16, Entries: 16}})
		if err != nil {
			t.Fatal(err)
		}
		im := image{}
		im.put(built, true)
		got, err := Discover(im.read, isIllegal, -1)
		if err != nil {
			t.Fatalf("base %d: %v", base, err)
		}
		if got.Base != base || len(got.Models) != 1+1+2+16 {
			t.Fatalf("base %d: found base %d and %d models", base, got.Base, len(got.Models))
		}
		// The 3rd module's 5th cell temperature: 805 #3, cell group entry 5, offset 1.
		addr, ok := got.Locate(Ref{Model: 805, Instance: 3, Group: "cell", Index: 5, Point: "CellTmp"}, 1, 1)
		m3 := got.Models[1+1+2+2]
		if want := m3.Start + 44 + 4*4 + 1; !ok || addr != want {
			t.Errorf("base %d: CellTmp of module 3 cell 5 at %d (%v), want %d", base, addr, ok, want)
		}
		if _, ok := got.Locate(Ref{Model: 805, Instance: 17, Point: "SoC"}, 5, 1); ok {
			t.Errorf("base %d: a 17th module 805 located; the device has 16", base)
		}
		if _, ok := got.Locate(Ref{Model: 805, Group: "cell", Index: 17, Point: "CellV"}, 0, 1); ok {
			t.Errorf("base %d: a 17th cell located; the module has 16", base)
		}
		if _, ok := got.Locate(Ref{Model: 803, Point: "NStr"}, 2, 1); ok {
			t.Errorf("base %d: model 803 located; the device has none", base)
		}
	}
}

func TestDiscoverEdges(t *testing.T) {
	chain, _ := Build(40000, []Shape{{ID: 802, Instances: 1}})
	t.Run("no end marker", func(t *testing.T) {
		im := image{}
		im.put(chain, false)
		c, err := Discover(im.read, isIllegal, -1)
		if err != nil || len(c.Models) != 2 {
			t.Fatalf("got %+v, %v; want the two models", c, err)
		}
	})
	t.Run("not SunSpec", func(t *testing.T) {
		im := image{0: 1, 1: 2, 40000: 0x5375, 40001: 0}
		if _, err := Discover(im.read, isIllegal, -1); !errors.Is(err, ErrNotSunSpec) {
			t.Fatalf("got %v, want ErrNotSunSpec", err)
		}
	})
	t.Run("configured base", func(t *testing.T) {
		im := image{}
		im.put(chain, true)
		if _, err := Discover(im.read, isIllegal, 0); err == nil || !strings.Contains(err.Error(), "at 0") {
			t.Fatalf("got %v, want no marker at 0", err)
		}
		if c, err := Discover(im.read, isIllegal, 40000); err != nil || c.Base != 40000 {
			t.Fatalf("got %+v, %v", c, err)
		}
	})
	t.Run("communication error", func(t *testing.T) {
		boom := errors.New("i/o timeout")
		_, err := Discover(func(uint16, uint16) ([]byte, error) { return nil, boom }, isIllegal, -1)
		if !errors.Is(err, boom) {
			t.Fatalf("got %v, want the timeout passed on", err)
		}
	})
	t.Run("short model", func(t *testing.T) {
		im := image{}
		im.put(chain, true)
		im[chain.Models[1].Start+1] = 10 // an 802 of 10 registers
		if _, err := Discover(im.read, isIllegal, -1); err == nil || !strings.Contains(err.Error(), "shorter than its fixed block") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("endless chain", func(t *testing.T) {
		im := image{40000: Marker[0], 40001: Marker[1]}
		for a := 40002; a < 65536; a += 2 {
			im[uint16(a)], im[uint16(a+1)] = 9, 0 // unknown zero-length models forever
		}
		if _, err := Discover(im.read, isIllegal, -1); err == nil || !strings.Contains(err.Error(), "no end marker") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("chain past the top", func(t *testing.T) {
		im := image{65000: Marker[0], 65001: Marker[1], 65002: 9, 65003: 600}
		if _, err := Discover(im.read, isIllegal, 65000); err == nil || !strings.Contains(err.Error(), "past register 65535") {
			t.Fatalf("got %v", err)
		}
	})
}
