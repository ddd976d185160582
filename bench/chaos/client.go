//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Outcome is how a client ended.
type Outcome int

const (
	OK        Outcome = iota // every byte verified, a clean end
	SelfAbort                // the client reset on purpose; what it got was verified
	Abnormal                 // a reset, a refused dial, a read error: what faults may cause
	Violation                // a byte lost or wrong, a reset passed on as a clean end, a hang
)

func (o Outcome) String() string {
	return [...]string{"OK", "SELF-ABORT", "ABNORMAL", "VIOLATION"}[o]
}

// Result is one client's record (a line of results.jsonl).
type Result struct {
	ID        int
	Seed      uint64
	Behaviour string
	Relay     int
	Local     string
	Size      int
	Sent      int
	Recv      int
	Outcome   Outcome
	Detail    string
	Err       string
	Start     time.Time
	Dur       time.Duration
	FirstByte time.Duration
}

// behaviour is a kind of client and its default weight in the mix.
type behaviour struct {
	name   string
	weight int
}

// behaviours are the client kinds -mix weighs (see the package doc). The
// srv* kinds and clireset talk to the custom backend only.
var behaviours = []behaviour{
	{"full", 40},
	{"slow", 6},
	{"pause", 8},
	{"reset", 10},
	{"empty", 5},
	{"hc0", 5},
	{"pingpong", 12},
	{"noclosewrite", 6},
	{"stall", 2},
	{"smallhc", 6},
	{"long", 0},
	{"srvfirst", 0},
	{"srvreset", 0},
	{"srvreset2", 0},
	{"clireset", 0},
	{"srvreset3", 0},
}

var customBehaviours = []string{"srvfirst", "srvreset", "srvreset2", "srvreset3", "clireset"}

func isCustom(beh string) bool { return slices.Contains(customBehaviours, beh) }

func pickBehaviour(r *rand.Rand, weights []int) string {
	tot := 0
	for _, w := range weights {
		tot += w
	}
	x := r.IntN(tot)
	for i, w := range weights {
		if x < w {
			return behaviours[i].name
		}
		x -= w
	}
	return "full"
}

// logUniform returns an int in [lo,hi] distributed log-uniformly.
func logUniform(r *rand.Rand, lo, hi int) int {
	l := math.Log(float64(lo))
	h := math.Log(float64(hi))
	v := int(math.Exp(l + r.Float64()*(h-l)))
	if v < lo {
		v = lo
	}
	if v > hi {
		v = hi
	}
	return v
}

func payload(r *rand.Rand, n int) []byte {
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b[:n]
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func classifyErr(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, syscall.ECONNRESET):
		return "ECONNRESET"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "ECONNREFUSED"
	case errors.Is(err, syscall.EPIPE):
		return "EPIPE"
	case errors.Is(err, syscall.ENOTCONN):
		return "ENOTCONN"
	case isTimeout(err):
		return "TIMEOUT"
	case errors.Is(err, io.EOF):
		return "EOF"
	}
	return err.Error()
}

type verifier struct {
	want []byte
	off  int
	bad  string
}

// feed checks received bytes against the expected stream.
func (v *verifier) feed(b []byte) {
	if v.bad != "" {
		v.off += len(b)
		return
	}
	for i, c := range b {
		if v.off+i >= len(v.want) {
			v.bad = fmt.Sprintf("extra bytes: got byte at offset %d beyond expected %d", v.off+i, len(v.want))
			break
		}
		if c != v.want[v.off+i] {
			// try to detect duplication/skip
			v.bad = fmt.Sprintf("corrupt byte at offset %d: got %02x want %02x%s", v.off+i, c, v.want[v.off+i], guessShift(v.want, v.off+i, b[i:]))
			break
		}
	}
	v.off += len(b)
}

func guessShift(want []byte, off int, got []byte) string {
	if len(got) < 16 {
		return ""
	}
	probe := got[:16]
	for d := -65536; d <= 65536*4; d++ {
		s := off + d
		if s < 0 || s+16 > len(want) || d == 0 {
			continue
		}
		if string(want[s:s+16]) == string(probe) {
			return fmt.Sprintf(" (data matches expected offset %d, shift %+d)", s, d)
		}
	}
	return ""
}

// clientCfg bounds one client.
type clientCfg struct {
	hangBound time.Duration
	stallFor  time.Duration
}

