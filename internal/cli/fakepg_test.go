package cli_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"io"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// fakePG is a PostgreSQL server that refuses every connection in one way, so
// that scripts can see what chatdb says about each reason a connection
// fails. It is the script command
//
//	fakepg MODE
//
// which sets $FAKEPG to the server's host:port. MODE is a SQLSTATE (the
// server answers the start-up message with a FATAL error of that code, as a
// real one does for a missing database or a wrong password), silent (it
// accepts and never answers), tls (it accepts TLS with a certificate nobody
// signed) or closed (nothing listens there). The server stops when the script
// ends.
func fakePG(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: fakepg SQLSTATE | silent | tls | closed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	ts.Setenv("FAKEPG", l.Addr().String())
	if args[0] == "closed" {
		ts.Check(l.Close())
		return
	}
	var cert tls.Certificate
	if args[0] == "tls" {
		cert, err = selfSigned()
		ts.Check(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	ts.Defer(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { fakeSession(c, args[0], cert) })
		}
	})
}

// PostgreSQL protocol codes of the requests that come before a start-up
// message.
const (
	sslRequest    = 80877103
	gssEncRequest = 80877104
)

// fakeSession answers one connection as fakePG's mode says.
func fakeSession(c net.Conn, mode string, cert tls.Certificate) {
	if mode == "silent" {
		io.Copy(io.Discard, c) // until the client or the script's end closes it
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	for {
		code, err := readStartup(c)
		if err != nil {
			return
		}
		switch {
		case code == sslRequest && mode == "tls":
			if _, err := c.Write([]byte{'S'}); err != nil {
				return
			}
			tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}}).Handshake()
			return
		case code == sslRequest, code == gssEncRequest:
			if _, err := c.Write([]byte{'N'}); err != nil {
				return
			}
		default:
			c.Write(errorResponse(mode))
			return
		}
	}
}

// readStartup reads a message that has no type byte (SSLRequest,
// GSSENCRequest, StartupMessage) and returns its code or protocol version.
func readStartup(r io.Reader) (uint32, error) {
	var head [8]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(head[:4])
	if n < 8 || n > 10000 {
		return 0, io.ErrUnexpectedEOF
	}
	if _, err := io.CopyN(io.Discard, r, int64(n-8)); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(head[4:]), nil
}

// errorResponse is a FATAL ErrorResponse message with SQLSTATE code.
func errorResponse(code string) []byte {
	var body []byte
	for _, f := range []struct {
		typ byte
		val string
	}{{'S', "FATAL"}, {'V', "FATAL"}, {'C', code}, {'M', "refused by the fake server (SQLSTATE " + code + ")"}} {
		body = append(append(append(body, f.typ), f.val...), 0)
	}
	body = append(body, 0)
	msg := []byte{'E', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(msg[1:], uint32(4+len(body)))
	return append(msg, body...)
}

// selfSigned makes a certificate for 127.0.0.1 that no authority signed.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "fakepg"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
