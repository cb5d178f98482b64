package config

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/firebreak-dc/firebreak/collectors"
	"github.com/firebreak-dc/firebreak/configs"
	"github.com/firebreak-dc/firebreak/internal/relpath"
)

// Load reads, decodes strictly, fills defaults, loads profiles and validates the config at path.
// Every problem found is returned at once; errors.Is(err, ErrInvalid) tells a bad config from a
// missing file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Parse is Load on bytes; file names the source in errors and anchors relative paths.
func Parse(data []byte, file string) (*Config, error) {
	cfg := Default()
	cfg.File = file
	c := &collector{file: file}
	if len(data) > MaxConfigBytes {
		c.addf("(document)", nil, "is %d bytes; a site config may be at most %d", len(data), MaxConfigBytes)
		return nil, invalid(c.errs)
	}
	set := decodeStrict(data, &cfg, "", c)
	for i := range cfg.Connections {
		p := fmt.Sprintf("connections[%d].", i)
		connectionDefaults(&cfg.Connections[i], func(key string) bool { return set[p+key] })
	}
	for i := range cfg.Devices {
		p := fmt.Sprintf("devices[%d].", i)
		deviceDefaults(&cfg.Devices[i], func(key string) bool { return set[p+key] })
	}
	cfg.loadProfiles(c)
	cfg.validate(c)
	if err := invalid(c.errs); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// decodeStrict decodes YAML into out; unknown keys and wrong types become field errors, and the
// rest of the document is still decoded so that validation can report its problems too. It
// returns the paths of the keys the document sets (see checkShape); path prefixes them.
func decodeStrict(data []byte, out any, path string, c *collector) map[string]bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(out)
	if errors.Is(err, io.EOF) {
		c.add("(document)", "is empty", nil)
		return nil
	}
	var te *yaml.TypeError
	if err != nil && !errors.As(err, &te) {
		c.add("(document)", "is not valid YAML: "+err.Error(), nil)
		return nil
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return nil
	}
	set, reported := checkShape(&root, reflect.TypeOf(out), path, c)
	if te != nil {
		for _, m := range te.Errors {
			loc := yamlLocation(m)
			var line int
			if _, err := fmt.Sscanf(loc, "line %d", &line); err == nil && reported[line] && strings.Contains(m, "cannot unmarshal") {
				continue // said above, with its field path
			}
			c.add(loc, yamlMessage(m), nil)
		}
	}
	return set
}

var yamlLineRe = regexp.MustCompile(`^(line \d+): (.*)$`)

func yamlLocation(m string) string {
	if s := yamlLineRe.FindStringSubmatch(m); s != nil {
		return s[1]
	}
	return "(document)"
}

func yamlMessage(m string) string {
	if s := yamlLineRe.FindStringSubmatch(m); s != nil {
		m = s[2]
	}
	// "field foo not found in type config.Device" reads better as an unknown key.
	if strings.HasPrefix(m, "field ") && strings.Contains(m, " not found in type ") {
		f := strings.TrimPrefix(m, "field ")
		f = f[:strings.Index(f, " not found")]
		return fmt.Sprintf("unknown key %q", f)
	}
	return m
}

// loadProfiles resolves the built-in profiles, then profiles_dir, then inline profiles; a later
// one with the same name replaces an earlier one.
func (cfg *Config) loadProfiles(c *collector) {
	cfg.resolved = map[string]*collectors.Resolved{}
	builtin, _ := fs.Glob(configs.FS, "profiles/*.yaml")
	for _, name := range builtin {
		data, _ := configs.FS.ReadFile(name)
		cfg.addProfileFile(data, "(built-in) configs/"+name, c)
	}
	if cfg.ProfilesDir != "" {
		dir := cfg.Resolve(cfg.ProfilesDir)
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err == nil && len(files) == 0 {
			if _, statErr := os.Stat(dir); statErr != nil {
				c.add("profiles_dir", "cannot be read: "+statErr.Error(), cfg.ProfilesDir)
			}
		}
		sort.Strings(files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				c.add("profiles_dir", "cannot read "+f+": "+err.Error(), cfg.ProfilesDir)
				continue
			}
			cfg.addProfileFile(data, f, c)
		}
	}
	for i, p := range cfg.Profiles {
		cfg.resolved[p.Name] = resolve(p, fmt.Sprintf("profiles[%d]", i), c)
	}
}

