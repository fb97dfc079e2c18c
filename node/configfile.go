package node

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v2"
)

// ErrConfigFile marks every error from ApplyFile: the file is missing, is
// not YAML, has a key troupe does not know or a value of the wrong type.
var ErrConfigFile = errors.New("config file")

// ApplyFile sets c from a configuration file in etcd's YAML format
// (etcd.conf.yml): one top-level key per flag of RegisterFlags, named as
// the flag without its dashes, with etcd's value types:
//
//   - URL lists and --initial-cluster are comma-separated strings
//     ("listen-client-urls: http://a:2379,http://b:2379"), not YAML lists;
//   - heartbeat-interval and election-timeout are numbers of milliseconds;
//   - durations (experimental-watch-progress-notify-interval) are numbers of
//     nanoseconds, as etcd decodes a time.Duration from JSON;
//   - a key without a value (data-dir:) keeps the default.
//
// Values derive as the flags do: data-dir and initial-cluster follow name
// unless given. Unlike etcd, which ignores keys it does not know, a key
// troupe has no flag for is refused by name, so a misspelt key is not
// silently dropped. The YAML is parsed as etcd parses it (go-yaml v2, as
// sigs.k8s.io/yaml does), so a syntax error reads as etcd's
// ("yaml: line 2: ..."). Errors wrap ErrConfigFile and name the file.
func (c *Config) ApplyFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the message already
		}
		return fmt.Errorf("%w %s: %w", ErrConfigFile, path, err)
	}
	if err := c.applyYAML(b); err != nil {
		return fmt.Errorf("%w %s: %w", ErrConfigFile, path, err)
	}
	return nil
}

func (c *Config) applyYAML(b []byte) error {
	var doc yaml.MapSlice
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err // "yaml: line 2: ...", the text etcd gives
	}
	flags := flag.NewFlagSet("config-file", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	c.RegisterFlags(flags)
	seen := map[string]bool{}
	for _, item := range doc {
		key, ok := item.Key.(string)
		if !ok {
			return fmt.Errorf("key %v is not a flag name", item.Key)
		}
		if seen[key] {
			return fmt.Errorf("key %q given twice", key)
		}
		seen[key] = true
		if key == "experimental-snapshot-catch-up-entries" {
			key = "experimental-snapshot-catchup-entries" // etcd reads both spellings
		}
		if prefix, ok := securitySections[key]; ok {
			if err := applySecuritySection(flags, key, prefix, item.Value); err != nil {
				return err
			}
			continue
		}
		if reason, ok := yamlSections[key]; ok {
			if !zeroYAML(item.Value) {
				return fmt.Errorf("%s: %s", key, reason)
			}
			continue
		}
		f := flags.Lookup(key)
		if f == nil {
			return fmt.Errorf("unknown key %q (troupe serve has no flag --%s)", key, key)
		}
		if item.Value == nil {
			continue // "data-dir:" keeps the default, as etcd
		}
		if list, ok := item.Value.([]any); ok && yamlListKeys[key] {
			item.Value = joinYAMLList(list)
		}
		s, err := yamlFlagValue(kindOf(f.Value), item.Value)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if err := flags.Set(key, s); err != nil {
			return fmt.Errorf("%s: invalid value %q: %w", key, s, err)
		}
	}
	// etcd requires --advertise-client-urls with --listen-client-urls only
	// on the command line; a file keeps the default advertise URLs.
	c.set.listenClient, c.set.advertiseClient = false, false
	given := map[string]bool{}
	flags.Visit(func(f *flag.Flag) { given[f.Name] = true })
	return c.resolveFlags(given)
}

// yamlListKeys are the keys etcd's configuration file takes as YAML lists
// ("log-outputs: [stderr]"), where the flag takes a comma-separated list.
var yamlListKeys = map[string]bool{
	"log-outputs": true, "cipher-suites": true,
	"client-cert-allowed-hostname": true, "peer-cert-allowed-cn": true, "peer-cert-allowed-hostname": true,
}

func joinYAMLList(list []any) string {
	parts := make([]string, len(list))
	for i, v := range list {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ",")
}

// yamlSections are keys of etcd's configuration file that are sections,
// not flags; troupe accepts them only empty (etcd's sample file lists
// them with empty values).
var yamlSections = map[string]string{
	"discovery-config":               reasonV3Discovery,
	"socket-options":                 "SO_REUSEPORT and SO_REUSEADDR are not supported by troupe",
	"grpc-additional-server-options": "not a configuration file setting (etcd's embed API only)",
}

// securitySections are etcd's client-transport-security and
// peer-transport-security blocks, with their keys' flags below.
var securitySections = map[string]string{"client-transport-security": "", "peer-transport-security": "peer-"}

