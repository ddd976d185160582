package suite

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/portclaim"
)

// TestNodeHostEndsStalledSession: the Node.js host honours
// Welcome.idle_timeout as hostagent does (docs/writing-a-host.md): a
// session that moved no byte either way for idle_timeout + max(1s,
// idle_timeout/8) is aborted with Close{TIMEOUT}, and its stream released.
// That is for a host stuck where the relay's own Close cannot reach it.
// relayd's Close reaches this echo (a client that sends and never reads
// jams it, but the jam clears once relayd resets that client), so a fake
// relay plays one whose Close never came: after a busy while it sends
// nothing more, and it does not end the stream on the host's Close either.
// Then, on a clean session (SessionEnd) and one the relay aborts (Close),
// the host's timers must stop with the session: it exits at once on
// SIGTERM, not when a forgotten timer fires.
func TestNodeHostEndsStalledSession(t *testing.T) {
	dir := nodeHostDir(t)
	const idleTimeout = 500 * time.Millisecond
	hostLimit := idleTimeout + max(time.Second, idleTimeout/8) // when the host should give up
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	lis, err := net.Listen("tcp", portclaim.MustAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	relay := &fakeRelay{idleTimeout: idleTimeout, slots: make(chan *fakeSlot, 16)}
	srv := grpc.NewServer()
	relayv1.RegisterHostServiceServer(srv, relay)
	go srv.Serve(lis)
	defer srv.Stop()

	// Two idle slots, so that a clean session's stream is offered again
	// (SessionEnd, Hello); a drain timeout longer than the test, so that a
	// session the host still held at SIGTERM would keep it running.
	h, err := startNodeHost(dir, "RELAY_ADDR="+lis.Addr().String(), "IDLE=2", "DRAIN_TIMEOUT_MS=600000")
	if err != nil {
		t.Fatal(err)
	}
	defer h.kill()

	// 1. The stalled session: echoes back to back for longer than the
	// host's limit (a session that moves bytes is not idle, however old),
	// then nothing either way.
	s1 := relay.next(ctx, t, h)
	s1.open(t, "stalled")
	echoes := 0
	for start := time.Now(); time.Since(start) < hostLimit+hostLimit/4; echoes++ {
		s1.echo(ctx, t, "ping\n")
	}
	lastByte := time.Now()
	limitCtx, limitCancel := context.WithTimeout(ctx, hostLimit+5*time.Second)
	defer limitCancel()
	f, err := s1.recv(limitCtx)
	switch {
	case err != nil:
		t.Fatalf("the stalled session: want the host's Close{TIMEOUT} within %v, got %v (host output:%s)", hostLimit+5*time.Second, err, h.tail())
	case f.GetClose() == nil || f.GetClose().GetReason() != relayv1.CloseReason_CLOSE_REASON_TIMEOUT:
		t.Fatalf("the stalled session: want the host's Close{TIMEOUT}, got %v", f)
	}
	// The relay must have had the time to end the session itself, and
	// then some (the host's timer starts at its own last byte, a little
	// before this side saw it).
	if took, least := time.Since(lastByte), (idleTimeout+hostLimit)/2; took < least {
		t.Errorf("the host ended the stalled session %v after its last byte, want at least %v (relay's idle timeout %v)", took, least, idleTimeout)
	} else {
		t.Logf("after %d echoes, the host sent Close{TIMEOUT} %v after the last byte (%q)", echoes, took.Round(time.Millisecond), f.GetClose().GetDetail())
	}
	// This relay does not end the stream on the Close (no more than one
	// whose own Close the host never read would read the host's): the
	// host must release it.
	select {
	case <-s1.stream.Context().Done(): // the host reset the stream
	case <-limitCtx.Done():
		t.Fatalf("the stalled session: the host sent Close, but held the stream it is stuck on (host output:%s)", h.tail())
	}

	// 2. A clean session; its stream is offered again.
	s2 := relay.next(ctx, t, h)
	s2.open(t, "clean")
	s2.echo(ctx, t, "ping\n")
	s2.send(t, &relayv1.AttachResponse{Frame: &relayv1.AttachResponse_CloseWrite{CloseWrite: &relayv1.CloseWrite{}}})
	if f, err := s2.recv(ctx); err != nil || f.GetCloseWrite() == nil {
		t.Fatalf("the clean session: want the host's CloseWrite, got %v, %v", f, err)
	}
	if s2.hello.GetSequentialSessions() {
		s2.send(t, &relayv1.AttachResponse{Frame: &relayv1.AttachResponse_SessionEnd{SessionEnd: &relayv1.SessionEnd{}}})
		if f, err := s2.recv(ctx); err != nil || f.GetHello() == nil {
			t.Fatalf("the clean session: want Hello after SessionEnd (the pool is short), got %v, %v", f, err)
		}
		s2.send(t, relay.welcome(s2.hello, "again")) // an idle slot from now on
	} else {
		s2.end(nil)
	}

	// 3. A session the relay aborts (the client reset).
	s3 := relay.next(ctx, t, h)
	s3.open(t, "reset")
	s3.echo(ctx, t, "ping\n")
	s3.send(t, &relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Close{Close: &relayv1.Close{Reason: relayv1.CloseReason_CLOSE_REASON_CLIENT_RESET}}})
	s3.end(status.Error(codes.Aborted, "session aborted (CLOSE_REASON_CLIENT_RESET)"))
	lastEnd := time.Now()
	relay.next(ctx, t, h) // its replacement: the host has seen the end

	// SIGTERM: no session is open, so the host exits at once; the timer of
	// session 2 or 3, left running, would hold it until it fires (hostLimit
	// after the session's last byte).
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := h.wait(ctx); err != nil {
		t.Fatalf("%v (host output:%s)", err, h.tail())
	}
	if took := time.Since(lastEnd); took >= hostLimit*3/4 {
		t.Errorf("the host exited %v after its last session ended, near its stall limit %v: a session's timer kept it alive", took, hostLimit)
	} else {
		t.Logf("the host exited %v after its last session ended", took.Round(time.Millisecond))
	}
}

