package relay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/relayd/relay"
)

func TestAttachSession(t *testing.T) {
	t.Parallel()
	const maxData = 1024
	tr := newTestRelay(t, relay.Config{MaxDataBytes: maxData})
	h := tr.attach(t)
	w := h.hello(&relayv1.Hello{Service: "default", HostId: "h1"})
	if w.GetRelayId() != "test-relay" || w.GetSlotId() == "" || w.GetMaxDataBytes() != maxData {
		t.Fatalf("Welcome = %v, want relay_id test-relay, a slot_id, max_data_bytes %d", w, maxData)
	}

	before := time.Now()
	client := dialClient(t, tr.clientAddr)
	open := h.expectOpen()
	if open.GetSessionId() == "" {
		t.Error("Open.session_id is empty")
	}
	if got, want := open.GetClientAddr(), client.LocalAddr().String(); got != want {
		t.Errorf("Open.client_addr = %q, want the client's address %q", got, want)
	}
	if got := open.GetListenerAddr(); got != tr.clientAddr {
		t.Errorf("Open.listener_addr = %q, want %q", got, tr.clientAddr)
	}
	if got := open.GetService(); got != "default" {
		t.Errorf("Open.service = %q, want default", got)
	}
	if at := open.GetOpenedAt().AsTime(); at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("Open.opened_at = %v, want about %v", at, before)
	}

	// Client → host, more than one frame's worth: every frame within the limit.
	up := bytes.Repeat([]byte("0123456789abcdef"), 300)
	if _, err := client.Write(up); err != nil {
		t.Fatalf("client write: %v", err)
	}
	if got := h.recvData(len(up), maxData); !bytes.Equal(got, up) {
		t.Fatalf("host got %d bytes, not the %d the client sent", len(got), len(up))
	}
	// Host → client.
	h.send(dataFrame([]byte("hello, ")))
	h.send(dataFrame([]byte("client")))
	if got := string(readN(t, client, 13)); got != "hello, client" {
		t.Fatalf("client got %q", got)
	}

	// Client FIN → CloseWrite to the host; the other direction keeps flowing.
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	h.expectCloseWrite()
	h.send(dataFrame([]byte("after your FIN")))
	h.send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Data{Data: &relayv1.Data{}}}) // empty: legal, ignored
	h.send(closeWriteFrame())
	rest, err := io.ReadAll(client)
	if err != nil || string(rest) != "after your FIN" {
		t.Fatalf("client read %q, %v; want %q then EOF", rest, err, "after your FIN")
	}
	h.expectEnd(codes.OK)
}

