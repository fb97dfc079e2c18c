// Command actorclient puts and gets a key through troupe's actor API, as a
// protoactor program would:
//
//	go run ./examples/actorclient --troupe 127.0.0.1:2378 --key hello --value world
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/troupedb/troupe/actors/actorapi"
	"github.com/troupedb/troupe/client/actorclient"
)

func main() {
	addr := flag.String("troupe", "127.0.0.1:2378", "actor API address of a troupe member (host:port)")
	key := flag.String("key", "hello", "key to put and get")
	value := flag.String("value", "world", "value to put")
	flag.Parse()
	if err := run(*addr, *key, *value); err != nil {
		fmt.Fprintln(os.Stderr, "actorclient:", err)
		os.Exit(1)
	}
}

func run(addr, key, value string) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
	// Replies come back over remote: start it before sending.
	r := remote.NewRemote(system, remote.Configure("127.0.0.1", 0,
		remote.WithDialOptions(actorapi.DialOptions(actorapi.DefaultMaxMessageBytes)...)))
	r.Start()
	actorapi.SetGRPCLogger(logger) // Remote.Start silenced gRPC's logger
	defer r.Shutdown(true)

	kv := actorclient.New(system, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	put, err := kv.Put(ctx, &etcdserverpb.PutRequest{Key: []byte(key), Value: []byte(value)})
	if err != nil {
		return fmt.Errorf("put: %w", err)
	}
	got, err := kv.Range(ctx, &etcdserverpb.RangeRequest{Key: []byte(key)})
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	fmt.Printf("put at revision %d\n", put.GetHeader().GetRevision())
	for _, kv := range got.Kvs {
		fmt.Printf("%s = %s\n", kv.Key, kv.Value)
	}
	return nil
}
