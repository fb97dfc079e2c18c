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
func ShutdownRemote(r *remote.Remote, log *slog.Logger) {
	const attempts = 3
	for attempt := 1; ; attempt++ {
		err := shutdownOnce(r)
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

func shutdownOnce(r *remote.Remote) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in protoactor's Remote.Shutdown: %v", p)
		}
	}()
	r.Shutdown(true)
	return nil
}
