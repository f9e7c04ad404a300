package database

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Consistency tokens: read-your-writes across requests and servers.
//
// A token is a position in the primary's write-ahead log (WAL), written as
// tokenPrefix and 16 lowercase hex digits ("c1.0000000001a2b3c8"): a short
// string that fits in a cookie or a header as it is. A read that carries a
// token is served by a replica only when that replica has replayed the WAL up
// to the position, so it sees every write committed before the token was
// taken; otherwise it is served by the primary.
//
// The flow in one request:
//
//	ctx, err := database.WithToken(r.Context(), cookie) // "" when there is none
//	if err != nil { /* errors.Is(err, database.ErrInvalid): a forged or mangled token */ }
//	... store reads and writes with ctx ...
//	tok, err := db.Token(ctx) // set it as the cookie for the next request
//
// The context of WithToken is a session: writes made with it (every store
// write, and WithTx without ReadOnly) are noted, reads after them in the same
// session go to the primary, and Token reads the primary's WAL position once,
// after them. A session whose context saw no write hands back the token it
// was given, without a round trip.
const tokenPrefix = "c1."

// session is the consistency state a context carries (see WithToken).
type session struct {
	mu sync.Mutex
	// lsn is the WAL position reads must have seen: the token the session
	// was given, raised by Token after writes.
	lsn uint64
	// writes counts the writes noted; tokenAt is its value when lsn was last
	// read from the primary. They differ while a write has no position yet.
	writes, tokenAt uint64
}

// state returns the position reads of the session need, and whether a write
// of the session has no position yet (then only the primary will do).
func (s *session) state() (lsn uint64, pending bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lsn, s.writes != s.tokenAt
}

type sessionKey struct{}

type primaryKey struct{}

