package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// checkShape walks a YAML document beside the Go type it decodes into and reports what yaml.v3
// accepts silently although it cannot be what the author meant: a fraction for a whole number
// (unit_id: 1.5 would be read as 1), a number or a boolean for a name (site: 123), a bare number
// for a duration (interval: 5 would be 5 ns), and NaN or an infinity for any number
// (cell_temp_crit_c: .inf would make a threshold that is never reached). yaml.v3 reports the
// rest (a word for a number, unknown keys) itself.
//
// It returns the paths of the keys the document sets (connections[0].max_in_flight), so that a
// zero written in the file is not mistaken for a setting left out and given its default.
//
// A scalar that does not decode at all (a word for a number, 1e999) is reported here too, with
// its field path; lines says which lines it reported, so yaml.v3's own message for them (which
// names only the line) can be left out.
func checkShape(root *yaml.Node, t reflect.Type, path string, c *collector) (set map[string]bool, lines map[int]bool) {
	set, lines = map[string]bool{}, map[int]bool{}
	if root == nil {
		return set, lines
	}
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	sc := &shapeCheck{c: c, set: set, lines: lines}
	sc.walk(n, t, path)
	return set, lines
}

type shapeCheck struct {
	c     *collector
	set   map[string]bool
	lines map[int]bool
}

func (sc *shapeCheck) add(n *yaml.Node, path, msg string) {
	sc.c.add(path, msg, n.Value)
	sc.lines[n.Line] = true
}

var durationType = reflect.TypeOf(time.Duration(0))

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (sc *shapeCheck) walk(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // yaml.v3 says what is wrong with it
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			f, ok := fields[key]
			if !ok {
				continue // unknown keys: yaml.v3's KnownFields reports them
			}
			p := join(path, key)
			sc.set[p] = true
			sc.walk(n.Content[i+1], f.Type, p)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range n.Content {
			sc.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			sc.walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
		}
	default:
		if n.Kind == yaml.ScalarNode {
			sc.scalar(n, t, path)
		}
	}
}

// scalar reports a scalar that yaml.v3 would turn into something else than was written, or that
// does not decode into its field at all.
func (sc *shapeCheck) scalar(n *yaml.Node, t reflect.Type, path string) {
	tag := n.ShortTag()
	if tag == "!!null" {
		return // empty: the field's zero value, which validation judges
	}
	switch {
	case t == durationType:
		var d time.Duration
		if (tag != "!!str" && !(tag == "!!int" && n.Value == "0")) || n.Decode(&d) != nil {
			msg := "must be a duration with a unit, like 500ms, 1s or 5m (a bare number would be nanoseconds)"
			if tag == "!!int" || tag == "!!float" {
				msg = "must be a duration with a unit, like 500ms, 1s or 5m (a bare number would be nanoseconds): write " + n.Value + "s for seconds"
			}
			sc.add(n, path, msg)
		}
	case t.Kind() == reflect.String:
		if tag != "!!str" {
			sc.add(n, path, "must be a string; quote it if it is meant as one")
		}
	case t.Kind() == reflect.Bool:
		if tag != "!!bool" {
			sc.add(n, path, "must be true or false")
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		v := reflect.New(t)
		switch {
		case tag == "!!float":
			sc.add(n, path, "must be a whole number")
		case n.Decode(v.Interface()) != nil:
			sc.add(n, path, fmt.Sprintf("must be a whole number that fits a %s", t.Kind()))
		}
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		var f float64
		_, perr := strconv.ParseFloat(n.Value, 64)
		switch {
		case errors.Is(perr, strconv.ErrRange):
			sc.add(n, path, "must be a finite number (this one is beyond a 64-bit float)")
		case (tag != "!!float" && tag != "!!int") || n.Decode(&f) != nil:
			sc.add(n, path, "must be a number")
		case math.IsNaN(f) || math.IsInf(f, 0):
			sc.add(n, path, "must be a finite number (not NaN or infinity)")
		}
	}
}

// yamlFields maps a struct's YAML keys to its fields, as yaml.v3 names them (the tag's name, else
// the lower-cased field name), through inlined structs.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}
