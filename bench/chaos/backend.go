//go:build linux

package main

// A custom backend run inside the harness (-backend custom): each connection
// starts with a 24-byte header "CHS1" mode(1) pad(3) id(8) size(8), then the
// client's payload size (8).
//   'S' server-first: the backend sends `size` PRNG bytes (stream of id) and
//       CloseWrite at once, while it reads and verifies the client's bytes
//       (client stream of id) until EOF; then it closes.
//   'R' server-reset: the backend sends `size` PRNG bytes, then resets the
//       connection (SO_LINGER 0) while the client is still sending.
//   'U' client-reset: the backend trickles bytes and reads until the client's
//       end, which must be a reset, never a clean EOF.
// The backend records what it received per id, so clients can check the
// client→backend direction directly.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"time"
)

type backendRec struct {
	mode     byte
	recv     int
	bad      string
	eof      bool
	err      string
	done     chan struct{}
	finished time.Time
	started  bool // a connection with this id reached the backend (under mu)
	dups     int  // more connections with this id (under mu): a session duplicated
}

type customBackend struct {
	l     net.Listener
	wg    sync.WaitGroup // the accept loop and every serve
	mu    sync.Mutex
	recs  map[uint64]*backendRec
	conns map[*net.TCPConn]struct{}
}

func startCustomBackend() (*customBackend, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("custom backend: %w", err)
	}
	b := &customBackend{l: l, recs: map[uint64]*backendRec{}, conns: map[*net.TCPConn]struct{}{}}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tc := c.(*net.TCPConn)
			b.mu.Lock()
			b.conns[tc] = struct{}{}
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				b.serve(tc)
				b.mu.Lock()
				delete(b.conns, tc)
				b.mu.Unlock()
			}()
		}
	}()
	return b, nil
}

// close stops the backend: its listener, then every connection still open
// (their serve goroutines end on the error), and waits for them.
func (b *customBackend) close() {
	b.l.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.SetLinger(0)
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *customBackend) rec(id uint64) *backendRec {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.recs[id]
	if r == nil {
		r = &backendRec{done: make(chan struct{})}
		b.recs[id] = r
	}
	return r
}

// arrive records that a connection with id reached the backend: first is
// false if one did before.
func (b *customBackend) arrive(id uint64) (r *backendRec, first bool) {
	r = b.rec(id)
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.started {
		r.dups++
		return r, false
	}
	r.started = true
	return r, true
}

// seen reports whether a connection with id reached the backend, and how
// many more did.
func (b *customBackend) seen(id uint64) (started bool, dups int) {
	r := b.rec(id)
	b.mu.Lock()
	defer b.mu.Unlock()
	return r.started, r.dups
}

func serverStream(id uint64, n int) []byte {
	return payload(rand.New(rand.NewPCG(id, 0x5e4e4)), n)
}

func clientStream(id uint64, n int) []byte {
	return payload(rand.New(rand.NewPCG(id, 0xc11e)), n)
}

