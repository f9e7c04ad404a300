package dbtest

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatdb/chatdb/database"
)

// Proxy is a TCP proxy on the loopback interface, put between a pool and a
// PostgreSQL server to break the traffic on purpose: cut every connection, stall
// (stop forwarding), refuse new connections, or act on one chosen statement (cut
// the connection before it reaches the server, after the server answered it, or
// part-way through the answer). It reads the PostgreSQL wire protocol just enough
// to find a statement in the client's stream and the end of the server's answer;
// traffic it cannot read (TLS) it forwards untouched.
//
// A Proxy breaks only the connections that go through it, never the server, so
// fault tests can use it on the shared server. It is safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	accepted atomic.Int64
	wg       sync.WaitGroup

	mu     sync.Mutex
	conns  map[*proxyConn]struct{}
	stall  chan struct{} // non-nil while stalled; closed by Resume
	refuse bool
	faults []*Fault
	closed bool
}

// StartProxy starts a proxy on a free loopback port that forwards to addr
// ("host:port"). It is closed when the test ends.
func StartProxy(t testing.TB, addr string) *Proxy {
	t.Helper()
	p, err := NewProxy(addr)
	if err != nil {
		t.Fatalf("dbtest: start proxy: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// ProxyFor starts a proxy to the PostgreSQL server that cfg names and returns it
// with a copy of cfg whose URL goes through it. The URL keeps its user, database
// and parameters; use it with sslmode=disable so that the proxy can read the
// traffic.
func ProxyFor(t testing.TB, cfg database.Config) (*Proxy, database.Config) {
	t.Helper()
	u, err := url.Parse(cfg.URL)
	if err != nil || !strings.HasPrefix(u.Scheme, "postgres") || u.Host == "" {
		t.Fatalf("dbtest: proxy: not a PostgreSQL URL with a host: %s", database.Redact(cfg.URL))
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "5432")
	}
	p := StartProxy(t, addr)
	cfg.URL = p.URL(cfg.URL)
	return p, cfg
}

// NewProxy starts a proxy to addr; Close stops it. Tests use StartProxy.
func NewProxy(addr string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: addr, conns: map[*proxyConn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr returns the proxy's "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns dbURL with its host and port replaced by the proxy's.
func (p *Proxy) URL(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return dbURL
	}
	u.Host = p.Addr()
	return u.String()
}

// Accepted returns how many connections the proxy accepted so far, PostgreSQL
// cancel requests included (they arrive on connections of their own).
func (p *Proxy) Accepted() int { return int(p.accepted.Load()) }

// Active returns how many connections are open through the proxy now.
func (p *Proxy) Active() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// CutAll closes every open connection, on both sides, as a network failure
// would. New connections are accepted as before.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

// Stall stops forwarding in both directions on every connection, open and new:
// bytes are read and held, as by a network that stopped delivering. Connections
// stay open. Resume forwards what was held and goes on, as a network that heals
// does: a statement whose client gave up meanwhile still reaches the server.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stall == nil {
		p.stall = make(chan struct{})
	}
}

// Resume ends a Stall.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stall != nil {
		close(p.stall)
		p.stall = nil
	}
}

// Refuse makes the proxy close each new connection at once (on true), as a
// server that is down would, or accept them again (on false). Open connections
// are left alone; CutAll closes them.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = on
}

// Close stops the proxy: it closes the listener and every connection, and waits
// for its goroutines to end. It is safe to call more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	if p.stall != nil {
		close(p.stall)
		p.stall = nil
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.CutAll()
	p.wg.Wait()
	return err
}

// --- faults on one statement ---

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
		s, _, _ := bytes.Cut(m.Body, []byte{0})
		return string(s)
	case 'P':
		// Statement name, then the query, each NUL-terminated.
		_, rest, ok := bytes.Cut(m.Body, []byte{0})
		if !ok {
			return ""
		}
		s, _, _ := bytes.Cut(rest, []byte{0})
		return string(s)
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
	cstr := func(b []byte) (string, []byte) {
		v, rest, _ := bytes.Cut(b, []byte{0})
		return string(v), rest
	}
	switch m.Type {
	case 'P':
		name, _ := cstr(m.Body)
		s.stmts[name] = m.SQL()
	case 'B':
		portal, rest := cstr(m.Body)
		stmt, _ := cstr(rest)
		s.portals[portal] = s.stmts[stmt]
	case 'E':
		portal, _ := cstr(m.Body)
		m.executes = s.portals[portal]
	case 'C': // Close: 'S' statement or 'P' portal, then the name
		if len(m.Body) > 0 {
			name, _ := cstr(m.Body[1:])
			if m.Body[0] == 'S' {
				delete(s.stmts, name)
			} else {
				delete(s.portals, name)
			}
		}
	}
}

type faultAction int

const (
	cutBefore faultAction = iota + 1
	cutAfterReply
	truncateReply
	stallAfter
)

// A Fault is a failure armed on a Proxy to happen once, on the first client
// message that matches, on whichever connection sends it. The matcher runs with
// the proxy locked, on the proxy's goroutines: it must be quick and must not
// call the proxy.
type Fault struct {
	match  func(Message) bool
	action faultAction
	n      int

	fired     chan struct{}
	done      chan struct{}
	doneOnce  sync.Once
	statement atomic.Value // string
}