// fakeRelay serves HostService.Attach: it answers Hello with Welcome
// (setting idle_timeout), then hands the slot to the test, which plays the
// relay's part of the session.
type fakeRelay struct {
	relayv1.UnimplementedHostServiceServer
	idleTimeout time.Duration
	slots       chan *fakeSlot
	streams     atomic.Int64
}

// fakeSlot is one Attach stream after Welcome. Only the test sends on it;
// only recv receives.
type fakeSlot struct {
	stream relayv1.HostService_AttachServer
	hello  *relayv1.Hello
	frames chan fakeFrame // what recv reads
	done   chan error     // the status the handler ends the stream with
}

type fakeFrame struct {
	req *relayv1.AttachRequest
	err error
}

func (f *fakeRelay) welcome(hello *relayv1.Hello, slotID string) *relayv1.AttachResponse {
	return &relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{
		RelayId: "fake", SlotId: slotID, MaxDataBytes: 32512,
		SequentialSessions: hello.GetSequentialSessions(), IdleTimeout: durationpb.New(f.idleTimeout),
	}}}
}

func (f *fakeRelay) Attach(stream relayv1.HostService_AttachServer) error {
	req, err := stream.Recv()
	if err != nil {
		return err
	}
	if req.GetHello() == nil {
		return status.Error(codes.InvalidArgument, "first frame is not Hello")
	}
	if err := stream.Send(f.welcome(req.GetHello(), strconv.FormatInt(f.streams.Add(1), 10))); err != nil {
		return err
	}
	s := &fakeSlot{stream: stream, hello: req.GetHello(), frames: make(chan fakeFrame, 16), done: make(chan error, 1)}
	// One reader, ending with the stream (the handler's return ends a
	// Recv in progress).
	go func() {
		for {
			req, err := stream.Recv()
			select {
			case s.frames <- fakeFrame{req, err}:
			case <-stream.Context().Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	select {
	case f.slots <- s:
	case <-stream.Context().Done():
		return stream.Context().Err()
	}
	select {
	case err := <-s.done:
		return err
	case <-stream.Context().Done():
		return stream.Context().Err()
	}
}

// next waits for the next slot the host opens.
func (f *fakeRelay) next(ctx context.Context, t *testing.T, h *nodeHost) *fakeSlot {
	t.Helper()
	select {
	case s := <-f.slots:
		return s
	case <-ctx.Done():
		t.Fatalf("the host opened no slot (host output:%s)", h.tail())
		return nil
	}
}

func (s *fakeSlot) send(t *testing.T, resp *relayv1.AttachResponse) {
	t.Helper()
	if err := s.stream.Send(resp); err != nil {
		t.Fatalf("send %v: %v", resp, err)
	}
}

func (s *fakeSlot) open(t *testing.T, sessionID string) {
	t.Helper()
	s.send(t, &relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Open{Open: &relayv1.Open{
		SessionId: sessionID, ClientAddr: "127.0.0.1:1", ListenerAddr: "127.0.0.1:2", Service: "default",
	}}})
}

// recv returns the host's next frame on the stream.
func (s *fakeSlot) recv(ctx context.Context) (*relayv1.AttachRequest, error) {
	select {
	case f := <-s.frames:
		return f.req, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// echo sends msg to the host and wants it back.
func (s *fakeSlot) echo(ctx context.Context, t *testing.T, msg string) {
	t.Helper()
	s.send(t, &relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Data{Data: &relayv1.Data{Payload: []byte(msg)}}})
	var got []byte
	for len(got) < len(msg) {
		f, err := s.recv(ctx)
		if err != nil || f.GetData() == nil {
			t.Fatalf("want the echo of %q, got %q, then %v, %v", msg, got, f, err)
		}
		got = append(got, f.GetData().GetPayload()...)
	}
	if string(got) != msg {
		t.Fatalf("want the echo of %q, got %q", msg, got)
	}
}

// end ends the stream's RPC with err (nil: OK).
func (s *fakeSlot) end(err error) { s.done <- err }

// nodeHost is host.js run by node; its stderr is kept for failure messages.
type nodeHost struct {
	cmd    *exec.Cmd
	out    *tailBuffer
	done   chan error // the exit
	waited bool
}

func startNodeHost(dir string, env ...string) (*nodeHost, error) {
	cmd := exec.Command("node", "host.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	h := &nodeHost{cmd: cmd, out: &tailBuffer{max: 20}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = h.out, h.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { h.done <- cmd.Wait() }()
	return h, nil
}

func (h *nodeHost) tail() string { return h.out.String() }

// wait waits for the host's exit, which must be a clean one.
func (h *nodeHost) wait(ctx context.Context) error {
	select {
	case err := <-h.done:
		h.waited = true
		if err != nil {
			return fmt.Errorf("the host exited with %v", err)
		}
		return nil
	case <-ctx.Done():
		return errors.New("the host did not exit after SIGTERM")
	}
}

// kill ends a host the test has not waited for.
func (h *nodeHost) kill() {
	if !h.waited {
		h.cmd.Process.Kill()
		<-h.done
	}
}
