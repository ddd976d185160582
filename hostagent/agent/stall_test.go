package agent

import (
	"errors"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/attachconn"
	"google.golang.org/protobuf/types/known/durationpb"
)

// nopSender is an attachconn.Sender that sends nowhere.
type nopSender struct{}

func (nopSender) SendData([]byte) error                       { return nil }
func (nopSender) SendCloseWrite() error                       { return nil }
func (nopSender) SendClose(relayv1.CloseReason, string) error { return nil }

// TestStalledCountsFromStuckDeliver: the agent's watch ends a session whose
// Deliver has been stuck for limit, not one that was quiet for longer and
// whose first Deliver waits a moment (a review found it ended within
// milliseconds), nor a quiet one with no Deliver under way (the relay
// decides those: it sees a slow client's progress).
func TestStalledCountsFromStuckDeliver(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const limit = time.Second
		conn := attachconn.New(attachconn.Config{Sender: nopSender{}, MaxData: 1000})
		stop := watchStalled(conn, limit, "test")
		defer stop()
		time.Sleep(5 * limit) // quiet, with nothing to deliver
		if err := conn.Err(); err != nil {
			t.Fatalf("a quiet session with no Deliver under way was ended: %v", err)
		}
		delivered := make(chan error, 1)
		go func() { delivered <- conn.Deliver([]byte("for a backend that does not read")) }()
		time.Sleep(limit / 2)
		if err := conn.Err(); err != nil {
			t.Fatalf("ended %v after its Deliver began, before the limit %v: %v", limit/2, limit, err)
		}
		time.Sleep(limit)
		var ae *attachconn.AbortError
		if err := conn.Err(); !errors.As(err, &ae) || ae.Reason != relayv1.CloseReason_CLOSE_REASON_TIMEOUT {
			t.Fatalf("after its Deliver was stuck for %v: %v, want an abort with TIMEOUT", limit*3/2, err)
		}
		<-delivered
	})
}

// TestStalledFromTheStart: a session whose first Deliver is stuck is ended
// about limit after, not twice limit: the first look came at limit, and
// took its own time for the last movement.
func TestStalledFromTheStart(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const limit = time.Second
		conn := attachconn.New(attachconn.Config{Sender: nopSender{}, MaxData: 1000})
		stop := watchStalled(conn, limit, "test")
		defer stop()
		delivered := make(chan error, 1)
		go func() { delivered <- conn.Deliver([]byte("for a backend that does not read")) }()
		time.Sleep(limit + limit/4)
		var ae *attachconn.AbortError
		if err := conn.Err(); !errors.As(err, &ae) || ae.Reason != relayv1.CloseReason_CLOSE_REASON_TIMEOUT {
			t.Fatalf("stuck from the start for %v: %v, want an abort with TIMEOUT", limit+limit/4, err)
		}
		<-delivered
	})
}

// TestStallTimeoutBeforeIdleTimeout: a session stuck delivering to a
// backend that does not read is ended at the agent's StallTimeout, long
// before the relay's idle timeout (an hour by default), and says which;
// with none (Config's zero: a program may pause between reads), only the
// idle timeout ends it.
func TestStallTimeoutBeforeIdleTimeout(t *testing.T) {
	t.Parallel()
	welcome := &relayv1.Welcome{IdleTimeout: durationpb.New(time.Hour)}
	for _, stall := range []time.Duration{2 * time.Second, 0} {
		synctest.Test(t, func(t *testing.T) {
			conn := attachconn.New(attachconn.Config{Sender: nopSender{}, MaxData: 1000})
			stop := watchSession(t.Context(), t.Context(), conn, welcome, stall)
			defer stop()
			delivered := make(chan error, 1)
			go func() { delivered <- conn.Deliver([]byte("for a backend that does not read")) }()
			time.Sleep(3 * time.Second)
			var ae *attachconn.AbortError
			err := conn.Err()
			if stall <= 0 {
				if err != nil {
					t.Fatalf("no stall timeout: ended after 3 s (%v), want only at the relay's idle timeout", err)
				}
				time.Sleep(2 * time.Hour) // the idle timeout, its margin and the looks' step
				if err := conn.Err(); !errors.As(err, &ae) || !strings.Contains(err.Error(), "idle timeout") {
					t.Fatalf("no stall timeout: after the idle timeout %v, want an abort naming it", err)
				}
			} else if !errors.As(err, &ae) || ae.Reason != relayv1.CloseReason_CLOSE_REASON_TIMEOUT || !strings.Contains(err.Error(), "--stall-timeout") {
				t.Fatalf("stall timeout %v: after 3 s %v, want an abort with TIMEOUT naming --stall-timeout", stall, err)
			}
			<-delivered
		})
	}
}

// TestStallSparesASlowReader: a socket sink whose reader takes bytes
// slowly, while one Write of a large payload stays under way (a Write
// returns only once its payload is in the send buffer, which a slow reader
// frees in steps of a third of it, 22 s apart at 64 KiB/s in a review's
// run), is not stalled: the socket's kernel counters show the bytes taken
// (a review: a backend reading 4 KiB/s was reset under --stall-timeout 2s).
func TestStallSparesASlowReader(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := lis.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	sink, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	reader, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	defer reader.Close()

	// 2 s, not less: a loaded machine's reader, or the watch, woken late
	// must not look like a stall (at 500 ms it did, 2 runs in 8 under load).
	const limit = 2 * time.Second
	conn := attachconn.New(attachconn.Config{Sender: nopSender{}, MaxData: 64 << 20})
	conn.PushTo(sink, func(int64, error) {})
	stop := watchStalled(conn, limit, "test")
	defer stop()
	delivered := make(chan error, 1)
	go func() { delivered <- conn.Deliver(make([]byte, 64<<20)) }() // one Write, under way throughout
	buf := make([]byte, 16<<10)
	tick := time.NewTicker(20 * time.Millisecond) // about 800 KB/s: 64 MiB would take 80 s
	defer tick.Stop()
	for range 2 * limit / (20 * time.Millisecond) { // 4 s: twice the limit
		<-tick.C
		if _, err := reader.Read(buf); err != nil {
			t.Fatalf("read: %v", err)
		}
	}
	if err := conn.Err(); err != nil {
		t.Errorf("a sink read steadily, if slowly, was taken for stalled: %v", err)
	}
	conn.Abort(errors.New("test over"))
	reader.Close()
	<-delivered
}