// Fired is closed when a matching message arrived and the fault began.
func (f *Fault) Fired() <-chan struct{} { return f.fired }

// Done is closed when the fault has done all it does: the connection was cut
// (for StallAfter, when the proxy stalled the connection).
func (f *Fault) Done() <-chan struct{} { return f.done }

// Statement returns the SQL of the message that fired the fault, or "".
func (f *Fault) Statement() string {
	s, _ := f.statement.Load().(string)
	return s
}

func (f *Fault) finish() { f.doneOnce.Do(func() { close(f.done) }) }

func (p *Proxy) arm(match func(Message) bool, action faultAction, n int) *Fault {
	f := &Fault{match: match, action: action, n: n, fired: make(chan struct{}), done: make(chan struct{})}
	p.mu.Lock()
	p.faults = append(p.faults, f)
	p.mu.Unlock()
	return f
}

// Disarm removes f if it has not fired yet, and reports whether it had not.
func (p *Proxy) Disarm(f *Fault) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, g := range p.faults {
		if g == f {
			p.faults = append(p.faults[:i:i], p.faults[i+1:]...)
			return true
		}
	}
	return false
}

// take returns the first armed fault that m matches, disarming it.
func (p *Proxy) take(m Message) *Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, f := range p.faults {
		if f.match(m) {
			p.faults = append(p.faults[:i:i], p.faults[i+1:]...)
			return f
		}
	}
	return nil
}

// CutBefore cuts the connection that sends the next message matching match,
// without forwarding it: the server never sees the statement and rolls back
// what the session had open.
func (p *Proxy) CutBefore(match func(Message) bool) *Fault {
	return p.arm(match, cutBefore, 0)
}

// CutAfterReply forwards the next message matching match, lets the server run
// it and answer, drops the whole answer (up to the server's ReadyForQuery) and
// then cuts the connection: the statement took effect, and the client cannot
// know it. With IsCommit it is the lost COMMIT acknowledgement.
func (p *Proxy) CutAfterReply(match func(Message) bool) *Fault {
	return p.arm(match, cutAfterReply, 0)
}

// TruncateReply forwards the next message matching match, passes the first n
// bytes of the server's answer to the client and then cuts the connection: a
// response broken off mid-message.
func (p *Proxy) TruncateReply(match func(Message) bool, n int) *Fault {
	return p.arm(match, truncateReply, n)
}

// StallAfter forwards the next message matching match and then stops forwarding
// on that connection in both directions, for good: a server that hangs on one
// statement, or a network path that died without closing. Close or CutAll ends
// the connection.
func (p *Proxy) StallAfter(match func(Message) bool) *Fault {
	return p.arm(match, stallAfter, 0)
}

// --- connections ---

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.mu.Lock()
		refuse, closed := p.refuse, p.closed
		p.mu.Unlock()
		if refuse || closed {
			client.Close()
			continue
		}
		server, err := net.DialTimeout("tcp", p.target, 10*time.Second)
		if err != nil {
			client.Close()
			continue
		}
		c := &proxyConn{p: p, client: client, server: server, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			client.Close()
			server.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Go(c.clientToServer)
		p.wg.Go(c.serverToClient)
	}
}

type proxyConn struct {
	p              *Proxy
	client, server net.Conn
	done           chan struct{}
	closeOnce      sync.Once

	mu sync.Mutex
	// fault is the fault acting on the server's answer, if any.
	fault *Fault
	// left is the bytes of the answer still to pass, for truncateReply.
	left int
	// stalled holds this connection, for stallAfter.
	stalled bool
	// sslAnswer: the client asked for TLS or GSS encryption, and the server
	// answers with one byte before any message.
	sslAnswer bool
	// raw: the stream is encrypted; forward without reading.
	raw bool
}

func (c *proxyConn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.client.Close()
		c.server.Close()
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
		c.mu.Lock()
		f := c.fault
		c.mu.Unlock()
		if f != nil {
			f.finish()
		}
	})
}

// wait blocks while the proxy or this connection is stalled, and reports false
// when the connection closed meanwhile.
func (c *proxyConn) wait() bool {
	for {
		c.mu.Lock()
		stalled := c.stalled
		c.mu.Unlock()
		if stalled {
			<-c.done
			return false
		}
		c.p.mu.Lock()
		stall := c.p.stall
		c.p.mu.Unlock()
		if stall == nil {
			select {
			case <-c.done:
				return false
			default:
				return true
			}
		}
		select {
		case <-stall:
		case <-c.done:
			return false
		}
	}
}

func (c *proxyConn) write(dst net.Conn, b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if !c.wait() {
		return false
	}
	_, err := dst.Write(b)
	return err == nil
}

// Start-up request codes of the frontend protocol.
const (
	cancelRequestCode = 80877102
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
)

