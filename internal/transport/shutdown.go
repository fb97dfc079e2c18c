package transport

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/remote"
)

// ShutdownRemote stops r gracefully. The served protoactor's shutdown sends
// on the channel of every inbound stream it still lists; a stream that
// ended a moment before has closed its channel and is only about to be
// unlisted (see guardedStream.RecvMsg), and that send panics. A panic ends
// that attempt; the next one, a moment later, finds the stream unlisted
// and finishes the shutdown (stopping what is stopped already is a no-op).
//
// The graceful part waits for the remote's endpoint writers, and a writer
// that is connecting to a member that is down finishes its attempts first
// (protoactor tries 5 times with a fixed 2 s pause after each, all inside
// the writer's Started: a stop waited 10 s whenever a peer was down). ShutdownRemote waits at
// most shutdownGrace for it, then stops the remote's gRPC server at once;
// the graceful shutdown goes on in the background (its owner is the
// remote; it ends on its own when the writers give up, within 10 s), so a
// member stops, or a failed start exits, in well under a second whether or
// not its peers are up.
func ShutdownRemote(r *remote.Remote, log *slog.Logger) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		shutdownGracefully(r, log)
	}()
	t := time.NewTimer(shutdownGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		log.Info("remote shutdown waits for endpoint writers; stopping its server now", "waited", shutdownGrace)
		if err := shutdownOnce(r, false); err != nil {
			log.Warn("remote server stop", "err", err)
		}
	}
}

// shutdownGrace bounds how long a stop waits for the remote's graceful
// shutdown before it stops the server.
const shutdownGrace = 500 * time.Millisecond

func shutdownGracefully(r *remote.Remote, log *slog.Logger) {
	const attempts = 3
	for attempt := 1; ; attempt++ {
		err := shutdownOnce(r, true)
		if err == nil {
			return
		}
		if attempt == attempts {
			log.Error("remote shutdown failed", "attempts", attempts, "err", err)
			return
		}
		log.Warn("remote shutdown interrupted, trying again", "err", err)
		time.Sleep(20 * time.Millisecond)
	}
}

// shutdownOnce runs protoactor's Remote.Shutdown, graceful or not, and
// returns its panic as an error.
func shutdownOnce(r *remote.Remote, graceful bool) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in protoactor's Remote.Shutdown: %v", p)
		}
	}()
	r.Shutdown(graceful)
	return nil
}
