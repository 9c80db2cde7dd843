package etcdembed

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// lifecycleMarkers are substrings of etcd/raft Info messages worth an Info
// line in masterd's log; every other etcd Info line goes to Debug.
var lifecycleMarkers = []string{
	"starting an etcd server",
	"ready to serve client requests",
	"published local member to cluster",
	"became leader",
	"elected leader",
	"lost leader",
	"leadership transfer",
	"added member",
	"removed member",
	"promote",
	"closing etcd server",
	"closed etcd server",
	"initial corruption checking passed",
	"restarting local member",
	"starting local member",
}

// lastProblem remembers etcd's most recent warning or error, so that a Start
// that times out can say why.
type lastProblem struct {
	mu  sync.Mutex
	msg string
}

func (p *lastProblem) set(s string) {
	p.mu.Lock()
	p.msg = s
	p.mu.Unlock()
}

func (p *lastProblem) get() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.msg
}

// slogCore is a zapcore.Core writing into a slog.Logger.
type slogCore struct {
	log    *slog.Logger
	fields []zapcore.Field
	last   *lastProblem
}

var _ zapcore.Core = (*slogCore)(nil)

// newZapLogger returns a zap logger forwarding to log, recording warnings
// and errors in last.
func newZapLogger(log *slog.Logger, last *lastProblem) *zap.Logger {
	return zap.New(&slogCore{log: log, last: last})
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	// Info stays on: lifecycle events are Info lines, and the rest are
	// filtered per message in Write.
	return l >= zapcore.InfoLevel
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	f := make([]zapcore.Field, 0, len(c.fields)+len(fields))
	f = append(f, c.fields...)
	f = append(f, fields...)
	return &slogCore{log: c.log, fields: f, last: c.last}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	level := slog.LevelDebug
	switch {
	case isShutdownNoise(fields), strings.HasPrefix(e.Message, "simple token is not cryptographically signed"),
		strings.HasPrefix(e.Message, "Running http and grpc server on single port"):
		// Debug: etcd reports its own listeners closing on Close as errors,
		// and warns about auth tokens although etcd auth is not enabled
		// (mutual TLS is the authentication) and about sharing the client
		// port between gRPC and HTTP (/health, /metrics; no gateway).
	case e.Level >= zapcore.ErrorLevel:
		level = slog.LevelError
	case e.Level == zapcore.WarnLevel:
		level = slog.LevelWarn
	case isLifecycle(e.Message):
		level = slog.LevelInfo
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	if level >= slog.LevelWarn && c.last != nil {
		msg := e.Message
		if err, ok := enc.Fields["error"]; ok {
			msg += ": " + toString(err)
		}
		c.last.set(msg)
	}
	if !c.log.Enabled(context.Background(), level) {
		return nil
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields)+1)
	if e.LoggerName != "" {
		attrs = append(attrs, slog.String("logger", e.LoggerName))
	}
	for k, v := range enc.Fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	c.log.LogAttrs(context.Background(), level, e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

// isShutdownNoise recognises etcd's reports of its own listeners being
// closed by Close, which it logs as warnings and errors.
func isShutdownNoise(fields []zapcore.Field) bool {
	for _, f := range fields {
		if f.Key == "error" && f.Interface != nil {
			if err, ok := f.Interface.(error); ok && (strings.Contains(err.Error(), "use of closed network connection") ||
				errors.Is(err, http.ErrServerClosed) || err.Error() == http.ErrServerClosed.Error()) {
				return true
			}
		}
	}
	return false
}

func isLifecycle(msg string) bool {
	for _, m := range lifecycleMarkers {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if e, ok := v.(error); ok {
		return e.Error()
	}
	return strings.TrimSpace(strings.ReplaceAll(slog.AnyValue(v).String(), "\n", " "))
}
