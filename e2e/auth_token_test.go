package e2e

// Tokens as etcd 3.6.8 gives and checks them: simple tokens that expire
// after --auth-token-ttl of disuse (clientv3 logs in again by itself, a
// raw gRPC client gets the invalid token error) and JWTs signed with RSA
// and ECDSA keys made by the test: valid, expired, forged, unsigned, of an
// old auth revision, and checked by a member that can only verify.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/e2e/e2etest"
	"github.com/troupedb/troupe/internal/polltest"
)

// enableAuth makes root (rootPassword) and alice (alicepw, reading k1),
// puts k1 and enables auth, through clientv3 without credentials.
func enableAuth(t testing.TB, s *e2etest.Server) {
	t.Helper()
	cli := s.Client(t)
	c := ctx(t)
	_, err := cli.UserAdd(c, "root", rootPassword)
	must(t, err)
	_, err = cli.RoleAdd(c, "root")
	must(t, err)
	_, err = cli.UserGrantRole(c, "root", "root")
	must(t, err)
	_, err = cli.RoleAdd(c, "r-key")
	must(t, err)
	_, err = cli.RoleGrantPermission(c, "r-key", "k1", "", clientv3.PermissionType(clientv3.PermRead))
	must(t, err)
	_, err = cli.UserAdd(c, "alice", "alicepw")
	must(t, err)
	_, err = cli.UserGrantRole(c, "alice", "r-key")
	must(t, err)
	_, err = cli.Put(c, "k1", "v1")
	must(t, err)
	_, err = cli.AuthEnable(c)
	must(t, err)
}

// userClient is a clientv3 client logged in as user, closed at cleanup.
func userClient(t *testing.T, s *e2etest.Server, user, password string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{s.Endpoint()}, DialTimeout: 5 * time.Second,
		Username: user, Password: password, Logger: zap.NewNop(),
	})
	must(t, err)
	t.Cleanup(func() { cli.Close() })
	return cli
}

// rangeAs is a Range of k1 with token, as an answer string.
func rangeAs(t *testing.T, e *authEnv, token string) string {
	t.Helper()
	e.tokens["probe"] = token
	resp, err := e.kv().Range(e.as(ctx(t), "probe"), &pb.RangeRequest{Key: b("k1")})
	return answerString(t, resp, err)
}

// simpleTokenTranscript: with --auth-token-ttl 2, a simple token left
// unused expires between 2 and 3 s after its last use (etcd's keeper
// looks once a second); clientv3 logs in again. Tokens are probed one
// use each (a use extends a token's life), so the first probe that finds
// one expired tells when.
func simpleTokenTranscript(t *testing.T, kind string) []string {
	s := e2etest.Start(t, e2etest.Config{Kind: kind, Args: []string{"--auth-token-ttl", "2", "--bcrypt-cost", "4"}})
	enableAuth(t, s)
	e := newAuthEnv(t, s)
	cli := userClient(t, s, "alice", "alicepw")
	_, err := cli.Get(ctx(t), "k1")
	out := []string{"clientv3 get: " + fmt.Sprint(err)}
	const probes = 300 // 6 s of polls at polltest.Interval
	tokens := make([]string, 0, probes)
	made := make([]time.Time, 0, probes)
	for range probes {
		r, err := e.auth().Authenticate(ctx(t), &pb.AuthenticateRequest{Name: "alice", Password: "alicepw"})
		must(t, err)
		tokens, made = append(tokens, r.Token), append(made, time.Now())
	}
	start := time.Now()
	out = append(out, "fresh token: "+rangeAs(t, e, tokens[0]))
	next, expired := 1, ""
	polltest.Eventually(t, 10*time.Second, "a simple token expires", func() (bool, string) {
		if next == len(tokens) {
			t.Fatalf("%d tokens all still valid after %v", len(tokens), time.Since(start))
		}
		a := rangeAs(t, e, tokens[next])
		next++
		if strings.Contains(a, "error") {
			expired = a
			if idle := time.Since(made[next-1]); idle < 1900*time.Millisecond || idle > 5*time.Second {
				t.Errorf("%s: a token unused for %v expired; --auth-token-ttl is 2 s", kind, idle)
			}
			return true, ""
		}
		return false, ""
	})
	out = append(out, "unused token: "+expired)
	out = append(out, "a token used just before: "+rangeAs(t, e, tokens[next-2]))
	_, err = cli.Get(ctx(t), "k1")
	out = append(out, "clientv3 get after its token expired: "+fmt.Sprint(err))
	return out
}

