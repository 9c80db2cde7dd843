package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/masterd/masterd/agent"
	"github.com/masterd/masterd/pki"
	"github.com/spf13/cobra"
)

func init() { register(newCertsCmd) }

func newCertsCmd(Build) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs COMMAND",
		Short: "check and renew this master's certificates",
		Long: `Check and renew the certificates masterd issues on this master from the
cluster secret, as kubeadm's certs commands do, and see which certificate each
running component actually uses.

A running masterd renews every certificate pki.renewBefore ahead of its expiry
by itself and makes its consumers load it; 'certs renew' does the same at once.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	configPath := configFlag(cmd.PersistentFlags())

	check := &cobra.Command{
		Use:   "check-expiration",
		Short: "list the certificates, their expiry and what the running components use",
		Long: `List every certificate of this master: its expiry, the time left, the CA
that signed it, and what the running component uses. The served certificates
are read from a TLS handshake with the component's port (kube-apiserver, etcd's
client and peer ports); those of kube-scheduler and kube-controller-manager from
the running masterd, as of the unit's start. OLD marks a component still using
an earlier certificate than the file's.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := agent.LoadConfig(*configPath)
			if err != nil {
				return configError{err}
			}
			return checkExpiration(c.OutOrStdout(), cfg, time.Now())
		},
	}

	renew := &cobra.Command{
		Use:   "renew NAME...|all",
		Short: "renew certificates now and make the running components load them",
		Long: `Reissue the named certificates (or all of them) with a new key, valid
pki.leafValidity from now, and make the running components use them: the running
masterd writes them and restarts kube-scheduler or kube-controller-manager when
it runs them (the role stays on this master; the unit's kube Lease is handed to
the new instance); kube-apiserver and etcd load the new files by themselves, and
the command checks on their ports that they serve the new ones. Without a
running masterd the files are renewed on disk and loaded at the next start.

Certificates: ` + strings.Join(pki.LeafNames, ", ") + `.
The CAs come from the cluster secret and are not renewed here.`,
		Args: cobra.ArbitraryArgs,
	}
	timeout := renew.Flags().Duration("timeout", 3*time.Minute, "how long to wait for the running masterd")
	renew.ValidArgsFunction = func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []cobra.Completion
		for _, n := range append([]string{"all"}, pki.LeafNames...) {
			if strings.HasPrefix(n, toComplete) && !slices.Contains(args, n) {
				out = append(out, n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	renew.RunE = func(c *cobra.Command, args []string) error {
		names, err := pki.RenewNames(args)
		if err != nil {
			return usagef("%s", strings.TrimPrefix(err.Error(), "pki: renew: "))
		}
		if *timeout <= 0 {
			return usagef("--timeout %s: must be positive", *timeout)
		}
		cfg, err := agent.LoadConfig(*configPath)
		if err != nil {
			return configError{err}
		}
		return renewCerts(c.OutOrStdout(), cfg, names, *timeout)
	}
	cmd.AddCommand(check, renew)
	return cmd
}

// consumer is what uses a certificate and how masterd knows which one.
type consumer struct {
	// what is shown in the IN USE column when no more is known.
	what string
	// wire, when set, is the port the certificate is served on.
	wire func(cfg agent.Config) string
	// unit: a leader-only unit; the running masterd reports its certificate.
	unit string
}

var consumers = map[string]consumer{
	"etcd-server": {wire: func(cfg agent.Config) string {
		return net.JoinHostPort(cfg.Address.String(), strconv.Itoa(cfg.Etcd.ClientPort))
	}},
	"etcd-peer": {wire: func(cfg agent.Config) string {
		return net.JoinHostPort(cfg.Address.String(), strconv.Itoa(cfg.Etcd.PeerPort))
	}},
	"apiserver": {wire: func(cfg agent.Config) string {
		if cfg.Kubernetes.Mode == "none" {
			return ""
		}
		return net.JoinHostPort(cfg.Address.String(), strconv.Itoa(cfg.Kubernetes.APIServerPort))
	}},
	"etcd-client":              {what: "masterd (read at each connection)"},
	"apiserver-etcd-client":    {what: "kube-apiserver (reloads the file)"},
	"apiserver-kubelet-client": {what: "kube-apiserver (reloads the file)"},
	"front-proxy-client":       {what: "kube-apiserver (reloads the file)"},
	"admin.conf":               {what: "read by each client"},
	"scheduler.conf":           {unit: "kube-scheduler"},
	"controller-manager.conf":  {unit: "kube-controller-manager"},
}

// certRow is one line of check-expiration.
type certRow struct {
	name, expires, residual, ca, inUse string
}

// checkExpiration prints the table of this master's certificates.
func checkExpiration(w io.Writer, cfg agent.Config, now time.Time) error {
	files := agent.EtcdFiles(cfg)
	certs, readErr := files.ReadCerts()
	if len(certs) == 0 {
		return fmt.Errorf("certs: no certificate readable in %s: %w", files.Dir, readErr)
	}
	inUse := map[string]time.Time{}
	running := false
	if body, err := fetchStatus(cfg.Metrics.Listen); err == nil {
		if st, err := agent.DecodeStatus(body); err == nil {
			running = true
			var pkiSec []agent.CertStatus
			if ok, err := st.Section("pki", &pkiSec); ok && err == nil {
				for _, cs := range pkiSec {
					if cs.InUseNotAfter != nil {
						inUse[cs.Name] = *cs.InUseNotAfter
					}
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rows []certRow
	for _, name := range append(slices.Clone(pki.LeafNames), pki.CANames...) {
		cert := certs[name]
		if cert == nil {
			continue
		}
		r := certRow{name: name, expires: cert.NotAfter.UTC().Format("Jan 02, 2006 15:04 MST"),
			residual: residual(cert.NotAfter.Sub(now)), ca: pki.IssuerOf(name), inUse: "-"}
		if slices.Contains(pki.CANames, name) {
			r.ca = "self-signed"
		}
		if c, ok := consumers[name]; ok {
			r.inUse = c.what
			switch {
			case c.wire != nil && c.wire(cfg) != "":
				addr := c.wire(cfg)
				served, err := presentedCert(ctx, addr)
				switch {
				case err != nil:
					r.inUse = "not answering on " + addr
				case served.Equal(cert):
					r.inUse = "same, served on " + addr
				default:
					r.inUse = fmt.Sprintf("OLD, expires %s, served on %s", served.NotAfter.UTC().Format(time.RFC3339), addr)
				}
			case c.unit != "":
				t, ok := inUse[name]
				switch {
				case !running:
					r.inUse = "masterd not running"
				case !ok:
					r.inUse = c.unit + " not running here"
				case t.Equal(cert.NotAfter):
					r.inUse = "same, " + c.unit + " since its start"
				default:
					r.inUse = fmt.Sprintf("OLD, expires %s, %s since its start", t.UTC().Format(time.RFC3339), c.unit)
				}
			}
		}
		rows = append(rows, r)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tCERTIFICATE AUTHORITY\tIN USE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.name, r.expires, r.residual, r.ca, r.inUse)
	}
	tw.Flush()
	if readErr != nil {
		return fmt.Errorf("certs: %w", readErr)
	}
	return nil
}

// residual is a remaining lifetime as kubeadm shows it: 364d, 23h, 29m,
// <invalid> once expired.
func residual(d time.Duration) string {
	switch {
	case d <= 0:
		return "<invalid>"
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// presentedCert returns the certificate served on addr, from a TLS
// handshake that verifies nothing (it only reports what is served). A
// server that then asks for a client certificate (etcd) fails the handshake
// after presenting its own, which is kept.
func presentedCert(ctx context.Context, addr string) (*x509.Certificate, error) {
	var got *x509.Certificate
	d := tls.Dialer{Config: &tls.Config{
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) > 0 {
				c, err := x509.ParseCertificate(raw[0])
				if err != nil {
					return err
				}
				got = c
			}
			return nil
		},
	}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if conn != nil {
		conn.Close()
	}
	if got != nil {
		return got, nil
	}
	if err == nil {
		err = errors.New("no certificate presented")
	}
	return nil, fmt.Errorf("certs: served certificate of %s: %w", addr, err)
}

// renewPoll is how often renew looks for the daemon's result.
const renewPoll = 500 * time.Millisecond

// renewTake bounds the wait for the daemon to take the request (it looks
// every 2 s).
const renewTake = 15 * time.Second

// renewCerts asks the running daemon to renew names and checks on the wire
// that the served ones changed; without a daemon it renews on disk.
func renewCerts(w io.Writer, cfg agent.Config, names []string, timeout time.Duration) error {
	if agent.PKIDir(cfg) == "" {
		return usagef("pki.externalDir is set: masterd renews none of those certificates; replace them yourself")
	}
	if _, err := fetchStatus(cfg.Metrics.Listen); err != nil {
		files, err := agent.RenewOnDisk(cfg, names, time.Now())
		if err != nil {
			return err
		}
		for _, ch := range files.Changes {
			fmt.Fprintf(w, "%s written (%s)\n", ch.Name, ch.Reason)
		}
		fmt.Fprintln(w, "masterd is not running here: the components load the renewed certificates when masterd starts them")
		return nil
	}
	req, err := agent.NewRenewRequest(names)
	if err != nil {
		return err
	}
	if err := agent.WriteRenewRequest(cfg, req); err != nil {
		return err
	}
	start := time.Now()
	var res *agent.RenewResult
	for res == nil {
		time.Sleep(renewPoll)
		if res, err = agent.ReadRenewResult(cfg, req.ID); err != nil {
			return err
		}
		if res != nil {
			break
		}
		waited := time.Since(start)
		if agent.RenewPending(cfg) && waited > renewTake {
			agent.CancelRenewRequest(cfg)
			return fmt.Errorf("certs: the running masterd did not take the request within %s (is it an older version?); nothing renewed", renewTake)
		}
		if waited > timeout {
			return fmt.Errorf("certs: no answer from the running masterd within %s; see journalctl -u masterd", timeout)
		}
	}
	for _, r := range res.Renewed {
		fmt.Fprintf(w, "%s renewed, expires %s (serial %s)\n", r.Name, r.NotAfter.UTC().Format(time.RFC3339), r.Serial)
	}
	for _, u := range res.Restarted {
		fmt.Fprintf(w, "%s restarted with its renewed certificate\n", u)
	}
	if res.Error != "" {
		return fmt.Errorf("certs: renew: %s", res.Error)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stale []string
	for _, r := range res.Renewed {
		c, ok := consumers[r.Name]
		if !ok || c.wire == nil || c.wire(cfg) == "" {
			continue
		}
		addr := c.wire(cfg)
		served, err := presentedCert(ctx, addr)
		switch {
		case err != nil:
			stale = append(stale, fmt.Sprintf("%s: %v", r.Name, err))
		case served.SerialNumber.Text(16) != r.Serial:
			stale = append(stale, fmt.Sprintf("%s: %s still serves serial %s", r.Name, addr, served.SerialNumber.Text(16)))
		default:
			fmt.Fprintf(w, "%s served on %s\n", r.Name, addr)
		}
	}
	if len(stale) > 0 {
		return fmt.Errorf("certs: renewed on disk but not served yet: %s", strings.Join(stale, "; "))
	}
	return nil
}
