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
			`mqtt.home_assistant.prefix: must be a topic without wildcards, got "ha/#"`,
			`commands.max_age: must be a positive duration, got "0s"`,
			`commands.operators[0].public_key: must be the base64 of a 32-byte Ed25519 public key, got "not base64!"`,
			`commands.operators[1].name: is used by another operator, got "alice"`,
			`commands.operators[1].public_key: must be the base64`,
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

func TestParseEndpoint(t *testing.T) {
	t.Parallel()
	good := map[string]Endpoint{
		"tcp://10.0.0.5:502":                    {Scheme: "tcp", Addr: "10.0.0.5:502"},
		"rtuovertcp://gw:4001":                  {Scheme: "rtuovertcp", Addr: "gw:4001"},
		"rtu:///dev/ttyUSB0?baud=9600&parity=N": {Scheme: "rtu", Addr: "/dev/ttyUSB0", Baud: 9600, Parity: "N"},
	}
	for raw, want := range good {
		got, err := ParseEndpoint(raw)
		if err != nil || got != want {
			t.Errorf("%s: got %+v, %v", raw, got, err)
		}
	}
	for _, bad := range []string{"udp://x:1", "tcp://x", "tcp://:502", "rtu://", "rtu:///dev/x?baud=7", "tcp://h:99999"} {
		if _, err := ParseEndpoint(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
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
