package pgdriver

import (
	"net"
	"sync"
)

// liveSockets tracks the sockets of a connector's open connections, so that
// closing the connector breaks the connections still in use. database/sql
// closes a connector that implements io.Closer last in DB.Close, after the idle
// connections; the ones in use would otherwise run on, and their statements
// with them, after the pool was closed.
type liveSockets struct {
	mu     sync.Mutex
	closed bool
	socks  map[net.Conn]struct{}
}

// add records nc, the socket of a new connection, and reports false (closing
// nc) when the connector was closed meanwhile.
func (l *liveSockets) add(nc net.Conn) bool {
	if nc == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		nc.Close()
		return false
	}
	if l.socks == nil {
		l.socks = make(map[net.Conn]struct{})
	}
	l.socks[nc] = struct{}{}
	return true
}

// remove forgets nc, whose connection is closing.
func (l *liveSockets) remove(nc net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.socks, nc)
}

// Close closes every socket still open: the statement waiting on one fails
// as if the network had, and the driver discards its connection.
func (l *liveSockets) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for nc := range l.socks {
		nc.Close()
	}
	l.socks = nil
	return nil
}
