package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The bulk pattern: byte i of connection k is pattern[(i+k*patternStride) %
// patternPeriod]. The period is a prime of about 1 MiB of random bytes, so
// a lost, repeated or reordered chunk shows as a mismatch (and a loss of a
// whole number of periods shows in the byte count), and checking a chunk is
// one bytes.Equal against the table.
const (
	patternPeriod = 1048573 // prime
	patternStride = 7919
	ioChunk       = 128 << 10 // bytes per Write and per Read in bulk
)

var pattern = func() []byte {
	p := make([]byte, patternPeriod+ioChunk)
	rng := rand.NewChaCha8([32]byte{'r', 'e', 'l', 'a', 'y'})
	rng.Read(p[:patternPeriod])
	copy(p[patternPeriod:], p[:ioChunk])
	return p
}()

// patternAt returns the n ≤ ioChunk pattern bytes of connection k at offset off.
func patternAt(k int, off int64, n int) []byte {
	i := (off + int64(k)*patternStride) % patternPeriod
	return pattern[i : i+int64(n)]
}

// checkLoopback refuses any address that is not (or does not resolve only
// to) a loopback address.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usageError{fmt.Errorf("address %q: %v", addr, err)}
	}
	if host == "" {
		return usageError{fmt.Errorf("address %q: give a loopback host, such as 127.0.0.1", addr)}
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return usageError{fmt.Errorf("address %q: %s is not a loopback address; relayload only runs on one machine", addr, ip)}
		}
	}
	return nil
}

func dial(ctx context.Context, target string) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// closeOnDone closes c when ctx is done, so a workload bounded by ctx never
// hangs on a stuck peer. The returned stop must be called.
func closeOnDone(ctx context.Context, c net.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.Close() })
}

// bulkResult is one bulk run.
type bulkResult struct {
	Conns   int
	Bytes   int64 // payload bytes sent (and received back), all connections
	Elapsed time.Duration
}

// MBps is the payload rate one way, in MB (10^6 bytes) per second.
func (r bulkResult) MBps() float64 { return float64(r.Bytes) / r.Elapsed.Seconds() / 1e6 }

// runBulk opens conns connections to target; each sends size bytes of the
// pattern while a reader checks every byte echoed back, half-closes after
// sending, and expects EOF after exactly size bytes.
func runBulk(ctx context.Context, target string, conns int, size int64, limit time.Duration) (bulkResult, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cs := make([]*net.TCPConn, 0, conns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for range conns {
		c, err := dial(ctx, target)
		if err != nil {
			return bulkResult{}, fmt.Errorf("bulk: dial %s: %w", target, err)
		}
		cs = append(cs, c)
	}
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	fail := func(err error) {
		errMu.Lock()
		if first == nil {
			first = err
			cancel() // unblock everyone else
		}
		errMu.Unlock()
	}
	start := time.Now()
	for k, c := range cs {
		stop := closeOnDone(ctx, c)
		wg.Add(2)
		go func() { // writer
			defer wg.Done()
			for off := int64(0); off < size; {
				n := int(min(ioChunk, size-off))
				if _, err := c.Write(patternAt(k, off, n)); err != nil {
					fail(fmt.Errorf("bulk conn %d: write at byte %d: %w", k, off, ctxErr(ctx, err)))
					return
				}
				off += int64(n)
			}
			if err := c.CloseWrite(); err != nil {
				fail(fmt.Errorf("bulk conn %d: close write: %w", k, err))
			}
		}()
		go func() { // reader
			defer wg.Done()
			defer stop()
			buf := make([]byte, ioChunk)
			var got int64
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if got+int64(n) > size {
						fail(fmt.Errorf("bulk conn %d: got more than the %d bytes sent", k, size))
						return
					}
					if !bytes.Equal(buf[:n], patternAt(k, got, n)) {
						fail(fmt.Errorf("bulk conn %d: wrong bytes in [%d, %d)", k, got, got+int64(n)))
						return
					}
					got += int64(n)
				}
				if err == io.EOF {
					if got != size {
						fail(fmt.Errorf("bulk conn %d: EOF after %d of %d bytes", k, got, size))
					}
					return
				}
				if err != nil {
					fail(fmt.Errorf("bulk conn %d: read after %d of %d bytes: %w", k, got, size, ctxErr(ctx, err)))
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if first != nil {
		return bulkResult{}, first
	}
	return bulkResult{Conns: conns, Bytes: size * int64(conns), Elapsed: elapsed}, nil
}

// ctxErr explains an I/O error caused by closeOnDone.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("%w (%w)", err, context.Cause(ctx))
	}
	return err
}

// rttResult is one rtt run.
type rttResult struct {
	Count    int
	P50, P99 time.Duration
}

// runRTT does warmup+count sequential round trips of size bytes on one
// connection, checking each echo, and reports the percentiles of the last
// count.
func runRTT(ctx context.Context, target string, count, warmup, size int, limit time.Duration) (rttResult, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	c, err := dial(ctx, target)
	if err != nil {
		return rttResult{}, fmt.Errorf("rtt: dial %s: %w", target, err)
	}
	defer c.Close()
	defer closeOnDone(ctx, c)()
	msg := make([]byte, size)
	got := make([]byte, size)
	samples := make([]time.Duration, 0, count)
	for i := range warmup + count {
		copy(msg, patternAt(0, int64(i)*int64(size), size))
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			return rttResult{}, fmt.Errorf("rtt: write %d: %w", i, ctxErr(ctx, err))
		}
		if _, err := io.ReadFull(c, got); err != nil {
			return rttResult{}, fmt.Errorf("rtt: read %d: %w", i, ctxErr(ctx, err))
		}
		d := time.Since(t0)
		if !bytes.Equal(got, msg) {
			return rttResult{}, fmt.Errorf("rtt: round trip %d: wrong bytes", i)
		}
		if i >= warmup {
			samples = append(samples, d)
		}
	}
	if err := expectEOF(c); err != nil {
		return rttResult{}, fmt.Errorf("rtt: %w", ctxErr(ctx, err))
	}
	slices.Sort(samples)
	return rttResult{Count: count, P50: percentile(samples, 0.50), P99: percentile(samples, 0.99)}, nil
}

