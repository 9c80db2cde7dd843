package tokensigner

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/masterd/masterd/pki"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	externaljwtv1 "k8s.io/externaljwt/apis/v1"
)

// Keys are what a Server signs and verifies with.
type Keys struct {
	// Signer signs every token: an ECDSA P-256 or RSA key.
	Signer crypto.Signer
	// Verify are the public keys tokens may be signed with, Signer's
	// included (SetKeys adds it when missing).
	Verify []crypto.PublicKey
}

// Config configures a Server.
type Config struct {
	// MaxTokenLifetime is the longest token the apiserver may issue (it
	// defaults --service-account-max-token-expiration to it). At least 10
	// minutes; 0 means DefaultMaxTokenLifetime.
	MaxTokenLifetime time.Duration
	// RefreshHint is how often the apiservers re-fetch the public keys; 0
	// means DefaultRefreshHint.
	RefreshHint time.Duration
}

const (
	// DefaultMaxTokenLifetime caps every service-account token at a day:
	// kubelets' projected tokens (an hour, extended for old clients) fit,
	// and a key that stopped signing can be dropped a day later.
	DefaultMaxTokenLifetime = 24 * time.Hour
	// DefaultRefreshHint: the apiservers see a removed key gone at most
	// 10 s late (a new one at once, when a token names it); a fetch is one
	// local call.
	DefaultRefreshHint = 10 * time.Second
	// minTokenLifetime is the apiserver's own lower bound.
	minTokenLifetime = 10 * time.Minute
)

// Server is the signer. Its zero value is not usable: use New.
type Server struct {
	externaljwtv1.UnimplementedExternalJWTSignerServer
	cfg Config

	mu      sync.RWMutex
	signer  crypto.Signer
	alg     string
	kid     string
	verify  []*externaljwtv1.Key
	updated time.Time

	grpc *grpc.Server
}

// New returns a Server with no keys; Sign and FetchKeys fail until SetKeys.
func New(cfg Config) (*Server, error) {
	if cfg.MaxTokenLifetime == 0 {
		cfg.MaxTokenLifetime = DefaultMaxTokenLifetime
	}
	if cfg.RefreshHint == 0 {
		cfg.RefreshHint = DefaultRefreshHint
	}
	if cfg.MaxTokenLifetime < minTokenLifetime {
		return nil, fmt.Errorf("tokensigner: max token lifetime %s: must be at least %s", cfg.MaxTokenLifetime, minTokenLifetime)
	}
	if cfg.RefreshHint < time.Second {
		return nil, fmt.Errorf("tokensigner: refresh hint %s: must be at least 1s", cfg.RefreshHint)
	}
	s := &Server{cfg: cfg, grpc: grpc.NewServer()}
	externaljwtv1.RegisterExternalJWTSignerServer(s.grpc, s)
	return s, nil
}

// SetKeys replaces the keys; the next Sign uses the new signer.
func (s *Server) SetKeys(k Keys) error {
	if k.Signer == nil {
		return errors.New("tokensigner: no signing key")
	}
	alg, err := algorithm(k.Signer.Public())
	if err != nil {
		return err
	}
	kid, err := pki.KeyID(k.Signer.Public())
	if err != nil {
		return err
	}
	verify := []*externaljwtv1.Key{}
	seen := map[string]bool{}
	for _, pub := range append([]crypto.PublicKey{k.Signer.Public()}, k.Verify...) {
		if _, err := algorithm(pub); err != nil {
			return err
		}
		id, err := pki.KeyID(pub)
		if err != nil {
			return err
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return fmt.Errorf("tokensigner: encode public key: %w", err)
		}
		verify = append(verify, &externaljwtv1.Key{KeyId: id, Key: der})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signer, s.alg, s.kid, s.verify, s.updated = k.Signer, alg, kid, verify, time.Now()
	return nil
}

// algorithm is the JWS algorithm of a public key the apiserver accepts.
func algorithm(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("tokensigner: ECDSA key on %s: only P-256 (ES256) is supported", k.Curve.Params().Name)
		}
		return "ES256", nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("tokensigner: RSA key of %d bits: at least 2048", k.N.BitLen())
		}
		return "RS256", nil
	default:
		return "", fmt.Errorf("tokensigner: unsupported key type %T (ECDSA P-256 or RSA)", pub)
	}
}

// Listen removes a stale socket at path and listens there, mode 0600.
func Listen(path string) (net.Listener, error) {
	if len(path) > 100 {
		return nil, fmt.Errorf("tokensigner: socket path %s: %d bytes, Unix sockets allow about 100", path, len(path))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("tokensigner: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tokensigner: remove stale socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("tokensigner: listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("tokensigner: %w", err)
	}
	return ln, nil
}

// Serve serves ln until Stop; it returns nil after Stop.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.grpc.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("tokensigner: %w", err)
	}
	return nil
}

// Stop stops serving, letting calls in flight finish.
func (s *Server) Stop() { s.grpc.GracefulStop() }

// Sign signs base64url(header).claims with the current key.
func (s *Server) Sign(_ context.Context, req *externaljwtv1.SignJWTRequest) (*externaljwtv1.SignJWTResponse, error) {
	if _, err := base64.RawURLEncoding.DecodeString(req.GetClaims()); err != nil || req.GetClaims() == "" {
		return nil, status.Error(codes.InvalidArgument, "claims: not URL-safe base64 without padding")
	}
	s.mu.RLock()
	signer, alg, kid := s.signer, s.alg, s.kid
	s.mu.RUnlock()
	if signer == nil {
		return nil, status.Error(codes.Unavailable, "no signing key yet")
	}
	h, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{alg, kid, "JWT"})
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	header := base64.RawURLEncoding.EncodeToString(h)
	sig, err := sign(signer, []byte(header+"."+req.GetClaims()))
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &externaljwtv1.SignJWTResponse{Header: header, Signature: base64.RawURLEncoding.EncodeToString(sig)}, nil
}

// sign makes a JWS signature (RFC 7518): RS256 is PKCS #1 v1.5 over
// SHA-256; ES256 is r||s, each 32 bytes.
func sign(k crypto.Signer, input []byte) ([]byte, error) {
	sum := sha256.Sum256(input)
	switch key := k.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
		if err != nil {
			return nil, err
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out, nil
	default:
		if _, ok := k.Public().(*rsa.PublicKey); !ok {
			return nil, fmt.Errorf("unsupported key type %T", k)
		}
		return k.Sign(rand.Reader, sum[:], crypto.SHA256)
	}
}

// FetchKeys returns every verification key.
func (s *Server) FetchKeys(context.Context, *externaljwtv1.FetchKeysRequest) (*externaljwtv1.FetchKeysResponse, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.verify) == 0 {
		return nil, status.Error(codes.Unavailable, "no keys yet")
	}
	return &externaljwtv1.FetchKeysResponse{
		Keys:               s.verify,
		DataTimestamp:      timestamppb.New(s.updated),
		RefreshHintSeconds: int64(s.cfg.RefreshHint / time.Second),
	}, nil
}

// Metadata tells the apiserver the longest token it may issue.
func (s *Server) Metadata(context.Context, *externaljwtv1.MetadataRequest) (*externaljwtv1.MetadataResponse, error) {
	return &externaljwtv1.MetadataResponse{MaxTokenExpirationSeconds: int64(s.cfg.MaxTokenLifetime / time.Second)}, nil
}
