package suite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// env is what the cases share: the relay (replaced by restarts), the host,
// and what was learnt about it.
type env struct {
	cfg   Config
	relay *relayd
	host  *host
	pool  int // idle slots the host keeps, measured by attach_welcome
}

// testCase is one named case. run returns an optional detail for a pass.
type testCase struct {
	name string
	run  func(e *env, ctx context.Context) (string, error)
}

// cases run in this order. relay_restart and max_data_bytes restart the
// relay, so they come last.
var cases = []testCase{
	{"attach_welcome", (*env).attachWelcome},
	{"echo_small", (*env).echoSmall},
	{"echo_large", (*env).echoLarge},
	{"concurrent_sessions_64", (*env).concurrentSessions},
	{"client_half_close", (*env).clientHalfClose},
	{"host_half_close", (*env).hostHalfClose},
	{"client_reset", (*env).clientReset},
	{"host_abort", (*env).hostAbort},
	{"replenish_burst", (*env).replenishBurst},
	{"relay_restart", (*env).relayRestart},
	{"max_data_bytes", (*env).maxDataBytes},
}

// startRelay starts a relayd and makes it the current one. Clients wait at
// most half a case for a slot, so a host that stops offering slots fails
// with the relay's answer (the client is closed) rather than a timeout.
func (e *env) startRelay(ctx context.Context, grpcAddr, adminAddr, clientAddr string, extra ...string) (*relayd, error) {
	args := append([]string{"--assign-timeout", (e.cfg.CaseTimeout / 2).String()}, extra...)
	r, err := startRelayd(ctx, e.cfg.Relayd, grpcAddr, adminAddr, clientAddr, args...)
	if err != nil {
		return nil, err
	}
	e.relay = r
	return r, nil
}

// restartRelay stops the relay and starts a new one on the same addresses.
func (e *env) restartRelay(ctx context.Context, extra ...string) error {
	old := e.relay
	e.relay = nil
	if err := old.stop(); err != nil {
		return fmt.Errorf("stop relay: %w", err)
	}
	if _, err := e.startRelay(ctx, old.grpcAddr, old.adminAddr, old.clientAddr, extra...); err != nil {
		return fmt.Errorf("restart relay on %s: %w", old.grpcAddr, err)
	}
	return nil
}

// attachWelcome: the host attaches (Hello, and the relay's Welcome makes
// the slot idle); the pool it keeps is measured once it stops growing.
func (e *env) attachWelcome(ctx context.Context) (string, error) {
	if err := e.relay.waitIdle(ctx, 1); err != nil {
		return "", fmt.Errorf("host never attached: %w", err)
	}
	// The pool is complete when it has not grown for a while: a host says
	// nowhere how many slots it means to keep.
	const settle = 500 * time.Millisecond
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	best, since := 0, time.Now()
	for time.Since(since) < settle {
		idle, _, err := e.relay.idleSlots(ctx)
		if err != nil {
			return "", fmt.Errorf("relay status: %w", err)
		}
		if idle > best {
			best, since = idle, time.Now()
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return "", errors.New("idle slots kept growing until the case timeout")
		}
	}
	e.pool = best
	hosts, err := e.relay.status.ListHosts(ctx, &relayv1.ListHostsRequest{})
	if err != nil || len(hosts.GetHosts()) == 0 {
		return "", fmt.Errorf("relay lists no attached host (%v)", err)
	}
	h := hosts.GetHosts()[0]
	return fmt.Sprintf("%d idle slots; host_id %q, agent_version %q", best, h.GetHostId(), h.GetAgentVersion()), nil
}

// pool is the measured pool, or 1 when attach_welcome did not run.
func (e *env) poolSize() int { return max(e.pool, 1) }

