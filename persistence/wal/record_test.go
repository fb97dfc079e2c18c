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
		validRecordAfter(buf, len(buf), 1)
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

// FuzzDataThenZeros: a segment read only up to the end of its data
// decodes exactly as the whole file would, zeros included, for any cut
// at or before the trailing zeros.
func FuzzDataThenZeros(f *testing.F) {
	rec := encodeRecord(nil, recEntry, []byte("entry\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add(rec, uint16(64), uint16(0))
	f.Add(rec[:len(rec)-9], uint16(64), uint16(3))
	f.Add(append(append([]byte{0xff}, make([]byte, 7)...), rec...), uint16(8), uint16(1))
	f.Add([]byte{byte(len(rec) - 8)}, uint16(40), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, zeros, back uint16) {
		full := append(bytes.Clone(data), make([]byte, zeros)...)
		cut := len(data)
		for cut > 0 && back > 0 && full[cut-1] == 0 {
			cut, back = cut-1, back-1
		}
		for off := 0; off <= len(full); off++ {
			wt, wb, wn, wr := decodeRecord(full[off:])
			gt, gb, gn, gr := recordAt(full[:cut], len(full), off)
			if wr != gr || wt != gt || wn != gn || !bytes.Equal(wb, gb) {
				t.Fatalf("offset %d: whole file %v %d %d, read to %d of %d: %v %d %d", off, wr, wt, wn, cut, len(full), gr, gt, gn)
			}
			if want, got := validRecordAfter(full, len(full), off), validRecordAfter(full[:cut], len(full), off); want != got {
				t.Fatalf("validRecordAfter from %d: whole file %d, read to %d: %d", off, want, cut, got)
			}
		}
	})
}
