package etcdembed

import (
	"strings"
	"testing"
)

// FuzzDecodeVersion: a peer's /version answer comes from the network.
func FuzzDecodeVersion(f *testing.F) {
	f.Add(`{"etcdserver":"3.7.3","etcdcluster":"3.7.0"}`)
	f.Add(`{"etcdserver":"3.7.3","etcdcluster":"not_decided"}`)
	f.Add(`{`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := decodeVersion(strings.NewReader(s))
		if err != nil && v != "" {
			t.Errorf("error %v with version %q", err, v)
		}
	})
}

func TestDecodeVersionReadsTheClusterVersion(t *testing.T) {
	for in, want := range map[string]string{
		`{"etcdserver":"3.7.3","etcdcluster":"3.7.0"}`:       "3.7.0",
		`{"etcdserver":"3.7.3","etcdcluster":"not_decided"}`: notDecided,
	} {
		if got, err := decodeVersion(strings.NewReader(in)); err != nil || got != want {
			t.Errorf("decodeVersion(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := decodeVersion(strings.NewReader("not json")); err == nil {
		t.Error("garbage accepted")
	}
}
