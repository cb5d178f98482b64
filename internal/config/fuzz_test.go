package config

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/configs"
)

// FuzzConfig runs what a site file may hold through the YAML loader and the validator: it never
// panics, a refusal is ErrInvalid with one readable line per problem, and what it accepts keeps
// the promises the rest of the daemon builds on (finite thresholds, positive intervals, names
// within their limits, a topic prefix outside the broker's own tree). Seeds: every site in
// configs/, the packaged example and issue 13's hostile configs.
func FuzzConfig(f *testing.F) {
	sites, _ := fs.Glob(configs.FS, "sites/*.yaml")
	for _, name := range sites {
		data, _ := configs.FS.ReadFile(name)
		f.Add(string(data))
	}
	if data, err := os.ReadFile("../../packaging/etc/firebreak/b3.yaml"); err == nil {
		f.Add(string(data))
	}
	for _, h := range hostileConfigs() {
		if len(h.yaml) < 64<<10 { // the fuzzer mutates small inputs; the large rows are tested as rows
			f.Add(h.yaml)
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		cfg, err := Parse([]byte(in), "fuzz.yaml")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("refusal is not ErrInvalid: %v", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if len(line) > 1024 {
					t.Fatalf("an error line of %d bytes: %.200s", len(line), line)
				}
			}
			return
		}
		finiteFields(t, "detection", reflect.ValueOf(cfg.Detection))
		for _, d := range cfg.Devices {
			if d.Interval < 100*time.Millisecond || len(d.Name) > MaxNameLen {
				t.Fatalf("accepted device %+v", d)
			}
			for _, p := range cfg.Points(d).Points {
				if !isFinite(p.Scale) || !isFinite(p.Offset) || p.Scale == 0 || !isFinite(p.Range[0]) || !isFinite(p.Range[1]) {
					t.Fatalf("accepted point %+v", p)
				}
			}
		}
		for _, c := range cfg.Connections {
			if c.MaxInFlight < 1 || c.MaxRegistersPerRequest < 1 || c.Timeout <= 0 {
				t.Fatalf("accepted connection %+v", c)
			}
		}
		for _, r := range cfg.Rules {
			for _, v := range []*float64{r.Above, r.Below, r.RatePerMin} {
				if v != nil && !isFinite(*v) {
					t.Fatalf("accepted rule %+v", r)
				}
			}
		}
		if p := cfg.MQTT.TopicPrefix; strings.HasPrefix(p, "$") || len(p) > MaxTopicPrefix || len(cfg.Site) > MaxNameLen {
			t.Fatalf("accepted prefix %q site %q", p, cfg.Site)
		}
	})
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// finiteFields fails on any float field of v that is not finite.
func finiteFields(t *testing.T, path string, v reflect.Value) {
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i); f.Kind() == reflect.Float64 && !isFinite(f.Float()) {
			t.Fatalf("accepted %s.%s = %v", path, v.Type().Field(i).Name, f.Float())
		}
	}
}
