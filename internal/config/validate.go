package config

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/firebreak-dc/firebreak/collectors"
)

// validate checks the whole config, one section at a time, and collects every problem: the
// operator fixes them in one pass. Sections that refer to others (devices to connections and
// zones, zones to domains) get the names those define.
func (cfg *Config) validate(c *collector) {
	cfg.validateIdentity(c)
	conns := cfg.validateConnections(c)
	zones := cfg.validateZones(c)
	cfg.validateDevices(c, conns, zones)
	cfg.validateRules(c)
	for _, pr := range cfg.Detection.Problems() {
		c.add("detection."+pr.Field, pr.Msg, pr.Value)
	}
	cfg.validateMQTT(c)
	cfg.validateSparkplug(c)
	cfg.validateCommands(c)
	cfg.validateInflux(c)
	cfg.validateCutover(c)
	cfg.validateHA(c)
	cfg.validateProcess(c)
}

// validateIdentity: site, instance, state_dir.
func (cfg *Config) validateIdentity(c *collector) {
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
}

// validateConnections checks connections and returns their names.
func (cfg *Config) validateConnections(c *collector) map[string]bool {
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
	return conns
}

// validateZones checks domains and zones and returns the zones' names.
func (cfg *Config) validateZones(c *collector) map[string]bool {
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
	return zones
}

// validateDevices checks devices against the connections and zones.
func (cfg *Config) validateDevices(c *collector, conns, zones map[string]bool) {
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
			hint := ""
			if m := didYouMean(d.Profile, cfg.ProfileNames()); m != "" {
				hint = "did you mean " + m + "? "
			}
			c.addf(p+".profile", d.Profile, "is not a known profile (%sknown: %s)", hint, strings.Join(cfg.ProfileNames(), ", "))
		}
		if !zones[d.Zone] {
			c.add(p+".zone", "is not a zone listed under zones", d.Zone)
		}
		if d.Interval < 100*time.Millisecond || d.Interval > time.Hour {
			c.add(p+".interval", "must be 100ms..1h", d.Interval.String())
		}
		if b := d.Battery; b != nil {
			validateBattery(c, p+".battery", b)
		}
	}
	if len(cfg.Devices) == 0 {
		c.add("devices", "must list at least one device", nil)
	}
}

// validateBattery checks a rack's battery and fills in its preset's OCV slope.
func validateBattery(c *collector, p string, b *Battery) {
	preset, err := ChemistrySlope(b.Chemistry)
	switch {
	case b.Chemistry == "" && b.OCVSlopeMVPerPct == 0:
		c.addf(p+".chemistry", b.Chemistry, "must name a preset (%s) or ocv_slope_mv_per_pct be set", strings.Join(ChemistryNames(), ", "))
	case b.Chemistry != "" && err != nil:
		c.add(p+".chemistry", err.Error(), b.Chemistry)
	}
	if !(b.CapacityAh > 0 && b.CapacityAh <= 100000) {
		c.add(p+".capacity_ah", "must be the cells' rated capacity, > 0 and at most 100000 Ah", b.CapacityAh)
	}
	switch {
	case b.OCVSlopeMVPerPct == 0:
		b.OCVSlopeMVPerPct = preset
	case !(b.OCVSlopeMVPerPct > 0 && b.OCVSlopeMVPerPct <= 1000):
		c.add(p+".ocv_slope_mv_per_pct", "must be > 0 and at most 1000 mV per %", b.OCVSlopeMVPerPct)
	}
}

// validateRules checks a site's own rules against the devices' points.
func (cfg *Config) validateRules(c *collector) {
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
}

// validateMQTT checks brokers, topics, credentials' files and Home Assistant discovery.
func (cfg *Config) validateMQTT(c *collector) {
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

	if cfg.MQTT.OutboxMax < 100 {
		c.add("mqtt.outbox_max", "must be at least 100 messages", cfg.MQTT.OutboxMax)
	}
	if (cfg.MQTT.TLS.CertFile == "") != (cfg.MQTT.TLS.KeyFile == "") {
		c.add("mqtt.tls", "cert_file and key_file go together", nil)
	}
	if msg := validTopicPrefix(cfg.MQTT.HomeAssist.Prefix); cfg.MQTT.HomeAssist.Enabled && msg != "" {
		c.add("mqtt.home_assistant.prefix", msg, cfg.MQTT.HomeAssist.Prefix)
	}
}

// validateSparkplug checks the Sparkplug ids: each is one topic level (Sparkplug 3.0: valid
// UTF-8 without +, / or #), printable, and the group is not STATE (spBv1.0/STATE/<host> is the
// hosts' own topic).
func (cfg *Config) validateSparkplug(c *collector) {
	sp := cfg.Sparkplug
	if !sp.Enabled {
		return
	}
	if msg := sparkplugToken(sp.GroupID); msg != "" {
		c.add("sparkplug.group_id", msg, sp.GroupID)
	} else if sp.GroupID == "STATE" {
		c.add("sparkplug.group_id", "must not be STATE: spBv1.0/STATE/<host id> is the host applications' topic", sp.GroupID)
	}
	if msg := sparkplugToken(sp.EdgeNodeID); msg != "" {
		c.add("sparkplug.edge_node_id", msg, sp.EdgeNodeID)
	}
	if msg := sparkplugToken(sp.PrimaryHostID); sp.PrimaryHostID != "" && msg != "" {
		c.add("sparkplug.primary_host_id", msg, sp.PrimaryHostID)
	}
}

// sparkplugToken says what keeps s from being a Sparkplug id ("" when nothing does).
func sparkplugToken(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > MaxSparkplugID:
		return fmt.Sprintf("must be at most %d bytes", MaxSparkplugID)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		return "must be printable UTF-8"
	case strings.ContainsAny(s, "+/#"):
		return "must not hold +, / or # (it is one level of a Sparkplug topic)"
	}
	return ""
}

// MaxSparkplugID bounds a Sparkplug id: the specification sets none, but it is in every topic
// and every host's tag path.
const MaxSparkplugID = 128

// validateCommands checks operator commands and their keys.
func (cfg *Config) validateCommands(c *collector) {
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
}

// validateInflux checks the telemetry sink.
func (cfg *Config) validateInflux(c *collector) {
	cfg.fileReadable(c, "influx.token_file", cfg.Influx.TokenFile)
	if cfg.Influx.URL != "" {
		if err := checkURL(cfg.Influx.URL, []string{"http", "https"}, true); err != nil {
			c.add("influx.url", err.Error()+" (or empty to disable)", cfg.Influx.URL)
		}
		// A 1.8 server names its database and retention policy in the bucket ("db/rp") and has
		// no organisation; a 2.x server refuses every write without one.
		switch {
		case cfg.Influx.Bucket == "":
			c.add("influx.bucket", "required with influx.url: the 2.x bucket, or database/retention_policy for 1.8", "")
		case cfg.Influx.Org == "" && !strings.Contains(cfg.Influx.Bucket, "/"):
			c.add("influx.org", "required for InfluxDB 2.x (bucket "+cfg.Influx.Bucket+"); for 1.8 write the bucket as database/retention_policy", "")
		}
	}
}

// validateCutover checks the drain protocol.
func (cfg *Config) validateCutover(c *collector) {
	cu := cfg.Cutover
	cfg.fileReadable(c, "cutover.signing_key_file", cu.SigningKeyFile)
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
}

// validateHA checks the HA pair.
func (cfg *Config) validateHA(c *collector) {
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
}

// validateProcess checks the metrics endpoint and the shutdown bound.
func (cfg *Config) validateProcess(c *collector) {
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
