package e2e

import (
	"errors"
	"net"
	"path/filepath"
	"slices"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"

	"github.com/troupedb/troupe/e2e/e2etest"
	"github.com/troupedb/troupe/persistence/auth"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// TestSnapshotRestoreEtcd36Auth: a snapshot of an auth-enabled etcd 3.6.8
// with users, roles and permissions, restored by `troupe snapshot
// restore`, keeps them in etcd's buckets: troupe loads the same users
// (etcd's bcrypt hashes check), roles, permissions, enabled flag and auth
// revision, and the member serving it refuses a write without a user.
func TestSnapshotRestoreEtcd36Auth(t *testing.T) {
	ref := startEtcd36(t, "auth buckets")
	root := []string{"--user", "root:rootpw"}
	for _, args := range [][]string{
		{"user", "add", "root:rootpw"},
		{"role", "add", "app"},
		{"role", "grant-permission", "app", "readwrite", "/app/", "--prefix"},
		{"role", "grant-permission", "app", "read", "/ro"},
		{"role", "grant-permission", "app", "write", "/w/", "/w0"},
		{"role", "add", "open"},
		{"role", "grant-permission", "open", "read", "/z", "--from-key"},
		{"user", "add", "alice:alicepw"},
		{"user", "grant-role", "alice", "app"},
		{"user", "add", "nopw", "--no-password"},
		{"user", "grant-role", "nopw", "open"},
		{"auth", "enable"},
	} {
		etcdctl(t, ref, "", args...)
	}
	etcdctl(t, ref, "", append(root, "put", "/app/x", "1")...)
	var st struct {
		Enabled      bool   `json:"enabled"`
		AuthRevision uint64 `json:"authRevision"`
	}
	decodeJSON(t, etcdctl(t, ref, "", append(root, "auth", "status", "-w", "json")...), &st)
	if !st.Enabled {
		t.Fatal("etcd: auth not enabled")
	}
	path := filepath.Join(t.TempDir(), "auth.db")
	etcdctl(t, ref, "", append(root, "snapshot", "save", path)...)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	peer := "http://" + l.Addr().String()
	_ = l.Close()
	dataDir := filepath.Join(t.TempDir(), "restored")
	flags := []string{"--initial-cluster", "e2e=" + peer, "--initial-advertise-peer-urls", peer}
	troupeCmd(t, append([]string{"snapshot", "restore", path, "--data-dir", dataDir, "--name", "e2e"}, flags...)...)

	s := loadRestoredAuth(t, filepath.Join(dataDir, "member", "snap", "db"))
	if !s.Enabled() || s.Revision() != st.AuthRevision {
		t.Fatalf("restored: enabled %v revision %d, etcd: %v %d", s.Enabled(), s.Revision(), st.Enabled, st.AuthRevision)
	}
	for user, pw := range map[string]string{"root": "rootpw", "alice": "alicepw"} {
		if _, err := s.CheckPassword(user, pw); err != nil {
			t.Fatalf("%s's password (etcd's hash): %v", user, err)
		}
	}
	if _, err := s.CheckPassword("alice", "wrong"); !errors.Is(err, auth.ErrAuthFailed) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := s.CheckPassword("nopw", ""); !errors.Is(err, auth.ErrNoPasswordUser) {
		t.Fatalf("no-password user: %v", err)
	}
	if !s.HasRole("root", "root") || !s.HasRole("alice", "app") || !s.HasRole("nopw", "open") {
		t.Fatal("restored users lost their roles")
	}
	r, ok := s.Role("app")
	if !ok {
		t.Fatal("role app lost")
	}
	var perms []string
	for _, p := range r.KeyPermission {
		perms = append(perms, p.PermType.String()+" "+string(p.Key)+" "+string(p.RangeEnd))
	}
	if want := []string{"READWRITE /app/ /app0", "READ /ro ", "WRITE /w/ /w0"}; !slices.Equal(perms, want) {
		t.Fatalf("role app: %q, want %q", perms, want)
	}
	if o, _ := s.Role("open"); len(o.KeyPermission) != 1 || string(o.KeyPermission[0].RangeEnd) != "\x00" || o.KeyPermission[0].PermType != authpb.Permission_READ {
		t.Fatalf("role open: %v", o.KeyPermission)
	}
	alice := auth.Info{Username: "alice", Revision: s.Revision()}
	for _, c := range []struct {
		err  error
		want error
	}{
		{s.IsPutPermitted(alice, []byte("/app/y")), nil},
		{s.IsRangePermitted(alice, []byte("/ro"), nil), nil},
		{s.IsPutPermitted(alice, []byte("/ro")), auth.ErrPermissionDenied},
		{s.IsDeleteRangePermitted(alice, []byte("/w/a"), []byte("/w/b")), nil},
		{s.IsRangePermitted(auth.Info{Username: "nopw", Revision: s.Revision()}, []byte("/zz"), []byte{0}), nil},
	} {
		if !errors.Is(c.err, c.want) && (c.err != nil || c.want != nil) {
			t.Fatalf("restored permissions: %v, want %v", c.err, c.want)
		}
	}

	// Served: the restored member applies writes with auth on.
	srv := e2etest.Start(t, e2etest.Config{Kind: e2etest.Troupe, DataDir: dataDir, Args: append(flags, "--listen-peer-urls", peer)})
	cli := srv.Client(t)
	if _, err := cli.Put(ctx(t), "/app/anon", "v"); err == nil {
		t.Fatal("a put without a user was applied on the restored auth-enabled member")
	}
}

// loadRestoredAuth reads the auth state of the backend at path.
func loadRestoredAuth(t *testing.T, path string) *auth.State {
	t.Helper()
	st, err := mvcc.Open(path, mvcc.Options{})
	must(t, err)
	defer func() { must(t, st.Close()) }()
	kvs, err := st.LoadAuth()
	must(t, err)
	s, err := auth.Load(kvs)
	must(t, err)
	return s
}
