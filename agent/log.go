package agent

import (
	"fmt"
	"io"
	"log/slog"
)

// NewLogger returns the process logger: slog to w (stderr, so journald keeps
// it) in text or json, at the given level. Messages are constant; details go in
// key=value attributes; packages add a "component" attribute.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: must be text or json", format)
}
