package auth

import "fmt"

// TokenKeeper receives the token side effects of applied auth requests,
// on every member as etcd's tokenProvider does: the simple token an
// Authenticate entry assigned, a user whose tokens a delete or password
// change invalidated, auth turned on or off. Implemented by the API
// layer's token provider; called on the applier's goroutine, so it must
// not block. Enable or Disable also comes at each applier start and
// snapshot install with the loaded state's flag, so both must be
// idempotent.
type TokenKeeper interface {
	Assign(token, user string, revision uint64)
	InvalidateUser(user string)
	Enable()
	Disable()
}

// SimpleToken is the simple token etcd assigns to the Authenticate entry
// at index whose proposer chose prefix: "<prefix>.<index>", so every
// member derives the same token from the log.
func SimpleToken(prefix string, index uint64) string {
	return fmt.Sprintf("%s.%d", prefix, index)
}