func (b *customBackend) serve(c *net.TCPConn) {
	defer c.Close()
	var h [24]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return
	}
	if string(h[:4]) != "CHS1" {
		return
	}
	mode := h[4]
	id := binary.LittleEndian.Uint64(h[8:])
	size := int(binary.LittleEndian.Uint64(h[16:]))
	r, first := b.arrive(id)
	if !first {
		return // counted: the client reports a duplicated session
	}
	r.mode = mode
	// client payload size is sent as the first 8 bytes after the header
	var sz [8]byte
	if _, err := io.ReadFull(c, sz[:]); err != nil {
		r.err = "read size: " + err.Error()
		close(r.done)
		return
	}
	csize := int(binary.LittleEndian.Uint64(sz[:]))
	var want []byte
	if mode == 'S' {
		want = clientStream(id, csize)
	}
	out := serverStream(id, size)
	wdone := make(chan error, 1)
	if mode == 'U' {
		go func() {
			chunk := make([]byte, 512)
			for {
				if _, err := c.Write(chunk); err != nil {
					wdone <- nil
					return
				}
				time.Sleep(100 * time.Microsecond)
			}
		}()
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			r.recv += n
			if errors.Is(err, io.EOF) {
				// our writer may have consumed the RST (sk_err): then the
				// socket is in CLOSE and read returns 0
				if st := tcpState(c); st != 7 {
					r.eof = true
				} else {
					r.err = "EOF in state CLOSE (reset consumed by write)"
				}
				break
			}
			if err != nil {
				r.err = err.Error()
				break
			}
		}
		c.SetLinger(0)
		c.Close()
		<-wdone
		r.finished = time.Now()
		close(r.done)
		return
	}
	go func() {
		_, err := c.Write(out)
		if err == nil && mode == 'S' {
			err = c.CloseWrite()
		}
		wdone <- err
	}()
	if mode == 'R' {
		// reset after our bytes are written (acked or not)
		<-wdone
		if csize != 64<<20+1 {
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		}
		if csize == 64<<20 { // trickle client: let its bytes flow for a while
			time.Sleep(time.Duration(20+rand.IntN(50)) * time.Millisecond)
		}
		c.SetLinger(0)
		c.Close()
		r.err = "reset by backend"
		r.finished = time.Now()
		close(r.done)
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		for i := 0; i < n && r.bad == ""; i++ {
			if r.recv+i >= len(want) {
				r.bad = fmt.Sprintf("extra byte at %d (want %d)", r.recv+i, len(want))
			} else if buf[i] != want[r.recv+i] {
				r.bad = fmt.Sprintf("corrupt byte at %d", r.recv+i)
			}
		}
		r.recv += n
		if errors.Is(err, io.EOF) {
			r.eof = true
			break
		}
		if err != nil {
			r.err = err.Error()
			break
		}
	}
	werr := <-wdone
	if werr != nil && r.err == "" {
		r.err = "write: " + werr.Error()
	}
	r.finished = time.Now()
	close(r.done)
}