func (cfg *Config) addProfileFile(data []byte, file string, c *collector) {
	var p Profile
	pc := &collector{file: file}
	if len(data) > MaxConfigBytes {
		pc.addf("(document)", nil, "is %d bytes; a profile may be at most %d", len(data), MaxConfigBytes)
		c.errs = append(c.errs, pc.errs...)
		return
	}
	decodeStrict(data, &p, "profile", pc)
	r := resolve(p, "profile", pc)
	c.errs = append(c.errs, pc.errs...)
	if p.Name != "" {
		cfg.resolved[p.Name] = r
	}
}

// devicePoints is the set of point names of a configured device (nil if there is no such device
// or its profile is unknown).
func (cfg *Config) devicePoints(device string) map[string]bool {
	for _, d := range cfg.Devices {
		if d.Name != device {
			continue
		}
		res := cfg.resolved[d.Profile]
		if res == nil {
			return nil
		}
		out := map[string]bool{}
		for _, p := range res.Points {
			out[p.Name] = true
		}
		return out
	}
	return nil
}

// ProfileNames lists the profiles the config can use, sorted.
func (cfg *Config) ProfileNames() []string {
	var out []string
	for n := range cfg.resolved {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

var (
	siteRe     = regexp.MustCompile(`^[a-z0-9-]+$`)
	topicBadRe = regexp.MustCompile(`[#+\x00]`)
)

// uniqueName checks that name is a valid name not seen before among what (connections, zones, …).
func (c *collector) uniqueName(path, what, name string, seen map[string]bool) {
	switch {
	case !validName(name):
		c.add(path, nameRule, name)
	case seen[name]:
		c.add(path, "is used by another "+what, name)
	}
	seen[name] = true
}

// The limits of a config (docs/operations.md, "Limits"). Names become MQTT topic levels, Influx
// tags and log fields: 64 characters keep every topic far below MQTT's 65,535 bytes and every
// line readable. A domain's targets all go into each drain signal, which a consumer's hook gets
// whole.
const (
	MaxConfigBytes   = 4 << 20
	MaxNameLen       = 64
	MaxTopicPrefix   = 128
	MaxTargets       = 256 // per domain
	MaxTargetLen     = 128
	MaxSignalTargets = 1024 // all the domains one zone's cut reaches
)

func siteName(s string) bool { return len(s) <= MaxNameLen && siteRe.MatchString(s) }

// validTopicPrefix says what is wrong with a topic prefix ("" for nothing).
func validTopicPrefix(p string) string {
	switch {
	case p == "":
		return "must not be empty"
	case len(p) > MaxTopicPrefix:
		return fmt.Sprintf("must be at most %d bytes", MaxTopicPrefix)
	case strings.HasPrefix(p, "$"):
		return "must not start with $ (topics under $ are the broker's own, like $SYS)"
	case !utf8.ValidString(p) || strings.ContainsFunc(p, unicode.IsControl):
		return "must be printable UTF-8"
	case topicBadRe.MatchString(p):
		return "must not hold the wildcards + or #"
	case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//"):
		return "must not start or end with / or hold an empty level"
	}
	return ""
}

// checkURL says what is wrong with a server URL given schemes (nil for nothing). Credentials
// never go in a URL: it is logged and shown by check; they come from files or the environment.
func checkURL(raw string, schemes []string, pathOK bool) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("is not a URL: %v", err)
	case !slices.Contains(schemes, u.Scheme):
		return fmt.Errorf("must be a %s URL", strings.Join(schemes, "://, ")+"://")
	case u.User != nil:
		return errors.New("must not hold a user or password (they would be logged): use the config's username and password_file or token_file")
	case u.Hostname() == "":
		return errors.New("must name a host")
	case !pathOK && u.Path != "" && u.Path != "/":
		return errors.New("must not have a path")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("must not have a query or fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port must be 1..65535, got %q", p)
		}
	}
	return nil
}

// fileReadable reports a file the daemon will need at start and cannot read.
func (cfg *Config) fileReadable(c *collector, path, file string) {
	if file == "" {
		return
	}
	if f, err := os.Open(cfg.Resolve(file)); err != nil {
		c.add(path, "cannot be read: "+err.Error(), file)
	} else {
		f.Close()
	}
}

// Resolve makes a config-relative path absolute ("" stays "").
func (cfg *Config) Resolve(path string) string { return relpath.Resolve(cfg.File, path) }

