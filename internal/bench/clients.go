package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// clientConfig is the clientv3 configuration for the run's endpoints,
// security and extra dial options.
func clientConfig(c *Config, opts ...grpc.DialOption) (clientv3.Config, error) {
	tlsCfg, err := c.Security.tlsConfig()
	if err != nil {
		return clientv3.Config{}, err
	}
	eps := make([]string, len(c.Endpoints))
	for i, ep := range c.Endpoints {
		// clientv3 takes host:port; etcdctl also accepts URLs.
		ep = strings.TrimPrefix(strings.TrimPrefix(ep, "http://"), "https://")
		eps[i] = ep
	}
	return clientv3.Config{
		Endpoints:          eps,
		DialTimeout:        10 * time.Second,
		TLS:                tlsCfg,
		Username:           c.Security.User,
		Password:           c.Security.Password,
		Logger:             zap.NewNop(),
		MaxCallRecvMsgSize: math.MaxInt32,
		DialOptions:        opts,
	}, nil
}

// dial opens n clients (one gRPC connection each).
func dial(ctx context.Context, c *Config, n int, opts ...grpc.DialOption) ([]*clientv3.Client, error) {
	cfg, err := clientConfig(c, opts...)
	if err != nil {
		return nil, err
	}
	cfg.Context = ctx
	out := make([]*clientv3.Client, 0, n)
	for range n {
		cli, err := clientv3.New(cfg)
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("connect to %v: %w", c.Endpoints, err)
		}
		out = append(out, cli)
	}
	return out, nil
}

func closeAll(clis []*clientv3.Client) {
	for _, cli := range clis {
		_ = cli.Close()
	}
}

// tlsConfig is nil when no TLS flag is set, as etcdctl's.
func (s Security) tlsConfig() (*tls.Config, error) {
	if s.CACert == "" && s.Cert == "" && s.Key == "" && !s.InsecureSkipVerify {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.InsecureSkipVerify} //nolint:gosec // the operator's flag, as etcdctl's
	if s.CACert != "" {
		pem, err := os.ReadFile(s.CACert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", s.CACert)
		}
		cfg.RootCAs = pool
	}
	if (s.Cert == "") != (s.Key == "") {
		return nil, fmt.Errorf("--cert and --key go together (got cert %q, key %q)", s.Cert, s.Key)
	}
	if s.Cert != "" {
		pair, err := tls.LoadX509KeyPair(s.Cert, s.Key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
