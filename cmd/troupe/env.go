package main

import (
	"flag"
	"fmt"
	"strings"
)

// envPrefix starts the environment variable of every `troupe serve` flag,
// troupe's own (--log-format, --listen-actor-url) included: one scheme,
// and no "unrecognized environment variable" warning for them.
const envPrefix = "ETCD"

// envVersion is etcd's special variable: etcd warns that it cannot be set
// (it would be --version, which serve does not have) and ignores it.
const envVersion = "ETCD_VERSION"

// flagToEnv names a flag's environment variable as etcd does:
// data-dir -> ETCD_DATA_DIR.
func flagToEnv(name string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// envReport is what setFlagsFromEnv saw, for logging once the logger
// exists (its level and format may come from the environment).
type envReport struct {
	used         []string // "ETCD_NAME=x", set from the environment
	unrecognized []string // "ETCD_BOGUS=1", as etcd logs them
	special      []string // ETCD_VERSION=..., ignored
}

// setFlagsFromEnv sets each flag of fs not given on the command line from
// its ETCD_ variable, with etcd 3.6's rules (pkg/flags.SetFlagsFromEnv):
//
//   - a flag on the command line wins, but its variable must then be
//     unset: etcd exits on the conflict (even for an empty variable);
//   - an empty variable does not set its flag;
//   - a variable naming no flag is reported as unrecognized;
//   - an invalid value is an error naming the variable; as etcd, the
//     conflict check comes first, and every other variable is still set.
//
// environ is os.Environ() ("KEY=value" entries).
func setFlagsFromEnv(fs *flag.FlagSet, environ []string) (envReport, error) {
	var rep envReport
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[flagToEnv(f.Name)] = true })
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	used := map[string]bool{}
	var setErr error
	fs.VisitAll(func(f *flag.Flag) {
		key := flagToEnv(f.Name)
		val := env[key]
		if onCommandLine[key] || val == "" || key == envVersion {
			return
		}
		used[key] = true
		rep.used = append(rep.used, key+"="+val)
		if err := fs.Set(f.Name, val); err != nil {
			setErr = fmt.Errorf("invalid value %q for %s: %w", val, key, err)
		}
	})
	for _, kv := range environ {
		key, _, _ := strings.Cut(kv, "=")
		switch {
		case used[key]:
		case onCommandLine[key]:
			return rep, fmt.Errorf("conflicting environment variable %q is shadowed by corresponding command-line flag (either unset environment variable or disable flag)", key)
		case key == envVersion:
			rep.special = append(rep.special, kv)
		case strings.HasPrefix(key, envPrefix+"_"):
			rep.unrecognized = append(rep.unrecognized, kv)
		}
	}
	return rep, setErr
}