func (cfg *Config) validate(c *collector) {
	if !siteName(cfg.Site) {
		c.addf("site", cfg.Site, "must match [a-z0-9-]+, at most %d characters", MaxNameLen)
	}
	if !siteName(cfg.Instance) {
		c.addf("instance", cfg.Instance, "must match [a-z0-9-]+, at most %d characters", MaxNameLen)
	} else if cfg.Instance == "result" {
		c.add("instance", `must not be "result" (P/cmd/result/<instance> carries command results)`, cfg.Instance)
	}
	if cfg.StateDir == "" {
		c.add("state_dir", "must be set", nil)
	}

	conns := map[string]bool{}
	serial := map[string]string{} // port → connection: one owner per serial line
	for i, cn := range cfg.Connections {
		p := fmt.Sprintf("connections[%d]", i)
		c.uniqueName(p+".name", "connection", cn.Name, conns)
		ep, err := collectors.ParseEndpoint(cn.URL)
		if err != nil {
			c.add(p+".url", err.Error(), cn.URL)
		} else if ep.Scheme == "rtu" {
			if other, ok := serial[ep.Addr]; ok {
				c.addf(p+".url", cn.URL, "serial port %s is already connection %s: a bus has one master; list all its devices under one connection", ep.Addr, other)
			}
			serial[ep.Addr] = cn.Name
		}
		if cn.Timeout <= 0 || cn.Timeout > time.Minute {
			c.add(p+".timeout", "must be > 0 and <= 1m", cn.Timeout.String())
		}
		if cn.MaxRegistersPerRequest < 1 || cn.MaxRegistersPerRequest > 125 {
			c.add(p+".max_registers_per_request", "must be 1..125", cn.MaxRegistersPerRequest)
		}
		if cn.MaxGap < 0 || cn.MaxGap > 124 {
			c.add(p+".max_gap", "must be 0..124", cn.MaxGap)
		}
		switch {
		case cn.MaxInFlight < 1 || cn.MaxInFlight > 16:
			c.add(p+".max_in_flight", "must be 1..16", cn.MaxInFlight)
		case cn.MaxInFlight > 1 && err == nil && ep.Scheme != "tcp":
			c.addf(p+".max_in_flight", cn.MaxInFlight, "must be 1 on %s: a serial bus carries one request at a time (only a Modbus TCP gateway takes several connections)", ep.Scheme)
		}
	}
	if len(cfg.Connections) == 0 {
		c.add("connections", "must list at least one connection", nil)
	}

	zones := map[string]bool{}
	domains := map[string]bool{}
	for i, d := range cfg.Domains {
		p := fmt.Sprintf("domains[%d]", i)
		c.uniqueName(p+".name", "domain", d.Name, domains)
		if len(d.Targets) == 0 {
			c.add(p+".targets", "must name at least one target the control plane knows", nil)
		}
		if len(d.Targets) > MaxTargets {
			c.addf(p+".targets", len(d.Targets), "must list at most %d targets (each drain signal carries them all)", MaxTargets)
		}
		for j, tg := range d.Targets {
			if tg == "" || len(tg) > MaxTargetLen || !utf8.ValidString(tg) || strings.ContainsFunc(tg, unicode.IsControl) {
				c.addf(fmt.Sprintf("%s.targets[%d]", p, j), tg, "must be printable text of 1..%d bytes", MaxTargetLen)
			}
		}
	}
	for i, z := range cfg.Zones {
		p := fmt.Sprintf("zones[%d]", i)
		c.uniqueName(p+".name", "zone", z.Name, zones)
		if len(z.CutScope) == 0 {
			c.add(p+".cut_scope", "must name the power domains that go dark if this zone is cut", nil)
		}
		for j, dn := range z.CutScope {
			if !domains[dn] {
				c.add(fmt.Sprintf("%s.cut_scope[%d]", p, j), "is not a domain listed under domains", dn)
			}
		}
		if n := len(cfg.Targets(z.CutScope)); n > MaxSignalTargets {
			c.addf(p+".cut_scope", n, "reaches %d targets; a drain signal carries at most %d", n, MaxSignalTargets)
		}
	}
	if len(cfg.Zones) == 0 {
		c.add("zones", "must list at least one zone", nil)
	}

	devs := map[string]bool{}
	type busUnit struct {
		conn string
		unit int
	}
	units := map[busUnit]string{}
	for i, d := range cfg.Devices {
		p := fmt.Sprintf("devices[%d]", i)
		c.uniqueName(p+".name", "device", d.Name, devs)
		if !conns[d.Connection] {
			c.add(p+".connection", "is not a connection listed under connections", d.Connection)
		}
		if d.UnitID < 1 || d.UnitID > 247 {
			c.add(p+".unit_id", "must be 1..247", d.UnitID)
		} else if other, dup := units[busUnit{d.Connection, d.UnitID}]; dup {
			c.addf(p+".unit_id", d.UnitID, "is already used on connection %s by device %s", d.Connection, other)
		} else {
			units[busUnit{d.Connection, d.UnitID}] = d.Name
		}
		if _, ok := cfg.resolved[d.Profile]; !ok {
			c.addf(p+".profile", d.Profile, "is not a known profile (known: %s)", strings.Join(cfg.ProfileNames(), ", "))
		}
		if !zones[d.Zone] {
			c.add(p+".zone", "is not a zone listed under zones", d.Zone)
		}
		if d.Interval < 100*time.Millisecond || d.Interval > time.Hour {
			c.add(p+".interval", "must be 100ms..1h", d.Interval.String())
		}
	}
	if len(cfg.Devices) == 0 {
		c.add("devices", "must list at least one device", nil)
	}

	rules := map[string]bool{}
	for i, r := range cfg.Rules {
		p := fmt.Sprintf("rules[%d]", i)
		c.uniqueName(p+".name", "rule", r.Name, rules)
		dev, pt, ok := strings.Cut(r.Point, ".")
		if !ok {
			c.add(p+".point", "must be device.point", r.Point)
		} else if res := cfg.devicePoints(dev); res == nil {
			c.addf(p+".point", r.Point, "names device %q, which is not under devices", dev)
		} else if !res[pt] {
			c.addf(p+".point", r.Point, "device %s has no point %q in its profile", dev, pt)
		}
		n := 0
		for _, set := range []bool{r.Above != nil, r.Below != nil, r.RatePerMin != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			c.add(p, "must set exactly one of above, below, rate_per_min", nil)
		}
		if r.Stage < 1 || r.Stage > 4 {
			c.add(p+".stage", "must be 1..4", r.Stage)
		}
		if r.For < 0 {
			c.add(p+".for", "must not be negative", r.For.String())
		}
	}

	for _, pr := range cfg.Detection.Problems() {
		c.add("detection."+pr.Field, pr.Msg, pr.Value)
	}

	if len(cfg.MQTT.Brokers) == 0 && cfg.MQTT.Embedded.Listen == "" {
		c.add("mqtt.brokers", "must list a broker, or set mqtt.embedded.listen", nil)
	}
	brokers := map[string]bool{}
	for i, b := range cfg.MQTT.Brokers {
		p := fmt.Sprintf("mqtt.brokers[%d]", i)
		if err := checkURL(b, []string{"tcp", "ssl", "tls", "mqtt", "mqtts"}, false); err != nil {
			c.add(p, err.Error(), b)
		} else if brokers[b] {
			c.add(p, "is listed twice", b)
		}
		brokers[b] = true
	}
	if msg := validTopicPrefix(cfg.MQTT.TopicPrefix); msg != "" {
		c.add("mqtt.topic_prefix", msg, cfg.MQTT.TopicPrefix)
	}
	if len(cfg.MQTT.ClientID) > 128 {
		c.add("mqtt.client_id", "must be at most 128 bytes", cfg.MQTT.ClientID)
	}
	cfg.fileReadable(c, "mqtt.password_file", cfg.MQTT.PasswordFile)
	cfg.fileReadable(c, "mqtt.tls.ca_file", cfg.MQTT.TLS.CAFile)
	cfg.fileReadable(c, "mqtt.tls.cert_file", cfg.MQTT.TLS.CertFile)
	cfg.fileReadable(c, "mqtt.tls.key_file", cfg.MQTT.TLS.KeyFile)
	cfg.fileReadable(c, "influx.token_file", cfg.Influx.TokenFile)

	if cfg.MQTT.OutboxMax < 100 {
		c.add("mqtt.outbox_max", "must be at least 100 messages", cfg.MQTT.OutboxMax)
	}
	if (cfg.MQTT.TLS.CertFile == "") != (cfg.MQTT.TLS.KeyFile == "") {
		c.add("mqtt.tls", "cert_file and key_file go together", nil)
	}
	if msg := validTopicPrefix(cfg.MQTT.HomeAssist.Prefix); cfg.MQTT.HomeAssist.Enabled && msg != "" {
		c.add("mqtt.home_assistant.prefix", msg, cfg.MQTT.HomeAssist.Prefix)
	}
	if cfg.Commands.MaxAge <= 0 {
		c.add("commands.max_age", "must be a positive duration", cfg.Commands.MaxAge.String())
	}
	if cfg.Commands.MaxShelve <= 0 || cfg.Commands.MaxShelve > 30*24*time.Hour {
		c.add("commands.max_shelve", "must be a positive duration of at most 720h (30 days)", cfg.Commands.MaxShelve.String())
	}
	ops := map[string]bool{}
	for i, op := range cfg.Commands.Operators {
		p := fmt.Sprintf("commands.operators[%d]", i)
		c.uniqueName(p+".name", "operator", op.Name, ops)
		if k, err := base64.StdEncoding.DecodeString(op.PublicKey); err != nil || len(k) != ed25519.PublicKeySize {
			c.add(p+".public_key", "must be the base64 of a 32-byte Ed25519 public key", op.PublicKey)
		}
	}

	if cfg.Influx.URL != "" {
		if err := checkURL(cfg.Influx.URL, []string{"http", "https"}, true); err != nil {
			c.add("influx.url", err.Error()+" (or empty to disable)", cfg.Influx.URL)
		}
	}

	cu := cfg.Cutover
	if cu.Mode != "live" && cu.Mode != "dry-run" {
		c.add("cutover.mode", "must be live or dry-run", cu.Mode)
	}
	if len(cu.Consumers) == 0 {
		c.add("cutover.consumers", "must name at least one consumer that acks drain signals", nil)
	}
	consumers := map[string]bool{}
	for i, n := range cu.Consumers {
		c.uniqueName(fmt.Sprintf("cutover.consumers[%d]", i), "consumer", n, consumers)
	}
	for _, d := range []struct {
		f string
		v time.Duration
	}{{"ack_timeout", cu.AckTimeout}, {"heartbeat", cu.Heartbeat}, {"validity", cu.Validity}, {"fire_to_power_cut", cu.FireToPowerCut}, {"cancel_hold", cu.CancelHold}, {"episode_window", cu.EpisodeWindow}} {
		if d.v <= 0 {
			c.add("cutover."+d.f, "must be a positive duration", d.v.String())
		}
	}
	if cu.Validity > 0 && cu.Heartbeat > 0 && cu.Validity <= cu.Heartbeat {
		c.addf("cutover.validity", cu.Validity.String(), "must be longer than cutover.heartbeat (%s), or a live signal expires between re-sends", cu.Heartbeat)
	}

	ha := cfg.HA
	if ha.Peer != "" {
		if !siteName(ha.Peer) || ha.Peer == cfg.Instance {
			c.add("ha.peer", "must be the other instance's name ([a-z0-9-]+, not this instance's)", ha.Peer)
		}
		if k, err := base64.StdEncoding.DecodeString(ha.PeerPublicKey); err != nil || len(k) != ed25519.PublicKeySize {
			c.add("ha.peer_public_key", "must be the base64 of the peer's 32-byte Ed25519 drain-signing public key (firebreak keygen prints it)", ha.PeerPublicKey)
		}
	} else if ha.PeerPublicKey != "" {
		c.add("ha.peer_public_key", "is set but ha.peer is not", nil)
	}
	if ha.Heartbeat <= 0 || ha.StaleAfter <= ha.Heartbeat {
		c.addf("ha.stale_after", ha.StaleAfter.String(), "must be longer than ha.heartbeat (%s), which must be positive", ha.Heartbeat)
	}
	if m := cfg.Metrics.Listen; m != "off" {
		if _, port, err := net.SplitHostPort(m); err != nil {
			c.add("metrics.listen", `must be host:port (e.g. 127.0.0.1:9464), or "off"`, m)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			c.add("metrics.listen", "port must be 0..65535 (0: any free port)", m)
		}
	}
	if cfg.ShutdownTimeout <= 0 {
		c.add("shutdown_timeout", "must be a positive duration", cfg.ShutdownTimeout.String())
	}
}
