package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/troupedb/troupe/node"
)

// configFileFlag is etcd's --config-file; its variable is ETCD_CONFIG_FILE.
const configFileFlag = "config-file"

// configSource records where the configuration came from, to log once the
// logger exists.
type configSource struct {
	file    string   // the configuration file, or ""
	ignored []string // flags given with a configuration file
	env     envReport
}

// loadConfig completes cfg, already parsed from the command line in fs,
// from the configuration file (the flag, else ETCD_CONFIG_FILE) or else
// from the ETCD_ environment variables.
func loadConfig(cfg *node.Config, fs *flag.FlagSet, file string) (configSource, error) {
	var src configSource
	from := ""
	if file == "" {
		file, from = os.Getenv(flagToEnv(configFileFlag)), flagToEnv(configFileFlag)+": "
	}
	if file == "" {
		rep, err := setFlagsFromEnv(fs, os.Environ())
		src.env = rep
		if err != nil {
			return src, err
		}
		return src, cfg.ResolveFlags(fs)
	}
	src.file = file
	fs.Visit(func(f *flag.Flag) {
		if f.Name != configFileFlag {
			src.ignored = append(src.ignored, "--"+f.Name)
		}
	})
	*cfg = node.Default()
	if err := cfg.ApplyFile(file); err != nil {
		return src, fmt.Errorf("%s%w", from, err)
	}
	return src, nil
}

// log says what etcd 3.6 says about the same configuration.
func (s configSource) log(log *slog.Logger, cfg *node.Config) {
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	s.logSource(log)
}

func (s configSource) logSource(log *slog.Logger) {
	if s.file != "" {
		attrs := []any{"path", s.file}
		if len(s.ignored) > 0 {
			attrs = append(attrs, "ignored-flags", s.ignored)
		}
		log.Info("loaded server configuration, other configuration command line flags and environment variables will be ignored if provided", attrs...)
		return
	}
	for _, kv := range s.env.special {
		k, v, _ := strings.Cut(kv, "=")
		log.Warn("cannot set special environment variable", "key", k, "value", v)
	}
	for _, kv := range s.env.used {
		k, v, _ := strings.Cut(kv, "=")
		log.Info("recognized and used environment variable", "variable-name", k, "variable-value", v)
	}
	for _, kv := range s.env.unrecognized {
		log.Warn("unrecognized environment variable", "environment-variable", kv)
	}
}
