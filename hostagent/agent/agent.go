// Package agent is the Go SDK for host processes: it keeps idle Attach
// streams (slots) open on one or more relays, replaces each slot as soon as
// a client is assigned to it, reconnects with capped, jittered exponential
// backoff, and hands every session to Go code as a net.Conn through a
// net.Listener. Any Go server runs behind NAT by swapping its listener:
//
//	l, err := agent.Listen(ctx, agent.Config{Relays: []string{"relay.example:8000"}})
//	...
//	http.Serve(l, handler)
//
// Goroutines: one manager per Listener (it decides when to open slots), one
// per slot (it owns the stream and is its only receiver; while the slot is
// being set up and is idle, a short-lived one it waits for makes the calls
// that would grow its stack), and grpc-go's own one per stream. Every one of
// them ends by Shutdown.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/attachconn"
	"github.com/relayproject/relay/internal/framecodec"
)

// Version is sent as Hello.agent_version unless Config.AgentVersion is set.
const Version = "relay-agent-go/0.1"

// Config configures a Listener. The zero value of each field is documented.
type Config struct {
	// Relays are the relays' gRPC addresses (host:port); at least one.
	Relays []string
	// Service names the service to serve; empty means "default".
	Service string
	// HostID identifies this host on the relays; empty means the hostname.
	HostID string
	// Labels are shown in the relays' status.
	Labels map[string]string
	// Idle is the number of idle slots kept on each relay; zero means 10.
	Idle int
	// MaxSessions caps concurrent sessions (over all relays); no slots are
	// offered while it is reached. Zero means no cap.
	MaxSessions int
	// DialOptions are added to the gRPC dial options (TLS, for instance);
	// without transport credentials among them, the link is plaintext.
	DialOptions []grpc.DialOption
	// BackoffBase and BackoffMax bound the reconnect delay; zero means
	// 100ms and 5s.
	BackoffBase, BackoffMax time.Duration
	// AgentVersion is sent in Hello; empty means Version.
	AgentVersion string
	// Logger receives attach and failure logs; nil discards.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	if len(c.Relays) == 0 {
		return errors.New("agent: no relay address given")
	}
	for _, r := range c.Relays {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return fmt.Errorf("agent: relay address %q: %v (want HOST:PORT)", r, err)
		}
	}
	if c.Idle < 0 || c.MaxSessions < 0 {
		return errors.New("agent: Idle and MaxSessions must not be negative")
	}
	if c.Idle == 0 {
		c.Idle = 10
	}
	if c.Service == "" {
		c.Service = "default"
	}
	if c.HostID == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "host"
		}
		c.HostID = h
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = 100 * time.Millisecond
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 5 * time.Second
	}
	if c.AgentVersion == "" {
		c.AgentVersion = Version
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Listener is an agent: a net.Listener whose connections are relay sessions.
type Listener struct {
	cfg    Config
	log    *slog.Logger
	links  []*link
	accept chan *Conn

	idleCtx    context.Context // canceled by Close: idle slots end, no new ones
	stopIdle   context.CancelFunc
	sessCtx    context.Context // canceled by Shutdown's deadline: sessions abort
	stopSess   context.CancelFunc
	events     chan event
	managerEnd chan struct{}
	unaccepted int // sessions opened but not yet taken by Accept; owned by manage
	slots      sync.WaitGroup
}

// link is one relay.
type link struct {
	addr   string
	cc     *grpc.ClientConn
	client relayv1.HostServiceClient

	// Counts, owned by the manager goroutine.
	connecting, idle, active int
	failures                 int
	retryAt                  time.Time
	ready                    bool // the idle pool was full since the last failure
	outage                   int  // bumped by each failure that starts a backoff
}

type eventKind int

const (
	evAttached  eventKind = iota // Welcome received: connecting → idle
	evFailed                     // the stream failed before Welcome: connecting → none
	evOpened                     // Open received: idle → active
	evIdleEnded                  // an idle slot ended: idle → none
	evEnded                      // a session's stream ended: active → none
	evHandedOff                  // a session left the accept queue (accepted, or dropped on Close)
)

type event struct {
	link   *link
	kind   eventKind
	err    error
	outage int // the link's outage count when the slot started
}

// Listen starts an agent and returns at once; slots attach in the
// background and reconnect on failure. ctx bounds the agent's life like a
// call to Shutdown with an expired context.
func Listen(ctx context.Context, cfg Config) (*Listener, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	l := &Listener{cfg: cfg, log: cfg.Logger, accept: make(chan *Conn), events: make(chan event, 64), managerEnd: make(chan struct{})}
	l.sessCtx, l.stopSess = context.WithCancel(context.Background())
	l.idleCtx, l.stopIdle = context.WithCancel(l.sessCtx)
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		// grpc-go's own reconnect backoff grows to 120s; keep it within ours,
		// so a restarted relay gets its slots back within BackoffMax.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: cfg.BackoffBase, Multiplier: 1.6, Jitter: 0.2, MaxDelay: cfg.BackoffMax},
			MinConnectTimeout: 5 * time.Second,
		}),
	}, cfg.DialOptions...)
	for _, addr := range cfg.Relays {
		cc, err := grpc.NewClient(addr, opts...)
		if err != nil {
			for _, lk := range l.links {
				lk.cc.Close()
			}
			return nil, fmt.Errorf("agent: relay %s: %w", addr, err)
		}
		l.links = append(l.links, &link{addr: addr, cc: cc, client: relayv1.NewHostServiceClient(cc)})
	}
	go l.manage()
	context.AfterFunc(ctx, func() {
		expired, cancel := context.WithCancel(context.Background())
		cancel()
		l.Shutdown(expired)
	})
	return l, nil
}

