package packagetest

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func rpmArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return runtime.GOARCH
}

func TestRPMHeader(t *testing.T) {
	need(t, "rpm")
	b := buildPackages(t, testVersion)
	got := run(t, "rpm", "-qp", "--queryformat", "%{NAME}|%{VERSION}|%{RELEASE}|%{ARCH}|%{LICENSE}|%{URL}", b.RPM)
	want := "masterd|" + testVersion + "|1|" + rpmArch() + "|Apache-2.0|https://github.com/masterd/masterd"
	if got != want {
		t.Errorf("rpm header = %q, want %q", got, want)
	}
	info := run(t, "rpm", "-qip", b.RPM)
	for _, field := range []string{"Summary", "Description", "Packager"} {
		if !strings.Contains(info, field) {
			t.Errorf("rpm -qip lacks %s:\n%s", field, info)
		}
	}
	scripts := run(t, "rpm", "-qp", "--scripts", b.RPM)
	for _, s := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet", "daemon-reload", "try-restart", "disable masterd.service"} {
		if !strings.Contains(scripts, s) {
			t.Errorf("rpm scriptlets lack %q:\n%s", s, scripts)
		}
	}
}

// rpmFiles lists the rpm's files: path -> (mode, file flags as rpm prints them).
func rpmFiles(t *testing.T, rpm string) map[string][2]string {
	t.Helper()
	files := map[string][2]string{}
	out := run(t, "rpm", "-qp", "--queryformat", "[%{FILENAMES}|%{FILEMODES:perms}|%{FILEFLAGS:fflags}\n]", rpm)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 3 {
			t.Fatalf("bad rpm file line %q", line)
		}
		files[f[0]] = [2]string{f[1], f[2]}
	}
	return files
}

func TestRPMContents(t *testing.T) {
	need(t, "rpm")
	b := buildPackages(t, testVersion)
	files := rpmFiles(t, b.RPM)
	want := map[string]os.FileMode{
		"/usr/lib/systemd/system/masterd.service": 0o644,
		"/usr/share/licenses/masterd/LICENSE":     0o644,
	}
	for p, m := range expectedFiles {
		want[p] = m
	}
	for p, m := range want {
		got, ok := files[p]
		if !ok {
			t.Errorf("rpm lacks %s", p)
			continue
		}
		if wantPerms := permString(m); got[0] != wantPerms {
			t.Errorf("rpm %s mode %s, want %s", p, got[0], wantPerms)
		}
	}
	if f := files["/etc/masterd/masterd.yaml"][1]; f != "cn" {
		t.Errorf("rpm /etc/masterd/masterd.yaml flags %q, want cn (%%config(noreplace))", f)
	}
	if f := files["/usr/share/licenses/masterd/LICENSE"][1]; f != "l" {
		t.Errorf("rpm LICENSE flags %q, want l (%%license)", f)
	}
	if got := strings.TrimSpace(run(t, "rpm", "-qp", "--configfiles", b.RPM)); got != "/etc/masterd/masterd.yaml" {
		t.Errorf("rpm config files = %q, want only /etc/masterd/masterd.yaml", got)
	}
	if _, ok := files["/lib/systemd/system/masterd.service"]; ok {
		t.Error("rpm ships the unit under /lib/systemd/system; rpm distributions use /usr/lib/systemd/system")
	}
}

// permString renders a mode as rpm and ls do ("drwx------").
func permString(m os.FileMode) string {
	s := []byte("-rwxrwxrwx")
	if m.IsDir() {
		s[0] = 'd'
	}
	for i := 0; i < 9; i++ {
		if m&(1<<(8-i)) == 0 {
			s[i+1] = '-'
		}
	}
	return string(s)
}

// TestRPMInstallUpgradeEraseInRoot installs the rpm into a throwaway root
// (`rpm -i --nodeps --noscripts --root`; the scriptlets are exercised in a
// lab host), edits the config, upgrades to a newer build and erases it: the
// edit survives the upgrade, the state directory survives the erase.
func TestRPMInstallUpgradeEraseInRoot(t *testing.T) {
	need(t, "rpm")
	needRoot(t)
	b1 := buildPackages(t, testVersion)
	b2 := buildPackages(t, testVersionNewer)
	root := t.TempDir()
	run(t, "rpm", "--root", root, "--initdb")
	run(t, "rpm", "--root", root, "-i", "--nodeps", "--noscripts", b1.RPM)

	if got := strings.TrimSpace(run(t, "rpm", "--root", root, "-q", "--queryformat", "%{VERSION}", "masterd")); got != testVersion {
		t.Fatalf("installed version %q, want %s", got, testVersion)
	}
	for p, m := range expectedFiles {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("installed root lacks %s: %v", p, err)
			continue
		}
		if fi.Mode() != m {
			t.Errorf("installed %s mode %v, want %v", p, fi.Mode(), m)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "usr/lib/systemd/system/masterd.service")); err != nil {
		t.Errorf("unit not installed: %v", err)
	}
	run(t, "rpm", "--root", root, "-V", "masterd")

	config := filepath.Join(root, "etc/masterd/masterd.yaml")
	edited := "# edited by the admin\n"
	appendFile(t, config, edited)
	appendFile(t, filepath.Join(root, "var/lib/masterd/member.db"), "etcd data\n")

	run(t, "rpm", "--root", root, "-U", "--nodeps", "--noscripts", b2.RPM)
	if got := strings.TrimSpace(run(t, "rpm", "--root", root, "-q", "--queryformat", "%{VERSION}", "masterd")); got != testVersionNewer {
		t.Fatalf("version after upgrade %q, want %s", got, testVersionNewer)
	}
	if data, _ := os.ReadFile(config); !strings.HasSuffix(string(data), edited) {
		t.Errorf("upgrade lost the config edit:\n%s", data)
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/masterd/member.db")); err != nil {
		t.Errorf("upgrade lost the data: %v", err)
	}

	run(t, "rpm", "--root", root, "-e", "--noscripts", "masterd")
	if _, err := os.Stat(filepath.Join(root, "usr/bin/masterd")); !os.IsNotExist(err) {
		t.Errorf("/usr/bin/masterd still there after erase: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/masterd/member.db")); err != nil {
		t.Errorf("erase removed the data: %v", err)
	}
	// rpm keeps an edited %config file as .rpmsave.
	if data, err := os.ReadFile(config + ".rpmsave"); err != nil || !strings.HasSuffix(string(data), edited) {
		t.Errorf("edited config not kept as .rpmsave after erase: %v", err)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