// TestAttachHostClosesWriteFirst is the mirror: the host's CloseWrite
// first, then the client keeps sending.
func TestAttachHostClosesWriteFirst(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{})
	s := tr.newSession(t, "h1")
	s.host.send(dataFrame([]byte("bye")))
	s.host.send(closeWriteFrame())
	got, err := io.ReadAll(s.client)
	if err != nil || string(got) != "bye" {
		t.Fatalf("client read %q, %v; want %q then EOF", got, err, "bye")
	}
	if _, err := s.client.Write([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	if got := string(s.host.recvData(10, 0)); got != "still here" {
		t.Fatalf("host got %q", got)
	}
	s.client.CloseWrite()
	s.host.expectCloseWrite()
	s.host.expectEnd(codes.OK)
}

// TestAttachProtocolViolations runs every violation on one relay while a
// bystander session keeps flowing: a violation ends only its own stream.
func TestAttachProtocolViolations(t *testing.T) {
	t.Parallel()
	const maxData = 64
	tr := newTestRelay(t, relay.Config{MaxDataBytes: maxData})
	bystander := tr.newSession(t, "bystander")
	bystander.roundTrip(t, "before")

	hello := helloFrame("default", "bad-host")
	empty := &relayv1.AttachRequest{}
	tests := []struct {
		name string
		// before are sent before a client is assigned; after (if any) once
		// the stream carries a session.
		before, after []*relayv1.AttachRequest
		want          codes.Code
	}{
		{name: "data_first", before: []*relayv1.AttachRequest{dataFrame([]byte("x"))}, want: codes.InvalidArgument},
		{name: "close_write_first", before: []*relayv1.AttachRequest{closeWriteFrame()}, want: codes.InvalidArgument},
		{name: "empty_first_frame", before: []*relayv1.AttachRequest{empty}, want: codes.InvalidArgument},
		{name: "empty_frame_while_idle", before: []*relayv1.AttachRequest{hello, empty}, want: codes.InvalidArgument},
		{name: "empty_frame_in_session", before: []*relayv1.AttachRequest{hello}, after: []*relayv1.AttachRequest{empty}, want: codes.InvalidArgument},
		{name: "second_hello_while_idle", before: []*relayv1.AttachRequest{hello, hello}, want: codes.FailedPrecondition},
		{name: "second_hello_in_session", before: []*relayv1.AttachRequest{hello}, after: []*relayv1.AttachRequest{hello}, want: codes.FailedPrecondition},
		{name: "data_before_open", before: []*relayv1.AttachRequest{hello, dataFrame([]byte("x"))}, want: codes.FailedPrecondition},
		{name: "close_write_before_open", before: []*relayv1.AttachRequest{hello, closeWriteFrame()}, want: codes.FailedPrecondition},
		{name: "data_after_close_write", before: []*relayv1.AttachRequest{hello}, after: []*relayv1.AttachRequest{closeWriteFrame(), dataFrame([]byte("x"))}, want: codes.FailedPrecondition},
		{name: "close_write_twice", before: []*relayv1.AttachRequest{hello}, after: []*relayv1.AttachRequest{closeWriteFrame(), closeWriteFrame()}, want: codes.FailedPrecondition},
		{name: "oversized_data", before: []*relayv1.AttachRequest{hello}, after: []*relayv1.AttachRequest{dataFrame(make([]byte, maxData+1))}, want: codes.ResourceExhausted},
		{name: "unknown_service", before: []*relayv1.AttachRequest{helloFrame("nope", "bad-host")}, want: codes.PermissionDenied},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { // not parallel: clients must reach this test's slot
			h := tr.attach(t)
			for _, f := range tt.before {
				h.send(f)
			}
			var client *net.TCPConn
			if tt.after != nil {
				if resp := h.recv(); resp.GetWelcome() == nil {
					t.Fatalf("answer to Hello = %v, want Welcome", resp)
				}
				client = dialClient(t, tr.clientAddr)
				h.expectOpen()
				h.send(dataFrame([]byte("delivered")))
				for _, f := range tt.after {
					h.send(f)
				}
			}
			h.expectEnd(tt.want)
			if client != nil {
				// The bytes the relay took before the violation arrive, then a
				// reset. If the host's CloseWrite went before, the client may
				// have its FIN first (the relay passed it on before the
				// violation came), and a reset after a FIN shows only on the
				// client's next write.
				if got := string(readN(t, client, 9)); got != "delivered" {
					t.Errorf("client got %q, want %q", got, "delivered")
				}
				if proto.Equal(tt.after[0], closeWriteFrame()) {
					if rest, err := io.ReadAll(client); len(rest) != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
						t.Errorf("client read %q, %v after the host's CloseWrite; want EOF or a reset", rest, err)
					}
				} else {
					expectReset(t, client)
				}
			}
			bystander.roundTrip(t, fmt.Sprint("after-", i))
		})
	}
	if st := tr.getStatus(t); st.GetIdleSlots() != 0 || st.GetActiveSessions() != 1 || st.GetHosts() != 1 {
		t.Errorf("after the violations: %d hosts, %d idle slots, %d sessions; want only the bystander", st.GetHosts(), st.GetIdleSlots(), st.GetActiveSessions())
	}
}

func TestAttachHelloTimeout(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{HelloTimeout: time.Millisecond})
	h := tr.attach(t) // and never says Hello
	h.expectEnd(codes.DeadlineExceeded)
	if st := tr.getStatus(t); st.GetHosts() != 0 || st.GetIdleSlots() != 0 {
		t.Errorf("status after the timeout: %v", st)
	}
}

