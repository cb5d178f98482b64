package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/internal/config"
)

// cmdProbe reads one device once, point by point, and prints what each register holds and what
// the profile makes of it: an engineer checks a register map against the device's front panel
// before the daemon relies on it. Read-only, like everything else: Modbus reads, never a write.
func cmdProbe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("probe", stderr)
	path := fs.String("config", "", "site config (YAML); with -device")
	device := fs.String("device", "", "the device of the config to probe")
	url := fs.String("url", "", "without a config: the device's link (tcp://h:502, rtu:///dev/ttyUSB0?baud=19200, rtuovertcp://h:p)")
	unit := fs.Int("unit", 1, "without a config: its unit id")
	profile := fs.String("profile", "", "without a config: its profile (a built-in name, or one in -profiles-dir)")
	profilesDir := fs.String("profiles-dir", "", "without a config: a directory of profiles")
	timeout := fs.Duration("timeout", time.Second, "without a config: the response timeout")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var cfg *config.Config
	var err error
	switch {
	case *path != "" && *device != "" && *url == "":
		cfg, err = loadConfig(*path)
	case *path == "" && *url != "" && *profile != "":
		cfg, err = probeConfig(*url, *unit, *profile, *profilesDir, *timeout)
	default:
		return usagef("probe: -config and -device, or -url, -unit and -profile")
	}
	if err != nil {
		return err
	}
	var d *config.Device
	for i := range cfg.Devices {
		if cfg.Devices[i].Name == *device || *path == "" {
			d = &cfg.Devices[i]
			break
		}
	}
	if d == nil {
		return usagef("probe: no device %q in %s", *device, *path)
	}
	r := cfg.Points(*d)
	if r.HasSunSpec() {
		return usagef("probe: %s's profile %s places its points by SunSpec discovery; probe reads fixed register maps (run the daemon with -debug to see the chain it finds)", d.Name, d.Profile)
	}
	cn, _ := cfg.Connection(d.Connection)
	ep, err := collectors.ParseEndpoint(cn.URL)
	if err != nil {
		return fmt.Errorf("connection %s: %w", cn.Name, err)
	}
	rd, err := collectors.NewReader(ep, cn.Timeout)
	if err != nil {
		return fmt.Errorf("connection %s: %w", cn.Name, err)
	}
	defer rd.Close()
	fmt.Fprintf(stdout, "%s: unit %d on %s, profile %s, %d points\n\n", d.Name, d.UnitID, cn.URL, d.Profile, len(r.Points))
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POINT\tREGISTER\tRAW\tVALUE\tUNIT\tQUALITY\tROLE")
	failed := 0
	for _, pt := range r.Points {
		where := fmt.Sprintf("%s %d", pt.Kind, pt.Address)
		if pt.Words > 1 {
			where += fmt.Sprintf("+%d", pt.Words-1)
		}
		data, err := rd.Read(uint8(d.UnitID), pt.Kind, pt.Address, pt.Words)
		if err != nil {
			failed++
			fmt.Fprintf(tw, "%s\t%s\t-\t%s\t%s\t-\t%s\n", pt.Name, where, err, pt.Unit, pt.Role)
			continue
		}
		var dec collectors.Decoded
		raw := ""
		if pt.Kind.IsBit() {
			dec, err = collectors.DecodeBit(pt, data, 0)
			raw = fmt.Sprintf("%d", data[0]&1)
		} else {
			dec, err = collectors.DecodeRegisters(pt, data)
			raw = "0x" + strings.ToUpper(hex.EncodeToString(data))
		}
		value := fmt.Sprintf("%g", dec.Value)
		switch {
		case err != nil:
			value = err.Error()
		case dec.Text != "":
			value = fmt.Sprintf("%q", dec.Text)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", pt.Name, where, raw, value, pt.Unit, dec.Quality, pt.Role)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if failed == len(r.Points) {
		return fmt.Errorf("probe: %s answered no point", d.Name)
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "\n%d of %d points could not be read (see their errors above)\n", failed, len(r.Points))
	}
	return nil
}

// probeConfig is a site of one device, for probing without a config.
func probeConfig(url string, unit int, profile, profilesDir string, timeout time.Duration) (*config.Config, error) {
	dir := ""
	if profilesDir != "" {
		dir = fmt.Sprintf("profiles_dir: %q\n", profilesDir)
	}
	y := fmt.Sprintf(`site: probe
instance: probe
state_dir: /nonexistent-probe-state
%sconnections: [{name: link, url: %q, timeout: %s}]
devices: [{name: device, connection: link, unit_id: %d, profile: %q, zone: z}]
zones: [{name: z, cut_scope: [d]}]
domains: [{name: d, targets: [t]}]
`, dir, url, timeout, unit, profile)
	return config.Parse([]byte(y), "probe")
}
