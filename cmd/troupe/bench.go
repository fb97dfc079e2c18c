package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/troupedb/troupe/internal/bench"
)

// benchCmd runs `troupe bench <workload>|compare`, a load generator for
// any etcd v3 endpoint (see internal/bench).
func benchCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, benchUsage)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, benchUsage)
		return exitOK
	case "compare":
		return benchCompare(args[1:], stdout, stderr)
	}
	cfg := bench.Defaults()
	cfg.Workload = args[0]
	fs := flag.NewFlagSet("troupe bench "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: troupe bench %s [flags]\n\nFlags:\n", cfg.Workload)
		printBenchFlags(fs, stderr)
	}
	out := benchFlags(fs, &cfg)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	fixTotal(fs, &cfg)
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "troupe bench %s: unexpected argument %q\n", cfg.Workload, fs.Arg(0))
		return exitUsage
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "troupe bench: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg.Progress = newProgress(stderr)
	res, err := bench.Run(ctx, cfg)
	if res != nil {
		if werr := out.write(res, stdout); werr != nil {
			fmt.Fprintf(stderr, "troupe bench: %v\n", werr)
			return exitFailure
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "troupe bench %s: %v\n", cfg.Workload, err)
		return exitFailure
	}
	return exitOK
}

// benchOutput is where a run's report goes.
type benchOutput struct {
	json bool
	plot string
}

func (o *benchOutput) write(res *bench.Result, stdout io.Writer) error {
	if o.plot != "" {
		if err := os.WriteFile(o.plot, res.SVG(), 0o644); err != nil {
			return fmt.Errorf("--plot: %w", err)
		}
	}
	if o.json {
		return res.WriteJSON(stdout)
	}
	return res.WriteText(stdout)
}

// benchFlags declares the flags of one workload run on fs, into cfg.
func benchFlags(fs *flag.FlagSet, cfg *bench.Config) *benchOutput {
	out := &benchOutput{}
	fs.Func("endpoints", "comma-separated gRPC endpoints (default 127.0.0.1:2379)", func(s string) error {
		cfg.Endpoints = strings.Split(s, ",")
		return nil
	})
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent clients (goroutines), each one request at a time")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "gRPC connections the clients share")
	fs.IntVar(&cfg.KeySize, "key-size", cfg.KeySize, "key size in bytes")
	fs.IntVar(&cfg.ValSize, "val-size", cfg.ValSize, "value size in bytes")
	fs.IntVar(&cfg.KeySpace, "key-space", cfg.KeySpace, "distinct keys")
	fs.IntVar(&cfg.Total, "total", cfg.Total, "requests in all (puts for watch-latency and abandon); 0 with --duration")
	fs.DurationVar(&cfg.Duration, "duration", 0, "run for this long instead of --total requests")
	fs.Float64Var(&cfg.Rate, "rate", 0, "requests per second over all clients (0: as fast as possible)")
	fs.BoolVar(&cfg.SequentialKeys, "sequential-keys", false, "use keys in order instead of at random")
	fs.StringVar(&cfg.Consistency, "consistency", cfg.Consistency, "reads: l (linearizable) or s (serializable)")
	fs.Float64Var(&cfg.ReadRatio, "read-ratio", cfg.ReadRatio, "mixed: the fraction of requests that are reads")
	fs.IntVar(&cfg.TxnOps, "txn-ops", cfg.TxnOps, "txn-put: puts in each transaction")
	fs.IntVar(&cfg.Watchers, "watchers", cfg.Watchers, "watch-latency: watchers of the key")
	fs.IntVar(&cfg.Streams, "streams", cfg.Streams, "watch-latency: watch streams the watchers are spread over")
	fs.BoolVar(&cfg.SkipLoad, "skip-load", false, "range, range-large, abandon: do not write the key space first")
	fs.IntVar(&cfg.AbandonWatches, "watches", cfg.AbandonWatches, "abandon: watch calls to open and abandon")
	fs.IntVar(&cfg.AbandonRanges, "ranges", cfg.AbandonRanges, "abandon: range calls to open and abandon")
	fs.DurationVar(&cfg.AbandonHold, "hold", cfg.AbandonHold, "abandon: how long to hold the calls before reading the servers")
	fs.StringVar(&cfg.AbandonEnd, "end", cfg.AbandonEnd, "abandon: none (hold the calls), cancel (cancel them, as a client whose context ended) or close (close their connections, as a client that died) before the hold")
	fs.StringVar(&cfg.Security.CACert, "cacert", "", "verify the servers' certificates with this CA bundle")
	fs.StringVar(&cfg.Security.Cert, "cert", "", "client certificate (with --key) for mTLS")
	fs.StringVar(&cfg.Security.Key, "key", "", "client certificate's private key")
	fs.BoolVar(&cfg.Security.InsecureSkipVerify, "insecure-skip-tls-verify", false, "TLS without verifying the servers' certificates")
	fs.StringVar(&cfg.Security.User, "user", "", "username for auth (user or user:password)")
	fs.StringVar(&cfg.Security.Password, "password", "", "password for auth (when --user has none)")
	fs.Func("server-pid", "a local server process to read CPU time and peak RSS of (repeat or comma-separate for several members)", func(s string) error {
		for p := range strings.SplitSeq(s, ",") {
			pid, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || pid <= 0 {
				return fmt.Errorf("not a process id: %q", p)
			}
			cfg.ServerPIDs = append(cfg.ServerPIDs, pid)
		}
		return nil
	})
	fs.BoolVar(&out.json, "json", false, "print the report as one JSON object (fields: see BENCHMARKS.md)")
	fs.StringVar(&out.plot, "plot", "", "write the latency distribution and throughput over time to this SVG file")
	return out
}

