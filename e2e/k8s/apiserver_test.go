//go:build k8s

package k8s

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/troupedb/troupe/internal/polltest"
)

// Bounds for the apiserver process; its post-start hooks take tens of
// seconds on a loaded 2-core machine.
const (
	apiserverReadyTimeout = 3 * time.Minute
	apiserverStopTimeout  = 30 * time.Second
	requestTimeout        = 30 * time.Second
	// compactionInterval is --etcd-compaction-interval: short, so that the
	// apiserver compacts the store several times during one run.
	compactionInterval = 10 * time.Second
)

// tooLargeRV is the message of the apiserver's storage timeout when a
// cache is behind the revision asked for.
const tooLargeRV = "Too large resource version"

// apiServer is one kube-apiserver process on a free 127.0.0.1 port.
type apiServer struct {
	t       *testing.T
	url     string // https://127.0.0.1:port
	token   string
	certDir string
	logPath string
	http    *http.Client

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited

	// tooLarge counts answers and watch errors that said "Too large
	// resource version" (the apiserver's 504 when its cache cannot catch
	// up with the revision the store reported).
	tooLarge atomic.Int64
}

func apiserverBinary(t *testing.T) string {
	t.Helper()
	bin := firstSet(*apiserverFlag, os.Getenv("KUBE_APISERVER"))
	if bin == "" {
		t.Fatal("k8s: no kube-apiserver: pass -k8s.apiserver=PATH or KUBE_APISERVER=PATH (task test:k8s builds one with scripts/kube-apiserver.sh)")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("k8s: kube-apiserver %s: %v (build it with scripts/kube-apiserver.sh)", bin, err)
	}
	return bin
}

