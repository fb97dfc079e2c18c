package messages

// CheckInitialHash asks the corruption checker to compare this member's
// hash with the other members' before the member serves clients (etcd's
// initial corruption check); it answers CheckInitialHashResult.
type CheckInitialHash struct{}

// CheckInitialHashResult answers CheckInitialHash: Err names the member
// whose hash differs at the same revision and compact revision, nil if
// none does (members that could not be asked do not count).
type CheckInitialHashResult struct {
	Err error
}
