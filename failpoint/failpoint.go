// Package failpoint is troupe's fault-injection facility, in the spirit of
// etcd's gofail: code names a point with Inject, and a test or an operator
// arms it by name. Points are free when nothing is armed (one atomic load),
// and can only be armed from tests or through the TROUPE_FAILPOINTS
// environment variable, never by a client.
//
// TROUPE_FAILPOINTS holds ';'-separated terms "name=action", where action is
//
//	panic            panic at the point
//	error            Inject returns ErrInjected
//	sleep(50ms)      sleep, then continue
//	N*action         do action only for the next N hits, then disarm
//	after(K):action  let the first K hits pass, then act
//	off              disarm
//
// for example TROUPE_FAILPOINTS='walBeforeFsync=sleep(20ms);applierPanic=1*panic'.
package failpoint

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// EnvVar names the environment variable read by LoadEnv.
const EnvVar = "TROUPE_FAILPOINTS"

// ErrInjected is returned by Inject at a point armed with "error".
var ErrInjected = errors.New("failpoint: injected error")

type kind int

const (
	kindPanic kind = iota + 1
	kindError
	kindSleep
)

type action struct {
	kind  kind
	sleep time.Duration
	left  int64 // hits left; <0 means unlimited
	skip  int64 // hits to let pass before acting
}

var (
	armed  atomic.Int32 // number of armed points: the fast path checks only this
	mu     sync.Mutex
	points = map[string]*action{}
	hits   = map[string]int64{}
)

// Inject runs the action armed at name, if any. It returns ErrInjected for
// an "error" action and nil otherwise; a "panic" action panics with a
// message naming the point.
func Inject(name string) error {
	if armed.Load() == 0 {
		return nil
	}
	mu.Lock()
	a, ok := points[name]
	if !ok {
		mu.Unlock()
		return nil
	}
	hits[name]++
	if a.skip > 0 {
		a.skip--
		mu.Unlock()
		return nil
	}
	k, d := a.kind, a.sleep
	if a.left > 0 {
		a.left--
		if a.left == 0 {
			delete(points, name)
			armed.Add(-1)
		}
	}
	mu.Unlock()
	switch k {
	case kindPanic:
		panic(fmt.Sprintf("failpoint %s: injected panic", name))
	case kindError:
		return fmt.Errorf("%s: %w", name, ErrInjected)
	case kindSleep:
		time.Sleep(d)
	}
	return nil
}

// Enable arms name with an action in the syntax of TROUPE_FAILPOINTS.
func Enable(name, spec string) error {
	a, err := parse(spec)
	if err != nil {
		return fmt.Errorf("failpoint %s: %w", name, err)
	}
	mu.Lock()
	defer mu.Unlock()
	_, had := points[name]
	if a == nil {
		if had {
			delete(points, name)
			armed.Add(-1)
		}
		return nil
	}
	points[name] = a
	if !had {
		armed.Add(1)
	}
	return nil
}

// Disable disarms name.
func Disable(name string) { _ = Enable(name, "off") }

// Hits reports how often an armed point named name was reached.
func Hits(name string) int64 {
	mu.Lock()
	defer mu.Unlock()
	return hits[name]
}

// LoadEnv arms every point listed in TROUPE_FAILPOINTS.
func LoadEnv() error {
	return LoadSpec(os.Getenv(EnvVar))
}

// LoadSpec arms every point of a TROUPE_FAILPOINTS-style list.
func LoadSpec(list string) error {
	for _, term := range strings.Split(list, ";") {
		term = strings.TrimSpace(term)
		if term == "" {
			continue
		}
		name, spec, ok := strings.Cut(term, "=")
		if !ok {
			return fmt.Errorf("failpoint: term %q is not name=action (set %s like 'walBeforeFsync=sleep(5ms)')", term, EnvVar)
		}
		if err := Enable(strings.TrimSpace(name), strings.TrimSpace(spec)); err != nil {
			return err
		}
	}
	return nil
}

func parse(spec string) (*action, error) {
	a := &action{left: -1}
	if strings.HasPrefix(spec, "after(") {
		n, rest, ok := strings.Cut(spec[len("after("):], "):")
		k, err := strconv.ParseInt(n, 10, 64)
		if !ok || err != nil || k < 0 {
			return nil, fmt.Errorf("bad after(K): prefix in %q", spec)
		}
		a.skip, spec = k, rest
	}
	if n, rest, ok := strings.Cut(spec, "*"); ok {
		c, err := strconv.ParseInt(n, 10, 64)
		if err != nil || c <= 0 {
			return nil, fmt.Errorf("bad count %q in %q", n, spec)
		}
		a.left, spec = c, rest
	}
	switch {
	case spec == "off":
		return nil, nil
	case spec == "panic":
		a.kind = kindPanic
	case spec == "error":
		a.kind = kindError
	case strings.HasPrefix(spec, "sleep(") && strings.HasSuffix(spec, ")"):
		d, err := time.ParseDuration(spec[len("sleep(") : len(spec)-1])
		if err != nil {
			return nil, fmt.Errorf("bad duration in %q: %w", spec, err)
		}
		a.kind, a.sleep = kindSleep, d
	default:
		return nil, fmt.Errorf("unknown action %q (want panic, error, sleep(D), N*action or off)", spec)
	}
	return a, nil
}
