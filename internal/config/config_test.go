package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firebreak-dc/firebreak/configs"
)

func TestDemoSiteLoads(t *testing.T) {
	t.Parallel()
	data, err := configs.FS.ReadFile("sites/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(data, "demo.yaml")
	if err != nil {
		t.Fatalf("demo site: %v", err)
	}
	rack := cfg.Points(cfg.Devices[0])
	if rack == nil {
		t.Fatal("li-ion-rack profile not resolved")
	}
	var names []string
	for _, p := range rack.Points {
		names = append(names, p.Name)
	}
	joined := strings.Join(names, ",")
	for _, want := range []string{"module_temp_1", "module_temp_16", "cell_v_min_8"} {
		if !strings.Contains(joined, want) {
			t.Errorf("expanded points lack %s: %s", want, joined)
		}
	}
	if got := cfg.Targets([]string{"ups-a", "ups-b"}); strings.Join(got, ",") != "hall-1,hall-2,hall-3" {
		t.Errorf("targets = %v", got)
	}
}

const base = `
site: s1
instance: fb-1
state_dir: /tmp/x
connections: [{name: gw, url: "tcp://127.0.0.1:502"}]
zones: [{name: z, cut_scope: [d]}]
domains: [{name: d, targets: [t]}]
`

func TestEveryMistakeReportedWithPath(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		yaml string
		want []string
	}{
		{"three mistakes", base + `
devices:
  - {name: r1, connection: gw, unit_id: 1, profile: li-ion-rack, zone: z}
  - {name: r2, connection: gw, unit_id: 0, profile: li-ion-rack, zone: z}
  - {name: r3, connection: nowhere, unit_id: 3, profile: li-ion-rack, zone: z, colour: red}
`, []string{
			`devices[1].unit_id: must be 1..247, got 0`,
			`devices[2].connection: is not a connection listed under connections, got "nowhere"`,
			`unknown key "colour"`,
		}},
		{"bad profile point", base + `
devices: [{name: r1, connection: gw, unit_id: 1, profile: p, zone: z}]
profiles:
  - name: p
    points:
      - {name: a, register: holding, address: 0, type: int24}
      - {name: b, register: coil, address: 0, type: uint16}
      - {name: c, register: input, address: 1, type: float32, order: XYZW, range: [5, 1]}
`, []string{
			`profiles[0].points[0].type: must be one of`,
			`profiles[0].points[1].type: must be bool for a coil point, got "uint16"`,
			`profiles[0].points[2].order: must be one of ABCD, CDAB, BADC, DCBA, got "XYZW"`,
			`profiles[0].points[2].range: must be [lo, hi] with lo < hi`,
		}},
		{"cutover and detection", base + `
devices: [{name: r1, connection: gw, unit_id: 1, profile: fire-panel, zone: z, interval: 10ms}]
detection: {cell_temp_warn_c: 70}
cutover: {mode: maybe, heartbeat: 1m, validity: 30s}
`, []string{
			`devices[0].interval: must be 100ms..1h, got "10ms"`,
			`detection.cell_temp_warn_c: must lie between`,
			`cutover.mode: must be live or dry-run, got "maybe"`,
			`cutover.validity: must be longer than cutover.heartbeat`,
		}},
		{"two connections on one serial port", strings.Replace(base, `connections: [{name: gw, url: "tcp://127.0.0.1:502"}]`, `connections:
  - {name: gw, url: "tcp://10.0.0.1:502"}
  - {name: bus-a, url: "rtu:///dev/ttyUSB0?baud=9600&parity=N"}
  - {name: bus-b, url: "rtu:///dev/ttyUSB0"}`, 1) + `
devices: [{name: r1, connection: gw, unit_id: 1, profile: fire-panel, zone: z}]
`, []string{
			`connections[2].url: serial port /dev/ttyUSB0 is already connection bus-a`,
		}},
		{"mqtt and commands", base + `
devices: [{name: r1, connection: gw, unit_id: 1, profile: fire-panel, zone: z}]
mqtt: {outbox_max: 5, tls: {cert_file: client.pem}, home_assistant: {enabled: true, prefix: "ha/#"}}
commands:
  max_age: 0s
  operators:
    - {name: alice, public_key: "not base64!"}
    - {name: alice, public_key: "AAAA"}
`, []string{
			`mqtt.outbox_max: must be at least 100 messages, got 5`,
			`mqtt.tls: cert_file and key_file go together`,
			`mqtt.home_assistant.prefix: must not hold the wildcards + or #, got "ha/#"`,
			`commands.max_age: must be a positive duration, got "0s"`,
			`commands.operators[0].public_key: must be the base64 of a 32-byte Ed25519 public key, got "not base64!"`,
			`commands.operators[1].name: is used by another operator, got "alice"`,
			`commands.operators[1].public_key: must be the base64`,
		}},
		{"sparkplug", base + `
devices: [{name: r1, connection: gw, unit_id: 1, profile: p, zone: z}]
profiles:
  - name: p
    points:
      - {name: a, register: holding, address: 0, type: int16, deadband: -1}
      - {name: b, register: holding, address: 1, type: int16, deadband: .nan}
sparkplug: {enabled: true, group_id: "hall/1", edge_node_id: "", primary_host_id: "scada#1"}
`, []string{
			`profiles[0].points[0].deadband: must be a finite number, 0 or more (in the point's unit), got -1`,
			`profiles[0].points[1].deadband: must be a finite number`,
			`sparkplug.group_id: must not hold +, / or # (it is one level of a Sparkplug topic), got "hall/1"`,
			`sparkplug.edge_node_id: must not be empty`,
			`sparkplug.primary_host_id: must not hold +, / or #`,
		}},
		{"sparkplug group STATE", base + `
devices: [{name: r1, connection: gw, unit_id: 1, profile: fire-panel, zone: z}]
sparkplug: {enabled: true, group_id: STATE}
`, []string{
			`sparkplug.group_id: must not be STATE: spBv1.0/STATE/<host id> is the host applications' topic, got "STATE"`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.yaml), "site.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error is not ErrInvalid: %v", err)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("missing %q in:\n%s", w, msg)
				}
			}
			if !strings.HasPrefix(msg, "site.yaml: ") {
				t.Errorf("errors should name the file: %s", msg)
			}
		})
	}
}

func TestProfilesDirRelativeToConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "profiles"), 0o755); err != nil {
		t.Fatal(err)
	}
	prof := "name: mine\npoints:\n  - {name: t, register: holding, address: 7, type: int16, scale: 0.1, role: cell_temperature, repeat: {count: 3, stride: 2}}\n"
	if err := os.WriteFile(filepath.Join(dir, "profiles", "mine.yaml"), []byte(prof), 0o644); err != nil {
		t.Fatal(err)
	}
	site := base + "profiles_dir: profiles\ndevices: [{name: r1, connection: gw, unit_id: 1, profile: mine, zone: z}]\n"
	path := filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(path, []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	pts := cfg.Points(cfg.Devices[0]).Points
	if len(pts) != 3 || pts[2].Name != "t_3" || pts[2].Address != 11 {
		t.Fatalf("repeat expanded wrongly: %+v", pts)
	}
}

func TestRulesValidated(t *testing.T) {
	t.Parallel()
	y := base + `
devices: [{name: r1, connection: gw, unit_id: 1, profile: li-ion-rack, zone: z}]
rules:
  - {name: hot-string, point: r1.string_power, above: 150, for: 30s, stage: 2}
  - {name: bad-point, point: r1.nope, above: 1, stage: 1}
  - {name: no-device, point: r9.soc, below: 10, stage: 1}
  - {name: two-limits, point: r1.soc, above: 1, below: 2, stage: 1}
  - {name: zero-stage, point: r1.soc, rate_per_min: 1, stage: 0}
  - {name: hot-string, point: r1.soc, below: 5, stage: 1}
`
	_, err := Parse([]byte(y), "site.yaml")
	if err == nil {
		t.Fatal("bad rules accepted")
	}
	for _, want := range []string{
		`rules[1].point: device r1 has no point "nope" in its profile`,
		`rules[2].point: names device "r9"`,
		`rules[3]: must set exactly one of above, below, rate_per_min`,
		`rules[4].stage: must be 1..4, got 0`,
		`rules[5].name: is used by another rule`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "rules[0]") {
		t.Errorf("the good rule was refused: %v", err)
	}
}