// Accept waits for the next session.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.idleCtx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops offering slots and makes Accept return net.ErrClosed. Open
// sessions go on; Shutdown waits for them.
func (l *Listener) Close() error {
	l.stopIdle()
	return nil
}

// Shutdown closes the listener, waits for open sessions to end until ctx is
// done, then aborts the rest and waits for every goroutine of the agent.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.Close()
	var err error
	select {
	case <-l.managerEnd:
	case <-ctx.Done():
		err = ctx.Err()
		l.stopSess()
		<-l.managerEnd
	}
	l.stopSess()
	l.slots.Wait()
	for _, lk := range l.links {
		lk.cc.Close()
	}
	return err
}

// Addr describes the relays the listener is attached to.
func (l *Listener) Addr() net.Addr { return relayAddr(strings.Join(l.cfg.Relays, ",")) }

type relayAddr string

func (a relayAddr) Network() string { return "relay" }
func (a relayAddr) String() string  { return string(a) }

// manage opens slots so each relay has cfg.Idle idle ones, within
// MaxSessions, backing off after failures. It returns once the listener is
// closed and every slot has ended.
func (l *Listener) manage() {
	defer close(l.managerEnd)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		closing := l.idleCtx.Err() != nil
		open := 0
		for _, lk := range l.links {
			open += lk.connecting + lk.idle + lk.active
		}
		if closing && open == 0 {
			return
		}
		now := time.Now()
		var nextRetry time.Time
		for _, lk := range l.links {
			// While Accept lags by Idle sessions, replacing slots would only
			// queue more clients behind it: the backlog stays bounded.
			for !closing && lk.connecting+lk.idle < l.cfg.Idle && l.unaccepted < l.cfg.Idle && (l.cfg.MaxSessions == 0 || open < l.cfg.MaxSessions) {
				if lk.failures > 0 {
					// After a failure, one probe at a time, once the backoff ends.
					if lk.connecting > 0 {
						break
					}
					if now.Before(lk.retryAt) {
						if nextRetry.IsZero() || lk.retryAt.Before(nextRetry) {
							nextRetry = lk.retryAt
						}
						break
					}
				}
				lk.connecting++
				open++
				l.slots.Add(1)
				go l.runSlot(lk, lk.outage)
			}
		}
		if !nextRetry.IsZero() {
			timer.Reset(time.Until(nextRetry))
		}
		select {
		case ev := <-l.events:
			l.handle(ev)
		case <-timer.C:
		case <-l.idleCtx.Done():
			// Re-evaluate: no new slots; wait for the open ones to end.
			if closing {
				ev := <-l.events
				l.handle(ev)
			}
		}
		timer.Stop()
	}
}

