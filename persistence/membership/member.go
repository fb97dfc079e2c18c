package membership

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Member is one member of the cluster. Its JSON is etcd 3.4's
// membership.Member as stored in the "members" bucket and carried in conf
// change contexts: {"id":N,"peerURLs":[..],"isLearner":true,"name":"..",
// "clientURLs":[..]}, isLearner, name and clientURLs left out when empty.
// Keep the field order: it is the JSON order.
type Member struct {
	ID         uint64   `json:"id"`
	PeerURLs   []string `json:"peerURLs"`
	IsLearner  bool     `json:"isLearner,omitempty"`
	Name       string   `json:"name,omitempty"`
	ClientURLs []string `json:"clientURLs,omitempty"`
}

// IsStarted reports whether the member has published its name, which a
// member does once it serves: etcd counts such members as started.
func (m *Member) IsStarted() bool { return m.Name != "" }

// Clone returns a deep copy.
func (m Member) Clone() Member {
	m.PeerURLs = slices.Clone(m.PeerURLs)
	m.ClientURLs = slices.Clone(m.ClientURLs)
	return m
}

// Key returns the member's key in the "members" and "members_removed"
// buckets: its id in lower-case hex, as etcd's types.ID prints it.
func Key(id uint64) []byte { return []byte(strconv.FormatUint(id, 16)) }

// ParseKey is the inverse of Key.
func ParseKey(k []byte) (uint64, error) {
	id, err := strconv.ParseUint(string(k), 16, 64)
	if err != nil {
		return 0, fmt.Errorf("membership: member key %q: %w", k, err)
	}
	return id, nil
}

// RemovedValue is the value etcd stores for a removed id.
var RemovedValue = []byte("removed")

// Marshal returns m's JSON as etcd stores it.
func (m *Member) Marshal() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("membership: marshal member: %v", err)) // plain strings and numbers
	}
	return b
}

// Unmarshal decodes a member record from the "members" bucket.
func Unmarshal(b []byte) (Member, error) {
	var m Member
	if err := json.Unmarshal(b, &m); err != nil {
		return Member{}, fmt.Errorf("membership: member record %q: %w", b, err)
	}
	return m, nil
}

// ParsePeerURLs checks and normalises peer URLs as etcd's types.NewURLs:
// at least one; each trimmed, scheme http, https, unix or unixs, host:port,
// no path; returned as url.URL.String() gives them, sorted. An error means
// ErrBadURLs to a client.
func ParsePeerURLs(urls []string) ([]string, error) {
	if len(urls) == 0 {
		return nil, fmt.Errorf("%w: no URLs given", ErrBadURLs)
	}
	out := make([]string, 0, len(urls))
	for _, s := range urls {
		s = strings.TrimSpace(s)
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadURLs, err)
		}
		switch u.Scheme {
		case "http", "https", "unix", "unixs":
		default:
			return nil, fmt.Errorf("%w: scheme of %q must be http, https, unix or unixs", ErrBadURLs, s)
		}
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return nil, fmt.Errorf("%w: %q has no host:port", ErrBadURLs, s)
		}
		if u.Path != "" {
			return nil, fmt.Errorf("%w: %q has a path", ErrBadURLs, s)
		}
		out = append(out, u.String())
	}
	slices.Sort(out)
	return out, nil
}
