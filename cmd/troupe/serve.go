package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/troupedb/troupe/failpoint"
	"github.com/troupedb/troupe/internal/memrelease"
	"github.com/troupedb/troupe/node"
)

// serve runs a member until SIGINT or SIGTERM (exit 0 after a graceful
// stop) or until the node dies (exit 1). Bad flags or configuration exit 2
// before anything is opened.
func serve(args []string, stdout, stderr io.Writer) int {
	cfg, code, ok := parseServe(args, stdout, stderr)
	if !ok {
		return code
	}
	log := cfg.Logger

	// Subscribe before starting so a signal during start-up is not lost.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	startPprof(log)
	n, err := node.Start(cfg)
	if err != nil {
		log.Error("start failed", "err", err)
		return exitFailure
	}
	notify(log, daemon.SdNotifyReady)
	stopRelease := startMemRelease(log)
	defer stopRelease()

	select {
	case sig := <-sigs:
		log.Info("received signal, stopping", "signal", sig.String())
		notify(log, daemon.SdNotifyStopping)
		return stop(log, n, sigs)
	case err := <-n.Done():
		if err != nil {
			log.Error("node failed", "err", err)
			return exitFailure
		}
		log.Info("node stopped")
		return exitOK
	}
}

// startMemRelease returns memory to the system after bursts of ended
// connections and calls (see memrelease), until the returned stop is
// called: a policy of the process, so the binary sets it and an embedding
// program keeps its own.
func startMemRelease(log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		memrelease.Run(ctx, memrelease.Config{Logger: log})
	}()
	return func() {
		cancel()
		<-done
	}
}

// parseServe turns the command line into a validated Config with its
// Logger set. When ok is false the caller exits with code.
//
// As etcd 3.6: a configuration file (--config-file, else ETCD_CONFIG_FILE)
// replaces every other flag and environment variable; without one, each
// flag not on the command line is taken from its ETCD_ variable (see
// setFlagsFromEnv).
func parseServe(args []string, stdout, stderr io.Writer) (cfg node.Config, code int, ok bool) {
	cfg = node.Default()
	fs := flag.NewFlagSet("troupe serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // errors print one line; --help prints to stdout below
	cfg.RegisterFlags(fs)
	configFile := fs.String(configFileFlag, "", "Path to the server configuration file (etcd's YAML format). Other flags and environment variables are then ignored.")
	printVersion := fs.Bool("version", false, "Print the version and exit.")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			serveUsage(stdout, fs)
			return cfg, exitOK, false
		}
		fmt.Fprintln(stderr, "Run 'troupe serve --help' for the list of flags.")
		return cfg, exitUsage, false
	}
	if fs.NArg() > 0 {
		return cfg, usageError(stderr, fmt.Errorf("unexpected argument %q (flags only)", fs.Arg(0))), false
	}
	if *printVersion {
		return cfg, version(stdout), false
	}
	src, err := loadConfig(&cfg, fs, *configFile)
	if err != nil {
		return cfg, usageError(stderr, err), false
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageError(stderr, err), false
	}
	// The log files stay open for the life of the process.
	logOut, _, err := cfg.OpenLogOutputs(stdout, stderr)
	if err != nil {
		return cfg, usageError(stderr, err), false
	}
	logger, err := node.NewLogger(logOut, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return cfg, usageError(stderr, err), false
	}
	if err := failpoint.LoadEnv(); err != nil {
		return cfg, usageError(stderr, err), false
	}
	if v := os.Getenv(failpoint.EnvVar); v != "" {
		logger.Warn("failpoints armed", "env", failpoint.EnvVar, "value", v)
	}
	src.log(logger, &cfg)
	cfg.Logger = logger
	slog.SetDefault(logger)
	return cfg, exitOK, true
}

func usageError(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "troupe serve: %v\n", err)
	return exitUsage
}

// stop stops n gracefully; a second signal gives up waiting.
func stop(log *slog.Logger, n *node.Node, sigs <-chan os.Signal) int {
	stopped := make(chan error, 1)
	go func() { stopped <- n.Stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			log.Error("graceful stop failed", "err", err)
			return exitFailure
		}
		log.Info("stopped")
		return exitOK
	case sig := <-sigs:
		log.Error("second signal, exiting without finishing the graceful stop", "signal", sig.String())
		return exitFailure
	}
}

// notify tells systemd about state when it started us with Type=notify.
func notify(log *slog.Logger, state string) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	sent, err := daemon.SdNotify(false, state)
	if err != nil || !sent {
		log.Warn("systemd notification failed", "state", state, "err", err)
	}
}