// clientToServer forwards the client's stream, message by message, so that a
// fault can act on the statement that matches it.
func (c *proxyConn) clientToServer() {
	defer c.close()
	var (
		pending []byte
		buf     = make([]byte, 32<<10)
		startup = true // the next message is untyped
		stmts   statements
	)
	for {
		n, err := c.client.Read(buf)
		if n > 0 {
			pending = append(pending, buf[:n]...)
			c.mu.Lock()
			raw := c.raw
			c.mu.Unlock()
			if raw {
				if !c.write(c.server, pending) {
					return
				}
				pending = pending[:0]
			} else {
				var ok bool
				if pending, startup, ok = c.forwardMessages(pending, startup, &stmts); !ok {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// forwardMessages forwards the complete messages at the start of b and returns
// what is left of b (an incomplete message), whether the next message is still
// an untyped start-up one, and false once the connection is to end.
func (c *proxyConn) forwardMessages(b []byte, startup bool, stmts *statements) ([]byte, bool, bool) {
	start := 0 // of the bytes not yet forwarded
	off := 0
	for {
		rest := b[off:]
		if startup && len(rest) > 0 && rest[0] == 0x16 {
			// A TLS ClientHello after the server accepted an SSLRequest: the
			// rest is encrypted.
			c.mu.Lock()
			c.raw = true
			c.mu.Unlock()
			if !c.write(c.server, b[start:]) {
				return nil, startup, false
			}
			return b[:0], startup, true
		}
		var m Message
		var size int
		if startup {
			if len(rest) < 8 {
				break
			}
			size = int(binary.BigEndian.Uint32(rest))
			if size < 8 || len(rest) < size {
				break
			}
			m = Message{Body: rest[4:size]}
			switch binary.BigEndian.Uint32(rest[4:]) {
			case sslRequestCode, gssEncRequestCode:
				c.mu.Lock()
				c.sslAnswer = true
				c.mu.Unlock()
			case cancelRequestCode:
			default:
				startup = false
			}
		} else {
			if len(rest) < 5 {
				break
			}
			size = 1 + int(binary.BigEndian.Uint32(rest[1:]))
			if size < 5 || len(rest) < size {
				break
			}
			m = Message{Type: rest[0], Body: rest[5:size]}
			stmts.see(&m)
		}
		if f := c.p.take(m); f != nil {
			if !c.write(c.server, b[start:off]) {
				return nil, startup, false
			}
			start = off
			if !c.fire(f, m, rest[:size]) {
				return nil, startup, false
			}
			start = off + size
		}
		off += size
	}
	if !c.write(c.server, b[start:off]) {
		return nil, startup, false
	}
	left := copy(b, b[off:])
	return b[:left], startup, true
}

// fire starts fault f on message m (whose bytes are raw) and reports whether the
// connection goes on.
func (c *proxyConn) fire(f *Fault, m Message, raw []byte) bool {
	f.statement.Store(m.SQL())
	c.mu.Lock()
	c.fault = f
	switch f.action {
	case truncateReply:
		c.left = f.n
	}
	c.mu.Unlock()
	close(f.fired)
	switch f.action {
	case cutBefore:
		c.close()
		return false
	case stallAfter:
		// Stall before forwarding: the server may answer before write returns,
		// and that answer must not get through.
		c.mu.Lock()
		c.stalled = true
		c.mu.Unlock()
		// Straight to the server: write would wait out the stall just set.
		_, err := c.server.Write(raw)
		f.finish()
		return err == nil
	default:
		// cutAfterReply, truncateReply: serverToClient does the rest.
		return c.write(c.server, raw)
	}
}

// serverToClient forwards the server's stream, keeping track of message
// boundaries so that a fault knows where the server's answer ends.
func (c *proxyConn) serverToClient() {
	defer c.close()
	var (
		buf  = make([]byte, 32<<10)
		scan backendScanner
	)
	for {
		n, err := c.server.Read(buf)
		if n > 0 && !c.fromServer(buf[:n], &scan) {
			return
		}
		if err != nil {
			return
		}
	}
}

func (c *proxyConn) fromServer(b []byte, scan *backendScanner) bool {
	c.mu.Lock()
	if c.sslAnswer {
		c.sslAnswer = false
		if b[0] == 'S' || b[0] == 'G' {
			c.raw = true
		}
		c.mu.Unlock()
		if !c.write(c.client, b[:1]) {
			return false
		}
		b = b[1:]
		c.mu.Lock()
	}
	f, raw := c.fault, c.raw
	c.mu.Unlock()
	if raw {
		return c.write(c.client, b)
	}
	if f == nil {
		scan.feed(b, nil)
		return c.write(c.client, b)
	}
	switch f.action {
	case cutAfterReply:
		ready := false
		scan.feed(b, func(typ byte) { ready = ready || typ == 'Z' })
		if ready {
			c.close()
			return false
		}
		return true
	case truncateReply:
		c.mu.Lock()
		pass := min(c.left, len(b))
		c.left -= pass
		left := c.left
		c.mu.Unlock()
		if !c.write(c.client, b[:pass]) || left == 0 {
			c.close()
			return false
		}
		return true
	default:
		scan.feed(b, nil)
		return c.write(c.client, b)
	}
}

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
