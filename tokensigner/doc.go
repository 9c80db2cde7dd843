// Package tokensigner serves kube-apiserver's external service-account
// token signer: the ExternalJWTSigner gRPC service (k8s.io/externaljwt, GA
// in Kubernetes 1.36) on a local Unix socket, given to the apiserver with
// --service-account-signing-endpoint.
//
// The apiserver asks it to sign each token it issues (Sign), and fetches the
// public keys that verify tokens (FetchKeys) at start, every refresh hint,
// and at once when a token names a key id it does not know. The keys are
// therefore whatever the caller last gave SetKeys: a key rotation changes
// what the running apiservers sign and accept without restarting them,
// which the key files (--service-account-key-file, read once at start)
// cannot do.
//
// A Server signs with ES256 (ECDSA P-256) or RS256 (RSA) keys and names
// each key by the id kube-apiserver computes for its own key files
// (pki.KeyID), so tokens signed before and after masterd served the signer
// name the same key. It checks nothing about the claims: the apiserver
// builds and validates them; this process only holds the keys.
//
// While the signer does not answer (masterd restarting), the apiserver
// keeps verifying with the keys it fetched last and fails only new
// TokenRequests, which kubelets retry.
package tokensigner