// runCustomClient is a client of the custom backend (behaviours srvfirst, srvreset).
func (h *harness) runCustomClient(id int, addr string, relayIdx int, beh string, cfg clientCfg) Result {
	seed := h.cfg.seed
	r := rand.New(rand.NewPCG(seed, uint64(id)))
	uid := seed<<32 | uint64(uint32(id))
	res := Result{ID: id, Seed: seed, Behaviour: beh, Relay: relayIdx, Start: time.Now()}
	ssize := logUniform(r, 1, 1<<20)
	csize := logUniform(r, 1, 1<<20)
	if r.IntN(5) == 0 {
		csize = 0
	}
	res.Size = ssize
	mode := byte('S')
	if beh == "srvreset" || beh == "srvreset2" || beh == "srvreset3" {
		mode = 'R'
	}
	trickle := beh == "srvreset2" || beh == "srvreset3"
	if beh == "clireset" {
		return h.runCliReset(r, uid, id, addr, relayIdx, cfg)
	}
	if trickle {
		ssize = logUniform(r, 1, 4096)
		csize = 64 << 20 // never reached: written until an error
		if beh == "srvreset3" {
			ssize = logUniform(r, 64<<10, 4<<20)
			csize = 64<<20 + 1 // backend resets right after its write
		}
		res.Size = ssize
	}
	finish := func(o Outcome, detail string, err error) Result {
		res.Outcome = o
		res.Detail = detail
		if err != nil {
			res.Err = classifyErr(err)
		}
		res.Dur = time.Since(res.Start)
		return res
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return finish(Abnormal, "dial", err)
	}
	tc := c.(*net.TCPConn)
	defer tc.Close()
	res.Local = tc.LocalAddr().String()
	tc.SetDeadline(time.Now().Add(cfg.hangBound))
	ac := &activeClient{id: id, beh: beh, local: res.Local, relay: relayIdx, size: ssize, start: time.Now(), conn: tc}
	ac.tick()
	h.addActive(ac)
	defer h.active.Delete(id)

	var hdr [32]byte
	copy(hdr[:], "CHS1")
	hdr[4] = mode
	binary.LittleEndian.PutUint64(hdr[8:], uid)
	binary.LittleEndian.PutUint64(hdr[16:], uint64(ssize))
	binary.LittleEndian.PutUint64(hdr[24:], uint64(csize))
	var cdata []byte
	if !trickle {
		cdata = clientStream(uid, csize)
	}
	var writeErr error
	var cwDone bool
	var wg sync.WaitGroup
	delayCW := r.IntN(3) == 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := tc.Write(hdr[:]); err != nil {
			writeErr = err
			return
		}
		off := 0
		if trickle {
			chunk := make([]byte, 512)
			for time.Since(res.Start) < 3*time.Second {
				m, err := tc.Write(chunk)
				off += m
				res.Sent = off
				if err != nil {
					writeErr = err
					return
				}
				time.Sleep(100 * time.Microsecond)
			}
			return
		}
		for off < csize {
			n := min(csize-off, 1+r.IntN(64<<10))
			m, err := tc.Write(cdata[off : off+n])
			off += m
			res.Sent = off
			ac.tick()
			if err != nil {
				writeErr = err
				return
			}
		}
		if delayCW {
			time.Sleep(time.Duration(r.IntN(300)) * time.Millisecond)
		}
		if err := tc.CloseWrite(); err != nil {
			writeErr = err
			return
		}
		cwDone = true
	}()
	ver := verifier{want: serverStream(uid, ssize)}
	buf := make([]byte, 32<<10)
	var readErr error
	gotEOF := false
	eofState := -1
	for {
		n, err := tc.Read(buf)
		ver.feed(buf[:n])
		if n > 0 {
			ac.tick()
		}
		if ver.bad != "" {
			readErr = err
			break
		}
		if err != nil {
			readErr = err
			if errors.Is(err, io.EOF) {
				gotEOF = true
				eofState = tcpState(tc)
			}
			break
		}
	}
	if readErr != nil && !gotEOF {
		tc.SetLinger(0)
		tc.Close()
	}
	wg.Wait()
	res.Recv = ver.off
	if ver.bad != "" {
		return finish(Violation, "client saw "+ver.bad, readErr)
	}
	br := h.backend.rec(uid)
	if mode == 'R' {
		if gotEOF && eofState != 7 {
			return finish(Violation, fmt.Sprintf("backend reset, but client saw clean EOF after %d/%d bytes (state=%s)", ver.off, ssize, tcpStateNames[eofState]), nil)
		}
		return finish(Abnormal, "backend reset (expected)", readErr)
	}
	if !gotEOF {
		if isTimeout(readErr) {
			return finish(Violation, fmt.Sprintf("HANG srvfirst %d/%d", ver.off, ssize), readErr)
		}
		return finish(Abnormal, "", readErr)
	}
	if eofState == 7 && errors.Is(writeErr, syscall.ECONNRESET) {
		return finish(Abnormal, "EOF-after-RST(state CLOSE)", writeErr)
	}
	if ver.off != ssize {
		return finish(Violation, fmt.Sprintf("clean EOF with %d/%d server bytes (state=%s)", ver.off, ssize, tcpStateNames[eofState]), nil)
	}
	if writeErr != nil || !cwDone {
		// our side did not finish sending; a reset told us
		return finish(Abnormal, "write side", writeErr)
	}
	// Both directions ended cleanly from the client's view: the backend must
	// have every client byte and the EOF, unless the client is reset soon.
	select {
	case <-br.done:
	case <-time.After(40 * time.Second):
	case <-h.ctx.Done():
		return finish(Abnormal, "interrupted", h.ctx.Err())
	}
	if _, dups := h.backend.seen(uid); dups > 0 {
		return finish(Violation, fmt.Sprintf("the client's connection reached the backend %d times", dups+1), nil)
	}
	select {
	case <-br.done:
		if br.bad != "" || br.recv != csize || !br.eof {
			// did the client get a reset meanwhile?
			tc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			_, rerr := tc.Read(buf)
			return finish(Violation, fmt.Sprintf("client ended cleanly but backend got %d/%d bytes eof=%v bad=%q err=%q (client late read: %v)", br.recv, csize, br.eof, br.bad, br.err, classifyErr(rerr)), nil)
		}
	default:
		tc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, rerr := tc.Read(buf)
		return finish(Violation, fmt.Sprintf("client ended cleanly but backend did not finish in 40s (csize %d) (client late read: %v)", csize, classifyErr(rerr)), nil)
	}
	return finish(OK, "", nil)
}

