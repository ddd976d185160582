package agent_test

import (
	"errors"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/hostagent/agent"
	"github.com/relayproject/relay/internal/attachconn"
	"github.com/relayproject/relay/relayd/relay"
)

// TestAbortReachesHostStuckSending: a client that sends without reading,
// then resets, jams an echo host: the relay cannot write to the client, so
// it stops reading the host; the host's echo then blocks in Write, so it
// stops reading the relay; the relay's copy of the client's bytes blocks
// in Send. The reset must still reach the host. Before, the relay ended
// the stream, but grpc-go queued that end behind the data the host would
// never read: the host kept the session, its stream and its backend for
// good (with --max-sessions, no client was served again).
func TestAbortReachesHostStuckSending(t *testing.T) {
	t.Parallel()
	ir := newRelay(t)
	l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}, Idle: 1})

	// A small receive buffer, set before the connection opens, so that the
	// client's side jams quickly.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<10) })
		return errors.Join(err, serr)
	}}
	nc, err := d.Dial("tcp", ir.ClientAddr)
	if err != nil {
		t.Fatal(err)
	}
	client := nc.(*net.TCPConn)
	defer client.Close()
	conn := accept(t, l)

	// The host: an echo that reads only when its last write went through.
	echoEnd := make(chan error, 1)
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := conn.Read(buf)
			if err == nil {
				_, err = conn.Write(buf[:n])
			}
			if err != nil {
				echoEnd <- err
				return
			}
		}
	}()

	// The client writes until its writes stop going through: every
	// buffer between it and the echo, both ways, is full. (A client
	// reset before that would only make this test pass without the fix.)
	chunk := make([]byte, 64<<10)
	for {
		client.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := client.Write(chunk); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("client write: %v", err)
			}
			break
		}
	}
	client.SetLinger(0)
	before := tcpExtCounters()
	client.Close() // a reset

	select {
	case <-echoEnd: // its Write may fail first, as the stream ends
	case <-time.After(hangGuard):
		// This failed once in about 60 loaded full runs and never since
		// (over 1,000 runs). A suspect is the kernel, not this code: a
		// relay socket that dropped the client's RST (receive queue
		// pruned under memory pressure) learns of it only from its next
		// zero-window probe, up to 2 min later. Leave the evidence.
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("the host never learned that the client reset: its session is still open\n"+
			"TCP counters that move when a socket drops a segment (system-wide, during the wait): %v\ngoroutines:\n%s",
			tcpExtDelta(before, tcpExtCounters()), buf)
	}
	// The relay's Close came before the stream's end: the session's own
	// error says why it ended.
	for {
		if _, err := conn.Read(make([]byte, 32<<10)); err != nil {
			var ae *attachconn.AbortError
			if !errors.As(err, &ae) || ae.Reason != relayv1.CloseReason_CLOSE_REASON_CLIENT_RESET {
				t.Errorf("the host's session ended with %v, want the relay's Close{CLIENT_RESET}", err)
			}
			return
		}
	}
}

// TestStalledSessionEndsOnTheHost: a host that stops taking the client's
// bytes (its backend stopped reading) cannot see the relay's end of the
// session, which waits behind the data the relay could not send. The
// relay's idle timeout (Welcome.idle_timeout) then ends it on the host's
// side too, a little later, as CLOSE_REASON_TIMEOUT; before, it stayed
// open for good.
func TestStalledSessionEndsOnTheHost(t *testing.T) {
	t.Parallel()
	// 1 s, not less: the relay's timer must not end the session before
	// the agent has counted it and the client's bytes have filled the
	// stream, on a loaded machine too (at 300 ms it did, now and then).
	ir := newRelayConfig(t, relay.Config{IdleTimeout: time.Second})
	l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}, Idle: 1})
	client := dialClient(t, ir.ClientAddr)
	// The host reads nothing: the client's bytes fill the stream, and the
	// agent's receive loop waits to hand them over.
	go client.Write(make([]byte, 4<<20)) //nolint:errcheck // ends with the client's reset
	conn := accept(t, l)
	deadline := time.Now().Add(hangGuard)
	for l.Stats().ActiveSessions != 1 { // counted by the agent's manager, a little after Accept
		if time.Now().After(deadline) {
			t.Fatalf("agent stats %+v: the session is not counted", l.Stats())
		}
		runtime.Gosched()
	}
	for l.Stats().ActiveSessions != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("agent stats %+v: the stalled session is still open on the host", l.Stats())
		}
		runtime.Gosched()
	}
	_, err := conn.Read(make([]byte, 1))
	var ae *attachconn.AbortError
	if !errors.As(err, &ae) || ae.Remote || ae.Reason != relayv1.CloseReason_CLOSE_REASON_TIMEOUT {
		t.Fatalf("the host's session ended with %v, want its own CLOSE_REASON_TIMEOUT", err)
	}
}

// tcpExtCounters reads the kernel's TcpExt counters that count segments
// a socket dropped or did not act on (pruned receive queues, RSTs out of
// sequence); nil where /proc/net/netstat cannot be read.
func tcpExtCounters() map[string]int64 {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return nil
	}
	var names []string
	for line := range strings.Lines(string(b)) {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "TcpExt:" {
			continue
		}
		if names == nil {
			names = fields[1:]
			continue
		}
		m := map[string]int64{}
		for i, v := range fields[1:] {
			if i < len(names) && slices.Contains(droppedSegmentCounters, names[i]) {
				m[names[i]], _ = strconv.ParseInt(v, 10, 64)
			}
		}
		return m
	}
	return nil
}

var droppedSegmentCounters = []string{"PruneCalled", "RcvPruned", "TCPRcvQDrop", "TCPChallengeACK", "TCPACKSkippedChallenge", "TCPACKSkippedSeq"}

func tcpExtDelta(before, after map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for k, v := range after {
		d[k] = v - before[k]
	}
	return d
}