// expectEOF half-closes c and expects EOF with no byte before it.
func expectEOF(c *net.TCPConn) error {
	if err := c.CloseWrite(); err != nil {
		return fmt.Errorf("close write: %w", err)
	}
	var b [1]byte
	n, err := c.Read(b[:])
	if n > 0 {
		return errors.New("unexpected byte after the last echo")
	}
	if err != io.EOF {
		return fmt.Errorf("want EOF after half-close, got %v", err)
	}
	return nil
}

// percentile returns the q-quantile of sorted samples (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// rateResult is one rate run.
type rateResult struct {
	Sessions int
	Elapsed  time.Duration
}

func (r rateResult) PerSecond() float64 { return float64(r.Sessions) / r.Elapsed.Seconds() }

// runRate runs workers that each loop: dial, write one byte, read it back,
// close; until count sessions are done or duration has passed. Any failed
// session fails the run.
func runRate(ctx context.Context, target string, workers, count int, duration time.Duration) (rateResult, error) {
	ctx, cancel := context.WithTimeout(ctx, duration+10*time.Second) // the stop below, plus a stuck session's grace
	defer cancel()
	var (
		started atomic.Int64
		done    atomic.Int64
		wg      sync.WaitGroup
		errMu   sync.Mutex
		first   error
	)
	deadline := time.Now().Add(duration)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := []byte{byte(w)}
			var got [1]byte
			for time.Now().Before(deadline) && started.Add(1) <= int64(count) && ctx.Err() == nil {
				err := func() error {
					c, err := dial(ctx, target)
					if err != nil {
						return fmt.Errorf("dial: %w", err)
					}
					defer c.Close()
					defer closeOnDone(ctx, c)()
					if _, err := c.Write(b); err != nil {
						return fmt.Errorf("write: %w", ctxErr(ctx, err))
					}
					if _, err := io.ReadFull(c, got[:]); err != nil {
						return fmt.Errorf("read: %w", ctxErr(ctx, err))
					}
					if got[0] != b[0] {
						return errors.New("wrong byte")
					}
					return nil
				}()
				if err != nil {
					errMu.Lock()
					if first == nil {
						first = fmt.Errorf("rate: session %d: %w", done.Load()+1, err)
						cancel()
					}
					errMu.Unlock()
					return
				}
				done.Add(1)
				b[0]++
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return rateResult{}, first
	}
	return rateResult{Sessions: int(done.Load()), Elapsed: time.Since(start)}, nil
}

// heldConns are open connections, each verified with one echo.
type heldConns struct {
	conns []*net.TCPConn
}

// Close closes every held connection.
func (h *heldConns) Close() {
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}

// runHold opens n connections with a few workers; each connection echoes
// one short message, checked, and is then held open. On error, every
// connection opened so far is closed.
func runHold(ctx context.Context, target string, n, workers int, limit time.Duration) (*heldConns, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	h := &heldConns{conns: make([]*net.TCPConn, n)}
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, 8)
			got := make([]byte, 8)
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				err := func() error {
					c, err := dial(ctx, target)
					if err != nil {
						return fmt.Errorf("dial: %w", err)
					}
					h.conns[i] = c
					defer closeOnDone(ctx, c)()
					copy(msg, fmt.Appendf(msg[:0], "%08d", i%1e8))
					if _, err := c.Write(msg); err != nil {
						return fmt.Errorf("write: %w", ctxErr(ctx, err))
					}
					if _, err := io.ReadFull(c, got); err != nil {
						return fmt.Errorf("read: %w", ctxErr(ctx, err))
					}
					if !bytes.Equal(got, msg) {
						return errors.New("wrong bytes")
					}
					return nil
				}()
				if err != nil {
					errMu.Lock()
					if first == nil {
						first = fmt.Errorf("hold: connection %d: %w", i, err)
						cancel()
					}
					errMu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = fmt.Errorf("hold: %w", context.Cause(ctx))
	}
	if first != nil {
		for _, c := range h.conns {
			if c != nil {
				c.Close()
			}
		}
		return nil, first
	}
	return h, nil
}