// runCliReset: the client uploads some bytes while the backend trickles bytes
// back, then resets. The backend must see an error, never a clean EOF (the
// client never sent a FIN).
func (h *harness) runCliReset(r *rand.Rand, uid uint64, id int, addr string, relayIdx int, cfg clientCfg) Result {
	res := Result{ID: id, Seed: h.cfg.seed, Behaviour: "clireset", Relay: relayIdx, Start: time.Now()}
	finish := func(o Outcome, detail string, err error) Result {
		res.Outcome = o
		res.Detail = detail
		if err != nil {
			res.Err = classifyErr(err)
		}
		res.Dur = time.Since(res.Start)
		return res
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return finish(Abnormal, "dial", err)
	}
	tc := c.(*net.TCPConn)
	res.Local = tc.LocalAddr().String()
	var hdr [32]byte
	copy(hdr[:], "CHS1")
	hdr[4] = 'U'
	binary.LittleEndian.PutUint64(hdr[8:], uid)
	csize := logUniform(r, 1, 256<<10)
	res.Size = csize
	binary.LittleEndian.PutUint64(hdr[24:], uint64(csize))
	tc.SetDeadline(time.Now().Add(cfg.hangBound))
	ac := &activeClient{id: id, beh: "clireset", local: res.Local, relay: relayIdx, size: 0, start: time.Now(), conn: tc}
	ac.tick()
	h.addActive(ac)
	defer h.active.Delete(id)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		io.Copy(io.Discard, tc) // ends when tc is closed
	}()
	defer func() { <-drained }()
	if _, err := tc.Write(hdr[:]); err != nil {
		tc.Close()
		return finish(Abnormal, "write hdr", err)
	}
	data := make([]byte, csize)
	off := 0
	for off < csize {
		n := min(csize-off, 1+r.IntN(4096))
		m, err := tc.Write(data[off : off+n])
		off += m
		if err != nil {
			tc.Close()
			return finish(Abnormal, "write", err)
		}
		time.Sleep(50 * time.Microsecond)
	}
	res.Sent = off
	time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
	tc.SetLinger(0)
	tc.Close()
	br := h.backend.rec(uid)
	select {
	case <-br.done:
	case <-time.After(cfg.hangBound):
		if started, _ := h.backend.seen(uid); !started {
			// Never a session (rejected, or the relay went down while
			// it waited): nothing reached the backend to end.
			return finish(Abnormal, "reset client never reached the backend", nil)
		}
		return finish(Violation, "HANG: backend never saw the end of a reset client", nil)
	case <-h.ctx.Done():
		return finish(Abnormal, "interrupted", h.ctx.Err())
	}
	if _, dups := h.backend.seen(uid); dups > 0 {
		return finish(Violation, fmt.Sprintf("the client's connection reached the backend %d times", dups+1), nil)
	}
	res.Recv = br.recv
	if br.eof {
		return finish(Violation, fmt.Sprintf("client reset, but backend saw a clean EOF after %d/%d bytes", br.recv, csize), nil)
	}
	return finish(SelfAbort, "backend: "+br.err, nil)
}