func (l *Listener) handle(ev event) {
	lk := ev.link
	switch ev.kind {
	case evAttached:
		lk.connecting--
		lk.idle++
		lk.failures = 0
		if !lk.ready && lk.idle >= l.cfg.Idle {
			lk.ready = true
			l.log.Info("relay attached", "relay", lk.addr, "idle_slots", lk.idle)
		}
	case evFailed:
		lk.connecting--
		if ev.outage == lk.outage { // slots started together fail together: one failure
			l.backoff(lk, ev.err)
		}
	case evOpened:
		lk.idle--
		lk.active++
		l.unaccepted++
	case evHandedOff:
		l.unaccepted--
	case evIdleEnded:
		lk.idle--
		if ev.err != nil && ev.outage == lk.outage && l.idleCtx.Err() == nil {
			l.backoff(lk, ev.err)
		}
	case evEnded:
		lk.active--
	}
}

// backoff schedules the next attempt on lk: capped, jittered exponential.
func (l *Listener) backoff(lk *link, err error) {
	if l.idleCtx.Err() != nil {
		return
	}
	lk.failures++
	lk.outage++
	lk.ready = false
	d := l.cfg.BackoffBase << min(lk.failures-1, 20)
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument, codes.FailedPrecondition:
		d = l.cfg.BackoffMax // retrying soon will not help
	}
	d = min(d, l.cfg.BackoffMax)
	d = d/2 + rand.N(d/2+1) // jitter: spread agents that failed together
	lk.retryAt = time.Now().Add(d)
	msg := "relay unreachable"
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unavailable {
		msg = "relay refused the slot"
		err = fmt.Errorf("%s: %s", st.Code(), st.Message())
	}
	l.log.Warn(msg, "relay", lk.addr, "err", err, "retry_in", d.Round(time.Millisecond), "failures", lk.failures)
}

// runSlot owns one Attach stream from open to end.
func (l *Listener) runSlot(lk *link, outage int) {
	emit := func(kind eventKind, err error) {
		l.events <- event{link: lk, kind: kind, err: err, outage: outage}
	}
	defer l.slots.Done()
	ctx, cancel := context.WithCancel(l.sessCtx)
	defer cancel()
	stopIdle := context.AfterFunc(l.idleCtx, cancel)

	// The stream's setup and its first frames are the deepest calls a slot
	// makes; on a goroutine of their own they do not double the stack that
	// this one keeps, parked in Recv, for the session's whole life.
	var (
		welcome *relayv1.Welcome
		stream  relayv1.HostService_AttachClient
		err     error
	)
	shallow(func() { welcome, stream, err = l.attach(ctx, lk) })
	if err != nil {
		stopIdle()
		emit(evFailed, err)
		return
	}
	emit(evAttached, nil)

	var first *relayv1.AttachResponse
	shallow(func() { first, err = stream.Recv() })
	var open *relayv1.Open
	if err == nil {
		open = first.GetOpen()
		if open == nil {
			err = fmt.Errorf("relay sent %T while the slot was idle", first.GetFrame())
			if first.GetClose() != nil {
				err = fmt.Errorf("relay closed the idle slot: %s", first.GetClose().GetDetail())
			}
		}
	}
	if !stopIdle() && err == nil {
		err = net.ErrClosed // the listener closed as Open arrived: too late
	}
	if err != nil {
		if l.idleCtx.Err() != nil || err == io.EOF {
			err = nil
		}
		emit(evIdleEnded, err)
		return
	}
	emit(evOpened, nil)
	defer emit(evEnded, nil)

	maxData := int(welcome.GetMaxDataBytes())
	if maxData <= 0 {
		maxData = 16 * 1024
	}
	conn := attachconn.New(attachconn.Config{
		Sender:      &clientSender{stream: stream},
		MaxData:     maxData,
		LocalAddr:   tcpAddr(open.GetListenerAddr()),
		RemoteAddr:  tcpAddr(open.GetClientAddr()),
		AbortReason: relayv1.CloseReason_CLOSE_REASON_HOST_ABORT,
		OnAbort: func(closeSent bool) {
			if !closeSent {
				cancel() // a Write is stuck: ending the stream releases it
			}
		},
	})
	sc := &Conn{conn: conn, open: open, relay: lk.addr}
	stopAbort := context.AfterFunc(ctx, func() {
		conn.DeliverAbort(relayv1.CloseReason_CLOSE_REASON_UNSPECIFIED, fmt.Errorf("agent shutting down: %w", context.Cause(ctx)))
	})
	defer stopAbort()
	select {
	case l.accept <- sc:
		emit(evHandedOff, nil)
	case <-l.idleCtx.Done():
		emit(evHandedOff, nil)
		conn.Abort(errors.New("agent closed before the session was accepted"))
		l.drain(stream)
		return
	}
	l.receive(stream, conn)
}

