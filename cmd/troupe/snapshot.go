package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/troupedb/troupe/node"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// snapshot runs `troupe snapshot save|status`, as etcdctl's (3.4) commands
// of the same names: save fetches a member's backend with the Maintenance
// Snapshot RPC, status reads a saved file.
func snapshot(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, snapshotUsage)
		return exitUsage
	}
	switch args[0] {
	case "save":
		return snapshotSave(args[1:], stdout, stderr)
	case "status":
		return snapshotStatus(args[1:], stdout, stderr)
	case "restore":
		return snapshotRestore(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, snapshotUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "troupe snapshot: unknown command %q\n\n%s", args[0], snapshotUsage)
	return exitUsage
}

const snapshotUsage = `Usage:

  troupe snapshot save <file> [--endpoints=127.0.0.1:2379] [--command-timeout=5m]
    Save a member's backend to <file> (with etcd's trailing sha256).

  troupe snapshot status <file> [-w simple|json|table]
    Show the hash, revision, number of keys and size of a saved file.

  troupe snapshot restore <file> --data-dir D --name N --initial-cluster N=URL,...
      --initial-advertise-peer-urls URL [--initial-cluster-token etcd-cluster]
      [--wal-dir W]
    Make a data dir (and WAL dir W) for member N of a new cluster holding
    the file's data; then start it with 'troupe serve' and the same flags.
`

// parseWithFile parses fs from args, which hold exactly one positional
// argument (the file) before, among or after the flags.
func parseWithFile(fs *flag.FlagSet, args []string) (string, error) {
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", err
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) != 1 {
		return "", fmt.Errorf("want one file argument, got %d", len(files))
	}
	return files[0], nil
}

