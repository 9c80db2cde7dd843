package units

// AuditPolicy is kube-apiserver's default audit policy (--audit-policy-file):
// every request at the Metadata level (who, what, when, the response code;
// never a request or response body, so no Secret's content), logged once
// at ResponseComplete (RequestReceived omitted), except the high-volume
// noise that says nothing about who did what: health probes and the lease
// renewals of kubelets and the leader-elected components.
const AuditPolicy = `# Written by masterd (kubernetes.audit); do not edit.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages:
  - RequestReceived
rules:
  - level: None
    nonResourceURLs:
      - /healthz*
      - /livez*
      - /readyz*
      - /version
  - level: None
    userGroups: ["system:nodes"]
    verbs: ["get", "update", "patch"]
    resources:
      - group: coordination.k8s.io
        resources: ["leases"]
  - level: None
    users: ["system:kube-scheduler", "system:kube-controller-manager"]
    verbs: ["get", "update"]
    resources:
      - group: coordination.k8s.io
        resources: ["leases"]
  - level: Metadata
`