// shallow runs f on a goroutine of its own and waits for it, so that the
// stack f grows is freed when f returns, instead of staying with a
// goroutine that then parks for a long time (Go shrinks a parked stack only
// while it uses less than a quarter of it).
func shallow(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// attach opens the stream and exchanges Hello and Welcome.
func (l *Listener) attach(ctx context.Context, lk *link) (*relayv1.Welcome, relayv1.HostService_AttachClient, error) {
	// The frame codec decodes Data payloads into pooled buffers; the wire
	// format is plain proto, so any relay understands it.
	stream, err := lk.client.Attach(ctx, grpc.ForceCodecV2(framecodec.Codec{}))
	if err != nil {
		return nil, nil, err
	}
	err = stream.Send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{
		Service: l.cfg.Service, HostId: l.cfg.HostID, Labels: l.cfg.Labels, AgentVersion: l.cfg.AgentVersion,
	}}})
	if err != nil && err != io.EOF {
		return nil, nil, err
	}
	resp, err := stream.Recv() // on a refused Send, Recv returns the status
	if err != nil {
		return nil, nil, err
	}
	welcome := resp.GetWelcome()
	if welcome == nil {
		return nil, nil, status.Errorf(codes.Internal, "relay answered Hello with %T, not Welcome", resp.GetFrame())
	}
	return welcome, stream, nil
}

// receive feeds conn from the stream until the stream ends.
func (l *Listener) receive(stream relayv1.HostService_AttachClient, conn *attachconn.Conn) {
	// One message for the whole stream, not reset between frames: the
	// frame codec reuses its Data message (see framecodec).
	var resp relayv1.AttachResponse
	for {
		if err := stream.RecvMsg(&resp); err != nil {
			st := conn.Stats()
			if err == io.EOF && st.ReadClosed && st.WriteClosed {
				return // both directions closed: the relay ended the RPC with OK
			}
			if err == io.EOF {
				err = errors.New("relay ended the session")
			}
			conn.DeliverAbort(relayv1.CloseReason_CLOSE_REASON_UNSPECIFIED, err)
			return
		}
		switch f := resp.Frame.(type) {
		case *relayv1.AttachResponse_Data:
			// On abort, keep receiving until the relay ends the RPC. Deliver
			// has consumed the payload when it returns: its pooled buffer is
			// free for the next frame.
			conn.Deliver(f.Data.Payload)
			framecodec.Recycle(f.Data.Payload)
			f.Data.Payload = nil
		case *relayv1.AttachResponse_CloseWrite:
			conn.DeliverCloseWrite()
		case *relayv1.AttachResponse_Close:
			conn.DeliverAbort(f.Close.GetReason(), fmt.Errorf("relay closed the session (%s): %s", f.Close.GetReason(), f.Close.GetDetail()))
		default:
			// A frame from a newer relay: ignore it.
		}
	}
}

// drain receives until the stream ends, discarding frames.
func (l *Listener) drain(stream relayv1.HostService_AttachClient) {
	for {
		if _, err := stream.Recv(); err != nil {
			return
		}
	}
}

// clientSender sends the agent's frames, reusing one Data message: grpc
// encodes a message before SendMsg returns.
type clientSender struct {
	stream relayv1.HostService_AttachClient
	msg    relayv1.AttachRequest
	data   relayv1.Data
	frame  relayv1.AttachRequest_Data
}

func (s *clientSender) SendData(p []byte) error {
	s.data.Payload = p
	s.frame.Data = &s.data
	s.msg.Frame = &s.frame
	err := s.stream.Send(&s.msg)
	s.data.Payload = nil
	return err
}

func (s *clientSender) SendCloseWrite() error {
	return s.stream.Send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_CloseWrite{CloseWrite: &relayv1.CloseWrite{}}})
}

func (s *clientSender) SendClose(reason relayv1.CloseReason, detail string) error {
	return s.stream.Send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Close{Close: &relayv1.Close{Reason: reason, Detail: detail}}})
}

// tcpAddr parses "ip:port" as sent by the relay; anything else is kept as text.
func tcpAddr(s string) net.Addr {
	if a, err := net.ResolveTCPAddr("tcp", s); err == nil && a.IP != nil {
		return a
	}
	return textAddr(s)
}

type textAddr string

func (a textAddr) Network() string { return "tcp" }
func (a textAddr) String() string  { return string(a) }
