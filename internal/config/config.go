// Package config owns the site configuration: its YAML shape (docs/design.md's contract), defaults,
// strict decoding, device profiles (built-in and from profiles_dir) and validation that reports
// every problem at once with its file, field path and bad value. It opens files; it starts nothing.
package config

import (
	"fmt"
	"time"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/collectors"
)

// Config is one daemon's site config.
type Config struct {
	Site        string            `yaml:"site"`
	Instance    string            `yaml:"instance"`
	StateDir    string            `yaml:"state_dir"`
	Connections []Connection      `yaml:"connections"`
	Devices     []Device          `yaml:"devices"`
	Zones       []Zone            `yaml:"zones"`
	Domains     []Domain          `yaml:"domains"`
	ProfilesDir string            `yaml:"profiles_dir"`
	Profiles    []Profile         `yaml:"profiles"` // inline profiles
	Detection   alarms.Thresholds `yaml:"detection"`
	Rules       []Rule            `yaml:"rules"`
	MQTT        MQTT              `yaml:"mqtt"`
	Sparkplug   Sparkplug         `yaml:"sparkplug"`
	Influx      Influx            `yaml:"influx"`
	Cutover     Cutover           `yaml:"cutover"`
	Commands    Commands          `yaml:"commands"`
	HA          HA                `yaml:"ha"`
	Metrics     Metrics           `yaml:"metrics"`
	// ShutdownTimeout bounds a graceful shutdown: the outbox and the Influx queue are flushed
	// and offline published within it; a second signal cuts it short.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`

	// File is where the config was read from ("" when built in code); relative paths resolve
	// against its directory.
	File string `yaml:"-"`
	// resolved maps profile name to its expanded points, filled by Load.
	resolved map[string]*collectors.Resolved
}

// Connection is one Modbus bus or gateway link.
type Connection struct {
	Name                   string        `yaml:"name"`
	URL                    string        `yaml:"url"`
	Timeout                time.Duration `yaml:"timeout"`
	MaxRegistersPerRequest int           `yaml:"max_registers_per_request"`
	MaxGap                 int           `yaml:"max_gap"`
	// MaxInFlight is how many requests may be outstanding to a Modbus TCP gateway at once: one
	// TCP connection each, its devices shared among them. 1 (the default) is one connection.
	MaxInFlight int `yaml:"max_in_flight"`
}

// Device is one Modbus unit: a rack's BMS, a UPS, a gas detector, a fire panel.
type Device struct {
	Name       string        `yaml:"name"`
	Connection string        `yaml:"connection"`
	UnitID     int           `yaml:"unit_id"`
	Profile    string        `yaml:"profile"`
	Zone       string        `yaml:"zone"`
	Interval   time.Duration `yaml:"interval"`
	// Battery, for a rack, is what its cells are: the self_discharge detector needs it to turn
	// a cell's fall against its peers into a leak current. Without it that detector does not
	// run on the device.
	Battery *Battery `yaml:"battery"`
}

// Battery is a rack's cells: a chemistry preset (configs/chemistry) and their rated capacity.
type Battery struct {
	Chemistry  string  `yaml:"chemistry"`
	CapacityAh float64 `yaml:"capacity_ah"`
	// OCVSlopeMVPerPct overrides the preset's ocv_slope_mv_per_pct_near_full: mV of open-circuit
	// voltage per % of charge where the string floats, from the cell maker's curve.
	OCVSlopeMVPerPct float64 `yaml:"ocv_slope_mv_per_pct"`
}

// Zone is a room whose power can be cut as one.
type Zone struct {
	Name     string   `yaml:"name"`
	CutScope []string `yaml:"cut_scope"`
}

// Domain is a power domain and what the control plane calls the things it feeds.
type Domain struct {
	Name    string   `yaml:"name"`
	Targets []string `yaml:"targets"`
}

// Rule is a generic rule on any point, role or not: a value above or below a limit, or a rate of
// rise per minute (least squares over detection.rise_window), held for For, raising Stage.
type Rule struct {
	Name       string        `yaml:"name"`
	Point      string        `yaml:"point"` // device.point
	Above      *float64      `yaml:"above"`
	Below      *float64      `yaml:"below"`
	RatePerMin *float64      `yaml:"rate_per_min"`
	For        time.Duration `yaml:"for"`
	Stage      int           `yaml:"stage"`
}

