// Package s3 runs a real S3-compatible server for tests: SeaweedFS's weed
// (`weed mini`: master, volume server, filer and S3 gateway in one
// process), built from the Go module proxy by build.sh and cached under
// $MASTERD_CACHE/seaweedfs/<version>/weed.
//
// [Start] runs one on 127.0.0.1 with ports picked free, its data in a
// temporary directory, S3 signature v4 authentication with two identities
// (an admin with random keys, and a read-only one), no automatic bucket
// creation, and no telemetry, web UI, WebDAV, Iceberg or Lance listeners.
// It returns once the S3 API answers a signed request, and the test's
// cleanup stops the process by its PID and removes the data. When the
// binary is missing, Start builds it first (cold: about 10 minutes), so the
// tests using it never skip.
package s3