func snapshotSave(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("troupe snapshot save", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoints := fs.String("endpoints", "127.0.0.1:2379", "comma-separated gRPC endpoints; the first one is asked")
	timeout := fs.Duration("command-timeout", 5*time.Minute, "time the download may take")
	path, err := parseWithFile(fs, args)
	if err != nil {
		return snapshotUsageError(stderr, "save", err)
	}
	eps := strings.Split(*endpoints, ",")
	if err := saveSnapshot(eps[:1], path, *timeout); err != nil {
		fmt.Fprintf(stderr, "troupe snapshot save: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "Snapshot saved at %s\n", path)
	return exitOK
}

// saveSnapshot downloads the snapshot into path+".part", syncs it and
// renames it to path, so path is never a partial file.
func saveSnapshot(endpoints []string, path string, timeout time.Duration) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("connect to %v: %w", endpoints, err)
	}
	defer func() { _ = cli.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rd, err := cli.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("snapshot from %v: %w", endpoints, err)
	}
	defer func() { _ = rd.Close() }()
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, rd)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, path)
	}
	if err != nil {
		_ = os.Remove(part)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// snapshotFileStatus is etcdctl's snapshot status, with its JSON names.
type snapshotFileStatus struct {
	Hash      uint32 `json:"hash"`
	Revision  int64  `json:"revision"`
	TotalKey  int    `json:"totalKey"`
	TotalSize int64  `json:"totalSize"`
}

func snapshotStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("troupe snapshot status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var format string
	fs.StringVar(&format, "w", "simple", "output format: simple, json or table")
	fs.StringVar(&format, "write-out", "simple", "output format: simple, json or table")
	path, err := parseWithFile(fs, args)
	if err != nil {
		return snapshotUsageError(stderr, "status", err)
	}
	if format != "simple" && format != "json" && format != "table" {
		return snapshotUsageError(stderr, "status", fmt.Errorf("unknown output format %q (simple, json, table)", format))
	}
	st, err := readSnapshotStatus(path)
	if err != nil {
		fmt.Fprintf(stderr, "troupe snapshot status: %v\n", err)
		return exitFailure
	}
	writeSnapshotStatus(stdout, format, st)
	return exitOK
}

// readSnapshotStatus reads the file's status as etcdctl 3.4 does (see
// mvcc.ReadSnapshotStatus).
func readSnapshotStatus(path string) (snapshotFileStatus, error) {
	st, err := mvcc.ReadSnapshotStatus(path)
	if err != nil {
		return snapshotFileStatus{}, err
	}
	return snapshotFileStatus{Hash: st.Hash, Revision: st.Revision, TotalKey: st.TotalKeys, TotalSize: st.TotalSizeBytes}, nil
}

func writeSnapshotStatus(w io.Writer, format string, st snapshotFileStatus) {
	switch format {
	case "json":
		b, _ := json.Marshal(st)
		fmt.Fprintln(w, string(b))
	case "table":
		cells := []string{fmt.Sprintf("%x", st.Hash), fmt.Sprint(st.Revision), fmt.Sprint(st.TotalKey), humanBytes(uint64(st.TotalSize))}
		header := []string{"HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"}
		writeTable(w, header, cells)
	default:
		fmt.Fprintf(w, "%x, %d, %d, %s\n", st.Hash, st.Revision, st.TotalKey, humanBytes(uint64(st.TotalSize)))
	}
}

// writeTable draws one row as etcdctl's tablewriter does (header
// centered, cells aligned right).
func writeTable(w io.Writer, header, row []string) {
	widths := make([]int, len(header))
	for i := range header {
		widths[i] = max(len(header[i]), len(row[i]))
	}
	line := "+"
	for _, n := range widths {
		line += strings.Repeat("-", n+2) + "+"
	}
	center := func(s string, n int) string {
		left := (n - len(s)) / 2
		return strings.Repeat(" ", left) + s + strings.Repeat(" ", n-len(s)-left)
	}
	right := func(s string, n int) string { return strings.Repeat(" ", n-len(s)) + s }
	cells := func(vals []string, align func(string, int) string) string {
		out := "|"
		for i, v := range vals {
			out += " " + align(v, widths[i]) + " |"
		}
		return out
	}
	fmt.Fprintln(w, line)
	fmt.Fprintln(w, cells(header, center))
	fmt.Fprintln(w, line)
	fmt.Fprintln(w, cells(row, right))
	fmt.Fprintln(w, line)
}

// humanBytes formats n as go-humanize's Bytes (SI units), which etcdctl
// prints.
func humanBytes(n uint64) string {
	if n < 10 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	e := math.Floor(math.Log(float64(n)) / math.Log(1000))
	val := math.Floor(float64(n)/math.Pow(1000, e)*10+0.5) / 10
	f := "%.0f %s"
	if val < 10 {
		f = "%.1f %s"
	}
	return fmt.Sprintf(f, val, units[int(e)])
}

func snapshotUsageError(stderr io.Writer, cmd string, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "troupe snapshot %s: %v\n", cmd, err)
	return exitUsage
}

// snapshotRestore is `troupe snapshot restore`: node.Restore with
// etcdctl's flags.
func snapshotRestore(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("troupe snapshot restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "data dir to create (default <name>.etcd)")
	walDir := fs.String("wal-dir", "", "Path to the WAL directory (use --data-dir if none given)")
	name := fs.String("name", "default", "name of this member")
	initialCluster := fs.String("initial-cluster", "default=http://localhost:2380", "the new cluster's members, name=peer-url,...")
	token := fs.String("initial-cluster-token", "etcd-cluster", "the new cluster's token")
	peerURLs := fs.String("initial-advertise-peer-urls", "http://localhost:2380", "this member's peer URLs")
	skipHash := fs.Bool("skip-hash-check", false, "accept a file without the sha256 of a snapshot save (a copied db file)")
	path, err := parseWithFile(fs, args)
	if err != nil {
		return snapshotUsageError(stderr, "restore", err)
	}
	if *dataDir == "" {
		*dataDir = *name + ".etcd"
	}
	err = node.Restore(node.RestoreConfig{
		File: path, DataDir: *dataDir, WALDir: *walDir, Name: *name, InitialCluster: *initialCluster,
		Token: *token, PeerURLs: *peerURLs, SkipHashCheck: *skipHash,
	})
	if err != nil {
		fmt.Fprintf(stderr, "troupe snapshot restore: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "Snapshot restored to %s\n", *dataDir)
	return exitOK
}
