package addons

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"

	"github.com/masterd/masterd/bootstrap"
	"go.yaml.in/yaml/v3"
)

// The manifests follow kubeadm v1.37's (cmd/kubeadm/app/phases/addons):
// same names, labels and RBAC, so a cluster moved between kubeadm and
// masterd keeps its objects.

const coreDNSManifests = `
apiVersion: v1
kind: ServiceAccount
metadata:
  name: coredns
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:coredns
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:coredns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:coredns
subjects:
- kind: ServiceAccount
  name: coredns
  namespace: kube-system
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: coredns
  namespace: kube-system
data:
  Corefile: {{ q .Corefile }}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels:
    k8s-app: kube-dns
    kubernetes.io/cluster-service: "true"
    kubernetes.io/name: CoreDNS
  annotations:
    prometheus.io/port: "9153"
    prometheus.io/scrape: "true"
spec:
  clusterIP: {{ q .DNSIP }}
  selector:
    k8s-app: kube-dns
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
  - {name: metrics, port: 9153, protocol: TCP, targetPort: 9153}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels:
    k8s-app: kube-dns
spec:
  replicas: {{ .Replicas }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 1
  selector:
    matchLabels:
      k8s-app: kube-dns
  template:
    metadata:
      labels:
        k8s-app: kube-dns
    spec:
      priorityClassName: system-cluster-critical
      serviceAccountName: coredns
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              labelSelector:
                matchExpressions:
                - {key: k8s-app, operator: In, values: [kube-dns]}
              topologyKey: kubernetes.io/hostname
      tolerations:
      - {key: CriticalAddonsOnly, operator: Exists}
      - {key: node-role.kubernetes.io/control-plane, effect: NoSchedule}
      nodeSelector:
        kubernetes.io/os: linux
      dnsPolicy: Default
      containers:
      - name: coredns
        image: {{ q .Image }}
        imagePullPolicy: IfNotPresent
        args: ["-conf", "/etc/coredns/Corefile"]
        resources:
          limits: {memory: 170Mi}
          requests: {cpu: 100m, memory: 70Mi}
        volumeMounts:
        - {name: config-volume, mountPath: /etc/coredns, readOnly: true}
        ports:
        - {containerPort: 53, name: dns, protocol: UDP}
        - {containerPort: 53, name: dns-tcp, protocol: TCP}
        - {containerPort: 9153, name: metrics, protocol: TCP}
        - {containerPort: 8080, name: liveness-probe, protocol: TCP}
        - {containerPort: 8181, name: readiness-probe, protocol: TCP}
        livenessProbe:
          httpGet: {path: /health, port: liveness-probe, scheme: HTTP}
          initialDelaySeconds: 60
          timeoutSeconds: 5
          successThreshold: 1
          failureThreshold: 5
        readinessProbe:
          httpGet: {path: /ready, port: readiness-probe, scheme: HTTP}
        securityContext:
          allowPrivilegeEscalation: false
          capabilities:
            add: [NET_BIND_SERVICE]
            drop: [ALL]
          readOnlyRootFilesystem: true
      volumes:
      - name: config-volume
        configMap:
          name: coredns
          items:
          - {key: Corefile, path: Corefile}
`

const corefile = `.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes {{ .Domain }} in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success {{ .Domain }}
       disable denial {{ .Domain }}
    }
    loop
    reload
    loadbalance
}
`

const kubeProxyManifests = `
apiVersion: v1
kind: ServiceAccount
metadata:
  name: kube-proxy
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kubeadm:node-proxier
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:node-proxier
subjects:
- kind: ServiceAccount
  name: kube-proxy
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: kube-proxy
  namespace: kube-system
rules:
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [kube-proxy]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: kube-proxy
  namespace: kube-system
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: kube-proxy
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: {{ q .BootstrapGroup }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: kube-proxy
  namespace: kube-system
  labels:
    app: kube-proxy
data:
  kubeconfig.conf: {{ q .Kubeconfig }}
  config.conf: {{ q .ProxyConfig }}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-proxy
  namespace: kube-system
  labels:
    k8s-app: kube-proxy
spec:
  selector:
    matchLabels:
      k8s-app: kube-proxy
  updateStrategy:
    type: RollingUpdate
  template:
    metadata:
      labels:
        k8s-app: kube-proxy
    spec:
      priorityClassName: system-node-critical
      hostNetwork: true
      serviceAccountName: kube-proxy
      nodeSelector:
        kubernetes.io/os: linux
      tolerations:
      - operator: Exists
      containers:
      - name: kube-proxy
        image: {{ q .Image }}
        imagePullPolicy: IfNotPresent
        command:
        - /usr/local/bin/kube-proxy
        - --config=/var/lib/kube-proxy/config.conf
        - --hostname-override=$(NODE_NAME)
        env:
        - name: NODE_NAME
          valueFrom:
            fieldRef: {fieldPath: spec.nodeName}
        securityContext:
          privileged: true
        volumeMounts:
        - {mountPath: /var/lib/kube-proxy, name: kube-proxy}
        - {mountPath: /run/xtables.lock, name: xtables-lock, readOnly: false}
        - {mountPath: /lib/modules, name: lib-modules, readOnly: true}
      volumes:
      - name: kube-proxy
        configMap: {name: kube-proxy}
      - name: xtables-lock
        hostPath: {path: /run/xtables.lock, type: FileOrCreate}
      - name: lib-modules
        hostPath: {path: /lib/modules}
`