// MQTT is the broker link.
type MQTT struct {
	Brokers     []string `yaml:"brokers"` // several: failover, in order
	TopicPrefix string   `yaml:"topic_prefix"`
	ClientID    string   `yaml:"client_id"`
	Username    string   `yaml:"username"`
	// PasswordFile holds the password (FIREBREAK_MQTT_PASSWORD otherwise); never the config.
	PasswordFile string        `yaml:"password_file"`
	TLS          TLS           `yaml:"tls"`
	Embedded     EmbeddedMQTT  `yaml:"embedded"`
	OutboxMax    int           `yaml:"outbox_max"` // messages kept for the broker while it is away
	HomeAssist   HomeAssistant `yaml:"home_assistant"`
}

// TLS names PEM files: the CA that signed the broker's certificate and an optional client pair.
type TLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// HomeAssistant turns on MQTT discovery under Prefix.
type HomeAssistant struct {
	Enabled bool   `yaml:"enabled"`
	Prefix  string `yaml:"prefix"`
}

// Sparkplug turns on a Sparkplug B edge node beside the plain JSON topics, on the same brokers
// (docs/sparkplug.md): spBv1.0/<GroupID>/…/<EdgeNodeID>[/<device>].
type Sparkplug struct {
	Enabled    bool   `yaml:"enabled"`
	GroupID    string `yaml:"group_id"`
	EdgeNodeID string `yaml:"edge_node_id"` // default: instance
	// PrimaryHostID, when set, is the host application whose STATE gates the session: the node
	// births only while that host is online, and stores DDATA while it is not.
	PrimaryHostID string `yaml:"primary_host_id"`
}

// Commands configures signed operator commands on P/cmd/<instance>/….
type Commands struct {
	// MaxAge is how far a command's ts may be from now (either way) before it is refused as stale.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxShelve is the longest an operator may shelve an alarm for: a shelved alarm is one an
	// operator no longer sees, and a shelve of years is a forgotten one.
	MaxShelve time.Duration `yaml:"max_shelve"`
	Operators []Operator    `yaml:"operators"`
}

// Operator is someone allowed to command this daemon, and the Ed25519 public key they sign with.
type Operator struct {
	Name      string `yaml:"name"`
	PublicKey string `yaml:"public_key"` // base64 of the 32-byte key
}

// EmbeddedMQTT runs an in-process broker when Listen is set.
type EmbeddedMQTT struct {
	Listen string `yaml:"listen"`
}

// Influx is the telemetry sink; an empty URL disables it.
type Influx struct {
	URL    string `yaml:"url"`
	Bucket string `yaml:"bucket"` // 2.x: the bucket; 1.8: "database/retention_policy"
	Org    string `yaml:"org"`    // 2.x only
	// TokenFile holds the token (2.x) or "user:password" (1.8 with auth); FIREBREAK_INFLUX_TOKEN
	// otherwise. Never the config itself.
	TokenFile string `yaml:"token_file"`
}

// Cutover configures drain signalling.
type Cutover struct {
	Mode           string        `yaml:"mode"` // live | dry-run
	SigningKeyFile string        `yaml:"signing_key_file"`
	Consumers      []string      `yaml:"consumers"`
	AckTimeout     time.Duration `yaml:"ack_timeout"`
	Heartbeat      time.Duration `yaml:"heartbeat"`
	Validity       time.Duration `yaml:"validity"`
	// FireToPowerCut is the budget from stage 4 to the brigade cutting power (Pangyo: ~1 h).
	FireToPowerCut time.Duration `yaml:"fire_to_power_cut"`
	// CancelHold is how long a zone must have been at stage 0 before an operator may cancel.
	CancelHold time.Duration `yaml:"cancel_hold"`
	// EpisodeWindow makes episode ids deterministic: an episode opened at t is
	// <site>.<zone>.<t floored to the window, Unix seconds>, so two instances watching one room
	// name it alike (see HA).
	EpisodeWindow time.Duration `yaml:"episode_window"`
}

// HA pairs this instance with another watching the same room.
type HA struct {
	// Peer is the other instance's name; empty for a single instance.
	Peer string `yaml:"peer"`
	// PeerPublicKey (base64 Ed25519) verifies the peer's drain signals before this instance
	// adopts the episode id the peer opened.
	PeerPublicKey string `yaml:"peer_public_key"`
	// StaleAfter: a peer whose status has not been heard for this long (or says offline) is
	// lost, and the alarm ha.<peer>.redundancy_lost is raised.
	StaleAfter time.Duration `yaml:"stale_after"`
	// Heartbeat is how often each instance re-publishes its retained status.
	Heartbeat time.Duration `yaml:"heartbeat"`
}