// echoSmall: line by line, each echoed before the next is sent (a host must
// not wait for more input or for EOF), then half-close and a clean EOF. The
// session opens with a near miss of a conformance line and later carries an
// exact one: neither may trigger anything (only an exact first line does).
func (e *env) echoSmall(ctx context.Context) (string, error) {
	c, err := e.dial(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	for _, msg := range []string{"CONFORMANCE ABORTED\n", "hello\n", "x", CommandAbort, CommandHalfClose, "\x00\xff\r\n binary \x01", "last\n"} {
		if err := roundTrip(c, msg); err != nil {
			return "", err
		}
	}
	if err := c.CloseWrite(); err != nil {
		return "", fmt.Errorf("client CloseWrite: %w", err)
	}
	return "", expectEOF(c, nil)
}

// echoLarge: 8 MiB each way at once, every byte checked.
func (e *env) echoLarge(ctx context.Context) (string, error) {
	c, err := e.dial(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return "", exchange(c, 1, 8<<20, 64<<10)
}

// concurrentSessions: 64 sessions open at the same time. Each echoes a first
// chunk, then waits until all 64 have, then pushes the rest of its own
// distinct bytes: a host that serves fewer at once, or mixes sessions up,
// fails.
func (e *env) concurrentSessions(ctx context.Context) (string, error) {
	const (
		n     = 64
		first = 4 << 10
		size  = 256 << 10
	)
	var (
		barrier sync.WaitGroup
		opened  = make(chan struct{})
		wg      sync.WaitGroup
		errs    = make([]error, n)
	)
	barrier.Add(n)
	go func() { barrier.Wait(); close(opened) }()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			passed := false
			defer func() {
				if !passed {
					barrier.Done()
				}
			}()
			c, err := e.dial(ctx)
			if err != nil {
				errs[i] = err
				return
			}
			defer c.Close()
			seed := uint64(100 + i)
			head := make([]byte, first)
			fillPattern(head, seed, 0)
			if err := roundTrip(c, string(head)); err != nil {
				errs[i] = err
				return
			}
			passed = true
			barrier.Done()
			select {
			case <-opened:
			case <-ctx.Done():
				errs[i] = errors.New("not all 64 sessions were open at once")
				return
			}
			errs[i] = exchangeFrom(c, seed, first, size, 16<<10)
		}()
	}
	wg.Wait()
	barrier.Wait() // every goroutine has called Done: the closer has ended
	<-opened
	failed := 0
	var firstErr error
	for i, err := range errs {
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("session %d: %w", i, err)
			}
		}
	}
	if failed > 0 {
		return "", fmt.Errorf("%d of %d sessions failed; first: %w", failed, n, firstErr)
	}
	return "", nil
}

// clientHalfClose: the client sends 1 MiB in one write and half-closes at
// once; everything it sent must still come back, then EOF.
func (e *env) clientHalfClose(ctx context.Context) (string, error) {
	c, err := e.dial(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return "", exchange(c, 2, 1<<20, 1<<20)
}

// hostHalfClose: the host half-closes first (CONFORMANCE HALFCLOSE), the
// client reads EOF, then the host must still read all the client sends; the
// relay then ends the session cleanly.
func (e *env) hostHalfClose(ctx context.Context) (string, error) {
	c, err := e.dial(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	from := e.relay.mark()
	if _, err := io.WriteString(c, CommandHalfClose); err != nil {
		return "", fmt.Errorf("write command: %w", err)
	}
	got, err := readAll(c, 1<<10)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) && string(got) == CommandHalfClose:
		return "", fmt.Errorf("the host echoed %q but did not half-close: does it follow the conformance convention?", CommandHalfClose)
	case err != nil:
		return "", fmt.Errorf("want %q then EOF: %w after %q", CommandHalfClose, explainRead(err), got)
	case string(got) != CommandHalfClose:
		return "", fmt.Errorf("want %q then EOF, got %.64q", CommandHalfClose, got)
	}
	// 8 MiB is more than the buffers on the way hold: the host must read.
	buf := make([]byte, 64<<10)
	for off := int64(0); off < 8<<20; off += int64(len(buf)) {
		fillPattern(buf, 3, off)
		if _, err := c.Write(buf); err != nil {
			return "", fmt.Errorf("write after the host's half-close, at byte %d: %w (the host must keep reading after its CloseWrite)", off, err)
		}
	}
	if err := c.CloseWrite(); err != nil {
		return "", fmt.Errorf("client CloseWrite: %w", err)
	}
	end, err := e.relay.sessionEnd(ctx, from, localAddr(c))
	if err != nil {
		return "", err
	}
	if end.msg() != "session closed" {
		return "", fmt.Errorf("want the relay to close the session cleanly, got %s", describeEnd(end))
	}
	return "", nil
}

