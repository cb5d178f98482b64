package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
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
		// A config that cannot be read cannot run: the config is at fault (exit 2), not the run.
		return nil, invalid([]error{fmt.Errorf("read config: %w", err)})
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
	// Sparkplug ids default to the site (the group) and the instance (the edge node).
	if cfg.Sparkplug.GroupID == "" && !set["sparkplug.group_id"] {
		cfg.Sparkplug.GroupID = cfg.Site
	}
	if cfg.Sparkplug.EdgeNodeID == "" && !set["sparkplug.edge_node_id"] {
		cfg.Sparkplug.EdgeNodeID = cfg.Instance
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
