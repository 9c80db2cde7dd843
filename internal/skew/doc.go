// Package skew is the version skew policy of upstream Kubernetes for the
// control plane masterd runs, as pure logic: versions in, decisions out. The
// agent feeds it the kube binaries' versions every master published and
// refuses to start a component it refuses; `masterd upgrade plan` prints
// what it finds.
//
// The policy (https://kubernetes.io/releases/version-skew-policy/), on the
// minor version of one major:
//
//   - kube-apiserver: every two apiservers of the cluster are within one
//     minor of each other (1.36 and 1.37 together, never 1.36 and 1.38);
//   - kube-scheduler and kube-controller-manager: never newer than the
//     oldest apiserver, and at most one minor older than the newest.
//
// Patch releases never matter. A master's component whose version is
// unknown (not published: an older masterd, existing mode) constrains
// nothing, and an apiserver a master does not run (Master.APIServerDown:
// refused, or its masterd stopped) is not compared with.
//
// Which side refuses: the component about to start. A running apiserver is
// never checked again (CheckAPIServer is called before a start); the
// leader-only components are checked before every start and while they run.
package skew