// clientReset: the client resets mid-session while the host has bytes to
// send it; the host must drop the session and go on serving, its pool full.
func (e *env) clientReset(ctx context.Context) (string, error) {
	c, err := e.dial(ctx)
	if err != nil {
		return "", err
	}
	from := e.relay.mark()
	if err := roundTrip(c, "before the reset\n"); err != nil {
		c.Close()
		return "", err
	}
	junk := make([]byte, 256<<10)
	fillPattern(junk, 4, 0)
	if _, err := c.Write(junk); err != nil { // the echo is left unread
		c.Close()
		return "", fmt.Errorf("write: %w", err)
	}
	c.SetLinger(0)
	c.Close() // a reset: unread data and linger 0
	end, err := e.relay.sessionEnd(ctx, from, localAddr(c))
	if err != nil {
		return "", err
	}
	if end.msg() == "session closed" {
		return "", errors.New("the relay saw a clean end of a session the client reset")
	}
	if err := e.relay.waitIdle(ctx, e.poolSize()); err != nil {
		return "", fmt.Errorf("after the reset: %w", err)
	}
	c2, err := e.dial(ctx)
	if err != nil {
		return "", err
	}
	defer c2.Close()
	if err := roundTrip(c2, "after the reset\n"); err != nil {
		return "", fmt.Errorf("next session: %w", err)
	}
	c2.CloseWrite()
	return "", expectEOF(c2, nil)
}

// hostAbort: the host aborts (CONFORMANCE ABORT): the client gets the echoed
// line, then a reset, not a clean EOF.
func (e *env) hostAbort(ctx context.Context) (string, error) {
	c, err := e.dial(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	from := e.relay.mark()
	if _, err := io.WriteString(c, CommandAbort); err != nil {
		return "", fmt.Errorf("write command: %w", err)
	}
	got, err := readAll(c, 1<<10)
	switch {
	case !bytes.Equal(got, []byte(CommandAbort)):
		return "", fmt.Errorf("want the command line echoed, got %q (then %v)", got, err)
	case err == nil:
		return "", errors.New("clean EOF after the command: want a reset (the host half-closed instead of aborting)")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "", fmt.Errorf("no reset after the echoed %q: does the host follow the conformance convention?", CommandAbort)
	case !errors.Is(err, syscall.ECONNRESET):
		return "", fmt.Errorf("want a reset, got %v", err)
	}
	end, err := e.relay.sessionEnd(ctx, from, localAddr(c))
	if err != nil {
		return "", err
	}
	if end.msg() != "session aborted by host" {
		return "", fmt.Errorf("want the relay to see the host abort, got %s", describeEnd(end))
	}
	return "", nil
}

// replenishBurst: three pools' worth of clients (at least 30) at once, each
// a short echo: the host must open new slots as fast as they are used, and
// have its full pool back afterwards.
func (e *env) replenishBurst(ctx context.Context) (string, error) {
	n := max(3*e.poolSize(), 30)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := e.dial(ctx)
			if err != nil {
				errs[i] = err
				return
			}
			defer c.Close()
			if err := roundTrip(c, fmt.Sprintf("burst %06d\n", i)); err != nil {
				errs[i] = err
				return
			}
			c.CloseWrite()
			errs[i] = expectEOF(c, nil)
		}()
	}
	wg.Wait()
	failed := 0
	var firstErr error
	for i, err := range errs {
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("session %d: %w", i, err)
			}
		}
	}
	if failed > 0 {
		return "", fmt.Errorf("%d of %d sessions failed (were slots replenished?); first: %w", failed, n, firstErr)
	}
	if err := e.relay.waitIdle(ctx, e.poolSize()); err != nil {
		return "", fmt.Errorf("after the burst: %w", err)
	}
	return fmt.Sprintf("%d sessions, pool of %d", n, e.poolSize()), nil
}

// relayRestart: the relay stops and a new one starts on the same port; the
// host must attach to it again and serve.
func (e *env) relayRestart(ctx context.Context) (string, error) {
	start := time.Now()
	if err := e.restartRelay(ctx); err != nil {
		return "", err
	}
	if err := e.relay.waitIdle(ctx, 1); err != nil {
		return "", fmt.Errorf("host did not attach to the restarted relay: %w", err)
	}
	took := time.Since(start)
	detail := fmt.Sprintf("attached again after %v", took.Round(time.Millisecond))
	_, err := e.echoSmall(ctx)
	return detail, err
}

