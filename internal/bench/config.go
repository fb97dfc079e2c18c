package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Workload names, as `troupe bench <workload>` takes them.
const (
	Put            = "put"
	Range          = "range"
	TxnPut         = "txn-put"
	Mixed          = "mixed"
	WatchLatency   = "watch-latency"
	LeaseKeepAlive = "lease-keepalive"
	RangeLarge     = "range-large"
	Abandon        = "abandon"
)

// Workloads lists every workload name.
var Workloads = []string{Put, Range, TxnPut, Mixed, WatchLatency, LeaseKeepAlive, RangeLarge, Abandon}

// Config is one run of one workload. The zero value of a field means the
// flag's default (see cmd/troupe/bench.go for the flags and their help).
type Config struct {
	Workload  string
	Endpoints []string
	Clients   int // goroutines issuing requests
	Conns     int // gRPC connections the clients share

	KeySize        int
	ValSize        int
	KeySpace       int // distinct keys
	SequentialKeys bool

	// Exactly one of Total and Duration bounds the run.
	Total    int
	Duration time.Duration
	Rate     float64 // ops/s over all clients, 0 = as fast as possible

	Consistency string  // "l" (linearizable) or "s" (serializable) reads
	ReadRatio   float64 // mixed: the fraction of reads
	TxnOps      int     // txn-put: puts per transaction

	Watchers int // watch-latency: watchers, spread over Streams
	Streams  int

	SkipLoad bool // range, range-large, abandon: keys are already there

	AbandonWatches int           // abandon: watch calls to open and abandon
	AbandonRanges  int           // abandon: range calls to open and abandon
	AbandonHold    time.Duration // abandon: how long to hold them before reading the servers
	// AbandonEnd is how the abandon workload ends its calls before the
	// hold: AbandonEndNone keeps them, AbandonEndCancel cancels them and
	// AbandonEndClose closes their connections.
	AbandonEnd string

	Security Security

	ServerPIDs []int // local server processes to read from /proc

	Progress Progress // nil: none
}

// Security is the client side of TLS and auth, as etcdctl's flags.
type Security struct {
	CACert             string
	Cert               string
	Key                string
	InsecureSkipVerify bool
	User               string
	Password           string
}

// Defaults are the flag defaults, those of etcd's benchmark tool where it
// has the flag.
func Defaults() Config {
	return Config{
		Endpoints:      []string{"127.0.0.1:2379"},
		Clients:        1,
		Conns:          1,
		KeySize:        8,
		ValSize:        8,
		KeySpace:       1,
		Total:          10000,
		Consistency:    "l",
		ReadRatio:      0.9,
		TxnOps:         1,
		Watchers:       100,
		Streams:        10,
		AbandonWatches: 1000,
		AbandonRanges:  1000,
		AbandonHold:    5 * time.Second,
		AbandonEnd:     AbandonEndNone,
	}
}

// The values of Config.AbandonEnd (--end).
const (
	AbandonEndNone   = "none"
	AbandonEndCancel = "cancel"
	AbandonEndClose  = "close"
)

// Validate reports the first flag value the run cannot use, naming the flag.
func (c *Config) Validate() error {
	known := false
	for _, w := range Workloads {
		known = known || w == c.Workload
	}
	switch {
	case !known:
		return fmt.Errorf("unknown workload %q (one of %v)", c.Workload, Workloads)
	case len(c.Endpoints) == 0:
		return errors.New("--endpoints: at least one endpoint is needed")
	case c.Clients < 1:
		return fmt.Errorf("--clients must be at least 1, got %d", c.Clients)
	case c.Conns < 1:
		return fmt.Errorf("--conns must be at least 1, got %d", c.Conns)
	case c.KeySize < 1:
		return fmt.Errorf("--key-size must be at least 1, got %d", c.KeySize)
	case c.ValSize < 0:
		return fmt.Errorf("--val-size must not be negative, got %d", c.ValSize)
	case c.KeySpace < 1:
		return fmt.Errorf("--key-space must be at least 1, got %d", c.KeySpace)
	case c.KeySize < binary.MaxVarintLen64 && c.KeySpace > maxKeys(c.KeySize):
		return fmt.Errorf("--key-space %d needs keys longer than --key-size %d", c.KeySpace, c.KeySize)
	case (c.Total > 0) == (c.Duration > 0):
		return errors.New("give one of --total and --duration")
	case c.Total < 0 || c.Duration < 0 || c.Rate < 0:
		return errors.New("--total, --duration and --rate must not be negative")
	case c.Consistency != "l" && c.Consistency != "s":
		return fmt.Errorf("--consistency must be l or s, got %q", c.Consistency)
	case c.ReadRatio < 0 || c.ReadRatio > 1:
		return fmt.Errorf("--read-ratio must be within 0..1, got %v", c.ReadRatio)
	case c.TxnOps < 1:
		return fmt.Errorf("--txn-ops must be at least 1, got %d", c.TxnOps)
	case c.Workload == TxnPut && c.TxnOps > c.KeySpace:
		return fmt.Errorf("txn-put puts distinct keys: --txn-ops %d needs --key-space of at least as many, got %d", c.TxnOps, c.KeySpace)
	case c.Workload == WatchLatency && (c.Watchers < 1 || c.Streams < 1 || c.Streams > c.Watchers):
		return fmt.Errorf("--watchers (%d) and --streams (%d) must be at least 1, streams at most watchers", c.Watchers, c.Streams)
	case c.Workload == WatchLatency && c.ValSize < 8:
		return fmt.Errorf("watch-latency puts a sequence number in the value: --val-size must be at least 8, got %d", c.ValSize)
	case c.Workload == Abandon && c.AbandonWatches+c.AbandonRanges < 1:
		return errors.New("abandon: --watches plus --ranges must be at least 1")
	case c.AbandonEnd != AbandonEndNone && c.AbandonEnd != AbandonEndCancel && c.AbandonEnd != AbandonEndClose:
		return fmt.Errorf("--end must be %s, %s or %s, got %q", AbandonEndNone, AbandonEndCancel, AbandonEndClose, c.AbandonEnd)
	}
	return nil
}

// maxKeys is how many distinct keys a varint of size bytes can hold.
func maxKeys(size int) int {
	if size*7 >= 62 {
		return 1 << 62
	}
	return 1 << (size*7 - 1) // PutVarint zig-zags: one bit goes to the sign
}

// keyOf writes key number n into k, as etcd's benchmark does (a varint at
// the start of a key of fixed size, the rest zero).
func keyOf(k []byte, n int) string {
	clear(k)
	var buf [binary.MaxVarintLen64]byte
	l := binary.PutVarint(buf[:], int64(n))
	copy(k, buf[:l])
	return string(k)
}
