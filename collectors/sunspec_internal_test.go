package collectors

import (
	"testing"

	"github.com/firebreak-dc/firebreak/internal/sample"
	"github.com/firebreak-dc/firebreak/internal/sunspec"
)

// TestSunSpecScaling: a value is raw × 10^SF, then the point's scale, offset and range; a scale
// factor the device says it does not implement (0x8000), or one no device means, makes the
// point invalid rather than a number off by powers of ten.
func TestSunSpecScaling(t *testing.T) {
	temp := Point{Name: "t", Scale: 1, HasRange: true, Range: [2]float64{-40, 300}}
	for _, c := range []struct {
		pt   Point
		raw  float64
		sf   int
		want Decoded
	}{
		{temp, 253, -1, Decoded{Value: 25.3, Quality: sample.Good}},
		{temp, 3512, -3, Decoded{Value: 3.512, Quality: sample.Good}},
		{temp, 5, 2, Decoded{Value: 500, Quality: sample.OutOfRange}},
		{temp, 253, 11, Decoded{Quality: sample.Invalid}},
		{Point{Scale: 1000, Offset: -1}, 3512, -3, Decoded{Value: 3511, Quality: sample.Good}},
	} {
		if got := ScaleSunSpec(c.pt, c.raw, c.sf); got != c.want {
			t.Errorf("raw %v sf %d: got %+v, want %+v", c.raw, c.sf, got, c.want)
		}
	}

	// finish: the scale factor's own quality decides; the SF samples leave the batch.
	ref, _ := sunspec.ParseRef("802.SoC")
	declared := []Point{
		{Name: "soc", Scale: 1, SunSpec: &SunSpecPoint{Ref: ref}},
		{Name: "v", Scale: 1, SunSpec: &SunSpecPoint{Ref: ref}},
		{Name: "gone", SunSpec: &SunSpecPoint{Ref: ref}},
	}
	s := &sunspecDevice{declared: declared, chain: &sunspec.Chain{}, sf: []int{3, 4, -1}, absent: map[int]bool{2: true}}
	b := sample.Batch{Samples: []sample.Sample{
		{Point: "soc", Value: 873, Quality: sample.Good},
		{Point: "v", Value: 4012, Quality: sample.Good},
		{Point: "gone", Quality: sample.CommLost},
		{Point: "sf@1", Value: -1, Quality: sample.Good},
		{Point: "sf@2", Quality: sample.Invalid}, // 0x8000: not implemented
	}}
	s.finish(&b)
	if len(b.Samples) != 3 {
		t.Fatalf("%d samples after finish, want the 3 declared", len(b.Samples))
	}
	if b.Samples[0].Value != 87.3 || b.Samples[0].Quality != sample.Good {
		t.Errorf("soc: %+v, want 87.3 good", b.Samples[0])
	}
	if b.Samples[1].Quality != sample.Invalid || b.Samples[1].Value != 0 {
		t.Errorf("v with an unimplemented scale factor: %+v, want invalid and no number", b.Samples[1])
	}
	if b.Samples[2].Quality != sample.Invalid {
		t.Errorf("a point the device lacks: %v, want invalid", b.Samples[2].Quality)
	}
}
