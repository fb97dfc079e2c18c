package transport

import (
	"io"
	"log/slog"
	"strings"

	"google.golang.org/grpc/grpclog"
)

// SetGRPCLogger makes gRPC's process-wide logger report errors (and fatal
// messages) to logger, and discard info and warnings, as gRPC's default
// does. protoactor's Remote.Start replaces gRPC's logger with one that
// discards everything, which also silences troupe's etcd gRPC server: call
// this after every Remote.Start in the process (actorapi.Serve and
// peers.StartRemote do).
func SetGRPCLogger(logger *slog.Logger) {
	w := slogWriter{log: logger.With("component", "grpc")}
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, w))
}

type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Error(strings.TrimSpace(string(p)))
	return len(p), nil
}
