package wal

import (
	"bytes"
	"testing"
)

func TestRecordFraming(t *testing.T) {
	tests := []struct {
		name string
		buf  []byte
		want decodeResult
	}{
		{"valid", encodeRecord(nil, recEntry, []byte("hello")), decodeOK},
		{"zeros", make([]byte, 64), decodeEnd},
		{"empty", nil, decodeEnd},
		{"short", encodeRecord(nil, recEntry, []byte("hello"))[:10], decodeTorn},
		{"bad crc", func() []byte { b := encodeRecord(nil, recEntry, []byte("hello")); b[9] ^= 1; return b }(), decodeBadCRC},
		{"bad type", encodeRecord(nil, 9, []byte("x")), decodeBadFrame},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, decodeBadFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, _, got := decodeRecord(tt.buf); got != tt.want {
				t.Fatalf("decode = %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(nil, recEntry, []byte("entry")))
	f.Add(encodeRecord(nil, recMetadata, nil))
	f.Add(encodeRecord(nil, recSnapshot, encodeMarker(SnapshotMarker{Index: 7, Term: 2})))
	f.Add(encodeRecord(encodeRecord(nil, recHardState, []byte{8, 1}), recEntry, []byte("x")))
	f.Add(make([]byte, 16))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, buf []byte) {
		typ, body, n, res := decodeRecord(buf)
		validRecordAfter(buf, 1)
		if res != decodeOK {
			return
		}
		if n <= 0 || n > len(buf) {
			t.Fatalf("consumed %d of %d bytes", n, len(buf))
		}
		again := encodeRecord(nil, typ, body)
		framed := headerBytes + 1 + len(body)
		if !bytes.Equal(again[:framed], buf[:framed]) {
			t.Fatalf("re-encoding differs: %x vs %x", again[:framed], buf[:framed])
		}
	})
}
