// Command etcddesc writes the FileDescriptorSet of etcd's rpc.proto and
// everything it imports, as linked into this module, for protoc's
// --descriptor_set_in. The module cache holds etcd's .proto files but not
// google/api/annotations.proto, which rpc.proto imports; the descriptors
// compiled into the Go packages are complete and are exactly the versions
// troupe links against, so proto/troupe/v1 is compiled against those.
//
// Usage: go run ./messages/internal/etcddesc -o FILE
package main

import (
	"flag"
	"fmt"
	"os"
	"path"
	"strings"

	_ "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

func main() {
	out := flag.String("o", "", "output file")
	root := flag.String("file", "rpc.proto", "registered path of the root .proto file")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "etcddesc: -o FILE is required")
		os.Exit(2)
	}
	fd, err := protoregistry.GlobalFiles.FindFileByPath(*root)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcddesc: %v\n", err)
		os.Exit(1)
	}
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var walk func(name string, f protoreflect.FileDescriptor)
	walk = func(name string, f protoreflect.FileDescriptor) {
		if seen[name] {
			return
		}
		seen[name] = true
		if f.IsPlaceholder() {
			f = resolve(name)
		}
		imports := f.Imports()
		for i := 0; i < imports.Len(); i++ {
			imp := imports.Get(i).FileDescriptor
			walk(imp.Path(), imp)
		}
		// Dependencies first, as protoc expects.
		fdp := protodesc.ToFileDescriptorProto(f)
		fdp.Name = proto.String(name)
		set.File = append(set.File, fdp)
	}
	walk(fd.Path(), fd)
	b, err := proto.Marshal(set)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcddesc: %v\n", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "etcddesc: %v\n", err)
		os.Exit(1)
	}
}

// resolve finds the registered file an unresolved import names. etcd's Go
// packages register their files by base name ("kv.proto") while rpc.proto
// imports them by repository path ("etcd/api/mvccpb/kv.proto").
func resolve(name string) protoreflect.FileDescriptor {
	f, err := protoregistry.GlobalFiles.FindFileByPath(path.Base(name))
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcddesc: import %q: %v\n", name, err)
		os.Exit(1)
	}
	goPkg := f.Options().(*descriptorpb.FileOptions).GetGoPackage()
	if !strings.HasPrefix(goPkg, "go.etcd.io/etcd/api/v3/") {
		fmt.Fprintf(os.Stderr, "etcddesc: import %q resolved to %q of %q, not etcd's\n", name, f.Path(), goPkg)
		os.Exit(1)
	}
	return f
}
