package agent

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/election"
)

// A file that cannot be decoded at all is reported on one line, naming the
// file, with none of the problems that validating the defaults it leaves
// behind would add ("peers: must list every master…").
func TestAnUnreadableConfigIsOneLine(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"an alias bomb", aliasBomb(1500), "line 2: aliases expand to more than 10000 values (an alias bomb?)"},
		{"a nested alias bomb", nestedBomb(), "line 4: aliases expand to more than 10000 values (an alias bomb?)"},
		{"a syntax error", "name: m1\npeers:\n  - {name: m1, address: 10.0.0.1}\n vip: [\n", "line 3: not valid YAML: did not find expected key"},
		{"two documents", validYAML + "---\nname: m2\n", "line 9: a second YAML document starts here (---); the config must be one document"},
		{"an empty file", "\n\n", "config is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.yaml)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if n := strings.Count(msg, "\n") + 1; n != 1 {
				t.Errorf("%d lines, want 1:\n%s", n, msg)
			}
			if !strings.HasPrefix(msg, "config /") || !strings.HasSuffix(msg, tc.want) {
				t.Errorf("got %q, want \"config <path>: %s\"", msg, tc.want)
			}
			var ue *UnreadableError
			if !errors.As(err, &ue) {
				t.Errorf("errors.As(*UnreadableError) is false: %v", err)
			}
		})
	}
}

// A directory given as the file cannot be read: one line too.
func TestADirectoryAsTheConfigIsOneLine(t *testing.T) {
	_, err := LoadConfig(t.TempDir())
	if err == nil {
		t.Fatal("accepted")
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "is a directory") {
		t.Errorf("got %q, want one line saying it is a directory", msg)
	}
}

// Validation problems are cut like decoding problems: the first
// maxDecodeErrors, then one line counting the rest.
func TestManyValidationProblemsAreCut(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: m1\npeers:\n  - {name: m1, address: 10.0.0.1}\n")
	for i := range 30 {
		fmt.Fprintf(&b, "  - {name: BAD%d, address: 10.0.1.%d}\n", i, i+1)
	}
	b.WriteString("vip:\n  address: 10.0.0.100\n")
	_, err := load(t, b.String())
	if err == nil {
		t.Fatal("accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	// "config <path>:", 20 problems, "… and N more"
	if len(lines) != 1+maxDecodeErrors+1 {
		t.Fatalf("%d lines, want %d:\n%v", len(lines), 1+maxDecodeErrors+1, err)
	}
	// 30 bad names and "peers: 31 masters: at most 7" make 31 problems.
	if last := lines[len(lines)-1]; last != "  … and 11 more" {
		t.Errorf("last line %q, want %q", last, "  … and 11 more")
	}
}

// Decoding and validation problems are reported together, each list cut on
// its own.
func TestDecodingAndValidationProblemsAreBothReported(t *testing.T) {
	_, err := load(t, validYAML+"bogus: 1\nlog: {level: loud}\n")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"bogus: unknown key (line 9)", `log.level: "loud" must be debug, info, warn or error (line 10)`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "more") {
		t.Errorf("nothing to cut:\n%v", err)
	}
}

// A configuration that validates gives the election a driver config it
// accepts, and a timing the election refuses is refused by Validate: the two
// use one rule set (election.Timing.Problems). Random timings around the
// boundaries of both rules.
func TestValidateAgreesWithTheElection(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 2000 {
		cfg := DefaultConfig()
		cfg.Name = "m1"
		cfg.Peers = []Peer{{Name: "m1", Address: netip.MustParseAddr("10.0.0.1")}}
		cfg.derive()
		cfg.VIP.Address = netip.MustParseAddr("10.0.0.100")
		cfg.VIP.Fence = rng.IntN(2) == 0
		cfg.VIP.Profile = []string{"default", "fast", "custom"}[rng.IntN(3)]
		retry := time.Duration(10+rng.IntN(500)) * time.Millisecond
		renew := time.Duration(float64(retry) * (0.8 + rng.Float64()))
		lease := renew + time.Duration(rng.IntN(600))*time.Millisecond
		tm := Timings{LeaseDuration: Duration(lease), RenewDeadline: Duration(renew), RetryPeriod: Duration(retry)}
		if cfg.VIP.Profile == "custom" {
			cfg.VIP.Timings = tm
		} else {
			cfg.Roles.Scheduler = Timings{LeaseDuration: Duration(lease * 20), RenewDeadline: Duration(renew * 20), RetryPeriod: Duration(retry * 20)}
		}
		valid := cfg.Validate() == nil
		ec := election.DefaultConfig("m1", []string{"m1"})
		ec.Roles = cfg.ElectionRoles()
		ec.Drift = float64(cfg.Election.ClockDriftPPM) / 1e6
		ec.Rand = rng.Uint64
		accepted := ec.Validate() == nil
		if valid != accepted {
			t.Fatalf("case %d: profile %s fence %v timings %+v scheduler %+v: agent valid=%v (%v), election accepts=%v (%v)",
				i, cfg.VIP.Profile, cfg.VIP.Fence, cfg.VIP.Timings, cfg.Roles.Scheduler, valid, cfg.Validate(), accepted, ec.Validate())
		}
	}
}