// startAPIServer starts kube-apiserver on etcdServers (with etcdFlags,
// the --etcd-cafile/--etcd-certfile/--etcd-keyfile of an mTLS store) and
// waits until
// /readyz answers ok. Authentication is a static bearer token of a
// system:masters user, authorization AlwaysAllow: the test is about
// storage, not access control.
func startAPIServer(t *testing.T, etcdServers []string, etcdFlags ...string) *apiServer {
	t.Helper()
	bin := apiserverBinary(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "sa.key")
	writeServiceAccountKey(t, keyFile)
	token := "e2e-" + rand.Text()
	tokenFile := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(token+`,e2e-admin,e2e-admin,"system:masters"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	a := &apiServer{
		t:       t,
		url:     fmt.Sprintf("https://127.0.0.1:%d", port),
		token:   token,
		certDir: filepath.Join(dir, "certs"),
		logPath: filepath.Join(dir, "kube-apiserver.log"),
	}
	args := []string{
		"--etcd-servers=" + strings.Join(etcdServers, ","),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + a.certDir,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + keyFile,
		"--service-account-signing-key-file=" + keyFile,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=AlwaysAllow",
		"--etcd-compaction-interval=" + compactionInterval.String(),
		"--watch-cache=true",
		"--v=2",
	}
	args = append(args, etcdFlags...)
	f, err := os.Create(a.logPath)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "=== k8s: %s %s\n", bin, strings.Join(args, " "))
	a.cmd = exec.Command(bin, args...)
	a.cmd.Stdout, a.cmd.Stderr = f, f
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("k8s: start %s: %v", bin, err)
	}
	a.done = make(chan struct{})
	go func() {
		_ = a.cmd.Wait()
		f.Close()
		close(a.done)
	}()
	t.Cleanup(a.stop)

	// The serving certificate is self-signed into --cert-dir at start-up.
	polltest.Eventually(t, apiserverReadyTimeout, "kube-apiserver writes its serving certificate", func() (bool, string) {
		if a.exited() {
			t.Fatalf("k8s: kube-apiserver exited during start-up; log:\n%s", a.logTail())
		}
		_, err := os.Stat(filepath.Join(a.certDir, "apiserver.crt"))
		return err == nil, fmt.Sprint(err)
	})
	a.http = a.newHTTPClient(t)
	polltest.Eventually(t, apiserverReadyTimeout, "kube-apiserver /readyz ok", func() (bool, string) {
		if a.exited() {
			t.Fatalf("k8s: kube-apiserver exited during start-up; log:\n%s", a.logTail())
		}
		code, body, err := a.try(http.MethodGet, "/readyz", nil)
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %v %.300s", code, err, body)
	})
	return a
}

func (a *apiServer) newHTTPClient(t *testing.T) *http.Client {
	pemCerts, err := os.ReadFile(filepath.Join(a.certDir, "apiserver.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCerts) {
		t.Fatalf("k8s: no certificate in %s", filepath.Join(a.certDir, "apiserver.crt"))
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	// No client timeout: watches stream; every request carries a context
	// deadline instead.
	return &http.Client{Transport: tr}
}

func (a *apiServer) noteTooLarge(body []byte) {
	if bytes.Contains(body, []byte(tooLargeRV)) {
		a.tooLarge.Add(1)
	}
}

func (a *apiServer) exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

func (a *apiServer) stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(apiserverStopTimeout):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
	if a.t.Failed() {
		a.t.Logf("k8s: kube-apiserver log (%s), tail:\n%s", a.logPath, a.logTail())
	}
	if dir := firstSet(*logDirFlag, os.Getenv("TROUPE_K8S_LOGDIR")); dir != "" {
		name := strings.NewReplacer("/", "_", "=", "").Replace(a.t.Name()) + ".kube-apiserver.log"
		if err := os.MkdirAll(dir, 0o755); err != nil {
			a.t.Errorf("k8s: keep the apiserver log: %v", err)
		} else if err := os.WriteFile(filepath.Join(dir, name), []byte(a.log()), 0o644); err != nil {
			a.t.Errorf("k8s: keep the apiserver log: %v", err)
		}
	}
}

// log returns everything the apiserver printed so far.
func (a *apiServer) log() string {
	b, _ := os.ReadFile(a.logPath)
	return string(b)
}

func (a *apiServer) logTail() string {
	s := a.log()
	const max = 32 << 10
	if len(s) > max {
		s = "...\n" + s[len(s)-max:]
	}
	return s
}

// try sends one request with the bearer token and reads the whole answer.
func (a *apiServer) try(method, path string, body any) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := a.send(ctx, method, path, body)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	a.noteTooLarge(b)
	return resp.StatusCode, b, err
}

func (a *apiServer) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.url+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return a.http.Do(req)
}

// do is try that fails the test on a transport error or a status other
// than want, and decodes a JSON answer into out (if not nil).
func (a *apiServer) do(t *testing.T, method, path string, body any, want int, out any) []byte {
	t.Helper()
	code, b, err := a.try(method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if code != want {
		t.Fatalf("%s %s: status %d, want %d: %.2000s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %T: %v: %.500s", method, path, out, err, b)
		}
	}
	return b
}

func writeServiceAccountKey(t *testing.T, path string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// The same file serves as signing key and as verification key: the
	// apiserver derives the public key from a private one.
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a port that was free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// watchStream is one streaming watch request; events arrive on ch until
// the server ends the stream or the test's cleanup cancels it.
type watchStream struct {
	ch     chan watchEvent
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type watchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// watch opens path (which must ask for ?watch=1) and decodes its events on
// a goroutine owned by the stream; cleanup cancels and waits for it.
func (a *apiServer) watch(t *testing.T, path string) *watchStream {
	t.Helper()
	w, code, body, err := a.openWatch(t, path)
	if err != nil {
		t.Fatalf("watch %s: %v", path, err)
	}
	if w == nil {
		t.Fatalf("watch %s: status %d: %.1000s", path, code, body)
	}
	return w
}

// openWatch is watch that returns a refusal (w nil, the status and body)
// instead of failing t.
func (a *apiServer) openWatch(t *testing.T, path string) (w *watchStream, code int, body []byte, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	resp, err := a.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		cancel()
		return nil, 0, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		a.noteTooLarge(b)
		return nil, resp.StatusCode, b, err
	}
	// Unbuffered would stall the decoder on a slow reader; 1024 events is
	// more than any step here produces.
	w = &watchStream{ch: make(chan watchEvent, 1024), cancel: cancel}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer close(w.ch)
		defer resp.Body.Close()
		dec := json.NewDecoder(resp.Body)
		for {
			var ev watchEvent
			if err := dec.Decode(&ev); err != nil {
				return
			}
			if ev.Type == "ERROR" {
				a.noteTooLarge(ev.Object)
			}
			select {
			case w.ch <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(w.close)
	return w, http.StatusOK, nil, nil
}

func (w *watchStream) close() {
	w.cancel()
	w.wg.Wait()
}

// next returns the next event, or ok=false when the stream ended; it fails
// t if nothing comes within d.
func (w *watchStream) next(t *testing.T, d time.Duration) (watchEvent, bool) {
	t.Helper()
	select {
	case ev, ok := <-w.ch:
		return ev, ok
	case <-time.After(d):
		t.Fatalf("watch: no event within %v", d)
	}
	return watchEvent{}, false
}
