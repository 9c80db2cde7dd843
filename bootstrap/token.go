package bootstrap

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
)

// What kubeadm writes, from k8s.io/cluster-bootstrap/token/api and
// cmd/kubeadm/app/constants (v1.37).
const (
	// SecretType is the type of a bootstrap-token Secret.
	SecretType = "bootstrap.kubernetes.io/token"
	// SecretPrefix prefixes the token id in the Secret's name.
	SecretPrefix = "bootstrap-token-"
	// NodeBootstrapGroup is the extra group kubeadm gives its node tokens;
	// the RBAC published by Publish is bound to it.
	NodeBootstrapGroup = "system:bootstrappers:kubeadm:default-node-token"
	// NodesGroup is the group of every kubelet with a node certificate.
	NodesGroup = "system:nodes"
	// DefaultTTL is kubeadm's default token lifetime.
	DefaultTTL = 24 * time.Hour
)

var (
	tokenRE   = regexp.MustCompile(`^([a-z0-9]{6})\.([a-z0-9]{16})$`)
	tokenIDRE = regexp.MustCompile(`^[a-z0-9]{6}$`)
)

const tokenChars = "abcdefghijklmnopqrstuvwxyz0123456789"

// Token is a bootstrap token, id.secret.
type Token struct {
	ID     string
	Secret string
}

// String is the token as users pass it: id.secret.
func (t Token) String() string { return t.ID + "." + t.Secret }

// ParseToken checks the format [a-z0-9]{6}.[a-z0-9]{16}.
func ParseToken(s string) (Token, error) {
	m := tokenRE.FindStringSubmatch(s)
	if m == nil {
		return Token{}, errors.New("bootstrap: token is not of the form [a-z0-9]{6}.[a-z0-9]{16}")
	}
	return Token{ID: m[1], Secret: m[2]}, nil
}

// GenerateToken draws a token from r (crypto/rand.Reader in production),
// each character uniform over [a-z0-9].
func GenerateToken(r io.Reader) (Token, error) {
	s, err := randomString(r, 22)
	if err != nil {
		return Token{}, fmt.Errorf("bootstrap: generate token: %w", err)
	}
	return Token{ID: s[:6], Secret: s[6:]}, nil
}

// randomString draws n characters of tokenChars by rejection sampling
// (252 = 7·36 is the largest multiple of 36 below 256: no bias).
func randomString(r io.Reader, n int) (string, error) {
	var b strings.Builder
	buf := make([]byte, 32)
	for b.Len() < n {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		for _, c := range buf {
			if c < 252 && b.Len() < n {
				b.WriteByte(tokenChars[int(c)%36])
			}
		}
	}
	return b.String(), nil
}

// TokenOptions say how a token is made.
type TokenOptions struct {
	// TTL is the lifetime from now; 0 means the token never expires.
	TTL time.Duration
	// Description is shown by list.
	Description string
	// Groups are extra groups the token authenticates with (default:
	// NodeBootstrapGroup).
	Groups []string
	// Usages (default: signing and authentication).
	Usages []string
}

