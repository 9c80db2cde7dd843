package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as a Go duration string ("800ms", "15s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// maxConfigSize bounds what DecodeConfig reads: a masterd.yaml is a few KiB.
const maxConfigSize = 1 << 20

// DecodeConfig decodes YAML over DefaultConfig strictly: an unknown key, a value
// of the wrong type or an unparsable address is an error naming the key path and
// line. Every such error is reported, joined. It does not validate semantics; see
// Config.Validate.
func DecodeConfig(r io.Reader) (Config, error) {
	cfg, _, err := decodeConfig(r)
	return cfg, err
}

// decodeConfig is DecodeConfig that also returns the line of every key path,
// so validation errors can point into the file.
func decodeConfig(r io.Reader) (Config, map[string]int, error) {
	cfg := DefaultConfig()
	lines := map[string]int{}
	data, err := io.ReadAll(io.LimitReader(r, maxConfigSize+1))
	if err != nil {
		return cfg, lines, fmt.Errorf("read: %w", err)
	}
	if len(data) > maxConfigSize {
		return cfg, lines, fmt.Errorf("config is larger than %d bytes", maxConfigSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return cfg, lines, errors.New("config is empty")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return cfg, lines, fmt.Errorf("yaml: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return cfg, lines, errors.New("config must be one YAML document")
	}
	d := decoder{lines: lines}
	d.decode(doc.Content[0], reflect.ValueOf(&cfg).Elem(), "")
	return cfg, lines, errors.Join(d.errs...)
}

// FieldError is a problem with one key of the configuration.
type FieldError struct {
	Path string // key path, e.g. peers[2].address
	Line int    // 1-based line in the file, 0 when unknown
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: %s (line %d)", e.Path, e.Msg, e.Line)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Msg)
}

type decoder struct {
	errs  []error
	lines map[string]int // key path -> line
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	if path == "" {
		path = "(top level)"
	}
	d.errs = append(d.errs, &FieldError{Path: path, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

var (
	durationType = reflect.TypeFor[Duration]()
	addrType     = reflect.TypeFor[netip.Addr]()
	prefixType   = reflect.TypeFor[netip.Prefix]()
)

// decode stores n into v, which must be settable. Aliases are resolved; anchors
// are allowed but merge keys are not (they hide where a value came from).
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	d.lines[path] = n.Line
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.fail(n, path, "broken alias")
			return
		}
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value keeps the default
	}
	switch v.Type() {
	case durationType:
		d.scalar(n, path, "a duration like 800ms or 15s", func(s string) error {
			dur, err := time.ParseDuration(s)
			if err != nil {
				return err
			}
			if dur < 0 {
				return errors.New("negative")
			}
			v.SetInt(int64(dur))
			return nil
		})
		return
	case addrType:
		d.scalar(n, path, "an IP address", func(s string) error {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return err
			}
			if a.Zone() != "" {
				return errors.New("zone not allowed")
			}
			v.Set(reflect.ValueOf(a))
			return nil
		})
		return
	case prefixType:
		d.scalar(n, path, "a CIDR like 10.96.0.0/12", func(s string) error {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return err
			}
			if p != p.Masked() {
				return fmt.Errorf("host bits set (did you mean %s?)", p.Masked())
			}
			v.Set(reflect.ValueOf(p))
			return nil
		})
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "must be a list, not %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "must be a mapping, not %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				d.fail(k, path, "keys must be strings")
				continue
			}
			key := k.Value
			if m.MapIndex(reflect.ValueOf(key)).IsValid() {
				d.fail(k, path+"."+key, "duplicate key")
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, elem, path+"."+key)
			m.SetMapIndex(reflect.ValueOf(key), elem)
		}
		v.Set(m)
	case reflect.String:
		d.scalar(n, path, "a string (quote it)", func(s string) error {
			if n.Tag != "!!str" {
				return errors.New("not a string")
			}
			v.SetString(s)
			return nil
		})
	case reflect.Bool:
		d.scalar(n, path, "true or false", func(s string) error {
			if n.Tag != "!!bool" {
				return errors.New("not a boolean")
			}
			b, err := strconv.ParseBool(strings.ToLower(s))
			if err != nil {
				return err
			}
			v.SetBool(b)
			return nil
		})
	case reflect.Int, reflect.Int64:
		d.scalar(n, path, "an integer", func(s string) error {
			if n.Tag != "!!int" {
				return errors.New("not an integer")
			}
			i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
			if err != nil {
				return err
			}
			if v.OverflowInt(i) {
				return errors.New("out of range")
			}
			v.SetInt(i)
			return nil
		})
	default:
		// A programming error in Config, not bad input.
		d.fail(n, path, "unsupported field type %s", v.Type())
	}
}

// scalar checks that n is a scalar and runs set on its value; a failure becomes
// `path: "value" is not <what>`.
func (d *decoder) scalar(n *yaml.Node, path, what string, set func(string) error) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "must be %s, not %s", what, describe(n))
		return
	}
	if err := set(n.Value); err != nil {
		d.fail(n, path, "%q is not %s", n.Value, what)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "must be a mapping, not %s", describe(n))
		return
	}
	fields := structFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		keyPath := joinPath(path, key)
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "keys must be strings")
			continue
		}
		if key == "<<" {
			d.fail(k, keyPath, "merge keys are not supported")
			continue
		}
		idx, ok := fields[key]
		if !ok {
			d.fail(k, keyPath, "unknown key%s", suggest(key, fields))
			continue
		}
		if seen[key] {
			d.fail(k, keyPath, "duplicate key")
			continue
		}
		seen[key] = true
		d.decode(val, v.Field(idx), keyPath)
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// structFields maps yaml keys to field indexes.
func structFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		if key := yamlKey(t.Field(i)); key != "" {
			m[key] = i
		}
	}
	return m
}

func yamlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if tag == "-" {
		return ""
	}
	return tag
}

// suggest names a known key that differs from key only in case, a common slip
// (clientport vs clientPort).
func suggest(key string, fields map[string]int) string {
	for k := range fields {
		if strings.EqualFold(k, key) {
			return fmt.Sprintf(" (did you mean %q?)", k)
		}
	}
	return ""
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "this value"
}
