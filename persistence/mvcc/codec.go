package mvcc

import (
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The "key" bucket holds one marshalled mvccpb.KeyValue per revision. Its
// encoding is hand-written here because it is on every read and write path:
// the generic protobuf code costs several times more. encodeKV produces
// exactly proto.Marshal's bytes and decodeKV accepts anything proto.Unmarshal
// does, falling back to it for what it does not know (see codec_test.go).

// KeyValue field numbers (etcd's kv.proto).
const (
	fieldKey            = 1
	fieldCreateRevision = 2
	fieldModRevision    = 3
	fieldVersion        = 4
	fieldValue          = 5
	fieldLease          = 6
)

func encodeKV(kv *mvccpb.KeyValue) []byte {
	return appendKV(make([]byte, 0, kvSize(kv)), kv)
}

// kvSize is the length of kv's encoding.
func kvSize(kv *mvccpb.KeyValue) int {
	n := 0
	if len(kv.Key) > 0 {
		n += 1 + protowire.SizeBytes(len(kv.Key))
	}
	for _, v := range [...]int64{kv.CreateRevision, kv.ModRevision, kv.Version} {
		if v != 0 {
			n += 1 + protowire.SizeVarint(uint64(v))
		}
	}
	if len(kv.Value) > 0 {
		n += 1 + protowire.SizeBytes(len(kv.Value))
	}
	if kv.Lease != 0 {
		n += 1 + protowire.SizeVarint(uint64(kv.Lease))
	}
	return n
}

// appendKV appends kv's encoding to b.
func appendKV(b []byte, kv *mvccpb.KeyValue) []byte {
	if len(kv.Key) > 0 {
		b = protowire.AppendTag(b, fieldKey, protowire.BytesType)
		b = protowire.AppendBytes(b, kv.Key)
	}
	b = appendInt(b, fieldCreateRevision, kv.CreateRevision)
	b = appendInt(b, fieldModRevision, kv.ModRevision)
	b = appendInt(b, fieldVersion, kv.Version)
	if len(kv.Value) > 0 {
		b = protowire.AppendTag(b, fieldValue, protowire.BytesType)
		b = protowire.AppendBytes(b, kv.Value)
	}
	return appendInt(b, fieldLease, kv.Lease)
}

func appendInt(b []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

var errSlowPath = errors.New("mvcc: KeyValue needs the generic decoder")

// decodeKV decodes a KeyValue; the result does not alias b.
func decodeKV(b []byte) (*mvccpb.KeyValue, error) {
	kv, err := decodeKVFast(b, false)
	if err == errSlowPath {
		kv = &mvccpb.KeyValue{}
		err = proto.Unmarshal(b, kv)
	}
	return kv, err
}

// decodeKVFast decodes the fields troupe and etcd write; with alias the
// key and value point into b, otherwise each is a copy of its own. Any
// other field is errSlowPath.
func decodeKVFast(b []byte, alias bool) (*mvccpb.KeyValue, error) {
	kv := &mvccpb.KeyValue{}
	if err := decodeKVFields(kv, b, alias); err != nil {
		return nil, err
	}
	return kv, nil
}

// decodeKVAliased decodes b into kv, whose key and value then point into
// b (kv is zero on entry). An entry with fields decodeKVFast does not know
// goes to the generic decoder.
func decodeKVAliased(kv *mvccpb.KeyValue, b []byte) error {
	err := decodeKVFields(kv, b, true)
	if err == errSlowPath {
		proto.Reset(kv)
		err = proto.UnmarshalOptions{}.Unmarshal(b, kv)
	}
	return err
}

// decodeKVFields is decodeKVFast into kv.
func decodeKVFields(kv *mvccpb.KeyValue, b []byte, alias bool) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("mvcc: KeyValue: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case typ == protowire.BytesType && (num == fieldKey || num == fieldValue):
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("mvcc: KeyValue: %w", protowire.ParseError(n))
			}
			b = b[n:]
			if !alias {
				v = append([]byte{}, v...)
			}
			if num == fieldKey {
				kv.Key = v
			} else {
				kv.Value = v
			}
		case typ == protowire.VarintType && num >= fieldCreateRevision && num <= fieldLease && num != fieldValue:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("mvcc: KeyValue: %w", protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case fieldCreateRevision:
				kv.CreateRevision = int64(v)
			case fieldModRevision:
				kv.ModRevision = int64(v)
			case fieldVersion:
				kv.Version = int64(v)
			case fieldLease:
				kv.Lease = int64(v)
			}
		default:
			return errSlowPath // unknown or oddly typed field
		}
	}
	return nil
}