func sessionFrom(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// WithToken returns a context that carries token, the string an earlier Token
// returned (from this process or another), and starts a session in it (see
// Token and NoteWrite). An empty token starts a session with nothing to wait
// for. A token that is not one Token makes gives an error that matches
// ErrInvalid, and ctx is returned unchanged; the token itself is never in the
// error.
//
// A token only means something to the cluster that made it: one from
// another database, or from before the primary was restored from a backup,
// names a position that may not be comparable.
func WithToken(ctx context.Context, token string) (context.Context, error) {
	lsn, err := parseToken(token)
	if err != nil {
		return ctx, err
	}
	s := &session{lsn: lsn}
	if parent := sessionFrom(ctx); parent != nil {
		plsn, pending := parent.state()
		s.lsn = max(s.lsn, plsn)
		if pending {
			s.writes = 1
		}
	}
	return context.WithValue(ctx, sessionKey{}, s), nil
}

// NoteWrite notes in ctx's session (see WithToken), if it has one, that a
// write is about to be made with it: reads of the session go to the primary
// from now on, and the next Token reads the primary's position. Store writes
// and WithTx (without ReadOnly) call it; call it before a write made another
// way, such as through Client. It costs a mutex, and nothing without a
// session.
func NoteWrite(ctx context.Context) {
	if s := sessionFrom(ctx); s != nil {
		s.mu.Lock()
		s.writes++
		s.mu.Unlock()
	}
}

// Primary returns a context whose reads go to the primary, whatever the
// replicas: for a read that must not be stale and has no token, such as the
// check before a write.
func Primary(ctx context.Context) context.Context {
	return context.WithValue(ctx, primaryKey{}, true)
}

func forcedPrimary(ctx context.Context) bool {
	v, _ := ctx.Value(primaryKey{}).(bool)
	return v
}

// Token returns the consistency token of ctx's session: a string that, passed
// to WithToken later (in another request, on another server), makes reads see
// every write the session made before this call, and everything the token it
// was given covered.
//
// When the session made writes since its last token, and whenever ctx has no
// session, Token reads the primary's WAL insert position, which is at or past
// the commit record of every transaction that committed before: one round
// trip to the primary (SELECT pg_current_wal_insert_lsn()). Otherwise it
// returns the session's token without one, "" when it was given none. Call it
// after the session's writes have returned: a write still running in another
// goroutine may not be covered.
//
// On SQLite, which has no replicas, the token is "".
func (db *DB) Token(ctx context.Context) (string, error) {
	if db.dialect != Postgres {
		return "", nil
	}
	s := sessionFrom(ctx)
	var writes uint64
	if s != nil {
		s.mu.Lock()
		lsn, pending := s.lsn, s.writes != s.tokenAt
		writes = s.writes
		s.mu.Unlock()
		if !pending {
			return encodeToken(lsn), nil
		}
	}
	lsn, err := db.insertPosition(ctx)
	if err != nil {
		return "", fmt.Errorf("database: token: %w", scrub(mapError(err), db.secrets...))
	}
	if s != nil {
		s.mu.Lock()
		s.lsn = max(s.lsn, lsn)
		lsn = s.lsn
		if s.writes == writes {
			// No write was noted while the position was read; one that was
			// must wait for the next Token.
			s.tokenAt = writes
		}
		s.mu.Unlock()
	}
	return encodeToken(lsn), nil
}

// insertPosition reads the primary's WAL insert position as the end of the
// last record inserted (see recordEnd).
func (db *DB) insertPosition(ctx context.Context) (uint64, error) {
	var (
		text      string
		blk, wseg int64
	)
	err := db.sql.QueryRowContext(ctx, `SELECT pg_current_wal_insert_lsn()::text, current_setting('wal_block_size')::int8, pg_size_bytes(current_setting('wal_segment_size'))`).Scan(&text, &blk, &wseg)
	if err != nil {
		return 0, err
	}
	lsn, ok := parseLSN(text)
	if !ok {
		return 0, fmt.Errorf("database: the server returned a WAL position that is not one")
	}
	return recordEnd(lsn, uint64(blk), uint64(wseg)), nil
}

// recordEnd turns a WAL insert position into the end of the last record
// inserted, the form a standby's pg_last_wal_replay_lsn() takes. They differ
// only when the last record ended exactly at a page boundary: the insert
// position then points past the next page's header (24 bytes, or 40 on the
// first page of a segment), where no standby's replay position will be until
// another record is written. Nothing but a header can come before those
// offsets on a page, so the boundary is the end of that record.
func recordEnd(lsn, blockSize, segmentSize uint64) uint64 {
	const shortHeader, longHeader = 24, 40
	switch {
	case segmentSize > 0 && lsn%segmentSize == longHeader:
		return lsn - longHeader
	case blockSize > 0 && lsn%blockSize == shortHeader && (segmentSize == 0 || lsn%segmentSize != shortHeader):
		return lsn - shortHeader
	}
	return lsn
}

// encodeToken writes a token; position 0 is the empty token.
func encodeToken(lsn uint64) string {
	if lsn == 0 {
		return ""
	}
	return fmt.Sprintf("%s%016x", tokenPrefix, lsn)
}

// parseToken reads a token that encodeToken wrote; "" is position 0.
func parseToken(tok string) (uint64, error) {
	if tok == "" {
		return 0, nil
	}
	hex, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok || len(hex) != 16 || strings.ToLower(hex) != hex {
		return 0, errInvalidToken
	}
	lsn, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		return 0, errInvalidToken
	}
	return lsn, nil
}

// errInvalidToken never holds the token: it comes from a client.
var errInvalidToken = fmt.Errorf("%w: not a consistency token (want %q and 16 hex digits)", ErrInvalid, tokenPrefix)

// parseLSN reads PostgreSQL's text form of a WAL position, "16/B374D848".
func parseLSN(s string) (uint64, bool) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, false
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return h<<32 | l, true
}

// formatLSN writes a WAL position as PostgreSQL does.
func formatLSN(lsn uint64) string {
	return fmt.Sprintf("%X/%X", lsn>>32, lsn&0xffffffff)
}