// TestConfigsThatCannotBeRight: what a hostile or careless file brings (issue 13's 425 mutated
// configs found these accepted); each is refused with its field path. One row per case; rows
// with placeholders are expanded below.
func TestConfigsThatCannotBeRight(t *testing.T) {
	t.Parallel()
	for _, tc := range hostileConfigs() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.yaml), "site.yaml")
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want %q in:\n%.2000s", tc.want, err)
			}
			if len(err.Error()) > 4000 {
				t.Errorf("the message is %d bytes: a hostile value must not be echoed whole", len(err.Error()))
			}
		})
	}
}

type hostileConfig struct{ name, yaml, want string }

// hostileConfigs are the table of TestConfigsThatCannotBeRight, and seeds of FuzzConfig.
func hostileConfigs() []hostileConfig {
	dev := "\ndevices: [{name: r1, connection: gw, unit_id: 1, profile: li-ion-rack, zone: z}]\n"
	huge := strings.Repeat("a", 70000)
	return []hostileConfig{
		{"inf threshold", base + dev + "detection: {cell_temp_crit_c: .inf}", `detection.cell_temp_crit_c: must be a finite number (not NaN or infinity), got ".inf"`},
		{"nan threshold", base + dev + "detection: {peer_z_min: .NaN}", `detection.peer_z_min: must be a finite number`},
		{"overflowing threshold", base + dev + "detection: {co_warn_ppm: 1e999}", `detection.co_warn_ppm: must be a finite number`},
		{"nan rule limit", base + dev + "rules: [{name: x, point: r1.soc, above: .nan, stage: 1}]", `rules[0].above: must be a finite number`},
		{"-inf rule rate", base + dev + "rules: [{name: x, point: r1.soc, rate_per_min: -.inf, stage: 1}]", `rules[0].rate_per_min: must be a finite number`},
		{"nan scale", base + "devices: [{name: r1, connection: gw, unit_id: 1, profile: p, zone: z}]\nprofiles: [{name: p, points: [{name: a, register: input, address: 0, type: int16, scale: .nan}]}]", `profiles[0].points[0].scale: must be a finite number`},
		{"inf offset", base + "devices: [{name: r1, connection: gw, unit_id: 1, profile: p, zone: z}]\nprofiles: [{name: p, points: [{name: a, register: input, address: 0, type: int16, offset: .inf}]}]", `profiles[0].points[0].offset: must be a finite number`},
		{"nan range", base + "devices: [{name: r1, connection: gw, unit_id: 1, profile: p, zone: z}]\nprofiles: [{name: p, points: [{name: a, register: input, address: 0, type: int16, range: [.nan, 5]}]}]", `profiles[0].points[0].range[0]: must be a finite number`},
		{"zero interval", base + "devices: [{name: r1, connection: gw, unit_id: 1, profile: li-ion-rack, zone: z, interval: 0s}]", `devices[0].interval: must be 100ms..1h, got "0s"`},
		{"bare-number interval", base + "devices: [{name: r1, connection: gw, unit_id: 1, profile: li-ion-rack, zone: z, interval: 5}]", `devices[0].interval: must be a duration with a unit`},
		{"zero max_registers_per_request", strings.Replace(base, `url: "tcp://127.0.0.1:502"}`, `url: "tcp://127.0.0.1:502", max_registers_per_request: 0}`, 1) + dev, `connections[0].max_registers_per_request: must be 1..125, got 0`},
		{"zero max_in_flight", strings.Replace(base, `url: "tcp://127.0.0.1:502"}`, `url: "tcp://127.0.0.1:502", max_in_flight: 0}`, 1) + dev, `connections[0].max_in_flight: must be 1..16, got 0`},
		{"zero timeout", strings.Replace(base, `url: "tcp://127.0.0.1:502"}`, `url: "tcp://127.0.0.1:502", timeout: 0s}`, 1) + dev, `connections[0].timeout: must be > 0`},
		{"fractional unit id", base + "devices: [{name: r1, connection: gw, unit_id: 1.5, profile: li-ion-rack, zone: z}]", `devices[0].unit_id: must be a whole number, got "1.5"`},
		{"fractional address", base + "devices: [{name: r1, connection: gw, unit_id: 1, profile: p, zone: z}]\nprofiles: [{name: p, points: [{name: a, register: input, address: 2.5, type: int16}]}]", `profiles[0].points[0].address: must be a whole number`},
		{"numeric site", strings.Replace(base, "site: s1", "site: 123", 1) + dev, `site: must be a string; quote it if it is meant as one, got "123"`},
		{"boolean instance", strings.Replace(base, "instance: fb-1", "instance: true", 1) + dev, `instance: must be a string`},
		{"$SYS prefix", base + dev + "mqtt: {topic_prefix: $SYS}", `mqtt.topic_prefix: must not start with $`},
		{"empty topic level", base + dev + "mqtt: {topic_prefix: a//b}", `mqtt.topic_prefix: must not start or end with / or hold an empty level`},
		{"huge prefix", base + dev + "mqtt: {topic_prefix: " + huge + "}", `mqtt.topic_prefix: must be at most 128 bytes`},
		{"huge site", strings.Replace(base, "site: s1", "site: "+huge, 1) + dev, `site: must match [a-z0-9-]+, at most 64 characters`},
		{"huge device name", base + "devices: [{name: " + huge + ", connection: gw, unit_id: 1, profile: li-ion-rack, zone: z}]", `devices[0].name: must match [a-z0-9][a-z0-9_-]*, at most 64 characters, got "aaaa`},
		{"consumer twice", base + dev + "cutover: {consumers: [cp, cp]}", `cutover.consumers[1]: is used by another consumer, got "cp"`},
		{"broker without host", base + dev + "mqtt: {brokers: [\"tcp://:1883\"]}", `mqtt.brokers[0]: must name a host`},
		{"broker with path", base + dev + "mqtt: {brokers: [\"tcp://h:1883/x\"]}", `mqtt.brokers[0]: must not have a path`},
		{"broker with password", base + dev + "mqtt: {brokers: [\"tcp://u:secret@h:1883\"]}", `mqtt.brokers[0]: must not hold a user or password`},
		{"broker port out of range", base + dev + "mqtt: {brokers: [\"tcp://h:70000\"]}", `mqtt.brokers[0]: port must be 1..65535`},
		{"influx with password", base + dev + "influx: {url: \"http://u:p@h:8086\"}", `influx.url: must not hold a user or password`},
		{"a bare number for a duration", base + "devices: [{name: r1, connection: gw, unit_id: 1, profile: li-ion-rack, zone: z, interval: 1}]", `devices[0].interval: must be a duration with a unit, like 500ms, 1s or 5m (a bare number would be nanoseconds): write 1s for seconds, got "1"`},
		{"a misspelled profile", base + "devices: [{name: r1, connection: gw, unit_id: 1, profile: li-ion-rak, zone: z}]", `devices[0].profile: is not a known profile (did you mean li-ion-rack?`},
		{"influx 2.x without org", base + dev + "influx: {url: \"http://h:8086\", bucket: firebreak}", `influx.org: required for InfluxDB 2.x (bucket firebreak)`},
		{"metrics port out of range", base + dev + "metrics: {listen: \"127.0.0.1:99999\"}", `metrics.listen: port must be 0..65535`},
		{"missing CA file", base + dev + "mqtt: {tls: {ca_file: /nonexistent/ca.pem}}", `mqtt.tls.ca_file: cannot be read`},
		{"missing password file", base + dev + "mqtt: {password_file: /nonexistent/pw}", `mqtt.password_file: cannot be read`},
		{"too many targets", strings.Replace(base, "targets: [t]", "targets: ["+strings.TrimSuffix(strings.Repeat("t,", 300), ",")+"]", 1) + dev, `domains[0].targets: must list at most 256 targets`},
		{"empty target", strings.Replace(base, "targets: [t]", `targets: [""]`, 1) + dev, `domains[0].targets[0]: must be printable text`},
		{"config too large", base + dev + "# " + strings.Repeat("x", MaxConfigBytes), `(document): is `},
		{"unknown chemistry", base + "devices: [{name: r1, connection: gw, unit_id: 1, profile: li-ion-rack, zone: z, battery: {chemistry: lco, capacity_ah: 68}}]", `devices[0].battery.chemistry: is not a chemistry preset (known: lfp, nmc), got "lco"`},
		{"a path for a chemistry", base + "devices: [{name: r1, connection: gw, unit_id: 1, profile: li-ion-rack, zone: z, battery: {chemistry: ../rooms/battery-room, capacity_ah: 68}}]", `devices[0].battery.chemistry: is not a chemistry preset`},
		{"battery without capacity", base + "devices: [{name: r1, connection: gw, unit_id: 1, profile: li-ion-rack, zone: z, battery: {chemistry: nmc}}]", `devices[0].battery.capacity_ah: must be the cells' rated capacity, > 0 and at most 100000 Ah, got 0`},
		{"battery with neither", base + "devices: [{name: r1, connection: gw, unit_id: 1, profile: li-ion-rack, zone: z, battery: {capacity_ah: 68}}]", `devices[0].battery.chemistry: must name a preset (lfp, nmc) or ocv_slope_mv_per_pct be set`},
		{"nan capacity", base + "devices: [{name: r1, connection: gw, unit_id: 1, profile: li-ion-rack, zone: z, battery: {chemistry: nmc, capacity_ah: .nan}}]", `devices[0].battery.capacity_ah: must be a finite number`},
		{"negative slope", base + "devices: [{name: r1, connection: gw, unit_id: 1, profile: li-ion-rack, zone: z, battery: {chemistry: nmc, capacity_ah: 68, ocv_slope_mv_per_pct: -1}}]", `devices[0].battery.ocv_slope_mv_per_pct: must be > 0 and at most 1000 mV per %`},
		{"window not whole hours", base + dev + "detection: {self_discharge_window: 90m}", `detection.self_discharge_window: must be whole hours, 6h..720h, got "1h30m0s"`},
		{"coverage over the window", base + dev + "detection: {self_discharge_min_coverage: 100h}", `detection.self_discharge_min_coverage: must be whole hours, at least 2h and at most self_discharge_window (72h0m0s)`},
	}
}

// TestSparkplugDefaults: the group is the site and the edge node the instance unless set; a
// deadband reaches the point.
func TestSparkplugDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(base+`
devices: [{name: r1, connection: gw, unit_id: 1, profile: p, zone: z}]
profiles: [{name: p, points: [{name: a, register: holding, address: 0, type: int16, deadband: 0.5}]}]
sparkplug: {enabled: true}
`), "site.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if sp := cfg.Sparkplug; sp.GroupID != cfg.Site || sp.EdgeNodeID != cfg.Instance || sp.PrimaryHostID != "" {
		t.Errorf("defaults: %+v (site %s, instance %s)", sp, cfg.Site, cfg.Instance)
	}
	if got := cfg.Points(cfg.Devices[0]).Points[0].Deadband; got != 0.5 {
		t.Errorf("deadband %v, want 0.5", got)
	}
}
