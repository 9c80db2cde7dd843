package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/masterd/masterd/pki"
)

func cmdInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("init", "", `Create the cluster secret (cluster.key, mode 0600): the gossip encryption
key, the etcd, Kubernetes and front-proxy CAs and the service-account signing
key. Run it once, on one master, then copy the file to every master.`, stdout)
	dir := fs.String("dir", "/etc/masterd", "`directory` for cluster.key")
	force := fs.Bool("force", false, "overwrite an existing cluster.key (every certificate changes!)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	path := filepath.Join(*dir, "cluster.key")
	s, err := pki.GenerateSecret(rand.Reader, time.Now())
	if err != nil {
		return err
	}
	if err := pki.WriteSecret(path, s, *force); err != nil {
		return err
	}
	fmt.Fprint(stdout, pki.InitText(path))
	return nil
}
