package units

import (
	"strings"
	"testing"
	"time"
)

func masterKubelet() KubeletConfig {
	return KubeletConfig{BinDir: "/usr/local/bin", NodeName: "m1", NodeIP: "10.0.0.1",
		Kubeconfig: "/var/lib/masterd/kubelet/kubelet.conf", ConfigFile: "/var/lib/masterd/kubelet/config.yaml"}
}

// The master kubelet's unit names the node, its address and its files, and
// an extra argument replaces the generated flag of the same name.
func TestMasterKubeletUnit(t *testing.T) {
	k := masterKubelet()
	k.ExtraArgs = []string{"--node-ip=10.0.0.9", "--v=2"}
	d, err := k.Kubelet()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/usr/local/bin/kubelet", "--config=/var/lib/masterd/kubelet/config.yaml", "--kubeconfig=/var/lib/masterd/kubelet/kubelet.conf",
		"--hostname-override=m1", "--node-ip=10.0.0.9", "--v=2"}
	if strings.Join(d.ExecStart, " ") != strings.Join(want, " ") {
		t.Errorf("ExecStart %q\nwant      %q", d.ExecStart, want)
	}
	text, err := d.render("/run/masterd/masterd-kubelet.env", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"After=network-online.target containerd.service", "Restart=always", "RestartSec=2000ms", `ExecStart="/usr/local/bin/kubelet"`} {
		if !strings.Contains(text, line) {
			t.Errorf("unit lacks %q:\n%s", line, text)
		}
	}
	if KubeletUnit == "kubelet.service" {
		t.Error("the unit must not be kubelet.service: the packages' drop-ins would replace its command line")
	}
}

func TestMasterKubeletUnitNamesEveryBadField(t *testing.T) {
	k := KubeletConfig{BinDir: "bin", NodeIP: "ten", Kubeconfig: "k.conf", ExtraArgs: []string{"-v"}}
	_, err := k.Kubelet()
	for _, want := range []string{`bin_dir "bin"`, "node_name: required", `node_ip "ten"`, `kubeconfig "k.conf"`, `config_file ""`, `extra_args: argument "-v"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\nwant it to contain %q", err, want)
		}
	}
}
