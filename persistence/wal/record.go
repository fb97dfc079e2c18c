package wal

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
)

// A record on disk is
//
//	length  uint32 LE   bytes of payload (type byte + body), > 0
//	crc     uint32 LE   CRC32C over the length field and the payload
//	payload length bytes: recordType, then the body
//	padding zero bytes up to the next multiple of recordAlign
//
// A zero length marks the end of a segment: segments are preallocated with
// zeros, so the first unwritten frame reads as length 0. The CRC covers the
// length so a flipped length bit is caught rather than trusted. Records are
// aligned so the scan that tells a torn tail from corruption in the middle
// only tries aligned offsets.

// recordType tags the payload of a record.
type recordType byte

const (
	// recMetadata holds the Metadata given to Create (Metadata.Marshal);
	// every segment starts with one.
	recMetadata recordType = 1
	// recEntry holds a proto-encoded raftpb.Entry.
	recEntry recordType = 2
	// recHardState holds a proto-encoded raftpb.HardState.
	recHardState recordType = 3
	// recSnapshot holds a SnapshotMarker: index and term, 8 bytes LE each.
	recSnapshot recordType = 4
)

const (
	headerBytes = 8
	recordAlign = 8
	// maxRecordBytes bounds a record's payload so a garbled length cannot
	// make the reader allocate or scan absurd amounts.
	maxRecordBytes = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// decodeResult says why decodeRecord stopped.
type decodeResult int

const (
	decodeOK       decodeResult = iota
	decodeEnd                   // zero length: end of the written log
	decodeTorn                  // frame runs past the end of buf
	decodeBadCRC                // checksum mismatch
	decodeBadFrame              // length out of range or unknown type
)

// beginRecord appends a header placeholder and the type byte to dst and
// returns the grown slice; the caller appends the body and calls
// finishRecord with the offset where the header started.
func beginRecord(dst []byte, typ recordType) []byte {
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	return append(dst, byte(typ))
}

// finishRecord fills in the header of the record starting at start and
// pads dst to the record alignment.
func finishRecord(dst []byte, start int) []byte {
	n := len(dst) - start - headerBytes
	binary.LittleEndian.PutUint32(dst[start:], uint32(n))
	crc := crc32.Update(0, castagnoli, dst[start:start+4])
	crc = crc32.Update(crc, castagnoli, dst[start+headerBytes:])
	binary.LittleEndian.PutUint32(dst[start+4:], crc)
	for len(dst)%recordAlign != start%recordAlign {
		dst = append(dst, 0)
	}
	return dst
}

// encodeRecord appends one complete record to dst.
func encodeRecord(dst []byte, typ recordType, body []byte) []byte {
	start := len(dst)
	dst = beginRecord(dst, typ)
	dst = append(dst, body...)
	return finishRecord(dst, start)
}

// decodeRecord decodes the record at the start of buf. It returns the type,
// the body (aliasing buf) and the bytes consumed including padding; a
// padding cut short by the end of buf still counts as a whole record.
func decodeRecord(buf []byte) (recordType, []byte, int, decodeResult) {
	if len(buf) < 4 {
		if allZero(buf) {
			return 0, nil, 0, decodeEnd
		}
		return 0, nil, 0, decodeTorn
	}
	n := binary.LittleEndian.Uint32(buf)
	if n == 0 {
		return 0, nil, 0, decodeEnd
	}
	if n > maxRecordBytes {
		return 0, nil, 0, decodeBadFrame
	}
	end := headerBytes + int(n)
	if end > len(buf) {
		return 0, nil, 0, decodeTorn
	}
	crc := crc32.Update(0, castagnoli, buf[:4])
	crc = crc32.Update(crc, castagnoli, buf[headerBytes:end])
	if crc != binary.LittleEndian.Uint32(buf[4:]) {
		return 0, nil, 0, decodeBadCRC
	}
	typ := recordType(buf[headerBytes])
	if typ < recMetadata || typ > recSnapshot {
		return 0, nil, 0, decodeBadFrame
	}
	padded := (end + recordAlign - 1) / recordAlign * recordAlign
	return typ, buf[headerBytes+1 : end], min(padded, len(buf)), decodeOK
}

// validRecordAfter reports the offset of the first aligned offset at or
// after from holding a valid record, or -1. It tells a torn tail (nothing
// valid follows) from a damaged record in the middle of the log. Runs of
// zeros (the preallocated rest of the last segment) are skipped a block at
// a time: a record's length field is not zero, so no record starts in them.
func validRecordAfter(buf []byte, size, from int) int {
	off := (from + recordAlign - 1) / recordAlign * recordAlign
	for off < len(buf) && off+headerBytes < size {
		if off+4 <= len(buf) && binary.LittleEndian.Uint32(buf[off:]) == 0 {
			// A record at an aligned offset o has a non-zero byte in
			// [o, o+4), so none starts before the aligned offset at or
			// below the next non-zero byte.
			next := nextNonZero(buf, off) / recordAlign * recordAlign
			off = max(next, off+recordAlign)
			continue
		}
		if _, _, _, res := recordAt(buf, size, off); res == decodeOK {
			return off
		}
		off += recordAlign
	}
	return -1
}

// recordAt decodes the record at off of a segment whose bytes are data
// followed by zeros up to size (see readFile): a record running past data
// is decoded with those zeros, as if the whole file had been read.
func recordAt(data []byte, size, off int) (recordType, []byte, int, decodeResult) {
	if off >= len(data) {
		return 0, nil, 0, decodeEnd // in the zeros
	}
	typ, body, n, res := decodeRecord(data[off:])
	if len(data) >= size {
		return typ, body, n, res
	}
	if res == decodeOK {
		// Padding cut short by the end of data goes on in the zeros.
		padded := (headerBytes + 1 + len(body) + recordAlign - 1) / recordAlign * recordAlign
		return typ, body, min(padded, size-off), res
	}
	if res != decodeTorn {
		return typ, body, n, res
	}
	var length [4]byte
	copy(length[:], data[off:])
	need := headerBytes + int(binary.LittleEndian.Uint32(length[:])) + recordAlign
	ext := make([]byte, min(size-off, need))
	copy(ext, data[off:])
	return decodeRecord(ext)
}

// zeroBlock is compared against to find runs of zeros at memory speed.
var zeroBlock [4096]byte

// nextNonZero returns the offset of the first non-zero byte of b at or
// after from, or len(b).
func nextNonZero(b []byte, from int) int {
	off := from
	for off+len(zeroBlock) <= len(b) && bytes.Equal(b[off:off+len(zeroBlock)], zeroBlock[:]) {
		off += len(zeroBlock)
	}
	for off < len(b) && b[off] == 0 {
		off++
	}
	return off
}

func allZero(b []byte) bool { return nextNonZero(b, 0) == len(b) }
