package relay_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/relayd/relay"
)

// TestAdminCloseSessionClientNotReading: CloseSession returns at once when
// the session's client does not read. The client's reset waits (up to 2 s)
// until it has acknowledged the bytes the relay wrote to it, as every abort
// does; that wait was the operator's call's, and now is the session's.
// Once the client reads, it gets every byte it was sent, then the reset.
func TestAdminCloseSessionClientNotReading(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{})
	h := tr.attach(t)
	h.hello(&relayv1.Hello{HostId: "h1"})
	// A small receive buffer, set before the connection opens, so that its
	// window fills and stays full with the client not reading.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<10) })
		return errors.Join(err, serr)
	}}
	nc, err := d.Dial("tcp", tr.clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	client := nc.(*net.TCPConn)
	defer client.Close()
	client.SetDeadline(time.Now().Add(hangGuard))
	open := h.expectOpen()

	// The host sends a pattern until the relay ends its stream.
	pattern := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i % 251)
		}
		return b
	}
	const frame = 16 << 10
	flood := pattern(251 * frame) // whole frames keep the pattern aligned
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for off := 0; off < len(flood); off += frame {
			if h.stream.Send(dataFrame(flood[off:off+frame])) != nil {
				return
			}
		}
	}()
	defer wg.Wait()
	defer h.cancel()
	raw, err := client.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	sockInt := func(get func(fd int) (int, error)) int {
		var v int
		var gerr error
		if err := raw.Control(func(fd uintptr) { v, gerr = get(int(fd)) }); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		return v
	}
	// Bytes are waiting in the client's receive buffer: the relay is
	// writing to it, and with 4 MiB on the way the buffer stays full.
	var ioctlErr error
	err = raw.Read(func(fd uintptr) bool { // false: wait until readable, and ask again
		n, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		ioctlErr = err
		return err != nil || n >= 4<<10
	})
	if err != nil || ioctlErr != nil {
		t.Fatal(err, ioctlErr)
	}

	if _, err := tr.admin.CloseSession(context.Background(), &relayv1.CloseSessionRequest{SessionId: open.GetSessionId()}); err != nil {
		t.Fatalf("CloseSession: %v", err)
	}
	state := sockInt(func(fd int) (int, error) {
		info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			return 0, err
		}
		return int(info.State), nil
	})
	if state != unix.BPF_TCP_ESTABLISHED {
		t.Errorf("client's TCP state %d when CloseSession returned, want ESTABLISHED (%d): the call waited for the reset", state, unix.BPF_TCP_ESTABLISHED)
	}
	got, err := io.ReadAll(client)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read %d bytes, then %v; want a reset", len(got), err)
	}
	if len(got) == 0 || !bytes.Equal(got, flood[:len(got)]) {
		t.Errorf("client read %d bytes, not a prefix of what the host sent", len(got))
	}
}

// TestClientResetNotHeldByStuckHost: when the session is aborted while its
// bytes to the host are stuck (the host does not read), the client is
// reset at once, not once the stream ends: that waits up to 5 s for the
// host to take the Close the abort owes it.
func TestClientResetNotHeldByStuckHost(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{})
	late := make(chan struct{}, 1)
	relay.SetTestHooks(tr.r, relay.TestHooks{OwedCloseLate: func() { late <- struct{}{} }})
	// A host that reads nothing, with a window that does not grow (no BDP
	// estimation): the relay's sends fill it (64 KiB), then grpc-go's
	// queue (64 KiB and a frame), and stop.
	fixed := tr.newConn(t, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	h := tr.attachVia(t, context.Background(), relayv1.NewHostServiceClient(fixed))
	h.hello(&relayv1.Hello{HostId: "h1"})
	client := dialClient(t, tr.clientAddr)
	open := h.expectOpen()
	go client.Write(make([]byte, 4<<20)) //nolint:errcheck // ends with the reset
	for {
		resp, err := tr.status.ListSessions(context.Background(), &relayv1.ListSessionsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if s := resp.GetSessions(); len(s) == 1 && s[0].GetBytesToHost() >= 128<<10 {
			break
		}
	}
	if _, err := tr.admin.CloseSession(context.Background(), &relayv1.CloseSessionRequest{SessionId: open.GetSessionId()}); err != nil {
		t.Fatal(err)
	}
	// A reset, which the client's writer may have taken first: then the
	// read sees EOF, and the socket's state tells a reset from a FIN.
	if _, err := io.ReadAll(client); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read %v, want a reset", err)
	}
	raw, err := client.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	var ierr error
	raw.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
	if ierr != nil || info.State != unix.BPF_TCP_CLOSE {
		t.Fatalf("client's TCP state %v (%v) after the end, want CLOSE (%d): a reset", info, ierr, unix.BPF_TCP_CLOSE)
	}
	endedFirst := len(h.end) > 0
	var stuck bool // the stream's end waited the whole grace for the owed Close
	select {
	case <-late:
		stuck = true
	case <-h.end:
		stuck = len(late) > 0
	}
	if !stuck {
		t.Skip("inconclusive: the relay's Close went out, so its stream did not wait")
	}
	if endedFirst {
		t.Fatal("the client was reset only after the stream ended, which waited for the host to take the owed Close")
	}
}
