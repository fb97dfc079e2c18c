package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/troupedb/troupe/internal/bench"
)

// benchCompare runs `troupe bench compare`: two servers, fresh data dirs
// each round, the same workload against both, median ratios A/B.
func benchCompare(args []string, stdout, stderr io.Writer) int {
	cc := bench.CompareConfig{Workload: bench.Defaults(), Log: stderr}
	fs := flag.NewFlagSet("troupe bench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: troupe bench compare --a troupe|'CMD' --b etcd|'CMD' --workload W [flags]\n\n"+
			"A command template may use:\n  %s\n\nFlags:\n", bench.TemplateVars)
		printBenchFlags(fs, stderr)
	}
	fs.StringVar(&cc.A, "a", "troupe", "server A: the preset troupe or etcd, or a command template")
	fs.StringVar(&cc.B, "b", "etcd", "server B: the preset troupe or etcd, or a command template")
	fs.IntVar(&cc.Members, "members", 1, "members per server: 1 or 3")
	fs.IntVar(&cc.Rounds, "rounds", 5, "rounds; each runs A and B once")
	fs.StringVar(&cc.Order, "order", "abba", "abba (A B, B A, A B, ...) or abab")
	fs.BoolVar(&cc.TLS, "tls", false, "client and peer mTLS on both servers, with certificates made for the run")
	fs.StringVar(&cc.DataRoot, "data-root", "", "directory for the members' data dirs (default: $TMPDIR; use a real disk, not tmpfs)")
	fs.StringVar(&cc.OutDir, "out", "", "directory to write each run's JSON and SVG and the summary to")
	fs.DurationVar(&cc.StartTimeout, "start-timeout", time.Minute, "how long a member may take to serve")
	fs.StringVar(&cc.Workload.Workload, "workload", bench.Put, "the workload (see 'troupe bench --help')")
	out := benchFlags(fs, &cc.Workload)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	fixTotal(fs, &cc.Workload)
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "troupe bench compare: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if len(cc.Workload.ServerPIDs) > 0 || out.plot != "" {
		fmt.Fprintln(stderr, "troupe bench compare: --server-pid and --plot are per run; compare reads its own servers, and --out DIR keeps each run's plot")
		return exitUsage
	}
	var err error
	cc.AName, cc.BName = presetName(cc.A, "A"), presetName(cc.B, "B")
	if cc.A, err = bench.ResolveServer(cc.A); err == nil {
		cc.B, err = bench.ResolveServer(cc.B)
	}
	if err != nil {
		fmt.Fprintf(stderr, "troupe bench compare: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cc.Workload.Progress = newProgress(stderr)
	cmp, err := bench.Compare(ctx, cc)
	if err != nil {
		fmt.Fprintf(stderr, "troupe bench compare: %v\n", err)
		return exitFailure
	}
	if out.json {
		err = cmp.WriteJSON(stdout)
	} else {
		err = cmp.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "troupe bench compare: %v\n", err)
		return exitFailure
	}
	return exitOK
}

func presetName(s, side string) string {
	if s == "troupe" || s == "etcd" {
		return s
	}
	return side
}
