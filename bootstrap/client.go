package bootstrap

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// FieldManager is the server-side apply field manager of everything masterd
// applies.
const FieldManager = "masterd"

// Client is a small REST client for the few Kubernetes objects masterd
// writes: JSON in and out, server-side apply, no client-go.
type Client struct {
	server string
	http   *http.Client
}

// NewClient talks to server (https://host:port) trusting caPEM, with the
// client certificate cert (admin credentials).
func NewClient(server string, caPEM []byte, cert tls.Certificate) (*Client, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("bootstrap: server %q is not an https URL", server)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("bootstrap: no CA certificate in the CA data")
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 4,
	}
	return &Client{server: strings.TrimRight(server, "/"), http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// Server is the URL the client talks to.
func (c *Client) Server() string { return c.server }

// Close drops idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// StatusError is a response of the apiserver other than success.
type StatusError struct {
	Method, Path string
	Code         int
	Message      string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Code, e.Message)
}

// IsNotFound says whether err is a 404 from the apiserver.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// IsConflict says whether err is a 409 (already exists) from the apiserver.
func IsConflict(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusConflict
}

// Do sends one request; body (if not nil) is sent as contentType, and a
// successful JSON answer is decoded into out (if not nil).
func (c *Client) Do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var st struct {
			Message string `json:"message"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &st) == nil && st.Message != "" {
			msg = st.Message
		}
		return &StatusError{Method: method, Path: path, Code: resp.StatusCode, Message: msg}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// Get reads the object at path into out.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.Do(ctx, http.MethodGet, path, "", nil, out)
}

// Create posts obj to the collection at path.
func (c *Client) Create(ctx context.Context, path string, obj any) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("POST %s: encode: %w", path, err)
	}
	return c.Do(ctx, http.MethodPost, path, "application/json", body, nil)
}

// Delete removes the object at path.
func (c *Client) Delete(ctx context.Context, path string) error {
	return c.Do(ctx, http.MethodDelete, path, "", nil, nil)
}

// Apply server-side applies obj (a complete object with apiVersion, kind
// and metadata.name) as field manager masterd, forcing ownership of the
// fields it sets: masterd's version wins over edits by others. It returns
// the object's version before (empty when it did not exist) and after, so a
// caller sees whether anything changed: metadata.generation for kinds that
// have one (Deployments, DaemonSets: status writes by controllers do not
// count), else metadata.resourceVersion.
func (c *Client) Apply(ctx context.Context, obj Object) (before, after string, err error) {
	path, err := obj.Path()
	if err != nil {
		return "", "", err
	}
	var cur versioned
	if err := c.Get(ctx, path, &cur); err != nil && !IsNotFound(err) {
		return "", "", fmt.Errorf("apply %s: %w", obj, err)
	}
	body, err := json.Marshal(obj)
	if err != nil {
		return "", "", fmt.Errorf("apply %s: encode: %w", obj, err)
	}
	var res versioned
	q := "?fieldManager=" + FieldManager + "&force=true"
	if err := c.Do(ctx, http.MethodPatch, path+q, "application/apply-patch+yaml", body, &res); err != nil {
		return "", "", fmt.Errorf("apply %s: %w", obj, err)
	}
	return cur.version(), res.version(), nil
}

type versioned struct {
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
		Generation      int64  `json:"generation"`
	} `json:"metadata"`
}

func (v versioned) version() string {
	if v.Metadata.Generation != 0 {
		return fmt.Sprintf("generation %d", v.Metadata.Generation)
	}
	return v.Metadata.ResourceVersion
}
