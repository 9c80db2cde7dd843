package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// served returns the certificate presented on addr (the handshake may then
// fail for want of a client certificate; the server's is kept).
func served(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	var got *x509.Certificate
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			c, err := x509.ParseCertificate(raw[0])
			got = c
			return err
		}}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, _ := d.DialContext(ctx, "tcp", addr); conn != nil {
		conn.Close()
	}
	if got == nil {
		t.Fatalf("no certificate presented on %s", addr)
	}
	return got
}

// TestCertsRenewReachesTheRunningEtcd: masterd certs renew asks the running
// daemon, which reissues etcd's serving and peer certificates; its etcd
// serves the new ones on both ports at once (checked by a handshake), the
// cluster keeps its three members, and check-expiration says the served
// certificate is the file's. Without a daemon the command renews on disk.
func TestCertsRenewReachesTheRunningEtcd(t *testing.T) {
	l := newEtcdLab(t)
	for _, d := range l.ds {
		l.start(d)
	}
	l.waitMembers(l.ds[0], 3)
	m1 := l.ds[0]
	client, peer := m1.addr+":12479", m1.addr+":12480"
	oldClient, oldPeer := served(t, client), served(t, peer)

	code, out, errOut := l.masterd("certs", "check-expiration", "--config", l.config(m1))
	if code != 0 {
		t.Fatalf("check-expiration: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"CERTIFICATE", "RESIDUAL TIME", "etcd-server", "same, served on " + client, "same, served on " + peer, "etcd-ca", "self-signed"} {
		if !strings.Contains(out, want) {
			t.Errorf("check-expiration lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = l.masterd("certs", "renew", "etcd-server", "etcd-peer", "--config", l.config(m1))
	t.Logf("certs renew:\n%s%s", out, errOut)
	if code != 0 {
		t.Fatalf("certs renew: exit %d", code)
	}
	for _, want := range []string{"etcd-server renewed", "etcd-peer renewed", "etcd-server served on " + client, "etcd-peer served on " + peer} {
		if !strings.Contains(out, want) {
			t.Errorf("renew output lacks %q", want)
		}
	}
	newClient, newPeer := served(t, client), served(t, peer)
	if newClient.Equal(oldClient) || newPeer.Equal(oldPeer) {
		t.Errorf("etcd still serves the old certificate (client port renewed %v, peer port renewed %v)", !newClient.Equal(oldClient), !newPeer.Equal(oldPeer))
	}
	// The peers still talk to m1 over its renewed peer certificate.
	l.waitMembers(l.ds[1], 3)
	if _, err := l.client(l.ds[1]).Put(context.Background(), "/rotation-test", "after-renew"); err != nil {
		t.Fatalf("write after renew: %v", err)
	}
	code, out, _ = l.masterd("certs", "check-expiration", "--config", l.config(m1))
	if code != 0 || strings.Contains(out, "OLD") || !strings.Contains(out, "same, served on "+client) {
		t.Errorf("check-expiration after renew (exit %d):\n%s", code, out)
	}

	// Names are checked before anything is asked.
	for args, want := range map[string]string{"kube-ca": "is a CA", "apiserver.crt": "unknown certificate", "": "name a certificate or all"} {
		argv := []string{"certs", "renew", "--config", l.config(m1)}
		if args != "" {
			argv = append(argv, args)
		}
		code, _, errOut := l.masterd(argv...)
		if code != 2 || !strings.Contains(errOut, want) {
			t.Errorf("certs renew %s: exit %d, stderr %q; want 2 and %q", args, code, errOut, want)
		}
	}

	// No daemon: renewed on disk, and served by the next start.
	l.stop(m1)
	code, out, errOut = l.masterd("certs", "renew", "etcd-server", "--config", l.config(m1))
	if code != 0 || !strings.Contains(out, "etcd-server.crt written (renewal requested)") || !strings.Contains(out, "masterd is not running here") {
		t.Fatalf("certs renew without daemon: exit %d\n%s%s", code, out, errOut)
	}
	l.start(m1)
	l.waitMembers(m1, 3)
	if served(t, client).Equal(newClient) {
		t.Error("the restarted etcd serves the certificate of before the on-disk renewal")
	}
}

// gossipView is what /status says about gossip: the keyring section and how
// many members the election sees alive.
func gossipView(d *daemon) (gens []int, primary int, alive int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+d.metrics+"/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, 0, err
	}
	defer resp.Body.Close()
	var st struct {
		Sections struct {
			Keys struct {
				Generations []int `json:"generations"`
				Primary     int   `json:"primary"`
			} `json:"gossip-keys"`
			Election struct {
				Members []struct {
					State string `json:"state"`
				} `json:"members"`
			} `json:"election"`
		} `json:"sections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, 0, 0, err
	}
	for _, m := range st.Sections.Election.Members {
		if m.State == "alive" {
			alive++
		}
	}
	return st.Sections.Keys.Generations, st.Sections.Keys.Primary, alive, nil
}

// TestKeysRotateGossipKeepsEveryRoleHolder: masterd keys rotate-gossip on
// one of three running daemons rolls the memberlist key (install, use,
// remove, each acknowledged by all three): every role keeps its holder and
// term, sampled every 100 ms on every daemon, and every daemon ends on the
// new generation alone with its two peers alive. A master that then loses
// its keyring state (it restarts on the cluster secret's key, which nobody
// uses any more) reads the keyring from etcd and rejoins; with a master
// down, a roll stops at its first step, names it, and the next run, once it
// is back, finishes.
func TestKeysRotateGossipKeepsEveryRoleHolder(t *testing.T) {
	l := newEtcdLab(t)
	for _, d := range l.ds {
		l.start(d)
	}
	l.waitMembers(l.ds[0], 3)
	holders := func() map[string]roleView {
		out := map[string]roleView{}
		for _, d := range l.ds {
			rs, err := d.roles()
			if err != nil {
				return nil
			}
			for role, v := range rs {
				if v.Leader {
					if _, dup := out[role]; dup {
						t.Errorf("role %s held twice", role)
					}
					out[role] = roleView{Holder: d.name, Term: v.Term}
				}
			}
		}
		return out
	}
	var before map[string]roleView
	poll(t, "every role held", func() bool {
		before = holders()
		return len(before) == 2
	})
	stop := make(chan struct{})
	changes := make(chan string, 100)
	samples := 0
	go func() {
		defer close(changes)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			samples++
			for role, v := range holders() {
				if v != before[role] {
					changes <- fmt.Sprintf("%s: %+v, was %+v", role, v, before[role])
				}
			}
		}
	}()
	code, out, errOut := l.masterd("keys", "rotate-gossip", "--config", l.config(l.ds[0]))
	t.Logf("keys rotate-gossip:\n%s%s", out, errOut)
	close(stop)
	var lost []string
	for c := range changes {
		lost = append(lost, c)
	}
	if code != 0 {
		t.Fatalf("rotate-gossip: exit %d", code)
	}
	for _, want := range []string{"step 1/3 install", "step 2/3 use", "step 3/3 remove", "applied by m1, m2, m3", "gossip key rotated: generations [1], primary 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if len(lost) > 0 {
		t.Errorf("a role changed hands during the roll (%d of %d samples): %v", len(lost), samples, lost)
	}
	t.Logf("%d samples of the role holders on 3 daemons, holders unchanged: %v", samples, len(lost) == 0)
	for _, d := range l.ds {
		gens, primary, alive, err := gossipView(d)
		if err != nil || !slices.Equal(gens, []int{1}) || primary != 1 || alive != 3 {
			t.Errorf("%s after the roll: generations %v primary %d, %d alive, %v", d.name, gens, primary, alive, err)
		}
	}
	code, out, _ = l.masterd("keys", "status", "--config", l.config(l.ds[1]))
	if code != 0 || !strings.Contains(out, "no roll in progress") || strings.Count(out, " yes") != 3 {
		t.Errorf("keys status (exit %d):\n%s", code, out)
	}

	// m3 loses its keyring state: it starts on generation 0, then takes
	// the record from etcd and is back in gossip.
	m3 := l.ds[2]
	l.stop(m3)
	if err := os.Remove(filepath.Join(l.dir, m3.name, "gossip-keys.json")); err != nil {
		t.Fatal(err)
	}
	l.start(m3)
	poll(t, "m3 back in gossip on generation 1", func() bool {
		gens, _, alive, err := gossipView(m3)
		_, _, alive1, _ := gossipView(l.ds[0])
		return err == nil && slices.Equal(gens, []int{1}) && alive == 3 && alive1 == 3
	})

	// With m3 down a roll stops at its first step and names m3.
	l.stop(m3)
	code, out, errOut = l.masterd("keys", "rotate-gossip", "--timeout", "3s", "--config", l.config(l.ds[0]))
	if code != 1 || !strings.Contains(errOut, "m3 did not apply") {
		t.Fatalf("roll with m3 down: exit %d\n%s%s", code, out, errOut)
	}
	l.start(m3)
	code, out, errOut = l.masterd("keys", "rotate-gossip", "--config", l.config(l.ds[0]))
	if code != 0 || !strings.Contains(out, "gossip key rotated: generations [2], primary 2") {
		t.Fatalf("resumed roll: exit %d\n%s%s", code, out, errOut)
	}
	poll(t, "every daemon on generation 2 with its peers alive", func() bool {
		for _, d := range l.ds {
			gens, _, alive, err := gossipView(d)
			if err != nil || !slices.Equal(gens, []int{2}) || alive != 3 {
				return false
			}
		}
		return true
	})
}
