package transport

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
)

func TestGuardRejectsUnlinkedAcceptedType(t *testing.T) {
	g := newGuard([]string{"no.such.Type"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	batch := &remote.MessageBatch{TypeNames: []string{"no.such.Type"}, Targets: []*actor.PID{actor.NewPID("x", "kv")},
		Envelopes: []*remote.MessageEnvelope{{MessageData: []byte{1, 2, 3}}}}
	if reason := g.reject(batch, batch.Envelopes[0]); !strings.Contains(reason, "not linked in") {
		t.Fatalf("reject = %q", reason)
	}
	g.filter(batch)
	if len(batch.Envelopes) != 0 {
		t.Fatalf("filter kept %d envelopes", len(batch.Envelopes))
	}
}
