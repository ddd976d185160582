package relay_test

import (
	"bytes"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/relayproject/relay/relayd/relay"
)

// TestSlowReaderNotIdle: a client that reads a download slowly but
// without a pause is not idle. The relay's own counters move when a write
// to the client returns, which, once the socket's buffer is full, is when
// much of it is free again: seconds after bytes began to flow, and the
// session was ended for "no byte either way" (QA: --idle-timeout 4s, a
// client reading 20 KB/s, reset at 4.5 s). The kernel's count of the bytes
// the client acknowledged moves as it reads.
func TestSlowReaderNotIdle(t *testing.T) {
	t.Parallel()
	const idle = time.Second
	tr := newTestRelay(t, relay.Config{IdleTimeout: idle})
	s := tr.newSession(t, "h")
	// The host sends as fast as the relay takes it, until the session ends.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		chunk := bytes.Repeat([]byte("d"), 16<<10)
		for s.host.stream.Send(dataFrame(chunk)) == nil {
		}
	}()
	defer func() {
		s.client.Close()
		wg.Wait()
	}()
	// 4 KiB every 20 ms (200 KB/s) for four idle timeouts. The ticker paces
	// the reads; it waits for nothing.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 4<<10)
	read, lastRead := 0, time.Now()
	for range 4 * int(idle/(20*time.Millisecond)) {
		<-tick.C
		n, err := io.ReadFull(s.client, buf)
		read += n
		if err != nil {
			if gap := time.Since(lastRead); gap >= idle/2 {
				t.Skipf("inconclusive: %v since the last read, against reads every 20 ms: the test was starved of CPU", gap)
			}
			t.Fatalf("after %d bytes read at 200 KB/s: %v; the session was ended as idle", read, err)
		}
		lastRead = time.Now()
	}
}