// activeClient is a running client, as the stall watchdog sees it.
type activeClient struct {
	id       int
	beh      string
	local    string
	relay    int
	size     int
	start    time.Time
	progress atomic.Int64 // unix nanos of last read/write progress
	sent     atomic.Int64
	recv     atomic.Int64
	pausing  atomic.Bool
	reported bool         // by the stall watchdog, its only user
	conn     *net.TCPConn // for an interrupted run to end it
}

func (a *activeClient) tick() { a.progress.Store(time.Now().UnixNano()) }

// runClient runs one client of id (its bytes and choices come from the
// seed and id) through the relay at addr, and classifies how it ended.
func (h *harness) runClient(id int, addr string, relayIdx int, forced string, cfg clientCfg) Result {
	seed := h.cfg.seed
	r := rand.New(rand.NewPCG(seed, uint64(id)))
	beh := forced
	if beh == "" {
		beh = pickBehaviour(r, h.cfg.weights)
	}
	if isCustom(beh) {
		return h.runCustomClient(id, addr, relayIdx, beh, cfg)
	}
	res := Result{ID: id, Seed: seed, Behaviour: beh, Relay: relayIdx, Start: time.Now()}
	var size int
	switch beh {
	case "full", "pause", "reset", "noclosewrite", "stall":
		size = logUniform(r, 1, 4<<20)
	case "bigstall":
		size = 4 << 20
	case "slow":
		size = logUniform(r, 1, 256<<10)
	case "pingpong":
		size = logUniform(r, 1, 64<<10)
	case "smallhc":
		size = logUniform(r, 1, 4096)
	case "long":
		size = logUniform(r, 256<<10, 4<<20)
	}
	res.Size = size
	want := payload(r, size)

	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		res.Outcome = Abnormal
		res.Err = "dial: " + classifyErr(err)
		res.Dur = time.Since(res.Start)
		return res
	}
	tc := c.(*net.TCPConn)
	res.Local = c.LocalAddr().String()
	defer tc.Close()
	bound := cfg.hangBound
	tc.SetDeadline(time.Now().Add(bound))
	ac := &activeClient{id: id, beh: beh, local: res.Local, relay: relayIdx, size: size, start: time.Now(), conn: tc}
	ac.tick()
	h.addActive(ac)
	defer h.active.Delete(id)

	finish := func(o Outcome, detail string, err error) Result {
		res.Outcome = o
		res.Detail = detail
		if err != nil {
			res.Err = classifyErr(err)
		}
		res.Dur = time.Since(res.Start)
		return res
	}

	switch beh {
	case "empty":
		h.sleep(time.Duration(r.IntN(500)) * time.Millisecond)
		return finish(OK, "", nil)
	case "hc0":
		if err := tc.CloseWrite(); err != nil {
			return finish(Abnormal, "closewrite", err)
		}
		buf := make([]byte, 1024)
		n, err := io.ReadFull(tc, buf[:1])
		if n > 0 {
			return finish(Violation, fmt.Sprintf("hc0: got %d unexpected bytes", n), nil)
		}
		if errors.Is(err, io.EOF) {
			return finish(OK, "", nil)
		}
		if isTimeout(err) {
			return finish(Violation, "HANG: no EOF after half-close with no data", err)
		}
		return finish(Abnormal, "hc0 read", err)
	case "pingpong":
		return pingpong(r, tc, want, &res, finish, ac)
	}

	// writer / reader pair
	var (
		wg                sync.WaitGroup
		writeErr          error
		wroteAll          bool
		cwDone            bool
		resetAt           = -1
		ver               = verifier{want: want}
		readErr           error
		gotEOF            bool
		firstByte         time.Duration
		eofState          = -1
		writeErrAt, eofAt time.Time
	)
	if beh == "reset" {
		resetAt = r.IntN(size + 1)
	}
	chunkMax := logUniform(r, 64, 256<<10)
	sleeps := 0
	writeSleep := r.IntN(4) == 0
	var pace time.Duration
	if beh == "long" {
		writeSleep = false
		chunkMax = 16 << 10
		// session lasts about 3-15 s
		nchunks := size / (8 << 10)
		pace = time.Duration(3000+r.IntN(12000)) * time.Millisecond / time.Duration(max(nchunks, 1))
	}
	wrng := rand.New(rand.NewPCG(seed^0x9e3779b97f4a7c15, uint64(id)))
	wg.Add(1)
	go func() {
		defer wg.Done()
		off := 0
		for off < size {
			n := 1 + wrng.IntN(chunkMax)
			if off+n > size {
				n = size - off
			}
			if resetAt >= 0 && off+n >= resetAt {
				n = resetAt - off
				if n > 0 {
					m, err := tc.Write(want[off : off+n])
					off += m
					if err != nil {
						writeErr = err
						res.Sent = off
						return
					}
				}
				res.Sent = off
				return
			}
			// The time before the call: the reset this Write may consume
			// can reach the reader (as an EOF in state CLOSE) before the
			// Write returns.
			writeAt := time.Now()
			m, err := tc.Write(want[off : off+n])
			off += m
			ac.sent.Store(int64(off))
			ac.tick()
			if err != nil {
				writeErrAt = writeAt
				writeErr = err
				res.Sent = off
				return
			}
			if pace > 0 {
				time.Sleep(pace)
			}
			if writeSleep && sleeps < 40 && wrng.IntN(8) == 0 {
				sleeps++
				time.Sleep(time.Duration(wrng.IntN(20)) * time.Millisecond)
			}
		}
		res.Sent = off
		wroteAll = true
		if resetAt >= 0 {
			return
		}
		if beh != "noclosewrite" {
			if err := tc.CloseWrite(); err != nil {
				writeErr = err
				return
			}
			cwDone = true
		}
	}()

	if beh == "reset" {
		// read concurrently until the reset point, then reset.
		rdone := make(chan struct{})
		go func() {
			defer close(rdone)
			buf := make([]byte, 32<<10)
			for {
				n, err := tc.Read(buf)
				ver.feed(buf[:n])
				if err != nil {
					readErr = err
					if errors.Is(err, io.EOF) {
						gotEOF = true
						eofState = tcpState(tc)
					}
					return
				}
			}
		}()
		wg.Wait()
		time.Sleep(time.Duration(r.IntN(50)) * time.Millisecond)
		// The reader stops before the reset: an EOF it read is classified
		// by the state of the still open socket. Closing under it lost
		// that state, and a reset the relay sent (after an agent's crash)
		// that the writer met first read as a clean EOF in no state.
		tc.SetReadDeadline(time.Now())
		<-rdone
		tc.SetLinger(0)
		tc.Close()
		res.Recv = ver.off
		if ver.bad != "" {
			return finish(Violation, ver.bad, readErr)
		}
		if gotEOF && eofState == 7 {
			return finish(Abnormal, "EOF-after-RST(state CLOSE)", nil)
		}
		if gotEOF {
			return finish(Violation, fmt.Sprintf("clean EOF before our reset after %d/%d bytes (sent %d, no CloseWrite) state=%s", ver.off, size, res.Sent, tcpStateNames[eofState]), nil)
		}
		return finish(SelfAbort, "", writeErr)
	}

	if beh == "stall" || beh == "bigstall" {
		// don't read for a while (backpressure), then read everything.
		ac.pausing.Store(true)
		d := time.Duration(5+r.IntN(15)) * time.Second
		if beh == "bigstall" {
			d = cfg.stallFor
		}
		h.sleep(d)
		ac.pausing.Store(false)
		ac.tick()
	}

	var pauseAt = -1
	var pauseDur time.Duration
	if beh == "pause" {
		pauseAt = r.IntN(size + 1)
		pauseDur = time.Duration(1000+r.IntN(6000)) * time.Millisecond
	}
	bufSize := 32 << 10
	if beh == "slow" {
		bufSize = 1 + r.IntN(4096)
		if size/bufSize > 2000 {
			bufSize = size / 2000
		}
	}
	buf := make([]byte, bufSize)
	for {
		n, err := tc.Read(buf)
		if n > 0 && firstByte == 0 {
			firstByte = time.Since(res.Start)
		}
		ver.feed(buf[:n])
		if n > 0 {
			ac.recv.Store(int64(ver.off))
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
				eofAt = time.Now()
			}
			break
		}
		if beh == "noclosewrite" && ver.off == size {
			wg.Wait()
			break
		}
		if beh == "slow" && r.IntN(4) == 0 {
			time.Sleep(time.Duration(r.IntN(5)) * time.Millisecond)
		}
		if pauseAt >= 0 && ver.off >= pauseAt {
			ac.pausing.Store(true)
			h.sleep(pauseDur)
			ac.pausing.Store(false)
			ac.tick()
			pauseAt = -1
		}
	}
	if beh == "noclosewrite" && ver.off == size && ver.bad == "" && readErr == nil {
		// got everything; make sure nothing extra arrives shortly, then close.
		tc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := tc.Read(buf)
		if n > 0 {
			ver.feed(buf[:n])
		} else if errors.Is(err, io.EOF) {
			gotEOF = true
			readErr = err
		}
	}
	if readErr != nil && !gotEOF {
		// reader failed: unblock writer
		tc.SetLinger(0)
		tc.Close()
	}
	wg.Wait()
	res.Recv = ver.off
	res.FirstByte = firstByte
	if ver.bad != "" {
		return finish(Violation, ver.bad, readErr)
	}
	if gotEOF && eofState == 7 && (!cwDone || ver.off != size) && errors.Is(writeErr, syscall.ECONNRESET) && !writeErrAt.After(eofAt) {
		// The RST was consumed by the writer's send (sk_err is reported once);
		// the reader then sees a closed socket as EOF. Abnormal, not clean.
		return finish(Abnormal, "EOF-after-RST(state CLOSE)", writeErr)
	}
	if beh == "noclosewrite" {
		if gotEOF {
			return finish(Violation, fmt.Sprintf("clean EOF without our CloseWrite after %d/%d bytes", ver.off, size), nil)
		}
		if ver.off == size {
			return finish(OK, "", nil)
		}
		if isTimeout(readErr) {
			return finish(Violation, fmt.Sprintf("HANG: %d/%d bytes after %v (wroteAll=%v)", ver.off, size, bound, wroteAll), readErr)
		}
		return finish(Abnormal, "", readErr)
	}
	if gotEOF {
		if !cwDone {
			return finish(Violation, fmt.Sprintf("clean EOF before our CloseWrite: got %d/%d, sent %d, writeErr=%v state=%s", ver.off, size, res.Sent, classifyErr(writeErr), tcpStateNames[eofState]), nil)
		}
		if ver.off != size {
			return finish(Violation, fmt.Sprintf("clean EOF with missing bytes: got %d/%d state=%s", ver.off, size, tcpStateNames[eofState]), nil)
		}
		return finish(OK, "", nil)
	}
	if isTimeout(readErr) {
		return finish(Violation, fmt.Sprintf("HANG: %d/%d bytes after %v (wroteAll=%v cw=%v writeErr=%v)", ver.off, size, bound, wroteAll, cwDone, classifyErr(writeErr)), readErr)
	}
	return finish(Abnormal, "", readErr)
}

