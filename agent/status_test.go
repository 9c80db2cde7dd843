package agent

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/masterd/masterd/election"
	"github.com/masterd/masterd/lb"
)

// upperKeys reports every object key of the JSON document v that starts
// with an upper-case letter, by its path.
func upperKeys(v any, path string) []string {
	var bad []string
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if k != "" && unicode.IsUpper(rune(k[0])) {
				bad = append(bad, path+"."+k)
			}
			bad = append(bad, upperKeys(e, path+"."+k)...)
		}
	case []any:
		for _, e := range x {
			bad = append(bad, upperKeys(e, path+"[]")...)
		}
	}
	return bad
}

// Every section type of /status, filled in, encodes with lowerCamel keys
// only, and decodes back through DecodeStatus and Section into the same
// types.
func TestStatusSectionsAreLowerCamelAndRoundTrip(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	sections := map[string]any{
		"election": ElectionStatus{
			Roles: map[string]election.RoleInfo{"vip": {Holder: "m1", Term: 3, Leader: true, Quorum: true, State: "leader", Learning: true}},
			Members: []election.Member{{Name: "m1", Addr: "10.0.0.1", State: "alive", Voter: true,
				Eligibility: map[string]election.Eligibility{"vip": {Healthy: true, Priority: 2}}}},
			Membership: election.Membership{Epoch: 2, Voters: []string{"m1"}, Old: []string{"m1", "m2"}},
			EpochFloor: 2, Settled: true,
		},
		"etcd": EtcdStatus{ID: "ab", Leader: true, Members: []string{"m1"}, Healthy: false, Error: "x"},
		"vip":  VIPStatus{Address: "10.0.0.100", Owned: true, Fence: true},
		"lb": []lb.BackendStatus{{Name: "m1", Address: netip.MustParseAddrPort("10.0.0.1:6443"), Up: true, Active: 2, Total: 9,
			LastCheck: now, LastChange: now, LastError: "refused"}},
		"kube": []UnitStatus{{Name: "kube-apiserver.service", Active: "active", Sub: "running", PID: 42, Restarts: 1}},
		"pki":  []CertStatus{{Name: "etcd-server", NotAfter: now, Days: 300}},
	}
	st := Status{Node: "m1", Build: BuildInfo{Version: "v1"}, Uptime: 3, Ready: true,
		Components: map[string]string{"vip": "running"}, Sections: map[string]json.RawMessage{}}
	for name, v := range sections {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		st.Sections[name] = b
	}
	doc, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var generic any
	if err := json.Unmarshal(doc, &generic); err != nil {
		t.Fatal(err)
	}
	if bad := upperKeys(generic, ""); len(bad) > 0 {
		t.Errorf("keys not lowerCamel: %s\n%s", strings.Join(bad, ", "), doc)
	}
	for _, key := range []string{`"holder":"m1"`, `"eligibility":{"vip":{"healthy":true,"priority":2}}`, `"up":true`, `"lastError":"refused"`, `"daysLeft":300`} {
		if !strings.Contains(string(doc), key) {
			t.Errorf("document lacks %s:\n%s", key, doc)
		}
	}

	got, err := DecodeStatus(doc)
	if err != nil {
		t.Fatal(err)
	}
	var el ElectionStatus
	if ok, err := got.Section("election", &el); !ok || err != nil || el.Roles["vip"].Holder != "m1" || !el.Members[0].Eligibility["vip"].Healthy {
		t.Errorf("election section: %v %v %+v", ok, err, el)
	}
	var bs []BackendStatus
	if ok, err := got.Section("lb", &bs); !ok || err != nil || len(bs) != 1 || !bs[0].Up || bs[0].Address.Port() != 6443 {
		t.Errorf("lb section: %v %v %+v", ok, err, bs)
	}
	var certs []CertStatus
	if ok, err := got.Section("pki", &certs); !ok || err != nil || certs[0].Days != 300 {
		t.Errorf("pki section: %v %v %+v", ok, err, certs)
	}
	if ok, err := got.Section("absent", &certs); ok || err != nil {
		t.Errorf("absent section: %v %v", ok, err)
	}
	var v VIPStatus
	if _, err := got.Section("pki", &v); err == nil || !strings.Contains(err.Error(), "section pki") {
		t.Errorf("a section of another type: %v, want an error naming it", err)
	}
	if _, err := DecodeStatus([]byte("{")); err == nil {
		t.Error("DecodeStatus of broken JSON: no error")
	}
}