func TestAttachAborts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, tr *testRelay, s *session)
	}{{
		name: "client_resets",
		run: func(t *testing.T, tr *testRelay, s *session) {
			s.roundTrip(t, "x")
			s.client.SetLinger(0)
			s.client.Close()
			resp := s.host.recv()
			if got := resp.GetClose().GetReason(); got != relayv1.CloseReason_CLOSE_REASON_CLIENT_RESET {
				t.Fatalf("frame = %v, want Close{CLIENT_RESET}", resp)
			}
			s.host.expectEnd(codes.Aborted) // OK is only for a session that ended cleanly
		},
	}, {
		name: "host_sends_close",
		run: func(t *testing.T, tr *testRelay, s *session) {
			s.host.send(dataFrame([]byte("last words")))
			s.host.send(closeFrame(relayv1.CloseReason_CLOSE_REASON_HOST_ABORT))
			if got := string(readN(t, s.client, 10)); got != "last words" {
				t.Fatalf("client got %q", got)
			}
			expectReset(t, s.client)
			s.host.expectEnd(codes.Aborted) // OK would claim every byte delivered
		},
	}, {
		name: "host_closes_after_close_write",
		// The client already has its FIN; the Close must still end the
		// session at the relay rather than leave it waiting on the client.
		run: func(t *testing.T, tr *testRelay, s *session) {
			s.host.send(dataFrame([]byte("done")))
			s.host.send(closeWriteFrame())
			got, err := io.ReadAll(s.client)
			if err != nil || string(got) != "done" {
				t.Fatalf("client read %q, %v; want %q then EOF", got, err, "done")
			}
			s.host.send(closeFrame(relayv1.CloseReason_CLOSE_REASON_HOST_ABORT))
			s.host.expectEnd(codes.Aborted)
			if n := tr.r.ActiveSessions(); n != 0 {
				t.Errorf("ActiveSessions = %d after the host's Close, want 0", n)
			}
		},
	}, {
		name: "host_cancels",
		run: func(t *testing.T, tr *testRelay, s *session) {
			s.roundTrip(t, "x")
			s.host.cancel()
			expectReset(t, s.client)
			s.host.serverEnd() // nobody is left to read its status
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := newTestRelay(t, relay.Config{})
			tt.run(t, tr, tr.newSession(t, "h1"))
		})
	}
}

func TestIdleSlotGivenUp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		giveUp   func(h *hostStream)
		wantCode codes.Code // the handler's return
	}{
		{"close_frame", func(h *hostStream) { h.send(closeFrame(relayv1.CloseReason_CLOSE_REASON_UNSPECIFIED)) }, codes.OK},
		{"half_close", func(h *hostStream) { h.stream.CloseSend() }, codes.OK},
		{"cancel", func(h *hostStream) { h.cancel() }, codes.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := newTestRelay(t, relay.Config{})
			// Both slots of one host: the bridge hands out the newest first,
			// so a dead "quitter" left behind would get the client.
			keeper := tr.attach(t)
			keeper.hello(&relayv1.Hello{HostId: "h1"})
			quitter := tr.attach(t)
			quitter.hello(&relayv1.Hello{HostId: "h1"})
			if got := tr.getStatus(t).GetIdleSlots(); got != 2 {
				t.Fatalf("idle_slots = %d after two Welcomes, want 2", got)
			}

			tt.giveUp(quitter)
			if got := codeOf(quitter.serverEnd()); got != tt.wantCode {
				t.Errorf("handler returned %v, want %v", got, tt.wantCode)
			}
			st := tr.getStatus(t)
			if st.GetIdleSlots() != 1 || st.GetHosts() != 1 {
				t.Errorf("after giving one slot up: %d idle slots, %d hosts; want 1, 1", st.GetIdleSlots(), st.GetHosts())
			}

			s := &session{host: keeper, client: dialClient(t, tr.clientAddr)}
			s.open = keeper.expectOpen()
			s.roundTrip(t, "alive")
		})
	}
}

// TestIdleSlotLastGivenUp: with no slot left, a new client waits and is
// served by the next slot, not by the one given up.
func TestIdleSlotLastGivenUp(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{})
	quitter := tr.attach(t)
	quitter.hello(&relayv1.Hello{HostId: "h1"})
	quitter.send(closeFrame(relayv1.CloseReason_CLOSE_REASON_UNSPECIFIED))
	quitter.expectEnd(codes.OK)
	if st := tr.getStatus(t); st.GetIdleSlots() != 0 || st.GetHosts() != 0 {
		t.Fatalf("after the only slot was given up: %d idle slots, %d hosts", st.GetIdleSlots(), st.GetHosts())
	}
	client := dialClient(t, tr.clientAddr)
	h := tr.attach(t)
	h.hello(&relayv1.Hello{HostId: "h1"})
	s := &session{host: h, client: client, open: h.expectOpen()}
	s.roundTrip(t, "late")
}

