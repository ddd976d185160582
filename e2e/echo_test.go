package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestEcho is the first experience the design promises: relayd, hostagent
// echo, and a line-based client that gets its lines back, half-closes, and
// reads EOF (the echo's own half-close, relayed as a FIN).
func TestEcho(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	startAgent(t, r.grpcAddr, "echo")

	c := dial(t, r.clientAddr)
	br := bufio.NewReader(c)
	for i, line := range []string{"hello\n", "relay\n", "", "a longer line with spaces and \t tabs\n", "last\n"} {
		if line == "" {
			line = string(bytes.Repeat([]byte{'x'}, 100_000)) + "\n" // spans many frames
		}
		if _, err := io.WriteString(c, line); err != nil {
			t.Fatalf("line %d: write: %v", i, err)
		}
		got, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("line %d: read: %v (got %d bytes)", i, err, len(got))
		}
		if got != line {
			t.Fatalf("line %d: got %.40q (%d bytes), want %.40q (%d bytes)", i, got, len(got), line, len(line))
		}
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	if err != nil || len(rest) != 0 {
		t.Fatalf("after CloseWrite: want EOF and no bytes, got %q, %v", rest, err)
	}
}

// fillPattern writes into dst the bytes at offset off of a deterministic
// pseudo-random stream per seed. Any 8-byte-aligned range can be generated
// on its own, so writer and reader agree on every byte without sharing
// state: word i is a splitmix64 hash of (seed, i).
func fillPattern(dst []byte, seed uint64, off int64) {
	if off%8 != 0 || len(dst)%8 != 0 {
		panic("fillPattern: unaligned")
	}
	i := uint64(off / 8)
	for j := 0; j < len(dst); j += 8 {
		z := seed*0x9e3779b97f4a7c15 + (i+1)*0xbf58476d1ce4e5b9
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		binary.LittleEndian.PutUint64(dst[j:], z)
		i++
	}
}

