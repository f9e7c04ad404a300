package store

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Cursor formats. The first byte of a cursor names its format and what it points
// into, so that a history cursor passed to the inbox is refused and a later
// format can be told from this one.
const (
	// cursorHistoryV1 was (created_at, id) of a message, before messages had a
	// seq: such cursors are refused, as any other format's.
	cursorHistoryV1 byte = 1
	cursorInboxV1   byte = 2 // (entry time, chat id) of an inbox entry
	cursorHistoryV2 byte = 3 // (seq, chat id) of a message
)

// cursorLen is the decoded size: format, Unix microseconds or seq, UUID,
// CRC-32.
const cursorLen = 1 + 8 + 16 + 4

// position is a place in a keyset ordering: a time or a seq, and an ID.
type position struct {
	at  time.Time
	seq int64
	id  uuid.UUID
}

// hasSeq reports whether cursors of format kind hold a seq rather than a time.
func hasSeq(kind byte) bool { return kind == cursorHistoryV2 }

// encodeCursor returns the opaque cursor for p in format kind: base64url of the
// format byte, p's time in Unix microseconds and ID, and a CRC-32 of those. The
// checksum catches a cursor that was cut or altered by accident; a forged one
// gains nothing, because every listing checks privacy on its own.
func encodeCursor(kind byte, p position) Cursor {
	b := make([]byte, 0, cursorLen)
	b = append(b, kind)
	v := p.at.UnixMicro()
	if hasSeq(kind) {
		v = p.seq
	}
	b = binary.BigEndian.AppendUint64(b, uint64(v))
	b = append(b, p.id[:]...)
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	return Cursor(base64.RawURLEncoding.EncodeToString(b))
}

// decodeCursor returns the position c holds, or an error wrapping
// ErrInvalidCursor when c is not a cursor of format kind.
func decodeCursor(kind byte, c Cursor) (position, error) {
	// Strict, and no line breaks (which the decoder would skip): one position,
	// one spelling.
	b, err := base64.RawURLEncoding.Strict().DecodeString(string(c))
	switch {
	case err != nil, strings.ContainsAny(string(c), "\r\n"):
		return position{}, fmt.Errorf("%w: not base64url", ErrInvalidCursor)
	case len(b) != cursorLen:
		return position{}, fmt.Errorf("%w: wrong length", ErrInvalidCursor)
	case binary.BigEndian.Uint32(b[cursorLen-4:]) != crc32.ChecksumIEEE(b[:cursorLen-4]):
		return position{}, fmt.Errorf("%w: checksum mismatch", ErrInvalidCursor)
	case b[0] != kind:
		return position{}, fmt.Errorf("%w: cursor of another listing or version", ErrInvalidCursor)
	}
	var p position
	v := int64(binary.BigEndian.Uint64(b[1:9]))
	if hasSeq(kind) {
		if v < 0 {
			// Only a forged cursor gets here.
			return position{}, fmt.Errorf("%w: seq out of range", ErrInvalidCursor)
		}
		p.seq = v
	} else {
		p.at = time.UnixMicro(v).UTC()
		if y := p.at.Year(); y < 1 || y > 9999 {
			// Only a forged cursor gets here; PostgreSQL would refuse the time.
			return position{}, fmt.Errorf("%w: time out of range", ErrInvalidCursor)
		}
	}
	copy(p.id[:], b[9:25])
	return p, nil
}

// decodeOptional is decodeCursor for a cursor that may be empty: nil then.
func decodeOptional(kind byte, c Cursor) (*position, error) {
	if c == "" {
		return nil, nil
	}
	p, err := decodeCursor(kind, c)
	if err != nil {
		return nil, err
	}
	return &p, nil
}