// kubeProxyKubeconfig is kube-proxy's kubeconfig: the VIP, the cluster CA
// and the pod's service-account token, both from the projected volume.
const kubeProxyKubeconfig = `apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
    server: {{ .Server }}
  name: default
contexts:
- context:
    cluster: default
    namespace: default
    user: default
  name: default
current-context: default
users:
- name: default
  user:
    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
`

// kubeProxyConfig is config.conf, a KubeProxyConfiguration (kubeadm join
// reads and decodes it, so it stays within the v1alpha1 schema).
// conntrack.maxPerCore 0 leaves nf_conntrack_max as the host has it (as kind
// does): kube-proxy in a network namespace other than the initial one, a
// container host's, cannot set it and would exit.
const kubeProxyConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
bindAddress: 0.0.0.0
clientConnection:
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
clusterCIDR: "{{ .ClusterCIDR }}"
conntrack:
  maxPerCore: 0
mode: {{ .Mode }}
`

var funcs = template.FuncMap{"q": func(v any) (string, error) {
	b, err := json.Marshal(fmt.Sprint(v))
	return string(b), err
}}

func execute(name, text string, data any) (string, error) {
	t, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("addons: template %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("addons: render %s: %w", name, err)
	}
	return b.String(), nil
}

// decode splits a multi-document YAML text into objects.
func decode(name, text string) ([]bootstrap.Object, error) {
	var out []bootstrap.Object
	for i, doc := range strings.Split(text, "\n---\n") {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			return nil, fmt.Errorf("addons: %s document %d: %w", name, i, err)
		}
		obj := bootstrap.Object(o)
		if _, err := obj.Path(); err != nil {
			return nil, fmt.Errorf("addons: %s document %d: %w", name, i, err)
		}
		out = append(out, obj)
	}
	return out, nil
}

// CoreDNS renders the CoreDNS objects: ServiceAccount, ClusterRole and
// binding system:coredns, ConfigMap coredns (Corefile), Service kube-dns at
// the cluster DNS address and Deployment coredns.
func CoreDNS(c Config) ([]bootstrap.Object, error) {
	dns, err := bootstrap.DNSIP(c.ServiceCIDR)
	if err != nil {
		return nil, fmt.Errorf("addons: coredns: %w", err)
	}
	cf, err := execute("Corefile", corefile, map[string]any{"Domain": c.ClusterDomain})
	if err != nil {
		return nil, err
	}
	text, err := execute("coredns", coreDNSManifests, map[string]any{
		"Corefile": cf, "DNSIP": dns, "Image": c.CoreDNS.Image, "Replicas": c.CoreDNS.Replicas,
	})
	if err != nil {
		return nil, err
	}
	return decode("coredns", text)
}

// KubeProxy renders the kube-proxy objects: ServiceAccount, the
// system:node-proxier binding, ConfigMap kube-proxy (kubeconfig.conf with
// the VIP server, config.conf) readable by bootstrap tokens as kubeadm
// does, and DaemonSet kube-proxy on every node.
func KubeProxy(c Config) ([]bootstrap.Object, error) {
	kc, err := execute("kube-proxy kubeconfig", kubeProxyKubeconfig, map[string]any{"Server": c.Server})
	if err != nil {
		return nil, err
	}
	cidr := ""
	if c.PodCIDR.IsValid() {
		cidr = c.PodCIDR.Masked().String()
	}
	pc, err := execute("kube-proxy config", kubeProxyConfig, map[string]any{"ClusterCIDR": cidr, "Mode": c.KubeProxy.Mode})
	if err != nil {
		return nil, err
	}
	text, err := execute("kube-proxy", kubeProxyManifests, map[string]any{
		"Kubeconfig": kc, "ProxyConfig": pc, "Image": c.KubeProxy.Image, "BootstrapGroup": bootstrap.NodeBootstrapGroup,
	})
	if err != nil {
		return nil, err
	}
	return decode("kube-proxy", text)
}

// Objects renders every enabled addon.
func Objects(c Config) ([]bootstrap.Object, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("addons: config: %w", err)
	}
	var out []bootstrap.Object
	if c.CoreDNS.Enabled {
		objs, err := CoreDNS(c)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	if c.KubeProxy.Enabled {
		objs, err := KubeProxy(c)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}