// Metrics is the HTTP endpoint for Prometheus and health checks.
type Metrics struct {
	// Listen is host:port for /metrics, /healthz and /readyz; "off" disables it.
	Listen string `yaml:"listen"`
}

// Default is the config before the file is read.
func Default() Config {
	return Config{
		StateDir:  "/var/lib/firebreak",
		Detection: alarms.DefaultThresholds(),
		MQTT: MQTT{
			Brokers:     []string{"tcp://127.0.0.1:1883"},
			TopicPrefix: "firebreak",
			OutboxMax:   100000,
			HomeAssist:  HomeAssistant{Prefix: "homeassistant"},
		},
		Commands: Commands{MaxAge: time.Minute, MaxShelve: 72 * time.Hour},
		Influx:   Influx{Bucket: "firebreak/autogen"},
		Cutover: Cutover{
			Mode:           "live",
			Consumers:      []string{"control-plane"},
			AckTimeout:     15 * time.Second,
			Heartbeat:      10 * time.Second,
			Validity:       60 * time.Second,
			FireToPowerCut: time.Hour,
			CancelHold:     10 * time.Minute,
			EpisodeWindow:  10 * time.Minute,
		},
		HA:              HA{StaleAfter: 30 * time.Second, Heartbeat: 10 * time.Second},
		Metrics:         Metrics{Listen: "127.0.0.1:9464"},
		ShutdownTimeout: 10 * time.Second,
	}
}

// connectionDefaults fills what a connection entry leaves out; set says whether the file gave a
// key (then even a zero stands, and validation refuses it).
func connectionDefaults(c *Connection, set func(key string) bool) {
	if !set("timeout") {
		c.Timeout = time.Second
	}
	if !set("max_registers_per_request") {
		c.MaxRegistersPerRequest = 125
	}
	if !set("max_in_flight") {
		c.MaxInFlight = 1
	}
}

func deviceDefaults(d *Device, set func(key string) bool) {
	if !set("interval") {
		d.Interval = time.Second
	}
}

// Connection returns the named connection.
func (c *Config) Connection(name string) (Connection, bool) {
	for _, x := range c.Connections {
		if x.Name == name {
			return x, true
		}
	}
	return Connection{}, false
}

// Zone returns the named zone.
func (c *Config) Zone(name string) (Zone, bool) {
	for _, z := range c.Zones {
		if z.Name == name {
			return z, true
		}
	}
	return Zone{}, false
}

// Targets returns every target of the given domains, in order, without repeats.
func (c *Config) Targets(domains []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, dn := range domains {
		for _, d := range c.Domains {
			if d.Name != dn {
				continue
			}
			for _, t := range d.Targets {
				if !seen[t] {
					seen[t] = true
					out = append(out, t)
				}
			}
		}
	}
	return out
}

// Points returns the expanded points of a device's profile (nil if the profile is unknown).
func (c *Config) Points(d Device) *collectors.Resolved { return c.resolved[d.Profile] }

// RegisterMaps is every configured device's points, by device name (none for a device whose
// profile is unknown).
func (c *Config) RegisterMaps() map[string][]collectors.Point {
	out := map[string][]collectors.Point{}
	for _, d := range c.Devices {
		if r := c.Points(d); r != nil {
			out[d.Name] = r.Points
		} else {
			out[d.Name] = nil
		}
	}
	return out
}

// Collector plans one configured device for polling: its register map and its connection's
// request limits.
func (c *Config) Collector(d Device) (*collectors.Device, error) {
	prof := c.Points(d)
	if prof == nil {
		return nil, fmt.Errorf("device %s: unknown profile %q", d.Name, d.Profile)
	}
	conn, ok := c.Connection(d.Connection)
	if !ok {
		return nil, fmt.Errorf("device %s: unknown connection %q", d.Name, d.Connection)
	}
	return collectors.NewDevice(collectors.DeviceSpec{Name: d.Name, UnitID: uint8(d.UnitID), Interval: d.Interval, Points: prof,
		Limits: collectors.Limits{MaxRegisters: conn.MaxRegistersPerRequest, MaxGap: conn.MaxGap}})
}
