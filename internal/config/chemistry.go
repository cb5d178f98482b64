package config

import (
	"fmt"
	"io/fs"
	"math"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/firebreak-dc/firebreak/configs"
)

// ChemistryNames lists the chemistry presets built in (configs/chemistry).
func ChemistryNames() []string {
	files, _ := fs.Glob(configs.FS, "chemistry/*.yaml")
	var out []string
	for _, f := range files {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(f, "chemistry/"), ".yaml"))
	}
	return out
}

// ChemistrySlope is a preset's ocv_slope_mv_per_pct_near_full: what the daemon takes of the
// simulator's cell presets (the rest is the simulator's physics, read by internal/sim).
func ChemistrySlope(name string) (float64, error) {
	data, err := fs.ReadFile(configs.FS, "chemistry/"+name+".yaml")
	if err != nil || strings.ContainsAny(name, "/.") {
		return 0, fmt.Errorf("is not a chemistry preset (known: %s)", strings.Join(ChemistryNames(), ", "))
	}
	var p struct {
		Slope float64 `yaml:"ocv_slope_mv_per_pct_near_full"`
	}
	if err := yaml.Unmarshal(data, &p); err != nil || !(p.Slope > 0) || math.IsInf(p.Slope, 0) {
		return 0, fmt.Errorf("preset configs/chemistry/%s.yaml has no usable ocv_slope_mv_per_pct_near_full", name)
	}
	return p.Slope, nil
}
