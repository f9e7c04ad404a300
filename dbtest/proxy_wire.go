// The proxy's reading of the PostgreSQL wire protocol: the framing of the
// client's stream (Message, frontendStream) and of the server's
// (backendScanner), the prepared statements an Execute runs, and the matchers
// that faults use (IsCommit, QueryContains).

package dbtest

import (
	"bytes"
	"encoding/binary"
	"strings"
)

// Message is a message a client sent through the proxy, in the PostgreSQL
// frontend protocol: Type is its type byte ('Q' simple query, 'P' parse, 'B'
// bind, 'E' execute, 'S' sync, 'X' terminate), 0 for the untyped start-up
// messages, and Body is what follows the length.
type Message struct {
	Type byte
	Body []byte
	// executes is the statement an Execute runs, found by the proxy from the
	// Parse and Bind messages before it.
	executes string
}

// SQL returns the statement text of a simple query ('Q') or parse ('P')
// message, that of the statement an execute ('E') message runs when the proxy
// saw it parsed, and "" for any other.
func (m Message) SQL() string {
	switch m.Type {
	case 'Q':
		s, _ := cstring(m.Body)
		return s
	case 'P':
		// Statement name, then the query.
		_, rest := cstring(m.Body)
		s, _ := cstring(rest)
		return s
	case 'E':
		return m.executes
	}
	return ""
}

// Runs reports whether m makes the server run a statement: a simple query, or
// an execute of the extended protocol. A parse only prepares one.
func (m Message) Runs() bool { return m.Type == 'Q' || m.Type == 'E' }

// IsCommit reports whether m runs a COMMIT (or END, COMMIT WORK, COMMIT
// TRANSACTION), sent as a simple query or executed with the extended protocol.
// pgx and lib/pq both send "commit" as a simple query.
func IsCommit(m Message) bool {
	if !m.Runs() {
		return false
	}
	s := strings.ToUpper(strings.TrimSpace(strings.TrimRight(strings.TrimSpace(m.SQL()), ";")))
	switch s {
	case "COMMIT", "END", "COMMIT WORK", "COMMIT TRANSACTION", "END WORK", "END TRANSACTION":
		return true
	}
	return false
}

// QueryContains returns a matcher for the messages that run a statement (see
// Runs) whose text contains s, ignoring case. QueryContains("") matches any
// statement run.
func QueryContains(s string) func(Message) bool {
	s = strings.ToLower(s)
	return func(m Message) bool {
		return m.Runs() && strings.Contains(strings.ToLower(m.SQL()), s)
	}
}

// cstring reads the NUL-terminated string at the start of b and returns it
// with the bytes after the NUL: none when b has no NUL, and then the string is
// all of b.
func cstring(b []byte) (string, []byte) {
	s, rest, _ := bytes.Cut(b, []byte{0})
	return string(s), rest
}

// statements follows a connection's prepared statements and portals, so that
// an Execute message can say which statement it runs.
type statements struct {
	stmts   map[string]string // statement name → SQL
	portals map[string]string // portal name → SQL
}

// see records what m prepares or binds, and resolves what an Execute runs.
func (s *statements) see(m *Message) {
	if s.stmts == nil {
		s.stmts, s.portals = map[string]string{}, map[string]string{}
	}
	switch m.Type {
	case 'P':
		name, _ := cstring(m.Body)
		s.stmts[name] = m.SQL()
	case 'B':
		portal, rest := cstring(m.Body)
		stmt, _ := cstring(rest)
		s.portals[portal] = s.stmts[stmt]
	case 'E':
		portal, _ := cstring(m.Body)
		m.executes = s.portals[portal]
	case 'C': // Close: 'S' statement or 'P' portal, then the name
		if len(m.Body) > 0 {
			name, _ := cstring(m.Body[1:])
			if m.Body[0] == 'S' {
				delete(s.stmts, name)
			} else {
				delete(s.portals, name)
			}
		}
	}
}

// Start-up request codes of the frontend protocol.
const (
	cancelRequestCode = 80877102
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
)

// tlsHandshake is the first byte of a TLS record that carries a handshake
// message, as a ClientHello does.
const tlsHandshake = 0x16

// frontendStream splits a client's stream into messages. A connection begins
// with untyped messages (the start-up message, and before it SSLRequest,
// GSSENCRequest or CancelRequest): a 4-byte length, itself included, then a
// 4-byte code. Every later message is a type byte, then the length and the body.
type frontendStream struct {
	typed bool // past the start-up message
	stmts statements
}

// next reads the message at the start of b and returns it with its size in
// bytes, or a size of 0 when b does not hold a whole message yet. encrypted
// reports a TLS ClientHello after the server accepted an SSLRequest: the rest
// of the stream cannot be read.
func (s *frontendStream) next(b []byte) (m Message, size int, encrypted bool) {
	if !s.typed {
		if len(b) > 0 && b[0] == tlsHandshake {
			return Message{}, 0, true
		}
		if len(b) < 8 {
			return Message{}, 0, false
		}
		size = int(binary.BigEndian.Uint32(b))
		if size < 8 || len(b) < size {
			return Message{}, 0, false
		}
		switch binary.BigEndian.Uint32(b[4:]) {
		case sslRequestCode, gssEncRequestCode, cancelRequestCode:
		default:
			s.typed = true
		}
		return Message{Body: b[4:size]}, size, false
	}
	if len(b) < 5 {
		return Message{}, 0, false
	}
	size = 1 + int(binary.BigEndian.Uint32(b[1:]))
	if size < 5 || len(b) < size {
		return Message{}, 0, false
	}
	m = Message{Type: b[0], Body: b[5:size]}
	s.stmts.see(&m)
	return m, size, false
}

// asksEncryption reports whether m is an SSLRequest or a GSSENCRequest, which
// the server answers with one byte before any message.
func (m Message) asksEncryption() bool {
	if m.Type != 0 || len(m.Body) < 4 {
		return false
	}
	code := binary.BigEndian.Uint32(m.Body)
	return code == sslRequestCode || code == gssEncRequestCode
}

// acceptsEncryption reports whether the server's one-byte answer to an
// SSLRequest or GSSENCRequest accepts it ('S' or 'G', against 'N'): the rest
// of the stream is encrypted.
func acceptsEncryption(answer byte) bool { return answer == 'S' || answer == 'G' }

// backendScanner finds message boundaries in a server's stream: each message is
// a type byte, a 4-byte length (itself included) and the body.
type backendScanner struct {
	hdr  [5]byte
	nhdr int
	left int // body bytes of the current message still to come
}

// feed consumes b and calls end with the type of every message that ends in it.
func (s *backendScanner) feed(b []byte, end func(typ byte)) {
	for len(b) > 0 {
		if s.left > 0 {
			k := min(s.left, len(b))
			s.left -= k
			b = b[k:]
			if s.left == 0 && end != nil {
				end(s.hdr[0])
			}
			continue
		}
		k := copy(s.hdr[s.nhdr:], b)
		s.nhdr += k
		b = b[k:]
		if s.nhdr < len(s.hdr) {
			return
		}
		s.nhdr = 0
		s.left = int(binary.BigEndian.Uint32(s.hdr[1:])) - 4
		if s.left <= 0 {
			s.left = 0
			if end != nil {
				end(s.hdr[0])
			}
		}
	}
}