func pingpong(r *rand.Rand, tc *net.TCPConn, want []byte, res *Result, finish func(Outcome, string, error) Result, ac *activeClient) Result {
	off := 0
	buf := make([]byte, 64<<10)
	ver := verifier{want: want}
	for off < len(want) {
		n := 1 + r.IntN(2048)
		if off+n > len(want) {
			n = len(want) - off
		}
		if _, err := tc.Write(want[off : off+n]); err != nil {
			res.Sent = off
			res.Recv = ver.off
			return finish(Abnormal, "pingpong write", err)
		}
		off += n
		res.Sent = off
		for ver.off < off {
			m, err := tc.Read(buf[:off-ver.off])
			if m > 0 && res.FirstByte == 0 {
				res.FirstByte = time.Since(res.Start)
			}
			ver.feed(buf[:m])
			res.Recv = ver.off
			ac.recv.Store(int64(ver.off))
			ac.sent.Store(int64(off))
			ac.tick()
			if ver.bad != "" {
				return finish(Violation, ver.bad, err)
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					return finish(Violation, fmt.Sprintf("pingpong: clean EOF before CloseWrite at %d/%d", ver.off, len(want)), nil)
				}
				if isTimeout(err) {
					return finish(Violation, fmt.Sprintf("HANG pingpong at %d/%d", ver.off, len(want)), err)
				}
				return finish(Abnormal, "pingpong read", err)
			}
		}
		if r.IntN(4) == 0 {
			time.Sleep(time.Duration(r.IntN(30)) * time.Millisecond)
		}
	}
	if err := tc.CloseWrite(); err != nil {
		return finish(Abnormal, "closewrite", err)
	}
	m, err := tc.Read(buf[:1])
	if m > 0 {
		ver.feed(buf[:m])
		res.Recv = ver.off
		return finish(Violation, "pingpong: extra bytes after all echoed: "+ver.bad, nil)
	}
	if errors.Is(err, io.EOF) {
		return finish(OK, "", nil)
	}
	if isTimeout(err) {
		return finish(Violation, "HANG pingpong waiting EOF", err)
	}
	return finish(Abnormal, "pingpong final read", err)
}