// TestAuthSimpleTokenTTLAsEtcd compares simpleTokenTranscript.
func TestAuthSimpleTokenTTLAsEtcd(t *testing.T) {
	compareTranscripts(t, simpleTokenTranscript)
}

// compareTranscripts runs transcript on etcd 3.6.8 and on the server
// under test; every line must be the same.
func compareTranscripts(t *testing.T, transcript func(*testing.T, string) []string) {
	t.Helper()
	want, got := both(func() []string { return transcript(t, e2etest.Etcd) }, func() []string { return transcript(t, e2etest.Kind()) })
	for i := range max(len(want), len(got)) {
		w, g := "(none)", "(none)"
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			t.Errorf("line %d differs:\n--- etcd\n%s\n--- %s\n%s", i, w, e2etest.Kind(), g)
		}
		if dumpAnswers() {
			t.Logf("line %d:\n%s", i, w)
		}
	}
}

// jwtKeys is a key pair for a JWT sign method, as PEM files.
type jwtKeys struct {
	method          jwt.SigningMethod
	priv            crypto.Signer
	privPEM, pubPEM string // paths
}

func newJWTKeys(t *testing.T, method jwt.SigningMethod) jwtKeys {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch method.Alg() {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		t.Fatalf("no key for %s", method.Alg())
	}
	must(t, err)
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	must(t, err)
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	must(t, err)
	dir := t.TempDir()
	k := jwtKeys{method: method, priv: priv, privPEM: filepath.Join(dir, "priv.pem"), pubPEM: filepath.Join(dir, "pub.pem")}
	must(t, os.WriteFile(k.privPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600))
	must(t, os.WriteFile(k.pubPEM, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644))
	return k
}

// flag is the --auth-token value; without the private key the member
// only verifies.
func (k jwtKeys) flag(ttl string, signs bool) string {
	f := "jwt,pub-key=" + k.pubPEM + ",sign-method=" + k.method.Alg() + ",ttl=" + ttl
	if signs {
		f += ",priv-key=" + k.privPEM
	}
	return f
}

func (k jwtKeys) sign(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(k.method, claims).SignedString(k.priv)
	must(t, err)
	return tok
}

// describeJWT is a token's header and claims, with the expiry as its
// distance from now in whole seconds.
func describeJWT(t *testing.T, tok string) string {
	t.Helper()
	claims := jwt.MapClaims{}
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, claims)
	if err != nil {
		return "not a JWT: " + err.Error()
	}
	var keys []string
	for k := range claims {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	exp, _ := claims.GetExpirationTime()
	left := "none"
	if exp != nil {
		left = fmt.Sprint(time.Until(exp.Time).Round(time.Minute))
	}
	return fmt.Sprintf("header=%v claims=%v username=%v revision=%v exp-now~%s", parsed.Header, keys, claims["username"], claims["revision"], left)
}

