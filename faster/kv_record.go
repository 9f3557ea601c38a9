package faster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Record format of the hybrid log (all integers little-endian):
//
//	offset size
//	0      4    CRC32-C of bytes [4, 20+keyLen+valueLen): the rest of the
//	            header, the key and the value (not the unused slot space)
//	4      1    flags: 0x80 record present (a zero byte here is padding),
//	            0x01 tombstone
//	5      3    zero
//	8      4    key length
//	12     4    value length
//	16     4    value capacity (slot size, >= value length; in-place
//	            updates may shrink the value but never grow the slot)
//	20     ...  key, then value, then capacity-length unused bytes
//
// A record occupies kvHeaderSize+keyLen+valueCap bytes, with no alignment.
// A record that fits in a page never crosses a page boundary: when the rest
// of the page is too small, it is left as zero padding and the record goes
// to the next page. A record larger than a page starts on a page boundary
// and gets a run of whole pages to itself (a "large frame").
const (
	kvHeaderSize    = 20
	kvFlagPresent   = 0x80
	kvFlagTombstone = 0x01

	// kvMaxRecordSize bounds one record (header, key and value slot).
	kvMaxRecordSize = 1 << 30
)

// ErrKVRecordTooLarge is returned by KV.Upsert for a key and value whose
// record would exceed 1 GiB.
var ErrKVRecordTooLarge = errors.New("faster: kv record too large")

var kvCRCTable = crc32.MakeTable(crc32.Castagnoli)

// kvHeader is a decoded record header.
type kvHeader struct {
	flags    byte
	keyLen   int
	valueLen int
	valueCap int
}

func (h kvHeader) tombstone() bool { return h.flags&kvFlagTombstone != 0 }

// size is the number of log bytes the record occupies.
func (h kvHeader) size() int64 { return kvRecordSize(h.keyLen, h.valueCap) }

// kvRecordSize is the log size of a record with this key length and value
// capacity.
func kvRecordSize(keyLen, valueCap int) int64 {
	return int64(kvHeaderSize) + int64(keyLen) + int64(valueCap)
}

// kvPutRecord writes a complete record into b, which must hold at least
// kvRecordSize(len(key), valueCap) bytes.
func kvPutRecord(b []byte, key string, value []byte, valueCap int, tombstone bool) {
	flags := byte(kvFlagPresent)
	if tombstone {
		flags |= kvFlagTombstone
	}
	b[4] = flags
	b[5], b[6], b[7] = 0, 0, 0
	binary.LittleEndian.PutUint32(b[8:], uint32(len(key)))
	binary.LittleEndian.PutUint32(b[16:], uint32(valueCap))
	copy(b[kvHeaderSize:], key)
	kvPutValue(b, len(key), value)
}

// kvPutValue replaces the value of the record at b (in place: the value
// must fit the slot) and reseals its checksum. The unused rest of the slot
// is zeroed.
func kvPutValue(b []byte, keyLen int, value []byte) {
	binary.LittleEndian.PutUint32(b[12:], uint32(len(value)))
	valueCap := int(binary.LittleEndian.Uint32(b[16:]))
	v := b[kvHeaderSize+keyLen : kvHeaderSize+keyLen+valueCap]
	n := copy(v, value)
	clear(v[n:])
	end := kvHeaderSize + keyLen + len(value)
	binary.LittleEndian.PutUint32(b[0:], crc32.Checksum(b[4:end], kvCRCTable))
}

// kvParseHeader decodes the header at the start of b (which must hold at
// least kvHeaderSize bytes).
func kvParseHeader(b []byte) (kvHeader, error) {
	if len(b) < kvHeaderSize {
		return kvHeader{}, fmt.Errorf("%d bytes are too short for a record header", len(b))
	}
	h := kvHeader{
		flags:    b[4],
		keyLen:   int(binary.LittleEndian.Uint32(b[8:])),
		valueLen: int(binary.LittleEndian.Uint32(b[12:])),
		valueCap: int(binary.LittleEndian.Uint32(b[16:])),
	}
	switch {
	case h.flags&kvFlagPresent == 0:
		return h, errors.New("no record here (padding or never written)")
	case h.flags&^(kvFlagPresent|kvFlagTombstone) != 0 || b[5]|b[6]|b[7] != 0:
		return h, fmt.Errorf("invalid record flags %#x", b[4:8])
	case h.valueLen > h.valueCap:
		return h, fmt.Errorf("record value length %d exceeds its capacity %d", h.valueLen, h.valueCap)
	case h.size() > kvMaxRecordSize:
		return h, fmt.Errorf("record size %d exceeds the maximum %d", h.size(), kvMaxRecordSize)
	}
	return h, nil
}

// kvCheckRecord verifies the checksum of the record at the start of b
// (which must hold the whole record) and that it holds key.
func kvCheckRecord(b []byte, h kvHeader, key string) error {
	end := kvHeaderSize + h.keyLen + h.valueLen
	if len(b) < end {
		return fmt.Errorf("record of %d bytes is cut short at %d", end, len(b))
	}
	if got, want := crc32.Checksum(b[4:end], kvCRCTable), binary.LittleEndian.Uint32(b); got != want {
		return fmt.Errorf("record checksum mismatch (stored %#08x, computed %#08x)", want, got)
	}
	if string(b[kvHeaderSize:kvHeaderSize+h.keyLen]) != key {
		return fmt.Errorf("record holds key %q, expected %q", kvShortKey(string(b[kvHeaderSize:kvHeaderSize+h.keyLen])), kvShortKey(key))
	}
	return nil
}

// kvRecordValue returns the value bytes of the record at the start of b.
func kvRecordValue(b []byte, h kvHeader) []byte {
	off := kvHeaderSize + h.keyLen
	return b[off : off+h.valueLen : off+h.valueLen]
}

// kvShortKey shortens a key for an error message.
func kvShortKey(key string) string {
	if len(key) > 64 {
		return key[:61] + "..."
	}
	return key
}
