// Command gendocs writes masterd's manual pages and shell completion scripts
// from the command tree (internal/cli), for deploy/package.sh:
//
//	go run ./internal/cmd/gendocs -out DIR -version V -date 2026-12-03
//
// DIR/man8 gets one gzipped page per command (masterd.8.gz,
// masterd-run.8.gz, masterd-etcd-restore.8.gz, ...), DIR/completions the
// bash (masterd), zsh (_masterd) and fish (masterd.fish) scripts. The output
// depends only on the source and the flags: the same bytes on every build.
//
// It is a program of its own so that the daemon does not link the man page
// renderer (cobra/doc, go-md2man): `go list -deps ./cmd/masterd` names
// neither.
package main
