// Package images builds the container images the lab's workers run, without
// a registry: images cannot be pulled on these machines, so each one is a
// single layer of static binaries built here (pause, the echo test server,
// kube-proxy, CoreDNS) written as an OCI image layout archive, and Import
// loads an archive into containerd with `ctr -n k8s.io images import`.
//
// The archives are plain OCI layouts (oci-layout, index.json, blobs/sha256)
// written with the standard library: an uncompressed layer, a config and a
// manifest, with the full name in the index's io.containerd.image.name
// annotation, which is what containerd's importer reads. Every entry has the
// same time stamp, so the same inputs give the same digests.
//
// Set names the images (configurable, like an air-gapped registry's names)
// and builds them into a cache directory; coredns.sh builds the coredns
// binary from the Go module proxy, cached by version. The programs pause and
// echo live in the subdirectories of the same names.
package images
