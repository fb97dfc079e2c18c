package actorclient

import (
	"fmt"
	"log/slog"

	"github.com/asynkron/protoactor-go/remote"

	"github.com/troupedb/troupe/internal/transport"
)

// TLS is a program's identity towards a member whose actor API is served
// over TLS (the member has an https client URL). The member answers by
// dialing the program's remote back, so TLS goes both ways:
// CertFile/KeyFile are served by the program's remote and presented when
// it dials the member; TrustedCAFile verifies the member's certificate,
// and the member's client certificate when it dials back.
type TLS struct {
	CertFile, KeyFile, TrustedCAFile string
	// Logger receives rejected handshakes; nil is slog.Default().
	Logger *slog.Logger
}

// RemoteOptions are the remote.Configure options of the program's remote
// for calling a member's actor API over TLS, with the send/receive limit
// maxMessageBytes (as actorapi.DialOptions). The files are re-read when
// they change.
func RemoteOptions(t TLS, maxMessageBytes int) ([]remote.ConfigOption, error) {
	sec, err := transport.NewSecurity(transport.TLSInfo{
		CertFile: t.CertFile, KeyFile: t.KeyFile, TrustedCAFile: t.TrustedCAFile,
		// The member dials back from its own address, whatever its
		// certificate names.
		SkipClientSANVerify: true,
	}, t.Logger)
	if err != nil {
		return nil, fmt.Errorf("actorclient: %w", err)
	}
	if sec == nil {
		return nil, fmt.Errorf("actorclient: TLS needs CertFile and KeyFile")
	}
	return transport.CallerRemoteOptions(sec, maxMessageBytes), nil
}
