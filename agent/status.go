package agent

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/masterd/masterd/election"
	"github.com/masterd/masterd/lb"
)

// Status is the JSON document of /status, read by `masterd status`.
type Status struct {
	Node       string            `json:"node"`
	Build      BuildInfo         `json:"build"`
	Uptime     float64           `json:"uptimeSeconds"`
	Ready      bool              `json:"ready"`
	Components map[string]string `json:"components"`
	// Sections holds each StatusReporter's value by component name
	// (election, etcd, pki, vip, lb, units).
	Sections map[string]json.RawMessage `json:"sections,omitempty"`
}

// The sections of the /status document (Status.Sections), by component
// name. The agent encodes them and `masterd status` decodes them: one set of
// types, every key lowerCamel.
//
//	"election"  ElectionStatus
//	"etcd"      EtcdStatus
//	"vip"       VIPStatus
//	"lb"        []lb.BackendStatus
//	"kube"      []UnitStatus
//	"pki"       []CertStatus
type (
	// ElectionStatus is the election's section.
	ElectionStatus struct {
		Roles      map[string]election.RoleInfo `json:"roles"`
		Members    []election.Member            `json:"members"`
		Membership election.Membership          `json:"membership"`
		EpochFloor uint64                       `json:"epochFloor"`
		Settled    bool                         `json:"settled"`
	}

	// EtcdStatus is the embedded etcd member's section.
	EtcdStatus struct {
		ID      string   `json:"id"`
		Leader  bool     `json:"leader"`
		Members []string `json:"members"`
		Healthy bool     `json:"healthy"`
		Error   string   `json:"error,omitempty"`
	}

	// VIPStatus is the VIP's section.
	VIPStatus struct {
		Address string `json:"address"`
		Owned   bool   `json:"owned"`
		Fence   bool   `json:"fence"`
	}

	// UnitStatus is one kube unit in the "kube" section.
	UnitStatus struct {
		Name     string `json:"name"`
		Active   string `json:"active"`
		Sub      string `json:"sub"`
		PID      uint32 `json:"pid"`
		Restarts uint64 `json:"restarts"`
		// Version is what the unit's binary reports for --version
		// ("v1.37.2"), read at start; empty where unknown (existing mode).
		Version string `json:"version,omitempty"`
		// Refused says why the version skew policy keeps the unit from
		// running on this master (versions.go); empty when allowed.
		Refused string `json:"refused,omitempty"`
	}

	// CertStatus is one certificate in the "pki" section.
	CertStatus struct {
		Name     string    `json:"name"`
		NotAfter time.Time `json:"notAfter"`
		Days     int       `json:"daysLeft"`
		// InUseNotAfter is the NotAfter of the certificate the running
		// component uses, where masterd knows it (the apiserver's served
		// one, a leader-only unit's as of its start); nil elsewhere.
		InUseNotAfter *time.Time `json:"inUseNotAfter,omitempty"`
	}
)

// BackendStatus is one backend in the "lb" section.
type BackendStatus = lb.BackendStatus

// DecodeStatus decodes a /status document.
func DecodeStatus(b []byte) (Status, error) {
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	return st, nil
}

// Section decodes the section of component name into v (a pointer to its
// type above) and reports whether the document has it.
func (s Status) Section(name string, v any) (bool, error) {
	raw, ok := s.Sections[name]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("status: section %s: %w", name, err)
	}
	return true, nil
}
