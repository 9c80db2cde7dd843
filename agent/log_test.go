package agent

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// logEveryLevel logs one line per level, through a derived logger as the
// components do, and returns the lines written.
func logEveryLevel(t *testing.T, format string) []string {
	t.Helper()
	var b bytes.Buffer
	log, err := NewLogger(&b, format, "debug")
	if err != nil {
		t.Fatal(err)
	}
	log = log.With("component", "test")
	log.Error("e", "err", "boom")
	log.Warn("w")
	log.Info("i", "multi", "two\nlines")
	log.Debug("d")
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}

func TestLogLinesCarryTheSyslogPriorityWhenStderrIsTheJournal(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "8:12345")
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			lines := logEveryLevel(t, format)
			want := []string{"<3>", "<4>", "<6>", "<7>"}
			if len(lines) != len(want) {
				t.Fatalf("%d lines, want %d (one per record):\n%s", len(lines), len(want), strings.Join(lines, "\n"))
			}
			for i, p := range want {
				rest, ok := strings.CutPrefix(lines[i], p)
				if !ok {
					t.Errorf("line %d %q does not start with %s", i, lines[i], p)
				}
				if strings.HasPrefix(rest, "<") {
					t.Errorf("line %d %q has two prefixes", i, lines[i])
				}
			}
		})
	}
}

func TestLogLinesAreUnchangedWithoutTheJournal(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")
	for _, format := range []string{"text", "json"} {
		lines := logEveryLevel(t, format)
		if len(lines) != 4 {
			t.Fatalf("%s: %d lines, want 4", format, len(lines))
		}
		for _, l := range lines {
			if !strings.HasPrefix(l, "time=") && !strings.HasPrefix(l, `{"time":`) {
				t.Errorf("%s: line %q is not plain slog output", format, l)
			}
		}
	}
}

// systemd names the journal's stream by device and inode; a stderr that is
// another file (a child's redirection) keeps plain lines.
func TestJournalStreamMustNameTheFileLoggedTo(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	self := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	other := fmt.Sprintf("%d:%d", st.Dev, st.Ino+1)
	for _, tc := range []struct {
		env  string
		want bool
	}{{self, true}, {other, false}, {"", false}, {"garbage", false}} {
		if got := journalStream(f, tc.env); got != tc.want {
			t.Errorf("journalStream(file %s, %q) = %v, want %v", self, tc.env, got, tc.want)
		}
	}

	t.Setenv("JOURNAL_STREAM", self)
	log, err := NewLogger(f, "text", "info")
	if err != nil {
		t.Fatal(err)
	}
	log.Warn("to the journal")
	b, _ := os.ReadFile(f.Name())
	if !strings.HasPrefix(string(b), "<4>time=") {
		t.Errorf("written %q, want a <4> prefix", b)
	}
}

func TestSyslogPriorityOfEveryLevel(t *testing.T) {
	for _, tc := range []struct {
		l    slog.Level
		want int
	}{
		{slog.LevelError + 4, 3}, {slog.LevelError, 3}, {slog.LevelWarn, 4}, {slog.LevelInfo + 1, 6},
		{slog.LevelInfo, 6}, {slog.LevelDebug, 7}, {slog.LevelDebug - 4, 7},
	} {
		if got := syslogPriority(tc.l); got != tc.want {
			t.Errorf("syslogPriority(%v) = %d, want %d", tc.l, got, tc.want)
		}
	}
}
