package auth

import (
	"bytes"
	"slices"

	"go.etcd.io/etcd/api/v3/authpb"
)

// Key ranges follow etcd's rules (server/auth/range_perm_cache.go):
//   - a permission or request with an empty range end is the single key;
//   - [key, end) otherwise;
//   - an end of "\x00" is open-ended: every key from key on.
//
// A range of keys is kept as a half-open interval whose end nil means
// "after every key".

// interval is [begin, end); end nil: unbounded.
type interval struct {
	begin, end []byte
}

// endLess orders interval ends, nil (unbounded) after every key.
func endCmp(a, b []byte) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return bytes.Compare(a, b)
}

// point is the interval of the single key k: [k, k+"\x00").
func point(k []byte) interval {
	end := make([]byte, len(k)+1)
	copy(end, k)
	return interval{begin: k, end: end}
}

// isOpenEnded reports etcd's open range end "\x00".
func isOpenEnded(end []byte) bool { return len(end) == 1 && end[0] == 0 }

// permInterval is the interval a key permission covers.
func permInterval(key, end []byte) interval {
	switch {
	case len(end) == 0:
		return point(key)
	case isOpenEnded(end):
		return interval{begin: key}
	default:
		return interval{begin: key, end: end}
	}
}

// isValidPermissionRange is etcd's check of a granted permission's range:
// a key, and no end, an end after the key, or the open end.
func isValidPermissionRange(key, end []byte) bool {
	if len(key) == 0 {
		return false
	}
	if len(end) == 0 || isOpenEnded(end) {
		return true
	}
	return bytes.Compare(key, end) < 0
}

// rangeSet is a union of key intervals, merged: sorted, disjoint and not
// touching, so "covered" is a binary search. etcd keeps an interval tree
// per user; the merged union answers the same questions.
type rangeSet []interval

// add returns s with iv added, merged with what it overlaps or touches.
func (s rangeSet) add(iv interval) rangeSet {
	if iv.end != nil && bytes.Compare(iv.begin, iv.end) >= 0 {
		return s
	}
	out := make(rangeSet, 0, len(s)+1)
	i := 0
	for ; i < len(s) && s[i].end != nil && bytes.Compare(s[i].end, iv.begin) < 0; i++ {
		out = append(out, s[i])
	}
	merged := iv
	for ; i < len(s) && (merged.end == nil || bytes.Compare(s[i].begin, merged.end) <= 0); i++ {
		if bytes.Compare(s[i].begin, merged.begin) < 0 {
			merged.begin = s[i].begin
		}
		if endCmp(s[i].end, merged.end) > 0 {
			merged.end = s[i].end
		}
	}
	out = append(out, merged)
	return append(out, s[i:]...)
}

// covers reports whether every key of iv is in s. An empty or inverted
// request range (end at or before begin) is covered by nothing, as in
// etcd's tree, which finds no interval for it.
func (s rangeSet) covers(iv interval) bool {
	if iv.end != nil && bytes.Compare(iv.begin, iv.end) >= 0 {
		return false
	}
	// The last interval that begins at or before iv.begin.
	i, found := slices.BinarySearchFunc(s, iv.begin, func(e interval, k []byte) int { return bytes.Compare(e.begin, k) })
	if !found {
		i--
	}
	if i < 0 {
		return false
	}
	return endCmp(s[i].end, iv.end) >= 0
}

// userPerms is one user's merged permissions over all its roles.
type userPerms struct {
	read, write rangeSet
}

// mergePerms merges the permissions of roles (missing roles skipped).
func mergePerms(u *authpb.User, roles map[string]*authpb.Role) *userPerms {
	p := &userPerms{}
	for _, name := range u.Roles {
		r, ok := roles[name]
		if !ok {
			continue
		}
		for _, perm := range r.KeyPermission {
			iv := permInterval(perm.Key, perm.RangeEnd)
			switch perm.PermType {
			case authpb.Permission_READWRITE:
				p.read = p.read.add(iv)
				p.write = p.write.add(iv)
			case authpb.Permission_READ:
				p.read = p.read.add(iv)
			case authpb.Permission_WRITE:
				p.write = p.write.add(iv)
			}
		}
	}
	return p
}

// requestInterval is the interval a request's key and range end cover.
func requestInterval(key, end []byte) interval {
	return permInterval(key, end)
}

func (p *userPerms) permitted(key, end []byte, t authpb.Permission_Type) bool {
	iv := requestInterval(key, end)
	switch t {
	case authpb.Permission_READ:
		return p.read.covers(iv)
	case authpb.Permission_WRITE:
		return p.write.covers(iv)
	}
	return false
}
