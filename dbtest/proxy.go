// The proxy's transport: the listener, the connections it accepts and the
// copying between client and server in both directions, and the faults on
// every connection (CutAll, Stall, Resume, Refuse). Reading the wire protocol
// is in proxy_wire.go, faults on one statement in proxy_fault.go.

package dbtest

import (
	"net"
	"net/url"
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
	faults []*Fault // armed, not yet fired, in the order armed
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
	if err != nil || !database.IsPostgresURL(cfg.URL) || u.Host == "" {
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
	p.resumeLocked()
}

// resumeLocked ends a Stall; p.mu is held.
func (p *Proxy) resumeLocked() {
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
	p.resumeLocked()
	p.mu.Unlock()
	err := p.ln.Close()
	p.CutAll()
	p.wg.Wait()
	return err
}

// accept takes connections until the listener closes, pairs each with a new
// connection to the server and starts copying in both directions.
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

// proxyConn is a client's connection and the server connection paired with it.
type proxyConn struct {
	p              *Proxy
	client, server net.Conn
	done           chan struct{}
	closeOnce      sync.Once

	mu sync.Mutex
	// sslAnswer: the client asked for TLS or GSS encryption, and the server
	// answers with one byte before any message.
	sslAnswer bool
	// raw: the stream is encrypted; forward without reading.
	raw bool
	// stalled: the connection forwards nothing more, for good (StallAfter).
	stalled bool
	// fault is the fault that fired on this connection, if any, and left the
	// bytes of the server's answer it still lets through (TruncateReply).
	fault *Fault
	left  int
}

// close cuts both sides, once. A fault that fired on the connection is done
// then.
func (c *proxyConn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.client.Close()
		c.server.Close()
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
		c.finishFault()
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

// write sends b to dst once no stall holds it, and reports whether the
// connection goes on.
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

// clientToServer forwards the client's stream, message by message, so that a
// fault can act on the statement that matches it.
func (c *proxyConn) clientToServer() {
	defer c.close()
	var (
		pending []byte
		buf     = make([]byte, 32<<10)
		stream  frontendStream
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
				if pending, ok = c.forwardMessages(pending, &stream); !ok {
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
// what is left of b (an incomplete message), and false once the connection is
// to end.
func (c *proxyConn) forwardMessages(b []byte, stream *frontendStream) ([]byte, bool) {
	start := 0 // of the bytes not yet forwarded
	off := 0
	for {
		m, size, encrypted := stream.next(b[off:])
		if encrypted {
			c.mu.Lock()
			c.raw = true
			c.mu.Unlock()
			if !c.write(c.server, b[start:]) {
				return nil, false
			}
			return b[:0], true
		}
		if size == 0 {
			break
		}
		if m.asksEncryption() {
			c.mu.Lock()
			c.sslAnswer = true
			c.mu.Unlock()
		}
		if f := c.p.take(m); f != nil {
			if !c.write(c.server, b[start:off]) {
				return nil, false
			}
			if !c.fire(f, m, b[off:off+size]) {
				return nil, false
			}
			start = off + size
		}
		off += size
	}
	if !c.write(c.server, b[start:off]) {
		return nil, false
	}
	left := copy(b, b[off:])
	return b[:left], true
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

// fromServer forwards b, read from the server, to the client, unless a fault
// acts on it, and reports whether the connection goes on.
func (c *proxyConn) fromServer(b []byte, scan *backendScanner) bool {
	c.mu.Lock()
	if c.sslAnswer {
		c.sslAnswer = false
		if acceptsEncryption(b[0]) {
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
	if f != nil {
		return c.onReply(f, b, scan)
	}
	return c.toClient(b, scan)
}

// toClient forwards b, read from the server, to the client.
func (c *proxyConn) toClient(b []byte, scan *backendScanner) bool {
	scan.feed(b, nil)
	return c.write(c.client, b)
}