// maxDataBytes: a relay that accepts Data payloads of 1024 bytes at most;
// the host must split what it sends (CONFORMANCE BULK, then an echo of
// large writes), or the relay ends its stream with RESOURCE_EXHAUSTED.
func (e *env) maxDataBytes(ctx context.Context) (string, error) {
	if err := e.restartRelay(ctx, "--max-data-bytes", "1024"); err != nil {
		return "", err
	}
	if err := e.relay.waitIdle(ctx, 1); err != nil {
		return "", fmt.Errorf("host did not attach to the relay restarted with --max-data-bytes 1024: %w", err)
	}
	from := e.relay.mark()
	c, err := e.dial(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := io.WriteString(c, CommandBulk); err != nil {
		return "", fmt.Errorf("write command: %w", err)
	}
	got := make([]byte, len(CommandBulk)+BulkSize)
	n, err := io.ReadFull(c, got)
	if err != nil {
		hint := ""
		if errors.Is(err, os.ErrDeadlineExceeded) {
			hint = " (does the host follow the conformance convention?)"
		}
		return "", e.explainLimit(from, c, fmt.Errorf("after %q: %w after %d of %d bytes%s", CommandBulk, explainRead(err), n, len(got), hint))
	}
	if !bytes.Equal(got[:len(CommandBulk)], []byte(CommandBulk)) {
		return "", fmt.Errorf("want %q echoed first, got %q", CommandBulk, got[:len(CommandBulk)])
	}
	for i, b := range got[len(CommandBulk):] {
		if b != byte(i%251) {
			return "", fmt.Errorf("bulk byte %d: got %#x, want %#x (i%%251)", i, b, byte(i%251))
		}
	}
	if err := exchange(c, 5, 1<<20, 256<<10); err != nil {
		return "", e.explainLimit(from, c, fmt.Errorf("echo after the bulk: %w", err))
	}
	return "", nil
}

// explainLimit prefers the relay's own account of how the session of c
// ended (such as RESOURCE_EXHAUSTED for an oversized Data frame). The client
// may see the reset before the relay logs why, so wait for the log a little.
func (e *env) explainLimit(from int, c net.Conn, err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	end, lerr := e.relay.sessionEnd(ctx, from, localAddr(c))
	if perr := protocolErrors(e.relay, from); perr != nil {
		return perr
	}
	if lerr == nil && end.msg() != "session closed" {
		return fmt.Errorf("%w; the relay says: %s", err, describeEnd(end))
	}
	return err
}

// dial connects a client with the case's deadline on every operation.
func (e *env) dial(ctx context.Context) (*net.TCPConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", e.relay.clientAddr)
	if err != nil {
		return nil, fmt.Errorf("dial the relay's client port: %w", err)
	}
	c := nc.(*net.TCPConn)
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	return c, nil
}

// roundTrip writes msg and reads back exactly its bytes.
func roundTrip(c net.Conn, msg string) error {
	if _, err := io.WriteString(c, msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got := make([]byte, len(msg))
	n, err := io.ReadFull(c, got)
	if err != nil {
		return fmt.Errorf("echo of %d bytes: %w after %d bytes%s", len(msg), explainRead(err), n, closedHint(err))
	}
	if i := firstDiff(got, []byte(msg)); i >= 0 {
		return fmt.Errorf("echo byte %d: got %#x, want %#x (corrupted or reordered)", i, got[i], msg[i])
	}
	return nil
}

// expectEOF reads to the end and wants exactly want, then a clean EOF.
func expectEOF(c net.Conn, want []byte) error {
	got, err := readAll(c, len(want)+64<<10)
	if errors.Is(err, os.ErrDeadlineExceeded) && bytes.Equal(got, want) {
		return fmt.Errorf("got the %d bytes expected but no EOF before the case timeout%s", len(want), noEOFHint)
	}
	if err != nil {
		return fmt.Errorf("want %d bytes then EOF: %w after %d bytes", len(want), explainRead(err), len(got))
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("want %q then EOF, got %.64q", want, got)
	}
	return nil
}

// readAll reads until EOF (nil error) or an error, keeping at most limit bytes.
func readAll(c net.Conn, limit int) ([]byte, error) {
	var got []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if len(got) < limit {
			got = append(got, buf[:min(n, limit-len(got))]...)
		}
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
	}
}

// exchange sends size pattern bytes in writes of chunk bytes while reading
// them back, half-closes after the last write, and wants EOF right after
// the last byte back.
func exchange(c *net.TCPConn, seed uint64, size, chunk int) error {
	return exchangeFrom(c, seed, 0, size, chunk)
}

// exchangeFrom is exchange for the pattern bytes [from, size).
func exchangeFrom(c *net.TCPConn, seed uint64, from, size, chunk int) error {
	writeErr := make(chan error, 1)
	go func() {
		buf := make([]byte, chunk)
		for off := from; off < size; off += chunk {
			b := buf[:min(chunk, size-off)]
			fillPattern(b, seed, int64(off))
			if _, err := c.Write(b); err != nil {
				writeErr <- fmt.Errorf("write at byte %d: %w", off, err)
				return
			}
		}
		if err := c.CloseWrite(); err != nil {
			writeErr <- fmt.Errorf("client CloseWrite: %w", err)
			return
		}
		writeErr <- nil
	}()
	err := verify(c, seed, from, size)
	if err != nil {
		c.SetDeadline(time.Now()) // unblock the writer
	}
	werr := <-writeErr
	if err != nil {
		return err
	}
	return werr
}

// verify reads the pattern bytes [from, size) and then wants a clean EOF.
func verify(c net.Conn, seed uint64, from, size int) error {
	const block = 32 << 10
	got, want := make([]byte, block), make([]byte, block)
	for off := from; off < size; off += block {
		g := got[:min(block, size-off)]
		n, err := io.ReadFull(c, g)
		fillPattern(want[:len(g)], seed, int64(off))
		if i := firstDiff(g[:n], want[:n]); i >= 0 {
			return fmt.Errorf("byte %d of %d: got %#x, want %#x (corrupted, dropped or reordered)", off+i, size, g[i], want[i])
		}
		if err != nil {
			return fmt.Errorf("%w after %d of %d bytes%s", explainRead(err), off+n, size, closedHint(err))
		}
	}
	n, err := c.Read(got[:1])
	switch {
	case n > 0:
		return fmt.Errorf("more bytes than were sent: %d bytes echoed, then more", size)
	case err == io.EOF:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("all %d bytes came back, but no EOF before the case timeout%s", size, noEOFHint)
	default:
		return fmt.Errorf("want EOF after all %d bytes: %w", size, explainRead(err))
	}
}

// noEOFHint explains a missing EOF after the client's half-close.
const noEOFHint = " (a host must answer the client's CloseWrite with its own once it has sent everything: does it ignore half-close?)"

// explainRead turns a read error into words.
func explainRead(err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), err == io.EOF:
		return errors.New("EOF")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errors.New("nothing more arrived before the case timeout")
	case errors.Is(err, syscall.ECONNRESET):
		return errors.New("connection reset")
	}
	return err
}

// closedHint says what an early EOF or reset on a fresh session may mean.
func closedHint(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF || errors.Is(err, syscall.ECONNRESET) {
		return " (bytes dropped, or the session ended early)"
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return " (bytes dropped, or the host ignores half-close)"
	}
	return ""
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// fillPattern writes the bytes at offset off of a deterministic stream per
// seed; any range can be made on its own, so writer and reader agree on
// every byte without sharing state. Word i is a splitmix64 hash of (seed, i).
func fillPattern(dst []byte, seed uint64, off int64) {
	var word [8]byte
	for j := range dst {
		i := uint64(off) + uint64(j)
		if j == 0 || i%8 == 0 {
			z := seed*0x9e3779b97f4a7c15 + (i/8+1)*0xbf58476d1ce4e5b9
			z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
			z = (z ^ (z >> 27)) * 0x94d049bb133111eb
			z ^= z >> 31
			for k := range word {
				word[k] = byte(z >> (8 * k))
			}
		}
		dst[j] = word[i%8]
	}
}
