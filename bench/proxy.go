package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
)

// Proxy is a TCP proxy on loopback in front of a PostgreSQL server that counts
// round trips: the frontend messages after which a client waits for the server.
// Those are Sync ('S', the end of an extended-protocol exchange), Query ('Q', a
// simple-protocol statement, which is also how COPY starts), CopyDone ('c') and
// CopyFail ('f'). Counting messages rather than timing packets makes the count
// deterministic: a pipelined batch is one round trip however the kernel splits it.
//
// The start-up exchange (start-up packet, authentication) is not counted, and
// neither are the pings with which pgx and lib/pq check a connection that sat
// idle (their statements "-- ping" and ";").
type Proxy struct {
	ln     net.Listener
	target string

	count atomic.Int64
	wg    sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

// NewProxy starts a proxy to the server that serverURL names and returns it;
// URL rewrites a URL of that server to go through the proxy.
func NewProxy(serverURL string) (*Proxy, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, errors.New("bench: proxy: malformed URL")
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5432")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: host}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// URL returns raw with its host replaced by the proxy's address.
func (p *Proxy) URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

// RoundTrips returns the number of round trips counted so far, over all
// connections.
func (p *Proxy) RoundTrips() int64 { return p.count.Load() }

// Close stops the proxy and closes every connection through it.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			// Client to server: parse and count, then forward.
			p.frontend(client, server)
			server.Close()
		}()
		go func() {
			defer p.wg.Done()
			io.Copy(client, server)
			client.Close()
		}()
	}
}

// frontend forwards the client's stream to the server message by message,
// counting the ones that end a round trip.
func (p *Proxy) frontend(client io.Reader, server io.Writer) {
	var hdr [8]byte
	// Start-up: untyped packets (length, then a code), repeated while the client
	// asks for TLS or GSS encryption and the server says no.
	for {
		if _, err := io.ReadFull(client, hdr[:8]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		code := binary.BigEndian.Uint32(hdr[4:8])
		if n < 8 || !forward(server, hdr[:8], client, n-8) {
			return
		}
		const sslRequest, gssRequest = 80877103, 80877104
		if code != sslRequest && code != gssRequest {
			break
		}
	}
	for {
		if _, err := io.ReadFull(client, hdr[:5]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[1:5]))
		if n < 4 {
			return
		}
		if hdr[0] == 'Q' {
			// Read the statement to tell a health-check ping, which a pool sends
			// only after a connection sat idle, from the operation's own work.
			body := make([]byte, n-4)
			if _, err := io.ReadFull(client, body); err != nil {
				return
			}
			if q := string(bytes.TrimRight(body, "\x00")); q != pgxPing && q != pqPing {
				p.count.Add(1)
			}
			if _, err := server.Write(append(hdr[:5:5], body...)); err != nil {
				return
			}
			continue
		}
		switch hdr[0] {
		case 'S', 'c', 'f':
			p.count.Add(1)
		}
		if !forward(server, hdr[:5], client, n-4) {
			return
		}
	}
}

// The statements of pgx's and lib/pq's pings.
const (
	pgxPing = "-- ping"
	pqPing  = ";"
)

// forward writes head and then the next n bytes of r to w.
func forward(w io.Writer, head []byte, r io.Reader, n int) bool {
	if _, err := w.Write(head); err != nil {
		return false
	}
	_, err := io.CopyN(w, r, int64(n))
	return err == nil
}
