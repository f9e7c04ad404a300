package store

import (
	"encoding/base64"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The cursor decoder reads strings that clients send back: it must never panic,
// must refuse anything it did not make with ErrInvalidCursor (without echoing
// it), and what it accepts must encode back to a cursor for the same position.

// fuzzSeedCursors adds real cursors of both kinds and some near misses.
func fuzzSeedCursors(f *testing.F) {
	id := uuid.MustParse("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
	at := time.Date(2026, 11, 26, 0, 30, 0, 123456000, time.UTC)
	for _, kind := range []byte{cursorHistoryV1, cursorInboxV1} {
		good := string(encodeCursor(kind, position{at: at, id: id}))
		f.Add(good)
		f.Add(good[:len(good)-1])
		f.Add(good + "A")
		f.Add(strings.ToUpper(good))
		f.Add(string(encodeCursor(kind, position{at: time.UnixMicro(0), id: uuid.Nil})))
		f.Add(string(encodeCursor(kind, position{at: time.UnixMicro(math.MaxInt64), id: uuid.Max})))
		f.Add(string(encodeCursor(kind, position{at: time.UnixMicro(math.MinInt64), id: uuid.Max})))
	}
	for _, s := range []string{"", "=", "A", "AAAA", "not a cursor!", "'; DROP TABLE messages; --", "\x00", "\xff\xfe",
		base64.StdEncoding.EncodeToString(make([]byte, cursorLen)), base64.RawURLEncoding.EncodeToString(make([]byte, cursorLen))} {
		f.Add(s)
	}
}

func FuzzDecodeCursor(f *testing.F) {
	fuzzSeedCursors(f)
	f.Fuzz(func(t *testing.T, s string) {
		accepted := 0
		for _, kind := range []byte{0, cursorHistoryV1, cursorInboxV1, 3} {
			p, err := decodeCursor(kind, Cursor(s))
			if err != nil {
				if !errors.Is(err, ErrInvalidCursor) {
					t.Fatalf("decodeCursor(%d, %q) = %v, not ErrInvalidCursor", kind, s, err)
				}
				if len(s) >= 8 && strings.Contains(err.Error(), s) {
					t.Fatalf("the error %q repeats the cursor", err)
				}
				continue
			}
			accepted++
			if kind != cursorHistoryV1 && kind != cursorInboxV1 {
				t.Fatalf("decodeCursor(%d, %q) accepted a format that does not exist", kind, s)
			}
			if p.at.Location() != time.UTC {
				t.Fatalf("decoded time %v is not in UTC", p.at)
			}
			// Round trip: the cursor re-encoded decodes to the same position,
			// and encoding is stable from then on.
			again := encodeCursor(kind, p)
			q, err := decodeCursor(kind, again)
			if err != nil {
				t.Fatalf("re-encoded cursor %q of %q does not decode: %v", again, s, err)
			}
			if !q.at.Equal(p.at) || q.id != p.id {
				t.Fatalf("round trip of %q: %v %v, then %v %v", s, p.at, p.id, q.at, q.id)
			}
			if encodeCursor(kind, q) != again {
				t.Fatalf("encoding of %q is not stable", s)
			}
			// encoding/base64 skips CR and LF, and ignores the unused low bits
			// of the last character: besides those, what is accepted is the
			// cursor itself.
			bare := strings.NewReplacer("\r", "", "\n", "").Replace(s)
			if len(bare) != len(again) || bare[:len(bare)-1] != string(again[:len(again)-1]) {
				t.Fatalf("accepted %q, which is not the cursor %q", s, again)
			}
		}
		if accepted > 1 {
			t.Fatalf("%q is a cursor of %d formats", s, accepted)
		}
	})
}

func FuzzCursorRoundTrip(f *testing.F) {
	f.Add(cursorHistoryV1, int64(0), make([]byte, 16))
	f.Add(cursorInboxV1, time.Date(2026, 11, 26, 0, 0, 0, 1000, time.UTC).UnixMicro(), uuid.Max[:])
	f.Add(cursorHistoryV1, int64(math.MaxInt64), []byte("0123456789abcdef"))
	f.Add(cursorInboxV1, int64(math.MinInt64), []byte("0123456789abcdef"))
	f.Add(cursorHistoryV1, int64(-1), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, kind byte, micros int64, idBytes []byte) {
		var id uuid.UUID
		copy(id[:], idBytes)
		p := position{at: time.UnixMicro(micros), id: id}
		c := encodeCursor(kind, p)
		if len(c) != base64.RawURLEncoding.EncodedLen(cursorLen) {
			t.Fatalf("cursor %q has length %d", c, len(c))
		}
		q, err := decodeCursor(kind, c)
		if err != nil {
			// A decoder may refuse times no database holds; not others.
			inRange := !p.at.Before(fuzzMinCursorTime) && !p.at.After(fuzzMaxCursorTime)
			if !errors.Is(err, ErrInvalidCursor) || inRange {
				t.Fatalf("decodeCursor(encodeCursor(%d, %d, %v)) = %v", kind, micros, id, err)
			}
			return
		}
		if q.at.UnixMicro() != micros || q.id != id {
			t.Fatalf("round trip of (%d, %v) gave (%d, %v)", micros, id, q.at.UnixMicro(), q.id)
		}
		// A cursor is refused by every listing but its own.
		for _, other := range []byte{kind + 1, kind ^ 0x80} {
			if _, err := decodeCursor(other, c); !errors.Is(err, ErrInvalidCursor) {
				t.Fatalf("a cursor of format %d decoded as format %d: %v", kind, other, err)
			}
		}
		// Any single changed character is caught, or decodes to the same
		// position (base64's unused low bits of the last character).
		for i := range len(c) {
			b := []byte(c)
			b[i] = fuzzFlipChar(b[i])
			r, err := decodeCursor(kind, Cursor(b))
			if err == nil && (!r.at.Equal(q.at) || r.id != q.id) {
				t.Fatalf("cursor %q changed at %d to %q decodes to another position", c, i, b)
			}
		}
	})
}

// The times every database chatdb runs on can hold: cursors outside them are
// forged.
var (
	fuzzMinCursorTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	fuzzMaxCursorTime = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// fuzzFlipChar returns another character of the base64url alphabet.
func fuzzFlipChar(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return alphabet[(i+1)%len(alphabet)]
}
