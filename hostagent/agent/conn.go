package agent

import (
	"io"
	"net"
	"time"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/attachconn"
)

// Conn is one client session. It behaves like a *net.TCPConn: RemoteAddr is
// the real client, CloseWrite sends a FIN after the bytes written so far,
// and Close with unread data resets the client (as TCP does).
type Conn struct {
	conn  *attachconn.Conn
	open  *relayv1.Open
	relay string
}

var _ net.Conn = (*Conn)(nil)

// Read reads bytes the client sent; io.EOF after the client's FIN.
func (c *Conn) Read(b []byte) (int, error) { return c.conn.Read(b) }

// Write sends bytes to the client.
func (c *Conn) Write(b []byte) (int, error) { return c.conn.Write(b) }

// PushTo makes the session's receive loop write the client's bytes to w as
// they arrive, straight from each frame, instead of handing them to Read:
// no goroutine waits for a silent client, and no buffer is pinned. end runs
// once, when the bytes end: a nil error after the client's FIN, or why they
// ended. It is what splice.Copy and splice.Join use; do not Read after it.
func (c *Conn) PushTo(w io.Writer, end func(n int64, err error)) { c.conn.PushTo(w, end) }

// AfterAbort runs f once the session is aborted, unless stop was called
// first; f must not block. splice.Join uses it.
func (c *Conn) AfterAbort(f func()) (stop func()) { return c.conn.AfterAbort(f) }

// CloseWrite sends the client a FIN once every byte written has arrived.
func (c *Conn) CloseWrite() error { return c.conn.CloseWrite() }

// Close ends the session like closing a TCP socket: a FIN after the bytes
// written, or a reset if client data is left unread.
func (c *Conn) Close() error { return c.conn.Close() }

// Abort resets the client connection (after the bytes already written).
func (c *Conn) Abort(cause error) { c.conn.Abort(cause) }

// AbortWith is Abort with a reason of the caller's choice, such as
// CLOSE_REASON_BACKEND_UNAVAILABLE.
func (c *Conn) AbortWith(reason relayv1.CloseReason, cause error) { c.conn.AbortWith(reason, cause) }

// Aborted is closed once the session is aborted: by either side, or by a
// broken stream.
func (c *Conn) Aborted() <-chan struct{} { return c.conn.Aborted() }

// Err returns why the session was aborted, or nil while it is not.
func (c *Conn) Err() error { return c.conn.Err() }

// LocalAddr returns the relay listener address the client connected to.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

// SetReadDeadline makes Read return os.ErrDeadlineExceeded after t.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetWriteDeadline bounds Writes; one still blocked at t aborts the session.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// SessionID returns the relay's id for the session.
func (c *Conn) SessionID() string { return c.open.GetSessionId() }

// Service returns the service of the listener the client came in on.
func (c *Conn) Service() string { return c.open.GetService() }

// Relay returns the address of the relay carrying the session.
func (c *Conn) Relay() string { return c.relay }
