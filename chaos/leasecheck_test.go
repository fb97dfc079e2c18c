package chaos

import (
	"strings"
	"testing"
	"time"
)

func leaseOp(kind LeaseOpKind, key string, ttl time.Duration, call, ret int, o Outcome) LeaseOp {
	return LeaseOp{Kind: kind, Lease: 0x1, Key: key, TTL: ttl, Call: ms(call), Return: ms(ret), Outcome: o}
}

func read(key string, present bool, call, ret int) LeaseOp {
	op := leaseOp(LeaseRead, key, 0, call, ret, OK)
	op.Present = present
	return op
}

func TestCheckLeases(t *testing.T) {
	sec := time.Second
	grant := leaseOp(LeaseGrant, "", sec, 0, 10, OK) // alive until 1000ms at least
	put := leaseOp(LeasePut, "k", 0, 20, 30, OK)
	keepalive := leaseOp(LeaseKeepAlive, "", sec, 800, 810, OK) // until 1800ms
	for _, tc := range []struct {
		name string
		ops  []LeaseOp
		want string // substring of the violation, "" for none
	}{
		{"present while alive", []LeaseOp{grant, put, read("k", true, 500, 510)}, ""},
		{"gone after the deadline", []LeaseOp{grant, put, read("k", false, 1200, 1210)}, ""},
		{"gone before the deadline", []LeaseOp{grant, put, read("k", false, 900, 990)}, "lease 1 ended early: key k is gone"},
		{"read straddling the deadline", []LeaseOp{grant, put, read("k", false, 990, 1010)}, ""},
		{"keepalive extends", []LeaseOp{grant, put, keepalive, read("k", false, 1500, 1510)}, "keeps it until 1.8s"},
		{"gone after the keepalive's deadline", []LeaseOp{grant, put, keepalive, read("k", false, 1900, 1910)}, ""},
		{"unknown keepalive proves nothing", []LeaseOp{grant, put, leaseOp(LeaseKeepAlive, "", sec, 800, 810, Unknown), read("k", false, 1500, 1510)}, ""},
		{"revoked early", []LeaseOp{grant, put, leaseOp(LeaseRevoke, "", 0, 400, 410, OK), read("k", false, 500, 510)}, ""},
		{"revoke of unknown outcome", []LeaseOp{grant, put, leaseOp(LeaseRevoke, "", 0, 400, 410, Unknown), read("k", false, 500, 510)}, ""},
		{"failed revoke excuses nothing", []LeaseOp{grant, put, leaseOp(LeaseRevoke, "", 0, 400, 410, Failed), read("k", false, 500, 510)}, "ended early"},
		{"revoke concurrent with the read", []LeaseOp{grant, put, leaseOp(LeaseRevoke, "", 0, 505, 600, OK), read("k", false, 500, 510)}, ""},
		{"present after the revoke", []LeaseOp{grant, put, leaseOp(LeaseRevoke, "", 0, 400, 410, OK), read("k", true, 500, 510)}, "still there"},
		{"present during the revoke", []LeaseOp{grant, put, leaseOp(LeaseRevoke, "", 0, 400, 410, OK), read("k", true, 405, 510)}, ""},
		{"read before the put returned", []LeaseOp{grant, put, read("k", false, 25, 40)}, ""},
		{"put of unknown outcome", []LeaseOp{grant, leaseOp(LeasePut, "k", 0, 20, 30, Unknown), read("k", false, 500, 510)}, ""},
		{"failed read", []LeaseOp{grant, put, {Kind: LeaseRead, Lease: 1, Key: "k", Call: ms(500), Return: ms(510), Outcome: Failed}}, ""},
		{"keepalive finds no lease early", []LeaseOp{grant, leaseOp(LeaseKeepAlive, "", 0, 500, 510, OK)}, "keepalive found no lease"},
		{"keepalive finds no lease late", []LeaseOp{grant, leaseOp(LeaseKeepAlive, "", 0, 1500, 1510, OK)}, ""},
		{"lease back after not found", []LeaseOp{grant, leaseOp(LeaseKeepAlive, "", 0, 1500, 1510, OK), leaseOp(LeaseKeepAlive, "", sec, 1600, 1610, OK)}, "keepalive found no lease"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckLeases(tc.ops)
			switch {
			case tc.want == "" && len(got) > 0:
				t.Fatalf("violations %q, want none", got)
			case tc.want != "" && !strings.Contains(strings.Join(got, "\n"), tc.want):
				t.Fatalf("violations %q, want one with %q", got, tc.want)
			}
		})
	}
}

func TestLeaseHistoryOrdersByCall(t *testing.T) {
	h := NewLeaseHistory(NewHistory())
	h.Add(LeaseOp{Kind: LeaseRead, Call: ms(5)})
	h.Add(LeaseOp{Kind: LeaseGrant, Call: ms(1)})
	ops := h.Ops()
	if ops[0].Kind != LeaseGrant || ops[1].Kind != LeaseRead {
		t.Fatalf("ops %v at %v", ops, h.Now())
	}
}