func TestStatusService(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{Version: "v-test"})
	active := tr.attach(t)
	aw := active.hello(&relayv1.Hello{HostId: "h1", Labels: map[string]string{"zone": "a"}, AgentVersion: "agent/1"})
	client := dialClient(t, tr.clientAddr)
	open := active.expectOpen()
	idle := tr.attach(t)
	idle.hello(&relayv1.Hello{HostId: "h1", Labels: map[string]string{"zone": "a"}, AgentVersion: "agent/1"})

	// 5 bytes and a FIN to the host; 7 bytes from it.
	client.Write([]byte("12345"))
	client.CloseWrite()
	if got := string(active.recvData(5, 0)); got != "12345" {
		t.Fatalf("host got %q", got)
	}
	active.expectCloseWrite() // sent after the bytes were counted
	active.send(dataFrame([]byte("abcdefg")))
	readN(t, client, 7) // read by the client
	ctx := context.Background()
	// The relay counts host bytes once its write to the client has
	// returned, which may be just after the client read them.
	waitUntil(t, "the host's 7 bytes counted", func() (bool, string) {
		s, err := tr.status.ListSessions(ctx, &relayv1.ListSessionsRequest{})
		if err != nil || len(s.GetSessions()) != 1 {
			return false, fmt.Sprint(s, err)
		}
		return s.GetSessions()[0].GetBytesFromHost() == 7, s.String()
	})

	st := tr.getStatus(t)
	want := &relayv1.GetStatusResponse{
		RelayId: "test-relay", Version: "v-test", Hosts: 1, IdleSlots: 1, ActiveSessions: 1, SessionsTotal: 1,
		Services: []*relayv1.ServiceStatus{{Service: "default", Hosts: 1, IdleSlots: 1, ActiveSessions: 1, SessionsTotal: 1, ListenAddrs: []string{tr.clientAddr}}},
	}
	if st.GetUptime() == nil || st.GetStartedAt() == nil {
		t.Errorf("GetStatus: uptime %v, started_at %v; want both set", st.GetUptime(), st.GetStartedAt())
	}
	st.Uptime, st.StartedAt = nil, nil
	if !proto.Equal(st, want) {
		t.Errorf("GetStatus =\n%v\nwant\n%v", st, want)
	}

	hosts, err := tr.status.ListHosts(ctx, &relayv1.ListHostsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts.GetHosts()) != 1 {
		t.Fatalf("ListHosts = %v, want one host", hosts)
	}
	hst := hosts.GetHosts()[0]
	if hst.GetPeerAddr() == "" || hst.GetAttachedAt() == nil {
		t.Errorf("host peer_addr %q, attached_at %v: want both set", hst.GetPeerAddr(), hst.GetAttachedAt())
	}
	hst.PeerAddr, hst.AttachedAt = "", nil
	wantHost := &relayv1.Host{HostId: "h1", Service: "default", IdleSlots: 1, ActiveSessions: 1, SessionsTotal: 1,
		BytesToHost: 5, BytesFromHost: 7, Labels: map[string]string{"zone": "a"}, AgentVersion: "agent/1", Weight: 1}
	if !proto.Equal(hst, wantHost) {
		t.Errorf("ListHosts host =\n%v\nwant\n%v", hst, wantHost)
	}

	sessions, err := tr.status.ListSessions(ctx, &relayv1.ListSessionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions.GetSessions()) != 1 {
		t.Fatalf("ListSessions = %v, want one session", sessions)
	}
	sess := sessions.GetSessions()[0]
	if !sess.GetOpenedAt().AsTime().Equal(open.GetOpenedAt().AsTime()) {
		t.Errorf("session opened_at %v, Open said %v", sess.GetOpenedAt().AsTime(), open.GetOpenedAt().AsTime())
	}
	sess.OpenedAt = nil
	wantSess := &relayv1.Session{SessionId: open.GetSessionId(), Service: "default", HostId: "h1", ClientAddr: client.LocalAddr().String(),
		BytesToHost: 5, BytesFromHost: 7, ClientWriteClosed: true, HostWriteClosed: false, SlotId: aw.GetSlotId()}
	if !proto.Equal(sess, wantSess) {
		t.Errorf("ListSessions session =\n%v\nwant\n%v", sess, wantSess)
	}

	// Filters.
	if h, _ := tr.status.ListHosts(ctx, &relayv1.ListHostsRequest{Service: "other"}); len(h.GetHosts()) != 0 {
		t.Errorf("ListHosts(service=other) = %v, want none", h)
	}
	if s, _ := tr.status.ListSessions(ctx, &relayv1.ListSessionsRequest{HostId: "h2"}); len(s.GetSessions()) != 0 {
		t.Errorf("ListSessions(host_id=h2) = %v, want none", s)
	}
	if s, _ := tr.status.ListSessions(ctx, &relayv1.ListSessionsRequest{Service: "default", HostId: "h1"}); len(s.GetSessions()) != 1 {
		t.Errorf("ListSessions(default, h1) = %v, want the session", s)
	}

	// The session ends: its bytes stay with the host, the counts move.
	active.send(closeWriteFrame())
	io.ReadAll(client)
	active.expectEnd(codes.OK)
	st = tr.getStatus(t)
	if st.GetActiveSessions() != 0 || st.GetSessionsTotal() != 1 || st.GetIdleSlots() != 1 || st.GetHosts() != 1 {
		t.Errorf("after the session: %v", st)
	}
	hosts, _ = tr.status.ListHosts(ctx, &relayv1.ListHostsRequest{})
	if h := hosts.GetHosts(); len(h) != 1 || h[0].GetBytesToHost() != 5 || h[0].GetBytesFromHost() != 7 || h[0].GetActiveSessions() != 0 || h[0].GetSessionsTotal() != 1 {
		t.Errorf("ListHosts after the session = %v", hosts)
	}
}

