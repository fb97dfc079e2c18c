package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"gopkg.in/natefinch/lumberjack.v2"
)

// etcd's names of the log outputs that are not files.
const (
	LogOutputStderr  = "stderr"
	LogOutputStdout  = "stdout"
	LogOutputJournal = "systemd/journal"
	// LogOutputDiscard, among the outputs, discards every log line (as
	// zap's merge of output paths in etcd).
	LogOutputDiscard = "/dev/null"

	// DefaultLogRotationConfig is etcd 3.6.8's --log-rotation-config-json
	// default: 100 MB files, kept forever, UTC names, not compressed.
	DefaultLogRotationConfig = `{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}`
)

// ErrLogRotationInvalidLogOutput is etcd's refusal of log rotation
// without exactly one file among the log outputs.
var ErrLogRotationInvalidLogOutput = errors.New("--log-outputs requires a single file path when --log-rotate-config-json is defined")

// checkLogOutputs applies etcd 3.6.8's rules to --log-outputs and the
// log rotation flags: 'default' alone, at most one file when rotating,
// a rotation config lumberjack can read.
func checkLogOutputs(outs []string, rotate bool, rotationJSON string) error {
	if len(outs) > 1 && slices.Contains(outs, LogOutputDefault) {
		return fmt.Errorf("multi logoutput for %q is not supported yet", LogOutputDefault)
	}
	if slices.Contains(outs, LogOutputJournal) {
		return fmt.Errorf("--log-outputs %q: troupe does not write to journald itself; under systemd, 'default' (stderr) reaches the journal", LogOutputJournal)
	}
	if !rotate {
		return nil
	}
	_, err := logRotation(outs, rotationJSON)
	return err
}

// logRotation is the lumberjack logger of --enable-log-rotation, checked
// as etcd checks it: one file among several outputs, or a file alone.
// Its Filename is set by OpenLogOutputs.
func logRotation(outs []string, rotationJSON string) (*lumberjack.Logger, error) {
	files := 0
	for _, o := range outs {
		if !isStdLogOutput(o) {
			files++
		}
	}
	if (len(outs) == 1 && files == 0) || files > 1 {
		return nil, ErrLogRotationInvalidLogOutput
	}
	// The wrapper names the fields in type errors as etcd's does
	// ("logRotationConfig.Logger.maxsize").
	var lj logRotationConfig
	if err := json.Unmarshal([]byte(rotationJSON), &lj); err != nil {
		var syntaxErr *json.SyntaxError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntaxErr):
			return nil, fmt.Errorf("improperly formatted log rotation config: %w", err)
		case errors.As(err, &typeErr):
			return nil, fmt.Errorf("invalid log rotation config: %w", err)
		default:
			return nil, fmt.Errorf("fail to unmarshal log rotation config: %w", err)
		}
	}
	if lj.Logger == nil { // "null" or "{}"
		lj.Logger = &lumberjack.Logger{}
	}
	return lj.Logger, nil
}

type logRotationConfig struct {
	*lumberjack.Logger
}

func isStdLogOutput(o string) bool {
	return o == LogOutputDefault || o == LogOutputStderr || o == LogOutputStdout
}

// OpenLogOutputs returns the writer of --log-outputs: stderr for
// 'default' and 'stderr', stdout, and files opened for appending
// (created 0666, as etcd's zap sinks), several at once; with
// --enable-log-rotation the one file is written through lumberjack.
// '/dev/null' among them discards everything, as in etcd. Close the
// closer when the logger is no longer used.
func (c *Config) OpenLogOutputs(stdout, stderr io.Writer) (io.Writer, io.Closer, error) {
	outs := slices.Clone(c.LogOutputs)
	if len(outs) == 0 {
		outs = []string{LogOutputDefault}
	}
	if slices.Contains(outs, LogOutputDiscard) {
		return io.Discard, nopCloser{}, nil
	}
	var rot *lumberjack.Logger
	if c.EnableLogRotation {
		var err error
		if rot, err = logRotation(outs, c.LogRotationConfigJSON); err != nil {
			return nil, nil, err
		}
	}
	// 'default' and 'stderr' are one output, as zap merges the same path.
	for i, o := range outs {
		if o == LogOutputDefault {
			outs[i] = LogOutputStderr
		}
	}
	slices.Sort(outs)
	outs = slices.Compact(outs)

	var ws []io.Writer
	var files closers
	for _, o := range outs {
		switch {
		case o == LogOutputStderr:
			ws = append(ws, stderr)
		case o == LogOutputStdout:
			ws = append(ws, stdout)
		case rot != nil:
			rot.Filename = o
			ws = append(ws, rot)
			files = append(files, rot)
		default:
			f, err := os.OpenFile(o, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o666)
			if err != nil {
				_ = files.Close()
				return nil, nil, fmt.Errorf("open sink %q: %w", o, err)
			}
			ws = append(ws, f)
			files = append(files, f)
		}
	}
	if len(ws) == 1 {
		return ws[0], files, nil
	}
	return io.MultiWriter(ws...), files, nil
}

// closers closes the log files.
type closers []io.Closer

func (cs closers) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