// jwtTranscript: tokens of a member signing with method's keys (ttl 5m
// unless expiry is probed), and of a member that only verifies.
func jwtTranscript(method jwt.SigningMethod) func(*testing.T, string) []string {
	return func(t *testing.T, kind string) []string {
		keys, other := newJWTKeys(t, method), newJWTKeys(t, method)
		s := e2etest.Start(t, e2etest.Config{Kind: kind, Args: []string{"--auth-token", keys.flag("5m", true), "--bcrypt-cost", "4"}})
		verifier := e2etest.Start(t, e2etest.Config{Kind: kind, Args: []string{"--auth-token", keys.flag("5m", false), "--bcrypt-cost", "4"}})
		enableAuth(t, s)
		enableAuth(t, verifier)
		e, ve := newAuthEnv(t, s), newAuthEnv(t, verifier)
		var out []string
		add := func(what string, m proto.Message, err error) { out = append(out, what+": "+answerString(t, m, err)) }

		r, err := e.authenticate(ctx(t), "alice", "alicepw")
		add("authenticate alice", r, err)
		tok := e.tokens["alice"]
		out = append(out, "alice's token: "+describeJWT(t, tok))
		out = append(out, "alice reads k1: "+rangeAs(t, e, tok))
		out = append(out, "the verifier takes alice's token: "+rangeAs(t, ve, tok))
		r, err = ve.authenticate(ctx(t), "alice", "alicepw")
		add("authenticate on the verifier", r, err)

		claims := func(user string, rev any, exp time.Time) jwt.MapClaims {
			return jwt.MapClaims{"username": user, "revision": rev, "exp": exp.Unix()}
		}
		st, err := e.auth().AuthStatus(e.as(ctx(t), "alice"), &pb.AuthStatusRequest{})
		out = append(out, "auth status as alice: "+answerString(t, st, err))
		rev := uint64(0)
		cli := userClient(t, s, "root", rootPassword)
		if st, err := cli.AuthStatus(ctx(t)); err == nil {
			rev = st.AuthRevision
		} else {
			t.Fatalf("%s: auth status as root: %v", kind, err)
		}
		hour := time.Now().Add(time.Hour)
		out = append(out,
			"signed by the member's key: "+rangeAs(t, e, keys.sign(t, claims("alice", rev, hour))),
			"signed by another key: "+rangeAs(t, e, other.sign(t, claims("alice", rev, hour))),
			"root's, signed by another key: "+rangeAs(t, e, other.sign(t, claims("root", rev, hour))),
			"expired a minute ago: "+rangeAs(t, e, keys.sign(t, claims("alice", rev, time.Now().Add(-time.Minute)))),
			"without exp: "+rangeAs(t, e, keys.sign(t, jwt.MapClaims{"username": "alice", "revision": rev})),
			"without revision: "+rangeAs(t, e, keys.sign(t, jwt.MapClaims{"username": "alice", "exp": hour.Unix()})),
			"revision as a string: "+rangeAs(t, e, keys.sign(t, claims("alice", fmt.Sprint(rev), hour))),
			"of a user that does not exist: "+rangeAs(t, e, keys.sign(t, claims("mallory", rev, hour))),
			"of revision 1: "+rangeAs(t, e, keys.sign(t, claims("alice", 1, hour))),
			"of a future revision: "+rangeAs(t, e, keys.sign(t, claims("alice", rev+10, hour))),
			"unsigned (alg none): "+rangeAs(t, e, unsignedJWT(t, claims("root", rev, hour))),
			"with the signature cut: "+rangeAs(t, e, tok[:strings.LastIndexByte(tok, '.')+1]),
			"garbage: "+rangeAs(t, e, "a.b.c"),
		)
		// a change of the auth store makes tokens of the older revision old
		_, err = cli.UserAdd(ctx(t), "bob", "bobpw")
		must(t, err)
		out = append(out, "alice's token after an auth change: "+rangeAs(t, e, tok))
		put, err := e.kv().Put(e.as(ctx(t), "alice"), &pb.PutRequest{Key: b("k1"), Value: b("x")})
		out = append(out, "alice puts with it: "+answerString(t, put, err))
		_, err = userClient(t, s, "alice", "alicepw").Get(ctx(t), "k1")
		out = append(out, "clientv3 as alice after the change: "+fmt.Sprint(err))
		return out
	}
}

// unsignedJWT is a token with alg none.
func unsignedJWT(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	must(t, err)
	return tok
}

// TestAuthJWTAsEtcd compares jwtTranscript for RS256 and ES256.
func TestAuthJWTAsEtcd(t *testing.T) {
	for _, m := range []jwt.SigningMethod{jwt.SigningMethodRS256, jwt.SigningMethodES256} {
		t.Run(m.Alg(), func(t *testing.T) { compareTranscripts(t, jwtTranscript(m)) })
	}
}

// jwtExpiryTranscript: a JWT with ttl=2s works, then fails as invalid
// once its exp passed; clientv3 logs in again.
func jwtExpiryTranscript(t *testing.T, kind string) []string {
	keys := newJWTKeys(t, jwt.SigningMethodRS256)
	s := e2etest.Start(t, e2etest.Config{Kind: kind, Args: []string{"--auth-token", keys.flag("2s", true), "--bcrypt-cost", "4"}})
	enableAuth(t, s)
	e := newAuthEnv(t, s)
	cli := userClient(t, s, "alice", "alicepw")
	_, err := e.authenticate(ctx(t), "alice", "alicepw")
	must(t, err)
	start := time.Now()
	tok := e.tokens["alice"]
	out := []string{"fresh: " + rangeAs(t, e, tok)}
	var expired string
	polltest.Eventually(t, 10*time.Second, "a JWT expires", func() (bool, string) {
		expired = rangeAs(t, e, tok)
		return strings.Contains(expired, "error"), ""
	})
	if el := time.Since(start); el < time.Second || el > 4*time.Second {
		t.Errorf("%s: a JWT with ttl 2s expired after %v", kind, el)
	}
	out = append(out, "expired: "+expired)
	_, err = cli.Get(ctx(t), "k1")
	out = append(out, "clientv3 get after its token expired: "+fmt.Sprint(err))
	return out
}

// TestAuthJWTExpiryAsEtcd compares jwtExpiryTranscript.
func TestAuthJWTExpiryAsEtcd(t *testing.T) {
	compareTranscripts(t, jwtExpiryTranscript)
}
