package packagetest

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// unitSettings parses a unit file into section -> key -> values (a key may
// repeat, e.g. ReadWritePaths=).
func unitSettings(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: bad line %q", path, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUnitFileHasRequiredSettings pins the settings the deploy issue and
// DESIGN.md require of masterd.service, so that dropping one is a test
// failure and not only a worse exposure score.
func TestUnitFileHasRequiredSettings(t *testing.T) {
	u := unitSettings(t, filepath.Join(repoRoot(t), "deploy", "masterd.service"))
	svc := u["Service"]
	want := map[string]string{
		"Type":                     "notify",
		"NotifyAccess":             "main",
		"ExecStart":                "/usr/bin/masterd run --config /etc/masterd/masterd.yaml",
		"ExecStopPost":             "/usr/bin/masterd cleanup --config /etc/masterd/masterd.yaml",
		"Restart":                  "always",
		"RestartPreventExitStatus": "2",
		"KillMode":                 "mixed",
		"NoNewPrivileges":          "yes",
		"ProtectSystem":            "strict",
		"ProtectHome":              "yes",
		"PrivateTmp":               "yes",
		"StateDirectory":           "masterd",
		"StateDirectoryMode":       "0700",
		"RestrictAddressFamilies":  "AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET",
		"CapabilityBoundingSet":    "CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE CAP_KILL CAP_SYS_NICE",
		"RestrictNamespaces":       "yes",
	}
	for k, v := range want {
		if got := strings.Join(svc[k], " | "); got != v {
			t.Errorf("[Service] %s=%q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"WatchdogSec", "RestartSec", "TimeoutStopSec", "TimeoutStartSec",
		"LimitNOFILE", "Nice", "OOMScoreAdjust", "CPUSchedulingPolicy", "ReadWritePaths"} {
		if len(svc[k]) == 0 {
			t.Errorf("[Service] has no %s=", k)
		}
	}
	if got := strings.Join(u["Install"]["WantedBy"], " "); got != "multi-user.target" {
		t.Errorf("[Install] WantedBy=%q, want multi-user.target", got)
	}
}
