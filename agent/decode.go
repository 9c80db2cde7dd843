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

// Limits of DecodeConfig. A masterd.yaml is a few KiB with a few hundred
// values; the limits keep a hostile or broken file from costing more than a
// few MiB and a fraction of a second, and its report a screenful.
const (
	// maxConfigSize bounds what DecodeConfig reads: 10 times the shipped,
	// commented example. Parsing costs up to about 220 bytes per byte (a
	// flow sequence of tiny values, [1,1,...]: 240 KB took 53 MB), so
	// 64 KiB stays near 15 MiB.
	maxConfigSize = 64 << 10
	// maxItems bounds a list or mapping (peers, SANs, extraArgs): a longer
	// one is refused whole, so validation never walks a huge value.
	maxItems = 1000
	// maxAliasNodes bounds the values that aliases add to the document
	// (each alias counts the size of what it refers to, aliases within
	// included). Sharing a timings block costs a handful; an alias bomb
	// (a small file whose aliases expand to millions of values) is refused
	// before anything is decoded.
	maxAliasNodes = 10_000
	// maxDecodeErrors is how many decoding problems are reported; the rest
	// are counted in a last "… and N more".
	maxDecodeErrors = 20
	// maxLinePaths bounds the key paths whose line is remembered for the
	// validation messages; a path beyond it is reported without its line.
	maxLinePaths = 10_000
)

// DecodeConfig decodes YAML over DefaultConfig strictly: an unknown key, a value
// of the wrong type or an unparsable address is an error naming the key path and
// line. The first maxDecodeErrors such errors are reported, joined, and a last
// one counts the rest. A file that is not one YAML document of at most 64 KiB,
// or whose aliases expand too far, is an [*UnreadableError] and nothing is
// decoded. It does not validate semantics; see Config.Validate.
func DecodeConfig(r io.Reader) (Config, error) {
	cfg, _, err := decodeConfig(r)
	return cfg, err
}

// UnreadableError is a configuration that could not be decoded at all: too
// large, not YAML, more than one document, or an alias bomb. The defaults
// it leaves behind are not the operator's configuration, so problems found
// by validating them are noise.
type UnreadableError struct {
	Line int // 1-based line in the file, 0 when unknown
	Msg  string
}

func (e *UnreadableError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// decodeConfig is DecodeConfig that also returns the line of every key path,
// so validation errors can point into the file.
func decodeConfig(r io.Reader) (Config, map[string]int, error) {
	cfg := DefaultConfig()
	lines := map[string]int{}
	data, err := io.ReadAll(io.LimitReader(r, maxConfigSize+1))
	if err != nil {
		// The error names the operation and the file already ("read
		// /etc/masterd: is a directory").
		return cfg, lines, err
	}
	if len(data) > maxConfigSize {
		return cfg, lines, &UnreadableError{Msg: fmt.Sprintf("config is larger than %d KiB; is this the right file?", maxConfigSize>>10)}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return cfg, lines, &UnreadableError{Msg: "config is empty"}
	}
	root, err := parseOneDocument(data)
	if err != nil {
		return cfg, lines, err
	}
	if err := checkAliases(root); err != nil {
		return cfg, lines, err
	}
	d := decoder{lines: lines}
	d.decode(root, reflect.ValueOf(&cfg).Elem(), "")
	return cfg, lines, d.err()
}

// parseOneDocument parses data into a node tree and returns the document's
// root, refusing a syntax error or a second document with one line each.
func parseOneDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, syntaxError(err)
	}
	if err != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &UnreadableError{Msg: "config holds no YAML document (only comments?)"}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
		return doc.Content[0], nil
	case err != nil:
		return nil, syntaxError(err)
	}
	return nil, &UnreadableError{Line: next.Line, Msg: "a second YAML document starts here (---); the config must be one document"}
}

// syntaxError turns a YAML parser error ("yaml: line 3: did not find
// expected key") into one line without the library's prefix.
func syntaxError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				line, msg = l, after
			}
		}
	}
	return &UnreadableError{Line: line, Msg: "not valid YAML: " + strings.ToValidUTF8(msg, "?")}
}

// checkAliases refuses a document whose aliases add more than maxAliasNodes
// values, counting each alias as the size of its target with the aliases
// inside expanded, without expanding anything: the cost is linear in the
// document, however deep the aliases nest.
func checkAliases(root *yaml.Node) error {
	size := map[*yaml.Node]int{} // expanded size of an anchored node; -1 while being counted
	var expanded func(n *yaml.Node) (int, error)
	expanded = func(n *yaml.Node) (int, error) {
		if n.Kind == yaml.AliasNode {
			if n.Alias == nil {
				return 1, nil // reported by the decoder as a broken alias
			}
			n = n.Alias
		}
		if s, ok := size[n]; ok {
			if s < 0 {
				return 0, &UnreadableError{Line: n.Line, Msg: "an alias refers to the value that contains it"}
			}
			return s, nil
		}
		size[n] = -1
		total := 1
		for _, c := range n.Content {
			s, err := expanded(c)
			if err != nil {
				return 0, err
			}
			total = min(total+s, maxAliasNodes+1) // saturate: a bomb must not overflow
		}
		size[n] = total
		return total, nil
	}
	added := 0
	var walk func(n *yaml.Node) error
	walk = func(n *yaml.Node) error {
		if n.Kind == yaml.AliasNode {
			s, err := expanded(n)
			if err != nil {
				return err
			}
			if added += s; added > maxAliasNodes {
				return &UnreadableError{Line: n.Line, Msg: fmt.Sprintf("aliases expand to more than %d values (an alias bomb?)", maxAliasNodes)}
			}
			return nil
		}
		for _, c := range n.Content {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root)
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
	errs  []error        // the first maxDecodeErrors problems
	more  int            // problems beyond those
	lines map[string]int // key path -> line, at most maxLinePaths
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	if len(d.errs) == maxDecodeErrors {
		d.more++
		return
	}
	if path == "" {
		path = "(top level)"
	}
	d.errs = append(d.errs, &FieldError{Path: path, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

// err joins the problems found, the last one counting those not listed.
func (d *decoder) err() error {
	if d.more > 0 {
		return errors.Join(append(d.errs, fmt.Errorf("… and %d more", d.more))...)
	}
	return errors.Join(d.errs...)
}

var (
	durationType = reflect.TypeFor[Duration]()
	addrType     = reflect.TypeFor[netip.Addr]()
	prefixType   = reflect.TypeFor[netip.Prefix]()
)

// decode stores n into v, which must be settable. Aliases are resolved; anchors
// are allowed but merge keys are not (they hide where a value came from).
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if len(d.lines) < maxLinePaths {
		d.lines[path] = n.Line
	}
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
		if len(n.Content) > maxItems {
			d.fail(n, path, "%d items, at most %d", len(n.Content), maxItems)
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
		if len(n.Content)/2 > maxItems {
			d.fail(n, path, "%d keys, at most %d", len(n.Content)/2, maxItems)
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
		d.fail(n, path, "%s is not %s", quoteShort(n.Value), what)
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

// quoteShort quotes v for an error message, cut to its first 64 bytes: a
// hostile value is named, not echoed whole.
func quoteShort(v string) string {
	const max = 64
	if len(v) <= max {
		return strconv.Quote(v)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(v[:max]), len(v))
}
