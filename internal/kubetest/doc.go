// Package kubetest is test support for the tests that run the real
// kube-apiserver: it finds the cached kube binaries, re-runs the test binary
// inside a network namespace of the test's own (the node address and the VIP
// on its loopback), and starts a one-member embedded etcd with mutual TLS
// there. Each test keeps its own certificates, apiserver flags and checks.
package kubetest
