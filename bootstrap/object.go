package bootstrap

import (
	"fmt"
	"net/url"
)

// Object is one Kubernetes object as JSON-shaped data: apiVersion, kind,
// metadata (name, namespace for namespaced kinds) and the rest.
type Object map[string]any

// resource says where a kind lives in the API.
type resource struct {
	plural     string
	namespaced bool
}

// resources are the kinds masterd applies, by apiVersion and kind.
var resources = map[[2]string]resource{
	{"v1", "ConfigMap"}:                                    {"configmaps", true},
	{"v1", "Secret"}:                                       {"secrets", true},
	{"v1", "Service"}:                                      {"services", true},
	{"v1", "ServiceAccount"}:                               {"serviceaccounts", true},
	{"apps/v1", "Deployment"}:                              {"deployments", true},
	{"apps/v1", "DaemonSet"}:                               {"daemonsets", true},
	{"rbac.authorization.k8s.io/v1", "Role"}:               {"roles", true},
	{"rbac.authorization.k8s.io/v1", "RoleBinding"}:        {"rolebindings", true},
	{"rbac.authorization.k8s.io/v1", "ClusterRole"}:        {"clusterroles", false},
	{"rbac.authorization.k8s.io/v1", "ClusterRoleBinding"}: {"clusterrolebindings", false},
}

func (o Object) str(k string) string { s, _ := o[k].(string); return s }

func (o Object) meta(k string) string {
	m, _ := o["metadata"].(map[string]any)
	s, _ := m[k].(string)
	return s
}

// Name is metadata.name.
func (o Object) Name() string { return o.meta("name") }

// Namespace is metadata.namespace.
func (o Object) Namespace() string { return o.meta("namespace") }

// Kind is the object's kind.
func (o Object) Kind() string { return o.str("kind") }

// String names the object: Kind namespace/name.
func (o Object) String() string {
	if ns := o.Namespace(); ns != "" {
		return o.Kind() + " " + ns + "/" + o.Name()
	}
	return o.Kind() + " " + o.Name()
}

// Path is the object's URL path on the apiserver.
func (o Object) Path() (string, error) {
	av, kind, name, ns := o.str("apiVersion"), o.Kind(), o.Name(), o.Namespace()
	r, ok := resources[[2]string{av, kind}]
	if !ok {
		return "", fmt.Errorf("bootstrap: unknown kind %s %s", av, kind)
	}
	if name == "" {
		return "", fmt.Errorf("bootstrap: %s without metadata.name", kind)
	}
	if r.namespaced != (ns != "") {
		return "", fmt.Errorf("bootstrap: %s %s: namespace %q for a kind that is namespaced=%t", kind, name, ns, r.namespaced)
	}
	return CollectionPath(av, r.plural, ns) + "/" + url.PathEscape(name), nil
}

// CollectionPath is the URL path of a resource collection (ns empty for
// cluster-scoped resources).
func CollectionPath(apiVersion, plural, ns string) string {
	p := "/api/v1"
	if apiVersion != "v1" {
		p = "/apis/" + apiVersion
	}
	if ns != "" {
		p += "/namespaces/" + url.PathEscape(ns)
	}
	return p + "/" + plural
}
