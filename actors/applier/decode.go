package applier

import (
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The field numbers decode looks for, from the messages' descriptors.
var (
	headerField = fieldNumber(&pb.InternalRaftRequest{}, "header")
	putField    = fieldNumber(&pb.InternalRaftRequest{}, "put")
	txnField    = fieldNumber(&pb.InternalRaftRequest{}, "txn")

	txnCompareField = fieldNumber(&pb.TxnRequest{}, "compare")
	txnSuccessField = fieldNumber(&pb.TxnRequest{}, "success")
	txnFailureField = fieldNumber(&pb.TxnRequest{}, "failure")
	opPutField      = fieldNumber(&pb.RequestOp{}, "request_put")
)

func fieldNumber(m proto.Message, name protoreflect.Name) protowire.Number {
	fd := m.ProtoReflect().Descriptor().Fields().ByName(name)
	if fd == nil {
		panic(fmt.Sprintf("applier: %T has no field %q", m, name))
	}
	return fd.Number()
}

// Reused messages of a txn entry: how many puts and compares one txn can
// decode into the applier's own messages; past that (a txn of more than
// these is rare), decoding allocates as proto.Unmarshal does. The bound
// keeps what the applier holds fixed.
const (
	reusedTxnPuts     = 8
	reusedTxnCompares = 4
)

// txnMessages are the messages a txn entry is decoded into, reused from
// one entry to the next as header and put are (see decode).
type txnMessages struct {
	txn       pb.TxnRequest
	puts      [reusedTxnPuts]putOp
	nPuts     int
	compares  [reusedTxnCompares]pb.Compare
	nCompares int
}

// putOp is a RequestOp holding a put, with its oneof wrapper and its
// PutRequest.
type putOp struct {
	op  pb.RequestOp
	w   pb.RequestOp_RequestPut
	put pb.PutRequest
}

// errNotPlain says a txn entry has a shape decodeTxn leaves to
// proto.Unmarshal (a field it does not know, an unexpected wire type).
var errNotPlain = errors.New("applier: txn entry not in the plain shape")

// decode unmarshals an entry's data into a.req, which must be reset. Its
// Header, and its Put or Txn, when the data has them, are decoded into
// the applier's own messages instead of new ones: two of the allocations
// of every put and five of a txn of one put, on every member. Nothing
// keeps those messages past the entry (the store keeps their Key and
// Value, which decoding allocates afresh); release drops what they hold.
func (a *applier) decode(data []byte) error {
	f, err := scanFields(data)
	if err != nil {
		return err
	}
	if f.onlyHeaderAndTxn() {
		if a.decodeTxnEntry(data) == nil {
			return nil
		}
		// Not the plain shape, or bad data: proto.Unmarshal decides, and
		// gives its own error.
		a.req.Reset()
		a.release()
	}
	// Decoding merges into messages already set, so they are set only
	// when the data has them: a field set here but absent from the data
	// would read as present.
	if f.header > 0 {
		a.header.Reset()
		a.req.Header = &a.header
	}
	if f.put > 0 {
		a.put.Reset()
		a.req.Put = &a.put
	}
	return proto.UnmarshalOptions{Merge: true}.Unmarshal(data, &a.req)
}

// release drops the keys and values the reused txn messages hold, once
// the entry is applied: a txn of many large puts would otherwise stay in
// memory until the next txn.
func (a *applier) release() {
	t := &a.txnMsgs
	for i := range t.nPuts {
		t.puts[i].put.Reset()
	}
	for i := range t.nCompares {
		t.compares[i].Reset()
	}
	t.nPuts, t.nCompares = 0, 0
	t.txn.Compare = reuseOps(t.txn.Compare)
	t.txn.Success = reuseOps(t.txn.Success)
	t.txn.Failure = reuseOps(t.txn.Failure)
}

// reuseOps empties a list of the reused txn for the next one, keeping
// its array unless it grew past what a common txn needs.
func reuseOps[T any](ops []*T) []*T {
	if cap(ops) > 2*reusedTxnPuts {
		return nil
	}
	clear(ops)
	return ops[:0]
}

// entryFields counts the top-level fields of an InternalRaftRequest.
type entryFields struct {
	header, put, txn int
	other            bool // another field, or header or txn of another wire type
}

func (f entryFields) onlyHeaderAndTxn() bool { return f.txn > 0 && f.put == 0 && !f.other }

// scanFields counts the fields of data, an InternalRaftRequest; it reads
// only the top-level tags.
func scanFields(data []byte) (entryFields, error) {
	var f entryFields
	err := eachField(data, func(num protowire.Number, typ protowire.Type, _ []byte) error {
		switch {
		case num == headerField && typ == protowire.BytesType:
			f.header++
		case num == putField:
			f.put++
		case num == txnField && typ == protowire.BytesType:
			f.txn++
		default:
			f.other = true
		}
		return nil
	})
	return f, err
}

// decodeTxnEntry decodes data, an InternalRaftRequest with only header
// and txn fields, into a.req with a.header and a.txnMsgs. Every
// occurrence of a field merges into the one before, as proto.Unmarshal
// does (the txn's fields are all lists: they append). It returns
// errNotPlain for a txn it leaves to proto.Unmarshal.
func (a *applier) decodeTxnEntry(data []byte) error {
	a.release() // the txn starts empty
	t := &a.txnMsgs
	a.req.Txn = &t.txn
	return eachField(data, func(num protowire.Number, _ protowire.Type, content []byte) error {
		if num == headerField {
			if a.req.Header == nil {
				a.header.Reset()
				a.req.Header = &a.header
			}
			return proto.UnmarshalOptions{Merge: true}.Unmarshal(content, &a.header)
		}
		return t.decodeTxn(content) // scanFields let only header and txn through
	})
}

// decodeTxn appends the compares and ops of data, a TxnRequest, to t.txn.
func (t *txnMessages) decodeTxn(data []byte) error {
	return eachField(data, func(num protowire.Number, typ protowire.Type, content []byte) error {
		if typ != protowire.BytesType {
			return errNotPlain
		}
		switch num {
		case txnCompareField:
			var c *pb.Compare
			if t.nCompares < len(t.compares) {
				c = &t.compares[t.nCompares]
				t.nCompares++
			} else {
				c = &pb.Compare{}
			}
			if err := proto.Unmarshal(content, c); err != nil {
				return err
			}
			t.txn.Compare = append(t.txn.Compare, c)
		case txnSuccessField, txnFailureField:
			op, err := t.decodeOp(content)
			if err != nil {
				return err
			}
			if num == txnSuccessField {
				t.txn.Success = append(t.txn.Success, op)
			} else {
				t.txn.Failure = append(t.txn.Failure, op)
			}
		default:
			return errNotPlain
		}
		return nil
	})
}

// decodeOp decodes data, a RequestOp: a put alone into a reused putOp
// while there is one, anything else as proto.Unmarshal does.
func (t *txnMessages) decodeOp(data []byte) (*pb.RequestOp, error) {
	fields, isPut := 0, false
	var put []byte
	err := eachField(data, func(num protowire.Number, typ protowire.Type, content []byte) error {
		fields++
		isPut = num == opPutField && typ == protowire.BytesType
		put = content
		return nil
	})
	if err != nil {
		return nil, err
	}
	if fields != 1 || !isPut || t.nPuts == len(t.puts) {
		op := &pb.RequestOp{}
		return op, proto.Unmarshal(data, op)
	}
	p := &t.puts[t.nPuts]
	t.nPuts++
	if err := proto.Unmarshal(put, &p.put); err != nil {
		return nil, err
	}
	p.op.Reset()
	p.w.RequestPut = &p.put
	p.op.Request = &p.w
	return &p.op, nil
}

// eachField calls fn with every top-level field of the message in data:
// its number, wire type and, for a length-delimited field, its content.
func eachField(data []byte, fn func(num protowire.Number, typ protowire.Type, content []byte) error) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return protowire.ParseError(n)
		}
		data = data[n:]
		n = protowire.ConsumeFieldValue(num, typ, data)
		if n < 0 {
			return protowire.ParseError(n)
		}
		var content []byte
		if typ == protowire.BytesType {
			content, _ = protowire.ConsumeBytes(data[:n])
		}
		if err := fn(num, typ, content); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// doneWith forgets the entry applied last.
func (a *applier) doneWith() {
	a.req.Reset()
	a.release()
}