// TestBulkConcurrentSessions pushes 8 × 32 MiB through hostagent echo at
// once. Each session's bytes are distinct, so a byte lost, duplicated,
// reordered, or delivered to the wrong session shows as a mismatch at a
// known offset; EOF must come after exactly 32 MiB (the echo half-closes
// only after our CloseWrite has reached it).
func TestBulkConcurrentSessions(t *testing.T) {
	t.Parallel()
	const (
		sessions = 8
		size     = 32 << 20
		chunk    = 64 << 10
	)
	r := startRelay(t)
	startAgent(t, r.grpcAddr, "--idle", "10", "echo")

	deadline := time.Now().Add(90 * time.Second)
	errs := make(chan error, 2*sessions)
	var wg sync.WaitGroup
	for s := range sessions {
		c := dial(t, r.clientAddr)
		c.SetDeadline(deadline)
		seed := uint64(s + 1)
		wg.Add(2)
		go func() { // writer
			defer wg.Done()
			buf := make([]byte, chunk)
			for off := int64(0); off < size; off += chunk {
				fillPattern(buf, seed, off)
				if _, err := c.Write(buf); err != nil {
					errs <- fmt.Errorf("session %d: write at %d: %w", s, off, err)
					c.Close() // unblock the reader
					return
				}
			}
			if err := c.CloseWrite(); err != nil {
				errs <- fmt.Errorf("session %d: CloseWrite: %w", s, err)
			}
		}()
		go func() { // reader and verifier
			defer wg.Done()
			got, want := make([]byte, chunk), make([]byte, chunk)
			for off := int64(0); off < size; off += chunk {
				if n, err := io.ReadFull(c, got); err != nil {
					errs <- fmt.Errorf("session %d: read at %d: %w (got %d of %d bytes)", s, off, err, off+int64(n), size)
					c.Close()
					return
				}
				fillPattern(want, seed, off)
				if !bytes.Equal(got, want) {
					i := 0
					for got[i] == want[i] {
						i++
					}
					errs <- fmt.Errorf("session %d: first wrong byte at offset %d: got %#x, want %#x", s, off+int64(i), got[i], want[i])
					c.Close()
					return
				}
			}
			if n, err := c.Read(got[:1]); n != 0 || err != io.EOF {
				errs <- fmt.Errorf("session %d: after %d bytes: want EOF, got %d bytes, err %v", s, size, n, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestManyShortSessions runs 3,000 tiny sessions through an agent with only
// 10 idle slots, 16 at a time: every session must succeed, so slots must
// come back as fast as clients use them, and a client that finds none idle
// must wait for one rather than be dropped.
func TestManyShortSessions(t *testing.T) {
	t.Parallel()
	const (
		total   = 3000
		workers = 16
	)
	r := startRelay(t, "--client-rate", "0") // a load test from one address
	startAgent(t, r.grpcAddr, "--idle", "10", "echo")

	deadline := time.Now().Add(60 * time.Second)
	var (
		next   atomic.Int64
		failed atomic.Int64
		mu     sync.Mutex
		first  []error
		wg     sync.WaitGroup
	)
	one := func(i int64) error {
		d := net.Dialer{Deadline: deadline}
		c, err := d.Dial("tcp", r.clientAddr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(ioTimeout))
		msg := fmt.Sprintf("s%06d\n", i)
		if _, err := io.WriteString(c, msg); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if string(got) != msg {
			return fmt.Errorf("got %q, want %q", got, msg)
		}
		return nil
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total || time.Now().After(deadline) {
					return
				}
				if err := one(i); err != nil {
					failed.Add(1)
					mu.Lock()
					if len(first) < 5 {
						first = append(first, fmt.Errorf("session %d: %w", i, err))
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if n := next.Load(); n < total {
		t.Errorf("ran only %d of %d sessions before the deadline", n, total)
	}
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d sessions failed; first: %v", n, total, errors.Join(first...))
	}
}

// TestHostKilledMidSession SIGKILLs the agent while a client is in a
// session: the relay sees the agent's connection die, and the client's
// connection must end promptly (EOF or reset), not hang. The read deadline
// is only the bound that turns a hang into a failure.
func TestHostKilledMidSession(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	a := startAgent(t, r.grpcAddr, "echo")

	c := dial(t, r.clientAddr)
	roundTrip(t, c, "some data before the crash\n")
	a.kill(t)

	c.SetReadDeadline(time.Now().Add(ioTimeout))
	start := time.Now()
	buf := make([]byte, 1024)
	for n := 0; n < 1000; n++ { // bounded: there is nothing left to echo
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("client connection still open %v after the host was killed", time.Since(start).Round(time.Millisecond))
		}
		t.Logf("client connection ended after %v: %v", time.Since(start).Round(time.Millisecond), err)
		return
	}
	t.Fatal("client kept receiving data after the host was killed")
}

// TestClientBeforeHost connects and sends before any host is attached: the
// client must wait in the queue (seen in GetStatus as pending) and be served
// once an agent attaches, with the bytes it sent while waiting intact.
func TestClientBeforeHost(t *testing.T) {
	t.Parallel()
	r := startRelay(t, "--assign-timeout", "30s")
	st := statusClient(t, r)

	c := dial(t, r.clientAddr)
	const msg = "sent while no host was attached\n"
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ioTimeout, func() (bool, string) {
		s, err := getStatus(st)
		if err != nil {
			return false, err.Error()
		}
		return s.GetPendingClients() == 1, fmt.Sprintf("pending_clients = %d, want 1", s.GetPendingClients())
	})

	startAgentNoWait(t, r.grpcAddr, "echo")
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read echo: %v (got %q)", err, got)
	}
	if string(got) != msg {
		t.Fatalf("got %q, want %q", got, msg)
	}
	roundTrip(t, c, "and after\n")
	c.CloseWrite()
	expectEOF(t, c, "")
}