// printBenchFlags lists fs's flags as `troupe serve --help` does:
// "--name 'default'" and the help on the next line.
func printBenchFlags(fs *flag.FlagSet, w io.Writer) {
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(w, "  --%s '%s'\n      %s\n", f.Name, f.DefValue, f.Usage)
	})
}

// fixTotal makes --duration replace the default --total.
func fixTotal(fs *flag.FlagSet, cfg *bench.Config) {
	total := false
	fs.Visit(func(f *flag.Flag) { total = total || f.Name == "total" })
	if cfg.Duration > 0 && !total {
		cfg.Total = 0
	}
	if u, p, ok := strings.Cut(cfg.Security.User, ":"); ok && cfg.Security.Password == "" {
		cfg.Security.User, cfg.Security.Password = u, p
	}
}

const benchUsage = `Usage:

  troupe bench <workload> [flags]
    Load any etcd v3 endpoint (troupe or etcd) and report throughput,
    latency p50/p90/p99/p99.9/max and a histogram (--json: one JSON
    object; --plot FILE.svg: latency distribution and throughput over
    time). Workloads:
      put               puts of --val-size values to --key-space keys
      range             gets of one key (--consistency l|s), keys written first
      txn-put           transactions of --txn-ops puts
      mixed             gets and puts, --read-ratio of them gets
      watch-latency     --watchers watchers on --streams streams; time from a
                        put's start to each watcher's event
      lease-keepalive   each client keeps a lease alive, one request at a time
      range-large       gets of the whole key space (--key-space keys of
                        --val-size), written first unless --skip-load
      abandon           opens --watches watch and --ranges range calls on
                        connections that stop reading, puts --total values,
                        holds them --hold, and reports the servers' RSS growth
    'troupe bench put --help' lists the flags.

  troupe bench compare --a troupe|'CMD' --b etcd|'CMD' [--members 1|3]
      [--rounds N] [--tls] --workload W [workload flags]
    Start each server on fresh data dirs, run the workload, read the
    servers' CPU time and peak RSS from /proc, alternate A and B over N
    rounds, and print per-round figures and the median ratios A/B.
    'troupe bench compare --help' lists the flags and template variables.
`
