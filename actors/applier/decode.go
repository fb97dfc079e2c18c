package applier

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The field numbers of the two sub-messages every put entry carries.
var (
	headerField = fieldNumber("header")
	putField    = fieldNumber("put")
)

func fieldNumber(name protoreflect.Name) protowire.Number {
	fd := (&pb.InternalRaftRequest{}).ProtoReflect().Descriptor().Fields().ByName(name)
	if fd == nil {
		panic(fmt.Sprintf("applier: InternalRaftRequest has no field %q", name))
	}
	return fd.Number()
}

// decode unmarshals an entry's data into a.req, which must be reset. Its
// Header and Put, when the data has them, are decoded into a.header and
// a.put instead of new messages: two of the allocations of every put on
// every member. Nothing keeps those messages past the entry (the store
// keeps their Key and Value, which decoding allocates afresh). Decoding
// merges into messages already set, so the data is first scanned for
// which of the two it has: a field set here but absent from the data
// would read as present.
func (a *applier) decode(data []byte) error {
	hasHeader, hasPut, err := scanSubMessages(data)
	if err != nil {
		return err
	}
	if hasHeader {
		a.header.Reset()
		a.req.Header = &a.header
	}
	if hasPut {
		a.put.Reset()
		a.req.Put = &a.put
	}
	return proto.UnmarshalOptions{Merge: true}.Unmarshal(data, &a.req)
}

// scanSubMessages reports whether data, an InternalRaftRequest, has a
// header and a put field; it reads only the top-level tags.
func scanSubMessages(data []byte) (hasHeader, hasPut bool, err error) {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return false, false, protowire.ParseError(n)
		}
		data = data[n:]
		switch num {
		case headerField:
			hasHeader = true
		case putField:
			hasPut = true
		}
		n = protowire.ConsumeFieldValue(num, typ, data)
		if n < 0 {
			return false, false, protowire.ParseError(n)
		}
		data = data[n:]
	}
	return hasHeader, hasPut, nil
}
