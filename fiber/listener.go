package main

import (
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// The listener under Fiber: the connection limit and lingering close (docs/contract.md,
// "Limits" and "Overload").
//
// Connection limit: past MaxConnections open connections, a new one is answered 503 with
// Retry-After and the contract's JSON error, and closed, before fasthttp sees it (fasthttp's own
// Concurrency limit, set a little higher as a backstop, answers without Retry-After).
//
// Lingering close, as nginx's lingering_close: fasthttp answers a body past its read limit
// (ReadLimit, e.g. a chunked body that never ends) with 413 and closes at once. Closing a socket
// with unread bytes makes the kernel send a reset, and the client, still sending, loses the 413
// it has not read yet. A lingering conn first closes its write side (the answer and a FIN go
// out), then reads and drops what the client still sends, for at most lingerTimeout and
// lingerMaxBytes, and only then closes. A well-behaved client closes at once on the FIN.
const (
	lingerTimeout  = time.Second
	lingerMaxBytes = 8 << 20
	retryAfterS    = 1
)

type limitListener struct {
	net.Listener
	max  int64
	open atomic.Int64
}

func newLimitListener(ln net.Listener, maxConns int) *limitListener {
	return &limitListener{Listener: ln, max: int64(maxConns)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, ok := c.(*net.TCPConn)
		if !ok {
			return c, nil
		}
		lc := &lingerConn{TCPConn: tc, l: l}
		if l.open.Add(1) <= l.max {
			return lc, nil
		}
		go refuse(lc, l.max) // never blocks Accept
	}
}

func refuse(c net.Conn, max int64) {
	body := `{"error":"more than ` + strconv.FormatInt(max, 10) + ` open connections; retry later"}`
	_ = c.SetWriteDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"+
		"Retry-After: "+strconv.Itoa(retryAfterS)+"\r\nConnection: close\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"+body)
	_ = c.Close()
}

type lingerConn struct {
	*net.TCPConn
	l      *limitListener
	closed atomic.Bool
}

func (c *lingerConn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	defer c.l.open.Add(-1)
	if err := c.CloseWrite(); err == nil {
		_ = c.SetReadDeadline(time.Now().Add(lingerTimeout))
		_, _ = io.CopyN(io.Discard, c.TCPConn, lingerMaxBytes)
	}
	return c.TCPConn.Close()
}
