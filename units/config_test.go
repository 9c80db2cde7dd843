package units

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidateReportsEveryProblemNamingTheField(t *testing.T) {
	c := DefaultConfig()
	c.Socket = "relative"
	c.StartTimeout = 0
	c.LeaderKillWait = 0
	c.JournalLines = -1
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"socket", "start_timeout", "leader_kill_wait", "journal_lines"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func validKube() KubeConfig {
	k := DefaultKubeConfig()
	k.AdvertiseAddress = "10.0.0.1"
	k.EtcdServers = []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}
	k.CAFile, k.CAKeyFile = "/var/lib/masterd/pki/ca.crt", "/var/lib/masterd/pki/ca.key"
	k.APIServerCertFile, k.APIServerKeyFile = "/p/apiserver.crt", "/p/apiserver.key"
	k.ServiceAccountKeyFile, k.ServiceAccountSigningKeyFile = "/p/sa.pub", "/p/sa.key"
	k.SchedulerKubeconfig, k.ControllerManagerKubeconfig = "/p/scheduler.conf", "/p/cm.conf"
	return k
}

func TestKubeConfigValidate(t *testing.T) {
	if err := validKube().Validate(); err != nil {
		t.Fatalf("valid kube config rejected: %v", err)
	}
	k := validKube()
	k.AdvertiseAddress = "master1"
	k.EtcdServers = []string{"10.0.0.1:2379"}
	k.SchedulerLease.RenewDeadline = k.SchedulerLease.LeaseDuration
	k.APIServerExtraArgs = []string{"-v=2"}
	k.CAFile = ""
	err := k.Validate()
	if err == nil {
		t.Fatal("invalid kube config accepted")
	}
	for _, want := range []string{"advertise_address", "etcd_servers", "scheduler_lease", "apiserver_extra_args", "ca_file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func argMap(t *testing.T, d Definition) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, a := range d.ExecStart[1:] {
		n, v, err := splitFlag(a)
		if err != nil {
			t.Fatalf("generated %q: %v", a, err)
		}
		if _, dup := m[n]; dup {
			t.Errorf("flag --%s generated twice", n)
		}
		if v == nil {
			m[n] = "<bare>"
		} else {
			m[n] = *v
		}
	}
	return m
}

func TestAPIServerCommandLineComesFromConfigAndExtraArgsOverride(t *testing.T) {
	k := validKube()
	k.MaxRequestsInflight = 800
	k.APIServerExtraArgs = []string{"--max-requests-inflight=1000", "--v=2", "--profiling"}
	d, err := k.APIServer()
	if err != nil {
		t.Fatal(err)
	}
	if d.ExecStart[0] != "/usr/local/bin/kube-apiserver" {
		t.Errorf("binary %s", d.ExecStart[0])
	}
	m := argMap(t, d)
	for flag, want := range map[string]string{
		"etcd-servers":             "https://10.0.0.1:2379,https://10.0.0.2:2379",
		"advertise-address":        "10.0.0.1",
		"service-cluster-ip-range": "10.96.0.0/12",
		"client-ca-file":           k.CAFile,
		"max-requests-inflight":    "1000",
		"v":                        "2",
		"profiling":                "<bare>",
	} {
		if m[flag] != want {
			t.Errorf("--%s = %q, want %q", flag, m[flag], want)
		}
	}
	if _, ok := m["etcd-cafile"]; ok {
		t.Errorf("--etcd-cafile generated without an etcd CA")
	}
}

func TestLeaderElectedComponentsKeepLeaderElectWithMasterdsTimings(t *testing.T) {
	k := validKube()
	k.SchedulerLease = LeaseTimings{LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
	k.ControllerManagerLease = LeaseTimings{LeaseDuration: 8 * time.Second, RenewDeadline: 5 * time.Second, RetryPeriod: time.Second}
	k.ClusterCIDR = "10.244.0.0/16"
	s, err := k.Scheduler()
	if err != nil {
		t.Fatal(err)
	}
	cm, err := k.ControllerManager()
	if err != nil {
		t.Fatal(err)
	}
	sm, cmm := argMap(t, s), argMap(t, cm)
	if sm["leader-elect"] != "true" || sm["leader-elect-lease-duration"] != "15s" || sm["leader-elect-renew-deadline"] != "10s" || sm["leader-elect-retry-period"] != "2s" {
		t.Errorf("scheduler lease flags %v", sm)
	}
	if cmm["leader-elect"] != "true" || cmm["leader-elect-lease-duration"] != "8s" || cmm["leader-elect-renew-deadline"] != "5s" || cmm["leader-elect-retry-period"] != "1s" {
		t.Errorf("controller-manager lease flags %v", cmm)
	}
	if cmm["cluster-cidr"] != "10.244.0.0/16" || cmm["allocate-node-cidrs"] != "true" {
		t.Errorf("controller-manager pod CIDR flags %v", cmm)
	}
	if sm["kubeconfig"] != k.SchedulerKubeconfig || cmm["kubeconfig"] != k.ControllerManagerKubeconfig {
		t.Errorf("kubeconfigs: scheduler %q, controller-manager %q", sm["kubeconfig"], cmm["kubeconfig"])
	}
}

func TestRenderQuotesEveryArgumentForSystemd(t *testing.T) {
	d := Definition{ExecStart: []string{"/bin/x", `a b`, `$HOME`, `100%`, `"q"`, `back\slash`},
		Environment: map[string]string{"A": "$x %n"}}
	text, err := d.render("/run/masterd/units/x.env", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"a b"`, `"$$HOME"`, `"100%%"`, `"\"q\""`, `"back\\slash"`,
		`Environment="A=$x %%n"`, "Restart=always", "TimeoutStopSec=2000ms", "EnvironmentFile=-/run/masterd/units/x.env"} {
		if !strings.Contains(text, want) {
			t.Errorf("unit text lacks %s:\n%s", want, text)
		}
	}
	if _, err := (Definition{ExecStart: []string{"/bin/x", "a\nb"}}).render("/e", time.Second); err == nil {
		t.Errorf("an argument with a newline was rendered")
	}
	if _, err := (Definition{}).render("/e", time.Second); err == nil {
		t.Errorf("an empty command line was rendered")
	}
}

func TestUnitNamesMustBeServices(t *testing.T) {
	for _, n := range []string{"", "x", "../x.service", "a b.service", "x.socket"} {
		if validUnitName(n) == nil {
			t.Errorf("%q accepted", n)
		}
	}
	if err := validUnitName(APIServerUnit); err != nil {
		t.Error(err)
	}
}

func FuzzSplitFlag(f *testing.F) {
	for _, s := range []string{"--v=2", "--profiling", "-v", "--=x", "---x", "--a=b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, v, err := splitFlag(s)
		if err != nil {
			return
		}
		got := "--" + name
		if v != nil {
			got += "=" + *v
		}
		if got != s {
			t.Errorf("splitFlag(%q) round-trips to %q", s, got)
		}
	})
}
