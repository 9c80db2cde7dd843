// Package atomicfile writes files atomically and durably, the one way masterd
// replaces a file (keys and certificates, unit files, election state, etcd
// snapshots): the data goes to a temporary file in the same directory, which
// is given its mode (and owner), fsynced, renamed over the target, and then
// the directory is fsynced. A reader sees the old file or the new one, never
// a part; after a crash the rename either happened with the data on disk or
// did not happen. A failed write removes its temporary file and leaves the
// target as it was.
//
// Temporary files are named ".<name>.tmp-<random>": hidden, and with a
// suffix no reader of these directories (systemd's unit loader, the snapshot
// pruner) takes for one of its files.
package atomicfile