// TestListSessionsPages: ListSessions lists at most page_size sessions,
// oldest first, and next_page_token asks for the rest; a token it did not
// make is InvalidArgument.
func TestListSessionsPages(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{})
	var want []string
	for i := range 5 {
		s := tr.newSession(t, "h"+strconv.Itoa(i))
		s.roundTrip(t, "x")
		want = append(want, s.open.GetSessionId())
	}
	ctx := context.Background()
	var got []string
	token := ""
	for pages := 1; ; pages++ {
		resp, err := tr.status.ListSessions(ctx, &relayv1.ListSessionsRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(resp.GetSessions()); n > 2 || n == 0 {
			t.Fatalf("page %d has %d sessions, want 1 or 2", pages, n)
		}
		for _, s := range resp.GetSessions() {
			got = append(got, s.GetSessionId())
		}
		if token = resp.GetNextPageToken(); token == "" {
			if pages != 3 {
				t.Errorf("%d pages, want 3", pages)
			}
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("sessions over the pages %v, want %v", got, want)
	}
	if all, err := tr.status.ListSessions(ctx, &relayv1.ListSessionsRequest{}); err != nil || len(all.GetSessions()) != 5 || all.GetNextPageToken() != "" {
		t.Errorf("ListSessions with the default page = %d sessions, next %q, %v; want all 5", len(all.GetSessions()), all.GetNextPageToken(), err)
	}
	if _, err := tr.status.ListSessions(ctx, &relayv1.ListSessionsRequest{PageToken: "c3"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ListSessions with a made-up token: %v, want InvalidArgument", err)
	}
	// A token of another run of the relay (here another relay: one
	// restarted is another run) is refused, not paged on with other
	// sessions' numbers (QA).
	first, err := tr.status.ListSessions(ctx, &relayv1.ListSessionsRequest{PageSize: 2})
	if err != nil || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, next %q", err, first.GetNextPageToken())
	}
	other := newTestRelay(t, relay.Config{})
	for i := range 3 {
		other.newSession(t, "o"+strconv.Itoa(i)).roundTrip(t, "x")
	}
	if _, err := other.status.ListSessions(ctx, &relayv1.ListSessionsRequest{PageToken: first.GetNextPageToken()}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "another run") {
		t.Errorf("ListSessions with another run's token: %v, want InvalidArgument saying so", err)
	}
}
