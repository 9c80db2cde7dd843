package agent

import (
	"fmt"
	"reflect"
	"strings"
)

// ConfigReference renders the configuration reference (a Markdown table of
// every key path, its default and its doc tag) from the Config struct. The
// README embeds it between markers and a test keeps the two identical.
func ConfigReference() string {
	var b strings.Builder
	b.WriteString("| key | default | meaning |\n|---|---|---|\n")
	def := DefaultConfig()
	def.Name = "" // the hostname of whoever renders it
	writeReference(&b, reflect.ValueOf(def), "")
	return b.String()
}

func writeReference(b *strings.Builder, v reflect.Value, prefix string) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key := yamlKey(f)
		if key == "" {
			continue
		}
		path := prefix + key
		fv := v.Field(i)
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type != addrType && f.Type != prefixType:
			fmt.Fprintf(b, "| `%s` | | %s |\n", path, f.Tag.Get("doc"))
			writeReference(b, fv, path+".")
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			fmt.Fprintf(b, "| `%s` | | %s |\n", path, f.Tag.Get("doc"))
			writeReference(b, reflect.New(f.Type.Elem()).Elem(), path+"[]."+"")
		default:
			fmt.Fprintf(b, "| `%s` | %s | %s |\n", path, defaultText(fv), f.Tag.Get("doc"))
		}
	}
}

func defaultText(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case string:
		if x == "" {
			return ""
		}
		return "`" + x + "`"
	case Duration:
		if x == 0 {
			return ""
		}
		return "`" + x.String() + "`"
	case map[string]string:
		return ""
	}
	if v.IsZero() {
		if v.Kind() == reflect.Bool {
			return "`false`"
		}
		if v.Kind() == reflect.Int || v.Kind() == reflect.Int64 {
			return "`0`"
		}
		return ""
	}
	return fmt.Sprintf("`%v`", v.Interface())
}
