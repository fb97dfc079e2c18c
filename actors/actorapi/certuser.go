package actorapi

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/troupedb/troupe/messages"
)

// Who sent a request by certificate: protoactor does not tell the
// endpoint which connection a message came in on, so the remote's guard
// (transport.Guard) stamps each accepted message on its way in with the
// verified client certificate CN of its connection (StampCertUser), and
// the endpoint hands the request's cert_user to the services as
// transport.WithCertUser, which the etcd API's Authenticator takes, with
// --client-cert-auth, for the user of a request without a token.

// certUserFields are the cert_user field numbers of the requests that
// carry one, by protobuf full name.
var certUserFields = map[string]protowire.Number{}

func init() {
	for _, m := range []proto.Message{&messages.KVRequest{}, &messages.LeaseRequest{}, &messages.WatchRequest{}} {
		d := m.ProtoReflect().Descriptor()
		f := d.Fields().ByName("cert_user")
		if f == nil || f.Kind() != protoreflect.StringKind {
			panic("actorapi: " + string(d.FullName()) + " has no string field cert_user")
		}
		certUserFields[string(d.FullName())] = f.Number()
	}
}

// StampCertUser is the actor API remote's transport.Stamp: it sets the
// cert_user of an encoded KVRequest, LeaseRequest or WatchRequest to
// commonName ("" clears it) and leaves other types as they are.
//
// It appends the field instead of decoding and encoding the message: for
// a singular string field a protobuf parser keeps the last occurrence, so
// the appended value overrides any cert_user the sender encoded, and the
// request is not parsed twice.
func StampCertUser(typeName string, data []byte, commonName string) []byte {
	num, ok := certUserFields[typeName]
	if !ok {
		return data
	}
	data = protowire.AppendTag(data, num, protowire.BytesType)
	return protowire.AppendString(data, commonName)
}
