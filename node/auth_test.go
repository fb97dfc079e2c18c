package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/troupedb/troupe/internal/tlstest"
)

// authMember starts a member with a root user (password "rootpw"), user
// alice (password "alicepw") reading and writing /app/ and reading
// /ro/, user bob without roles, and auth enabled. It returns the member's
// config and a root client.
func authMember(t *testing.T, mutate func(*Config)) (Config, *clientv3.Client) {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	cfg.BcryptCost = 4 // bcrypt's minimum: the tests add users, not hash rates
	if mutate != nil {
		mutate(&cfg)
	}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop() })
	c := client(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	steps := []func() error{
		func() error { _, err := c.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := c.RoleAdd(ctx, "root"); return err },
		func() error { _, err := c.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := c.UserAdd(ctx, "alice", "alicepw"); return err },
		func() error { _, err := c.UserAdd(ctx, "bob", "bobpw"); return err },
		func() error { _, err := c.RoleAdd(ctx, "app"); return err },
		func() error {
			_, err := c.RoleGrantPermission(ctx, "app", "/app/", clientv3.GetPrefixRangeEnd("/app/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error {
			_, err := c.RoleGrantPermission(ctx, "app", "/ro/", clientv3.GetPrefixRangeEnd("/ro/"), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := c.UserGrantRole(ctx, "alice", "app"); return err },
		func() error { _, err := c.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("setup step %d: %v", i, err)
		}
	}
	return cfg, userClient(t, cfg, "root", "rootpw")
}

func userClient(t *testing.T, cfg Config, user, password string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints: []string{cfg.ListenClientURLs[0].Host}, DialTimeout: 5 * time.Second,
		Username: user, Password: password, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("client of %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn is a gRPC connection to cfg's client endpoint without
// clientv3's interceptors.
func rawConn(t *testing.T, cfg Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(cfg.ListenClientURLs[0].Host, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) && rpctypes.ErrorDesc(err) != rpctypes.ErrorDesc(want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
	}
}

func TestAuthRBAC(t *testing.T) {
	cfg, root := authMember(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := root.Put(ctx, "/app/x", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Put(ctx, "/other", "1"); err != nil {
		t.Fatal(err)
	}
	alice := userClient(t, cfg, "alice", "alicepw")
	bob := userClient(t, cfg, "bob", "bobpw")
	anon := client(t, cfg)

	if _, err := alice.Get(ctx, "/app/x"); err != nil {
		t.Errorf("alice get /app/x: %v", err)
	}
	if _, err := alice.Get(ctx, "/app/", clientv3.WithPrefix(), clientv3.WithSerializable()); err != nil {
		t.Errorf("alice serializable get /app/ prefix: %v", err)
	}
	if _, err := alice.Put(ctx, "/app/y", "2"); err != nil {
		t.Errorf("alice put /app/y: %v", err)
	}
	_, err := alice.Get(ctx, "/other")
	wantErr(t, "alice get /other", err, rpctypes.ErrPermissionDenied)
	_, err = alice.Get(ctx, "/app/", clientv3.WithFromKey())
	wantErr(t, "alice get from /app/ on", err, rpctypes.ErrPermissionDenied)
	_, err = alice.Put(ctx, "/ro/x", "2")
	wantErr(t, "alice put /ro/x", err, rpctypes.ErrPermissionDenied)
	_, err = alice.Txn(ctx).If(clientv3.Compare(clientv3.Version("/other"), "=", 1)).Then(clientv3.OpGet("/app/x")).Commit()
	wantErr(t, "alice read-only txn comparing /other", err, rpctypes.ErrPermissionDenied)
	if _, err := alice.Txn(ctx).If(clientv3.Compare(clientv3.Version("/app/x"), "=", 1)).Then(clientv3.OpGet("/app/x")).Commit(); err != nil {
		t.Errorf("alice read-only txn on /app/x: %v", err)
	}
	_, err = bob.Get(ctx, "/app/x")
	wantErr(t, "bob get /app/x", err, rpctypes.ErrPermissionDenied)
	_, err = anon.Get(ctx, "/app/x")
	wantErr(t, "anonymous get", err, rpctypes.ErrUserEmpty)
	_, err = anon.Put(ctx, "/app/x", "3")
	wantErr(t, "anonymous put", err, rpctypes.ErrUserEmpty)

	// admin calls
	_, err = alice.Status(ctx, cfg.ListenClientURLs[0].Host)
	wantErr(t, "alice status", err, rpctypes.ErrPermissionDenied)
	if _, err := root.Status(ctx, cfg.ListenClientURLs[0].Host); err != nil {
		t.Errorf("root status: %v", err)
	}
	_, err = alice.MemberAdd(ctx, []string{"http://127.0.0.1:1"})
	wantErr(t, "alice member add", err, rpctypes.ErrPermissionDenied)
	_, err = alice.UserList(ctx)
	wantErr(t, "alice user list", err, rpctypes.ErrPermissionDenied)
	if _, err := alice.MemberList(ctx); err != nil {
		t.Errorf("alice member list: %v", err)
	}

	// lease time-to-live with keys: read permission on each key
	lease, err := root.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Put(ctx, "/app/leased", "v", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys()); err != nil {
		t.Errorf("alice ttl with keys: %v", err)
	}
	_, err = bob.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
	wantErr(t, "bob ttl with keys", err, rpctypes.ErrPermissionDenied)
	if _, err := bob.TimeToLive(ctx, lease.ID); err != nil {
		t.Errorf("bob ttl without keys: %v", err)
	}
	_, err = alice.Revoke(ctx, lease.ID) // etcd: write permission on the lease's keys
	if err != nil {
		t.Errorf("alice revoke of a lease on /app/: %v", err)
	}

	// /health reads without a user: auth does not make the member unhealthy.
	resp, err := http.Get("http://" + cfg.ListenClientURLs[0].Host + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"health":"true"`) {
		t.Errorf("/health with auth enabled: %s", body)
	}
}

func TestAuthWatch(t *testing.T) {
	cfg, root := authMember(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := userClient(t, cfg, "alice", "alicepw")

	denied := alice.Watch(ctx, "/other")
	r := <-denied
	if !r.Canceled || r.Err() == nil || !strings.Contains(r.Err().Error(), "permission denied") {
		t.Fatalf("watch of /other: canceled %v err %v; want canceled with permission denied", r.Canceled, r.Err())
	}

	app := alice.Watch(ctx, "/app/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	if r := <-app; !r.Created || r.Canceled {
		t.Fatalf("watch of /app/: %+v", r)
	}
	if _, err := root.Put(ctx, "/app/a", "1"); err != nil {
		t.Fatal(err)
	}
	if r := <-app; len(r.Events) != 1 || string(r.Events[0].Kv.Key) != "/app/a" {
		t.Fatalf("watch of /app/: %+v, want the put of /app/a", r)
	}
	// Beyond etcd: losing the permission cancels the watch before the
	// next event goes out.
	if _, err := root.RoleRevokePermission(ctx, "app", "/app/", clientv3.GetPrefixRangeEnd("/app/")); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Put(ctx, "/app/b", "1"); err != nil {
		t.Fatal(err)
	}
	// clientv3 closes the channel of a watch the server canceled without
	// a compaction, dropping the reason; no event of /app/b may come first.
	select {
	case r, ok := <-app:
		if ok {
			t.Fatalf("after the revoke the watch got %+v, want its channel closed", r)
		}
	case <-ctx.Done():
		t.Fatal("the watch was not canceled after its permission was revoked")
	}
}

func TestAuthInvalidAndExpiredTokens(t *testing.T) {
	cfg, root := authMember(t, func(c *Config) { c.AuthTokenTTL = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := root.Put(ctx, "/app/x", "1"); err != nil {
		t.Fatal(err)
	}
	anon := client(t, cfg)
	// A raw gRPC client: clientv3 retries a request refused for its
	// token, hoping to refresh it, until its context ends.
	kv := pb.NewKVClient(rawConn(t, cfg))
	for _, forged := range []string{"forged.1", "forged.100000000", "nodot", "a.b.c"} {
		_, err := kv.Range(metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, forged), &pb.RangeRequest{Key: []byte("/app/x")})
		wantErr(t, "forged token "+forged, err, rpctypes.ErrGRPCInvalidAuthToken)
	}
	_, err := anon.Authenticate(ctx, "alice", "wrong")
	wantErr(t, "wrong password", err, rpctypes.ErrAuthFailed)
	_, err = anon.Authenticate(ctx, "nobody", "x")
	wantErr(t, "unknown user", err, rpctypes.ErrAuthFailed)
	resp, err := anon.Authenticate(ctx, "alice", "alicepw")
	if err != nil {
		t.Fatal(err)
	}
	if parts := strings.Split(resp.Token, "."); len(parts) != 2 || len(parts[0]) != 16 {
		t.Fatalf("simple token %q, want <16 letters>.<index>", resp.Token)
	}
	tctx := metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, resp.Token)
	get := &pb.RangeRequest{Key: []byte("/app/x")}
	if _, err := kv.Range(tctx, get); err != nil {
		t.Fatalf("get with a fresh token: %v", err)
	}
	// Unused for longer than --auth-token-ttl=1 plus the keeper's 1 s
	// resolution, the token is gone. Every use restarts its TTL, so the
	// test waits unused each time rather than polling with it.
	expired := false
	for range 4 {
		<-time.After(2500 * time.Millisecond)
		_, err := kv.Range(tctx, get)
		if expired = rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(rpctypes.ErrInvalidAuthToken); expired {
			break
		}
	}
	if !expired {
		t.Fatal("a simple token unused for 2.5 s with --auth-token-ttl=1 is still valid")
	}
	// a password change invalidates alice's tokens at once
	resp, err = anon.Authenticate(ctx, "alice", "alicepw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.UserChangePassword(ctx, "alice", "newpw"); err != nil {
		t.Fatal(err)
	}
	_, err = kv.Range(metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, resp.Token), get)
	wantErr(t, "token after a password change", err, rpctypes.ErrInvalidAuthToken)
}

func TestAuthJWT(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "jwt.key"), filepath.Join(dir, "jwt.pub")
	if err := os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, root := authMember(t, func(c *Config) {
		c.AuthToken = "jwt,pub-key=" + pub + ",priv-key=" + priv + ",sign-method=ES256,ttl=1m"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := root.Put(ctx, "/app/x", "1"); err != nil {
		t.Fatal(err)
	}
	anon := client(t, cfg)
	resp, err := anon.Authenticate(ctx, "alice", "alicepw")
	if err != nil {
		t.Fatal(err)
	}
	if len(strings.Split(resp.Token, ".")) != 3 {
		t.Fatalf("token %q is not a JWT", resp.Token)
	}
	if _, err := anon.Get(metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, resp.Token), "/app/x"); err != nil {
		t.Fatalf("get with the JWT: %v", err)
	}
	forged := resp.Token[:strings.LastIndex(resp.Token, ".")+1] + "AAAA"
	_, err = pb.NewKVClient(rawConn(t, cfg)).Range(metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, forged), &pb.RangeRequest{Key: []byte("/app/x")})
	wantErr(t, "forged JWT", err, rpctypes.ErrInvalidAuthToken)
}

func TestAuthTokenFlagRefused(t *testing.T) {
	for spec, want := range map[string]string{
		"bogus":                 "auth: invalid auth options",
		"jwt,pub-key":           "auth: invalid auth options",
		"jwt,sign-method=RS256": "auth: missing key data",
	} {
		c := Default()
		c.AuthToken = spec
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--auth-token") {
			t.Errorf("--auth-token=%s: %v, want %q naming the flag", spec, err, want)
		}
	}
}

// A flood of Authenticate requests at the default bcrypt cost is served
// a few at a time: the member keeps answering other requests meanwhile.
func TestAuthenticateFloodIsBounded(t *testing.T) {
	// passwords at etcd's default cost (10), as a real member's
	cfg, root := authMember(t, func(c *Config) { c.BcryptCost = DefaultBcryptCost })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := client(t, cfg)
	auth := pb.NewAuthClient(c.ActiveConnection())
	floodCtx, stopFlood := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var failed, other atomic.Int64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for floodCtx.Err() == nil {
				_, err := auth.Authenticate(floodCtx, &pb.AuthenticateRequest{Name: "alice", Password: "wrong"})
				switch {
				case rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(rpctypes.ErrGRPCAuthFailed):
					failed.Add(1)
				case floodCtx.Err() == nil:
					other.Add(1)
				}
			}
		}()
	}
	defer func() { stopFlood(); wg.Wait() }()
	// Puts go on until the flood had 20 answers (a second or more of
	// bcrypt at cost 10): each must be served meanwhile.
	var slowest time.Duration
	floodStart := time.Now()
	puts := 0
	for ; failed.Load() < 20 && puts < 2000; puts++ {
		start := time.Now()
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := root.Put(pctx, "/app/k", "v")
		pcancel()
		if err != nil {
			t.Fatalf("put %d during the flood: %v", puts, err)
		}
		slowest = max(slowest, time.Since(start))
	}
	elapsed := time.Since(floodStart)
	stopFlood()
	wg.Wait()
	if failed.Load() == 0 {
		t.Fatal("no Authenticate of the flood was answered")
	}
	if n := other.Load(); n > 0 {
		t.Errorf("%d Authenticates of the flood failed otherwise than 'authentication failed'", n)
	}
	if slowest > 2*time.Second {
		t.Errorf("slowest put during the flood took %s", slowest)
	}
	t.Logf("flood: %d failed Authenticates answered in %s (%.0f/s), %d puts served, the slowest in %s",
		failed.Load(), elapsed, float64(failed.Load())/elapsed.Seconds(), puts, slowest)
}

// With --client-cert-auth the CN of the client certificate is the user of
// a request without a token; the JSON gateway's calls never take the
// member's own certificate for the user, and honour the token header.
func TestAuthCommonNameAndGateway(t *testing.T) {
	ca := tlstest.NewCA(t, "client-ca")
	files := newTLSFiles(t, ca, t.TempDir())
	cfg := testConfig(t, t.TempDir())
	httpsURLs(&cfg)
	cfg.ClientTLS = files.side()
	cfg.BcryptCost = 4
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop() })
	certClient := func(cn string) *clientv3.Client {
		c, err := tlsClient(t, cfg, poolOf(ca), ca.Issue(t, tlstest.LeafOpts{CN: cn, Client: true}))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	root, alice, mallory := certClient("root"), certClient("alice"), certClient("mallory")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, step := range []func() error{
		func() error { _, err := root.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := root.RoleAdd(ctx, "root"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := root.UserAdd(ctx, "alice", "alicepw"); return err },
		func() error { _, err := root.RoleAdd(ctx, "app"); return err },
		func() error {
			_, err := root.RoleGrantPermission(ctx, "app", "/app/", clientv3.GetPrefixRangeEnd("/app/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := root.UserGrantRole(ctx, "alice", "app"); return err },
		func() error { _, err := root.AuthEnable(ctx); return err },
		func() error { _, err := root.Put(ctx, "/app/x", "1"); return err }, // as root, by its CN
		func() error { _, err := root.Put(ctx, "/other", "1"); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if _, err := alice.Get(ctx, "/app/x"); err != nil {
		t.Errorf("alice (by CN) get /app/x: %v", err)
	}
	_, err = alice.Get(ctx, "/other")
	wantErr(t, "alice (by CN) get /other", err, rpctypes.ErrPermissionDenied)
	_, err = mallory.Get(ctx, "/app/x")
	wantErr(t, "mallory (no such user) get /app/x", err, rpctypes.ErrPermissionDenied)
	if _, err := root.Status(ctx, cfg.ListenClientURLs[0].Host); err != nil {
		t.Errorf("root (by CN) status: %v", err)
	}

	// The gateway, reached with root's certificate and no Accept header.
	leaf := ca.Issue(t, tlstest.LeafOpts{CN: "root", Client: true})
	cert, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: poolOf(ca), Certificates: []tls.Certificate{cert}}}}
	t.Cleanup(hc.CloseIdleConnections)
	post := func(path, body, token string) string {
		req, _ := http.NewRequest("POST", "https://"+cfg.ListenClientURLs[0].Host+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	rangeX := `{"key":"` + base64.StdEncoding.EncodeToString([]byte("/app/x")) + `"}`
	if got := post("/v3/kv/range", rangeX, ""); !strings.Contains(got, "user name is empty") {
		t.Errorf("gateway range without a token = %s, want user name is empty (the member's certificate is nobody)", got)
	}
	got := post("/v3/auth/authenticate", `{"name":"alice","password":"alicepw"}`, "")
	var auth struct{ Token string }
	if err := json.Unmarshal([]byte(got), &auth); err != nil || auth.Token == "" {
		t.Fatalf("gateway authenticate = %s", got)
	}
	if got := post("/v3/kv/range", rangeX, auth.Token); !strings.Contains(got, `"kvs"`) {
		t.Errorf("gateway range with alice's token = %s, want the key", got)
	}
	other := `{"key":"` + base64.StdEncoding.EncodeToString([]byte("/other")) + `"}`
	if got := post("/v3/kv/range", other, auth.Token); !strings.Contains(got, "permission denied") {
		t.Errorf("gateway range of /other with alice's token = %s, want permission denied", got)
	}
}