// TokenSecret is the Secret kubeadm writes for t (BootstrapTokenToSecret in
// cmd/kubeadm/app/apis/bootstraptoken/v1): kube-system/bootstrap-token-<id>
// of type bootstrap.kubernetes.io/token, expiration in RFC 3339 UTC.
func TokenSecret(t Token, o TokenOptions, now time.Time) Object {
	data := map[string]string{"token-id": t.ID, "token-secret": t.Secret}
	if o.Description != "" {
		data["description"] = o.Description
	}
	if o.TTL > 0 {
		data["expiration"] = now.Add(o.TTL).UTC().Format(time.RFC3339)
	}
	usages := o.Usages
	if len(usages) == 0 {
		usages = []string{"signing", "authentication"}
	}
	for _, u := range usages {
		data["usage-bootstrap-"+u] = "true"
	}
	groups := o.Groups
	if groups == nil {
		groups = []string{NodeBootstrapGroup}
	}
	if len(groups) > 0 {
		data["auth-extra-groups"] = strings.Join(groups, ",")
	}
	enc := map[string]any{}
	for k, v := range data {
		enc[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	return Object{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": SecretPrefix + t.ID, "namespace": "kube-system"},
		"type":     SecretType,
		"data":     enc,
	}
}

var validUsages = map[string]bool{"signing": true, "authentication": true}

// Validate reports every problem of o at once.
func (o TokenOptions) Validate() error {
	var errs []error
	if o.TTL < 0 {
		errs = append(errs, fmt.Errorf("ttl: %s is negative (0 means never expires)", o.TTL))
	}
	for _, u := range o.Usages {
		if !validUsages[u] {
			errs = append(errs, fmt.Errorf("usages: %q is not signing or authentication", u))
		}
	}
	for _, g := range o.Groups {
		if !strings.HasPrefix(g, "system:bootstrappers:") {
			errs = append(errs, fmt.Errorf("groups: %q does not start with system:bootstrappers: (the apiserver rejects such a token)", g))
		}
	}
	return errors.Join(errs...)
}

// CreateToken writes a new random token's Secret (failing if its id exists,
// as kubeadm token create does) and returns the token.
func CreateToken(ctx context.Context, c *Client, o TokenOptions, now time.Time) (Token, error) {
	if err := o.Validate(); err != nil {
		return Token{}, fmt.Errorf("bootstrap: token options: %w", err)
	}
	t, err := GenerateToken(rand.Reader)
	if err != nil {
		return Token{}, err
	}
	if err := c.Create(ctx, CollectionPath("v1", "secrets", "kube-system"), TokenSecret(t, o, now)); err != nil {
		if IsConflict(err) {
			return Token{}, fmt.Errorf("bootstrap: a token with id %q already exists", t.ID)
		}
		return Token{}, fmt.Errorf("bootstrap: create token %s: %w", t.ID, err)
	}
	return t, nil
}

// TokenInfo is one token as list shows it; the secret part is never read
// into it.
type TokenInfo struct {
	ID          string
	Expires     time.Time // zero: never
	Usages      []string
	Groups      []string
	Description string
}

// Expired says whether the token has expired at now.
func (i TokenInfo) Expired(now time.Time) bool { return !i.Expires.IsZero() && !now.Before(i.Expires) }

// ListTokens returns every bootstrap token in kube-system, sorted by id;
// Secrets of the type that are malformed are skipped with their names in
// the error (joined after the list is built).
func ListTokens(ctx context.Context, c *Client) ([]TokenInfo, error) {
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Data map[string][]byte `json:"data"`
		} `json:"items"`
	}
	path := CollectionPath("v1", "secrets", "kube-system") + "?fieldSelector=" + url.QueryEscape("type="+SecretType)
	if err := c.Get(ctx, path, &list); err != nil {
		return nil, fmt.Errorf("bootstrap: list tokens: %w", err)
	}
	var out []TokenInfo
	var errs []error
	for _, s := range list.Items {
		id := string(s.Data["token-id"])
		if !tokenIDRE.MatchString(id) || s.Metadata.Name != SecretPrefix+id {
			errs = append(errs, fmt.Errorf("secret %s: token-id %q does not match its name", s.Metadata.Name, id))
			continue
		}
		info := TokenInfo{ID: id, Description: string(s.Data["description"])}
		if e := string(s.Data["expiration"]); e != "" {
			t, err := time.Parse(time.RFC3339, e)
			if err != nil {
				errs = append(errs, fmt.Errorf("secret %s: expiration %q: %w", s.Metadata.Name, e, err))
				continue
			}
			info.Expires = t
		}
		for k, v := range s.Data {
			if u, ok := strings.CutPrefix(k, "usage-bootstrap-"); ok && string(v) == "true" {
				info.Usages = append(info.Usages, u)
			}
		}
		sort.Strings(info.Usages)
		if g := string(s.Data["auth-extra-groups"]); g != "" {
			info.Groups = strings.Split(g, ",")
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(errs) > 0 {
		return out, fmt.Errorf("bootstrap: list tokens: %w", errors.Join(errs...))
	}
	return out, nil
}

// DeleteToken removes the token with id (or a whole id.secret token).
func DeleteToken(ctx context.Context, c *Client, id string) error {
	if t, err := ParseToken(id); err == nil {
		id = t.ID
	}
	if !tokenIDRE.MatchString(id) {
		return fmt.Errorf("bootstrap: token id %q is not [a-z0-9]{6}", id)
	}
	if err := c.Delete(ctx, CollectionPath("v1", "secrets", "kube-system")+"/"+SecretPrefix+id); err != nil {
		if IsNotFound(err) {
			return fmt.Errorf("bootstrap: no token with id %q", id)
		}
		return fmt.Errorf("bootstrap: delete token %s: %w", id, err)
	}
	return nil
}
