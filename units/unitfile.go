package units

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Definition is a unit masterd writes itself (managed mode).
type Definition struct {
	// Description for systemctl status.
	Description string
	// ExecStart is the full command line, binary first.
	ExecStart []string
	// Environment is exported to the process besides MASTERD_TERM.
	Environment map[string]string
	// After and Wants order the unit (e.g. network-online.target).
	After []string
	// RestartDelay (RestartSec=) is the pause before systemd restarts the exited process
	// (Restart=always).
	RestartDelay time.Duration
	// MemoryMax, CPUWeight, TasksMax, LimitNOFILE and Nice are resource
	// settings; zero values are left out.
	MemoryMax   string
	CPUWeight   int
	TasksMax    int
	LimitNOFILE int
	Nice        int
	// OOMScoreAdjust keeps the control plane alive under memory pressure.
	OOMScoreAdjust int
}

// render writes the unit file text. envFile is the path systemd reads
// MASTERD_TERM from; stopTimeout bounds systemd's own stop so that even a
// `systemctl stop` by hand never takes 90 s.
func (d Definition) render(envFile string, stopTimeout time.Duration) (string, error) {
	if len(d.ExecStart) == 0 {
		return "", fmt.Errorf("exec_start: empty command line")
	}
	var b strings.Builder
	b.WriteString("# Written by masterd; rewritten on every start. Do not edit.\n[Unit]\n")
	if d.Description != "" {
		fmt.Fprintf(&b, "Description=%s\n", oneLine(d.Description))
	}
	if len(d.After) > 0 {
		fmt.Fprintf(&b, "After=%s\nWants=%s\n", strings.Join(d.After, " "), strings.Join(d.After, " "))
	}
	b.WriteString("StartLimitIntervalSec=0\n\n[Service]\nType=exec\nRestart=always\n")
	rs := d.RestartDelay
	if rs <= 0 {
		rs = time.Second
	}
	fmt.Fprintf(&b, "RestartSec=%dms\n", rs.Milliseconds())
	fmt.Fprintf(&b, "TimeoutStopSec=%dms\nKillMode=control-group\nSendSIGKILL=yes\n", stopTimeout.Milliseconds())
	fmt.Fprintf(&b, "EnvironmentFile=-%s\n", envFile)
	keys := make([]string, 0, len(d.Environment))
	for k := range d.Environment {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !validEnvName(k) {
			return "", fmt.Errorf("environment %q: not a variable name", k)
		}
		fmt.Fprintf(&b, "Environment=%s\n", quote(k+"="+d.Environment[k], false))
	}
	args := make([]string, len(d.ExecStart))
	for i, a := range d.ExecStart {
		if strings.ContainsAny(a, "\n\x00") {
			return "", fmt.Errorf("exec_start: argument %d contains a newline or NUL", i)
		}
		args[i] = quoteArg(a)
	}
	fmt.Fprintf(&b, "ExecStart=%s\n", strings.Join(args, " \\\n\t"))
	if d.MemoryMax != "" {
		fmt.Fprintf(&b, "MemoryMax=%s\n", oneLine(d.MemoryMax))
	}
	if d.CPUWeight > 0 {
		fmt.Fprintf(&b, "CPUWeight=%d\n", d.CPUWeight)
	}
	if d.TasksMax > 0 {
		fmt.Fprintf(&b, "TasksMax=%d\n", d.TasksMax)
	}
	if d.LimitNOFILE > 0 {
		fmt.Fprintf(&b, "LimitNOFILE=%d\n", d.LimitNOFILE)
	}
	if d.Nice != 0 {
		fmt.Fprintf(&b, "Nice=%d\n", d.Nice)
	}
	if d.OOMScoreAdjust != 0 {
		fmt.Fprintf(&b, "OOMScoreAdjust=%d\n", d.OOMScoreAdjust)
	}
	return b.String(), nil
}

// quoteArg quotes one command-line word for systemd's ExecStart= syntax:
// double quotes, with backslash, quote, '$' and '%' escaped so systemd passes
// the word through unchanged.
func quoteArg(s string) string { return quote(s, true) }

// quote double-quotes s for a unit file; '%' is always escaped (specifiers),
// '$' only for ExecStart= (Environment= does not expand variables).
func quote(s string, dollar bool) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\\', '"':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '$':
			if dollar {
				b.WriteString("$$")
			} else {
				b.WriteRune(r)
			}
		case '%':
			b.WriteString("%%")
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }

func validEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		if r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9') {
			continue
		}
		return false
	}
	return true
}