// securityKeys are the keys of a security block (etcd's securityConfig)
// and the flag each sets, without the peer- prefix ("" for a key that
// has no flag on the client side).
var securityKeys = map[string][2]string{ // key: {client flag, peer flag}
	"cert-file":                    {"cert-file", "peer-cert-file"},
	"key-file":                     {"key-file", "peer-key-file"},
	"client-cert-file":             {"client-cert-file", "peer-client-cert-file"},
	"client-key-file":              {"client-key-file", "peer-client-key-file"},
	"client-cert-auth":             {"client-cert-auth", "peer-client-cert-auth"},
	"trusted-ca-file":              {"trusted-ca-file", "peer-trusted-ca-file"},
	"auto-tls":                     {"auto-tls", "peer-auto-tls"},
	"allowed-cn":                   {"", "peer-cert-allowed-cn"},
	"allowed-hostname":             {"client-cert-allowed-hostname", "peer-cert-allowed-hostname"},
	"skip-client-san-verification": {"", "peer-skip-client-san-verification"},
}

// applySecuritySection sets the flags of one security block. etcd's
// client block also takes allowed-cn (no flag); troupe refuses it there
// rather than drop it.
func applySecuritySection(flags *flag.FlagSet, section, prefix string, v any) error {
	if v == nil {
		return nil
	}
	block, ok := v.(yaml.MapSlice)
	if !ok {
		return fmt.Errorf("%s: want a block of keys (cert-file, key-file, ...), not %v", section, v)
	}
	side := 0
	if prefix != "" {
		side = 1
	}
	for _, it := range block {
		key, _ := it.Key.(string)
		names, ok := securityKeys[key]
		if !ok {
			return fmt.Errorf("%s: unknown key %q", section, it.Key)
		}
		if it.Value == nil {
			continue
		}
		name := names[side]
		if name == "" {
			if zeroYAML(it.Value) {
				continue
			}
			return fmt.Errorf("%s: %s is not supported on the client side by troupe", section, key)
		}
		val := it.Value
		if list, ok := val.([]any); ok {
			val = joinYAMLList(list)
		}
		str, err := yamlFlagValue(kindOf(flags.Lookup(name).Value), val)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", section, key, err)
		}
		if err := flags.Set(name, str); err != nil {
			return fmt.Errorf("%s: %s: invalid value %q: %w", section, key, str, err)
		}
	}
	return nil
}

// zeroYAML reports whether v holds nothing but empty values.
func zeroYAML(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case bool:
		return !v
	case int:
		return v == 0
	case yaml.MapSlice:
		for _, it := range v {
			if !zeroYAML(it.Value) {
				return false
			}
		}
		return true
	case []any:
		for _, it := range v {
			if !zeroYAML(it) {
				return false
			}
		}
		return true
	}
	return false
}

// yamlKind is the YAML type etcd's config file has for a flag's value.
type yamlKind int

const (
	yamlString   yamlKind = iota
	yamlInt               // also milliseconds for heartbeat-interval, election-timeout
	yamlDuration          // nanoseconds, as encoding/json decodes a time.Duration
	yamlBool
)

func kindOf(v flag.Value) yamlKind {
	if _, ok := v.(*msValue); ok {
		return yamlInt
	}
	g, ok := v.(flag.Getter)
	if !ok {
		return yamlString
	}
	switch g.Get().(type) {
	case time.Duration:
		return yamlDuration
	case int, int64, uint, uint64:
		return yamlInt
	case bool:
		return yamlBool
	}
	return yamlString
}

// yamlFlagValue turns a YAML value into the flag's command-line form,
// refusing a value of the wrong YAML type as etcd's JSON decoding does.
func yamlFlagValue(kind yamlKind, v any) (string, error) {
	switch kind {
	case yamlString:
		switch v := v.(type) {
		case string:
			return v, nil
		case []any:
			return "", errors.New("want a string, not a YAML list (URL lists are comma-separated: 'http://a:2379,http://b:2379')")
		}
		return "", fmt.Errorf("want a string, not %v (quote it)", v)
	case yamlBool:
		if b, ok := v.(bool); ok {
			return strconv.FormatBool(b), nil
		}
		return "", fmt.Errorf("want true or false, not %q", fmt.Sprint(v))
	}
	var n string
	switch v := v.(type) {
	case int:
		n = strconv.Itoa(v)
	case int64:
		n = strconv.FormatInt(v, 10)
	case uint64:
		n = strconv.FormatUint(v, 10)
	case string:
		return "", fmt.Errorf("want a whole number, not the string %q", v)
	default:
		return "", fmt.Errorf("want a whole number, not %v", v)
	}
	if kind == yamlDuration {
		ns, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			return "", fmt.Errorf("want a number of nanoseconds, not %s", n)
		}
		return time.Duration(ns).String(), nil
	}
	return n, nil
}
