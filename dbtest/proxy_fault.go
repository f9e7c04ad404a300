// Faults on one statement: arming them on a Proxy (CutBefore, CutAfterReply,
// TruncateReply, StallAfter), disarming them, and what a connection does when
// one fires and while the server answers.

package dbtest

import (
	"slices"
	"sync"
	"sync/atomic"
)

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
	return p.disarmFirst(func(g *Fault) bool { return g == f }) != nil
}

// take returns the first armed fault that m matches, disarming it.
func (p *Proxy) take(m Message) *Fault {
	return p.disarmFirst(func(f *Fault) bool { return f.match(m) })
}

// disarmFirst removes the first armed fault that ok accepts and returns it, or
// returns nil.
func (p *Proxy) disarmFirst(ok func(*Fault) bool) *Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.IndexFunc(p.faults, ok)
	if i < 0 {
		return nil
	}
	f := p.faults[i]
	p.faults = slices.Delete(p.faults, i, i+1)
	return f
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

// fire starts fault f on message m (whose bytes are raw) and reports whether the
// connection goes on.
func (c *proxyConn) fire(f *Fault, m Message, raw []byte) bool {
	f.statement.Store(m.SQL())
	c.mu.Lock()
	c.fault, c.left = f, f.n
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

// onReply acts on b, read from the server after fault f fired on this
// connection, and reports whether the connection goes on.
func (c *proxyConn) onReply(f *Fault, b []byte, scan *backendScanner) bool {
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
		return c.toClient(b, scan)
	}
}

// finishFault marks the fault that fired on this connection, if any, done: the
// connection was cut.
func (c *proxyConn) finishFault() {
	c.mu.Lock()
	f := c.fault
	c.mu.Unlock()
	if f != nil {
		f.finish()
	}
}
