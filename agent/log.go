package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// NewLogger returns the process logger: slog to w (stderr, so journald keeps
// it) in text or json, at the given level. Messages are constant; details go in
// key=value attributes (an error is always "err"); packages add a "component"
// attribute. When w is the stream systemd connected to the journal
// (JOURNAL_STREAM, see journalStream), every line starts with its syslog
// priority, "<3>" for errors to "<7>" for debug, so `journalctl -p err` works.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	lv, err := ParseLogLevel(level)
	if err != nil {
		return nil, err
	}
	return NewLeveledLogger(w, format, lv)
}

// ParseLogLevel parses a log.level value (debug, info, warn or error).
func ParseLogLevel(level string) (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return 0, fmt.Errorf("log level %q: %w", level, err)
	}
	return lv, nil
}

// NewLeveledLogger is NewLogger with a level that may change while the logger
// is in use: given a *slog.LevelVar, Agent.Reload sets a new log.level on it.
func NewLeveledLogger(w io.Writer, format string, level slog.Leveler) (*slog.Logger, error) {
	var jw *journalWriter
	if journalStream(w, os.Getenv("JOURNAL_STREAM")) {
		jw = &journalWriter{w: w}
		w = jw
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch format {
	case "text", "":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: must be text or json", format)
	}
	if jw != nil {
		h = &journalHandler{h: h, jw: jw}
	}
	return slog.New(h), nil
}

// journalStream reports whether w is the stream systemd connected to the
// journal: JOURNAL_STREAM ("device:inode" of that stream, see
// systemd.exec(5)) is set and, when w is a file, names w itself. A child
// whose stderr was redirected elsewhere inherits the variable but not the
// stream, and keeps plain lines.
func journalStream(w io.Writer, env string) bool {
	if env == "" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return true
	}
	var dev, ino uint64
	if _, err := fmt.Sscanf(env, "%d:%d", &dev, &ino); err != nil {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && st.Ino == ino
}

// syslogPriority maps a slog level to the syslog priority journald reads from
// a "<N>" line prefix (sd-daemon(3)): err 3, warning 4, info 6, debug 7.
func syslogPriority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	default:
		return 7
	}
}

// journalWriter prefixes every line written to w with the priority of the
// record being written. journalHandler holds mu across the inner handler's
// Handle, which writes each record as one line in one Write.
type journalWriter struct {
	mu   sync.Mutex
	w    io.Writer
	prio int
	buf  []byte
}

func (j *journalWriter) Write(p []byte) (int, error) {
	given := len(p)
	prefix := "<" + strconv.Itoa(j.prio) + ">"
	j.buf = j.buf[:0]
	for len(p) > 0 {
		line := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			line = p[:i+1]
		}
		j.buf = append(j.buf, prefix...)
		j.buf = append(j.buf, line...)
		p = p[len(line):]
	}
	if _, err := j.w.Write(j.buf); err != nil {
		return 0, err
	}
	return given, nil
}

// journalHandler sets the record's priority on the shared journalWriter for
// the duration of the inner handler's write.
type journalHandler struct {
	h  slog.Handler
	jw *journalWriter
}

func (j *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return j.h.Enabled(ctx, l)
}

func (j *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	j.jw.mu.Lock()
	defer j.jw.mu.Unlock()
	j.jw.prio = syslogPriority(r.Level)
	return j.h.Handle(ctx, r)
}

func (j *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{h: j.h.WithAttrs(as), jw: j.jw}
}

func (j *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{h: j.h.WithGroup(name), jw: j.jw}
}
