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
	"math"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/attachconn"
	"github.com/relayproject/relay/internal/framecodec"
	"github.com/relayproject/relay/internal/logging"
	"github.com/relayproject/relay/internal/names"
	"github.com/relayproject/relay/internal/shallow"
	"github.com/relayproject/relay/internal/splice"
)

// DefaultStallTimeout is hostagent's --stall-timeout: as long as nginx's
// proxy_send_timeout, a backend's pause a proxy is expected to bear.
const DefaultStallTimeout = 60 * time.Second

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
	// Weight is the host's relative capacity, sent in Hello: the relays'
	// schedulers give it clients in proportion. Zero means 1.
	Weight int
	// Idle is the number of idle slots kept on each relay; zero means 10.
	Idle int
	// Conns is the number of gRPC (HTTP/2) connections kept to each relay,
	// slots spread over them in turn: each connection has one writer
	// goroutine and one TCP stream, which bound what its sessions move
	// together. Zero means 1: on loopback with 2 cores, 2 and 4 measured no
	// faster (docs/performance.md); a fast link with many busy sessions may
	// differ.
	Conns int
	// MaxSessions caps concurrent sessions (over all relays); no slots are
	// offered while it is reached. Zero means no cap.
	MaxSessions int
	// DialOptions are added to the gRPC dial options (TLS, for instance);
	// without transport credentials among them, the link is plaintext.
	DialOptions []grpc.DialOption
	// DialOptionsFor, if set, adds options for one relay address after
	// DialOptions (TLS for remote relays, plaintext for loopback ones).
	DialOptionsFor func(relay string) []grpc.DialOption
	// ResolveInterval is how often a relay given by DNS name (not an IP
	// address, not localhost) is resolved again: the agent keeps slots on
	// every address the name has, adding and retiring relays as the name
	// changes. Zero means 30s; negative means resolve once, at Listen.
	ResolveInterval time.Duration
	// LookupHost resolves relay names; nil means net.DefaultResolver.
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// AuthBackoff is the wait after a relay refused the agent's
	// credentials (Unauthenticated, PermissionDenied): an operator has to
	// act, retrying sooner would only hammer the relay. Zero means 30s.
	AuthBackoff time.Duration
	// BackoffBase and BackoffMax bound the reconnect delay; zero means
	// 100ms and 5s.
	BackoffBase, BackoffMax time.Duration
	// StreamPerSession opens a new Attach stream for every session. By
	// default the agent asks relays for sequential sessions
	// (Hello.sequential_sessions): a stream whose session ended cleanly
	// is offered again, which saves setting up a stream per session. Up to
	// Idle/2 of a relay's open sessions on such streams then count towards
	// its idle slots, as they come back when they end.
	StreamPerSession bool
	// SlotCredits keeps each relay's idle slots as credits on one stream
	// (Hello.slot_credits) instead of Idle idle streams: an idle slot then
	// costs the relay no stream, and a client given to a credit is
	// claimed with a stream, one round trip to the relay before its
	// first byte moves. A client the relay offered and this agent never
	// claimed (it exited, say) goes to another host untouched. With
	// sequential sessions, a stream whose session ended is offered again
	// as an idle stream (up to Idle per relay), which the relay gives a
	// client before any credit, with no round trip; it is withdrawn after
	// WarmLinger without one (by the relay, Hello.idle_linger, even if this
	// agent has stopped; and by the agent).
	SlotCredits bool
	// WarmLinger is how long, with SlotCredits, a stream whose session
	// ended waits as an idle stream for the next client before it is
	// withdrawn. Zero means 500ms (hostagent --warm-linger).
	WarmLinger time.Duration
	// StallTimeout ends a session whose reader (the program's, or
	// hostagent forward's backend) has taken none of the relay's bytes for
	// this long while they wait, and that moved no byte the other way
	// either: it is aborted with CLOSE_REASON_TIMEOUT, and forward's
	// backend reset. The relay's Close cannot reach a session stuck so
	// (it waits behind the bytes the reader does not take), so without
	// this a client's reset reached such a backend only after the relay's
	// idle timeout (an hour by default), the session held meanwhile.
	// A program reading a Conn that pauses between reads (working on one
	// request while the client has sent the next) looks the same, so zero
	// means none here (only the relay's idle timeout); hostagent sets
	// DefaultStallTimeout (--stall-timeout).
	StallTimeout time.Duration
	// Unavailable starts the agent as SetAvailable(false) leaves it: no
	// slots offered until SetAvailable(true).
	Unavailable bool
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
	if c.Idle < 0 || c.MaxSessions < 0 || c.Conns < 0 {
		return errors.New("agent: Idle, MaxSessions and Conns must not be negative")
	}
	if c.Conns == 0 {
		c.Conns = 1
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
	if c.ResolveInterval == 0 {
		c.ResolveInterval = 30 * time.Second
	}
	if c.WarmLinger <= 0 {
		c.WarmLinger = defaultWarmLinger
	}
	if c.AuthBackoff <= 0 {
		c.AuthBackoff = 30 * time.Second
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
	// As the relay checks a Hello: refused there, every slot would be,
	// at each retry.
	if err := names.HostID(c.HostID); err != nil {
		return fmt.Errorf("agent: HostID %q: %v", c.HostID, err)
	}
	if err := names.Text(c.Service, names.MaxService); err != nil {
		return fmt.Errorf("agent: Service: %v", err)
	}
	if err := names.Labels(c.Labels); err != nil {
		return fmt.Errorf("agent: Labels: %v", err)
	}
	if err := names.Text(c.AgentVersion, names.MaxAgentVersion); err != nil {
		return fmt.Errorf("agent: AgentVersion: %v", err)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Listener is an agent: a net.Listener whose connections are relay sessions.
type Listener struct {
	cfg      Config
	log      *slog.Logger
	instance string  // Hello.agent_instance
	links    []*link // owned by the manager goroutine once it runs
	// shareWarned is the count of relay addresses warnShare last warned
	// of; owned like links.
	shareWarned int
	// sameWarned holds the pairs of relay addresses sameRelay warned of
	// (owned by the manager goroutine).
	sameWarned map[[2]string]bool
	serving    []*link // the manager's scratch: links that may get slots now
	give       []int   // shareCredits' scratch: the credits each of serving gets now
	accept     chan *Conn
	dialOpts   []grpc.DialOption

	resolved     chan resolution // from the resolver to the manager
	resolverDone chan struct{}   // closed when the resolver goroutine ends

	// moveLog throttles "moving an idle slot" lines: a relay back from an
	// outage gets its share one slot at a time, a line each.
	moveLog logging.Every

	idleCtx  context.Context // canceled by Close: idle slots end, no new ones
	stopIdle context.CancelFunc
	sessCtx  context.Context // canceled by Shutdown's deadline: sessions abort
	// abortCtx is canceled by Shutdown's deadline just before sessCtx:
	// each session first tells its relay why (Close{HOST_ABORT}), so that
	// it is not recorded as a host lost.
	abortCtx   context.Context
	abortAll   context.CancelFunc
	stopSess   context.CancelFunc
	events     chan event
	managerEnd chan struct{}
	unaccepted int // sessions opened but not yet taken by Accept; owned by manage
	// unavailable: SetAvailable(false), no slots offered; owned by manage.
	unavailable bool
	slots       sync.WaitGroup
	stats       stats
	relays      relayView
}

// stats are counters kept for Stats; written by the manager only, read by
// anyone.
type stats struct {
	idle, active, sessions, reconnects, drains, streams, capped atomic.Int64
}

// Stats is a snapshot of an agent's counters, summed over its relays.
type Stats struct {
	// IdleSlots are the slots attached and waiting for a client.
	IdleSlots int
	// ActiveSessions are the sessions open now.
	ActiveSessions int
	// SessionsTotal counts the sessions opened since Listen.
	SessionsTotal uint64
	// Reconnects counts the times a relay failed and the agent backed off
	// before trying it again.
	Reconnects uint64
	// Drains counts the drains that made the agent pause on a relay: a
	// drain that answers each retry with Drain again (an operator's
	// DrainHost) counts once, until a slot is welcomed there.
	Drains uint64
	// StreamsOpened counts the Attach streams opened since Listen; with
	// sequential sessions, fewer than the sessions.
	StreamsOpened uint64
	// CappedRelays counts the relays whose slot cap (relayd
	// --max-slots-per-host or --max-slots-per-conn) holds this agent's
	// slots below what it would open now.
	CappedRelays int
}

// Stats returns the agent's counters.
func (l *Listener) Stats() Stats {
	return Stats{
		IdleSlots:      int(l.stats.idle.Load()),
		ActiveSessions: int(l.stats.active.Load()),
		SessionsTotal:  uint64(l.stats.sessions.Load()),
		Reconnects:     uint64(l.stats.reconnects.Load()),
		Drains:         uint64(l.stats.drains.Load()),
		StreamsOpened:  uint64(l.stats.streams.Load()),
		CappedRelays:   int(l.stats.capped.Load()),
	}
}

// link is one relay.
type link struct {
	addr    string             // dial address: the --relay entry, or one address of its name
	entry   string             // the --relay entry it comes from
	ccs     []*grpc.ClientConn // Config.Conns of them
	clients []relayv1.HostServiceClient
	next    atomic.Uint32 // the connection the next slot opens on, mod len(clients)
	// idleCtx ends the link's idle slots: canceled by Close (through the
	// listener's) or when the link is retired.
	idleCtx  context.Context
	stopIdle context.CancelFunc
	retired  bool // its address left DNS: no new slots; closed once empty

	// Counts, owned by the manager goroutine.
	connecting, idle, active int
	returning                int // active sessions whose stream may be offered again
	failures                 int
	retryAt                  time.Time
	denied                   bool                   // the failure that set retryAt refused the agent's credentials
	unreachable              bool                   // the failure that set retryAt found none of ccs connected
	lostConn                 bool                   // the failure that set retryAt was Unavailable (Relays: up again once a connection is)
	welcomed                 bool                   // the relay has welcomed a slot or a credit stream of lk, ever (Relays)
	ready                    bool                   // "relay attached" was logged since the last failure or drain
	capped                   bool                   // the relay refused a slot for its cap while holding idle ones: its pool is as full as it gets
	capFreed                 int                    // while capped: streams of lk that ended, whose room a slot or credit may take again without a probe (capFree)
	capHeld                  int                    // while capped: the most streams of lk the relay held at a refusal (uncapIfWhole)
	capProbe                 bool                   // the slot connecting is a probe past a whole pool at the cap (manage)
	capProbeAt               time.Time              // no such probe before then
	warnedAt                 time.Time              // when a failure was last logged at Warn (or Error); zero: none since "relay attached"
	warnedKinds              map[string]time.Time   // when each kind of failure (message, code and hint) was last logged at Warn, this outage
	outage                   int                    // bumped by each failure that starts a backoff
	drainedUntil             time.Time              // the relay sent Drain: no new slots before
	drainProbe               bool                   // since that Drain, no slot was welcomed: one at a time, until one is
	starvedAt                time.Time              // since when lk has had no idle slot (rebalance), or zero
	drainLogged              bool                   // a Drain was logged at Info since a slot was last welcomed
	drainLoggedReason        relayv1.DrainReason    // and its reason
	relayID                  string                 // Welcome.relay_id, as the manager last heard it (evRelayID)
	welcomedBy               atomic.Pointer[string] // the last Welcome.relay_id a stream of lk saw

	// Slot credits (Config.SlotCredits), owned by the manager goroutine.
	creditRunning bool     // the credit stream's goroutine runs
	credits       int      // granted and not yet offered
	asked         int      // credits asked for in Hello, until Welcome says how many
	creditCap     int      // the most credits the relay took (Welcome), 0: Idle
	granter       *granter // the credit stream's, once the relay welcomed it

	// Idle slots the manager may withdraw (Welcome.withdraw), to move
	// MaxSessions' share to a relay short of it; owned by the manager.
	withdrawable []*withdrawer
	withdrawing  int // asked to withdraw, not yet ended or opened
}

// drainError is a Drain frame from the relay, seen as the end of a slot.
type drainError struct{ drain *relayv1.Drain }

func (e *drainError) Error() string {
	return fmt.Sprintf("relay drained the slot (%s): %s", e.drain.GetReason(), e.drain.GetDetail())
}

type eventKind int

const (
	evAttached        eventKind = iota // Welcome received: connecting → idle
	evFailed                           // the stream failed before Welcome (err nil: ended, no failure): connecting → none
	evOpened                           // Open received: idle → active
	evIdleEnded                        // an idle slot ended: idle → none
	evEnded                            // a session's stream ended: active → none
	evHandedOff                        // a session left the accept queue (accepted, or dropped on Close)
	evSessionEnd                       // a session ended cleanly on a stream that can carry another: active → connecting, or none (reply)
	evCreditsAttached                  // the credit stream was welcomed with credits
	evOffer                            // the relay offered a client: a credit → a claim (connecting)
	evCreditsEnded                     // the credit stream ended: its credits are gone
	evAvailable                        // SetAvailable: available says which
	evRetryRefused                     // RetryRefused: credentials reloaded
	evRelayID                          // a stream of the link was welcomed by a relay of another relay_id than the last
)

type event struct {
	link       *link
	kind       eventKind
	err        error
	outage     int         // the link's outage count when the slot started
	sequential bool        // evOpened, evEnded: the stream may carry another session
	slot       *withdrawer // evAttached, evOpened, evIdleEnded: the idle slot's, if it can be withdrawn
	reply      chan bool   // evSessionEnd: whether to offer the stream again
	claim      string      // evOffer: the offer's claim id; evRelayID: Welcome.relay_id (not a field of its own: a larger event grows the stack a slot keeps)
	credits    int         // evCreditsAttached: the credits the relay took
	granter    *granter    // evCreditsAttached: sends more credits
	available  bool        // evAvailable
	again      bool        // evAttached, evFailed: a stream offered again after its session, not a new one
}

// newInstanceID is a Listener's Hello.agent_instance: 64 random bits.
func newInstanceID() string { return strconv.FormatUint(rand.Uint64(), 16) }

// Listen starts an agent and returns at once; slots attach in the
// background and reconnect on failure. ctx bounds the agent's life like a
// call to Shutdown with an expired context.
func Listen(ctx context.Context, cfg Config) (*Listener, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	l := &Listener{cfg: cfg, log: cfg.Logger, accept: make(chan *Conn), events: make(chan event, 64), managerEnd: make(chan struct{}), instance: newInstanceID(), unavailable: cfg.Unavailable}
	l.sessCtx, l.stopSess = context.WithCancel(context.Background())
	l.abortCtx, l.abortAll = context.WithCancel(context.Background())
	l.idleCtx, l.stopIdle = context.WithCancel(l.sessCtx)
	l.dialOpts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		// grpc-go's own reconnect backoff grows to 120s; keep it within ours,
		// so a restarted relay gets its slots back within BackoffMax.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: cfg.BackoffBase, Multiplier: 1.6, Jitter: 0.2, MaxDelay: cfg.BackoffMax},
			MinConnectTimeout: 5 * time.Second,
		}),
	}, attachconn.DialWindowOptions()...)
	l.dialOpts = append(l.dialOpts, cfg.DialOptions...)
	if err := l.initialLinks(ctx); err != nil {
		for _, lk := range l.links {
			lk.close()
		}
		return nil, err
	}
	l.warnShare()
	l.startResolver()
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
		// Each open session sends Close{HOST_ABORT}, which the relay
		// answers by ending its stream, so that it records a planned stop.
		// A session whose own send is stuck on flow control cannot send
		// it: its stream is canceled at once (the relay records a host
		// lost). Streams not ended within a second are canceled then.
		l.abortAll()
		select {
		case <-l.managerEnd:
		case <-time.After(time.Second):
		}
		l.stopSess()
		<-l.managerEnd
	}
	l.abortAll()
	l.stopSess()
	l.slots.Wait()
	<-l.resolverDone
	for _, lk := range l.links {
		lk.close()
	}
	return err
}

// SetAvailable says whether the agent can serve sessions now. While it
// cannot (its backend is down, say), it offers no slots: idle slots are
// withdrawn where the relay takes Withdraw, no new ones are opened, and a
// stream whose session ended is not offered again. A relay then sends
// clients to other hosts, or keeps them in its queue, rather than giving
// them a session that would fail. Open sessions go on. Slots of a relay
// without Withdraw stay until they are used, and credits already granted
// (Config.SlotCredits) cannot be taken back. SetAvailable(true) offers
// slots again.
func (l *Listener) SetAvailable(ok bool) {
	select {
	case l.events <- event{kind: evAvailable, available: ok}:
	case <-l.managerEnd:
	}
}

// RetryRefused tries the relays that refused this agent's credentials
// (Unauthenticated, PermissionDenied) again at once, rather than at the
// end of Config.AuthBackoff: call it once the credentials may have been
// fixed (a reloaded token).
func (l *Listener) RetryRefused() {
	select {
	case l.events <- event{kind: evRetryRefused}:
	case <-l.managerEnd:
	}
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
		open, other := 0, 0 // other: credit streams
		for _, lk := range l.links {
			open += lk.connecting + lk.idle + lk.active + lk.credits + lk.asked
			if lk.creditRunning {
				other++
			}
		}
		if closing && open+other == 0 {
			return
		}
		now := time.Now()
		var nextRetry time.Time
		serving := l.serving[:0] // the links that may get slots now
		for _, lk := range l.links {
			if lk.retired {
				continue
			}
			if !closing && now.Before(lk.drainedUntil) {
				// The relay asked for no slots for now; the other relays
				// are served as usual.
				if nextRetry.IsZero() || lk.drainedUntil.Before(nextRetry) {
					nextRetry = lk.drainedUntil
				}
				continue
			}
			serving = append(serving, lk)
		}
		l.serving = serving
		if l.cfg.SlotCredits {
			// MaxSessions is shared out over every relay, a drained one
			// too (as over one that is down): credits cannot be taken
			// back, so a relay that took a drained one's share would keep
			// it after the drain, and that relay would get none.
			relays := 0
			for _, lk := range l.links {
				if !lk.retired {
					relays++
				}
			}
			if !closing && !l.unavailable {
				l.shareCredits(now, &nextRetry, &open, relays)
			}
			l.coolWarm(now, &nextRetry)
		}
		// Each new slot goes to the relay with the fewest, so that a
		// MaxSessions below Idle × relays is shared out rather than taken
		// by the first relay listed (a client of the last one would find
		// no slot on an idle agent).
		for !closing && !l.unavailable && !l.cfg.SlotCredits && l.unaccepted < l.cfg.Idle && (l.cfg.MaxSessions == 0 || open < l.cfg.MaxSessions) {
			var next *link
			nextHas, nextStarved := 0, false
			for _, lk := range serving {
				// While Accept lags by Idle sessions, replacing slots would
				// only queue more clients behind it: the backlog stays
				// bounded. Sessions on streams that come back when they end
				// count for up to half of the idle slots: a short session's
				// stream is offered again sooner, and far cheaper, than a
				// new one is set up.
				has := lk.connecting + lk.idle + min(lk.returning, l.cfg.Idle/2)
				if has >= l.cfg.Idle {
					continue
				}
				if lk.drainProbe && lk.connecting > 0 {
					// After a Drain, one probe: a relay that drains this
					// host until an operator undrains it answers every
					// slot with Drain again, each time it ends.
					continue
				}
				if lk.failures > 0 && !(lk.capped && lk.capFreed > 0) {
					// After a failure, one probe at a time, once the backoff
					// ends; at a relay's cap, beyond the room a stream of lk
					// left as it ended (capFree).
					if lk.connecting > 0 {
						continue
					}
					if lk.backingOff(now, &nextRetry) {
						continue
					}
				}
				// A relay with no idle slot at all first: its next client
				// has none, however many of its sessions' streams will
				// come back (see rebalance).
				if starved := lk.connecting+lk.idle == 0; next == nil || starved && !nextStarved || starved == nextStarved && has < nextHas {
					next, nextHas, nextStarved = lk, has, starved
				}
			}
			if next == nil {
				break
			}
			next.connecting++
			if next.capFreed > 0 {
				next.capFreed--
			}
			open++
			l.slots.Add(1)
			go l.runSlot(next, next.outage, "")
		}
		if !closing && !l.unavailable && !l.cfg.SlotCredits {
			for _, lk := range serving {
				// A capped link whose pool is whole asks past it once per
				// backoff: welcomed, the cap has room for more than the
				// agent needs (another agent of its host id left), which
				// a whole pool cannot show when the refusal came one slot
				// short of it (uncapIfWhole). The extra slot is withdrawn.
				// At most one a minute: a cap that a whole pool fills
				// exactly refuses every one, at the backoff's pace 12 a
				// minute more than before (measured by hand).
				// Not while a stream of lk that ended has left room the
				// probe would take (capFreed): its welcome would show
				// nothing (a review: 71 refused streams against 9).
				if !lk.capped || lk.capFreed > 0 || lk.connecting > 0 || lk.idle < l.cfg.Idle || l.unaccepted >= l.cfg.Idle ||
					l.cfg.MaxSessions > 0 && open >= l.cfg.MaxSessions || lk.backingOff(now, &nextRetry) {
					continue
				}
				if now.Before(lk.capProbeAt) {
					if nextRetry.IsZero() || lk.capProbeAt.Before(nextRetry) {
						nextRetry = lk.capProbeAt
					}
					continue
				}
				lk.capProbe, lk.capProbeAt = true, now.Add(capProbeEvery)
				lk.connecting++
				open++
				l.slots.Add(1)
				go l.runSlot(lk, lk.outage, "")
			}
		}
		for _, lk := range l.links {
			if lk.connecting+lk.idle > 0 {
				lk.starvedAt = time.Time{} // see rebalance
			}
		}
		if !closing && !l.unavailable && !l.cfg.SlotCredits && l.cfg.MaxSessions > 0 && open >= l.cfg.MaxSessions && l.unaccepted < l.cfg.Idle {
			l.rebalance(now, &nextRetry)
		}
		if !closing && !l.unavailable && !l.cfg.SlotCredits && l.unaccepted < l.cfg.Idle {
			full := l.cfg.MaxSessions > 0 && open >= l.cfg.MaxSessions
			for _, lk := range serving {
				l.logAttached(lk, full)
			}
		}
		l.publishRelays(now)
		if !nextRetry.IsZero() {
			timer.Reset(time.Until(nextRetry))
		}
		select {
		case ev := <-l.events:
			l.handle(ev)
			l.reapRetired()
		case res := <-l.resolved:
			l.applyResolution(res)
			l.reapRetired()
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

// logAttached logs "relay attached", once per attach, when lk holds every
// idle slot it can have now: after the slot loop of manage, which has
// opened what lk gets, none of them is still connecting. That is Idle
// (less the returning sessions that count for idle slots), or lk's share
// when MaxSessions is reached (full: open sessions count towards it, and
// the slots are shared out over the relays), or what the relay's cap lets
// it hold (lk.capped). A relay backing off is not attached.
func (l *Listener) logAttached(lk *link, full bool) {
	if lk.ready || lk.connecting > 0 || lk.idle == 0 || (lk.failures > 0 && !lk.capped) {
		return
	}
	has := lk.idle + min(lk.returning, l.cfg.Idle/2)
	if has < l.cfg.Idle && !full && !lk.capped {
		return // manage opens more on it
	}
	lk.ready = true
	if !lk.capped {
		// The outage, if any, is over: the next failure starts another,
		// logged at Warn at once. Not at the relay's cap, refused again at
		// each probe: those refusals stay throttled.
		lk.warnedAt = time.Time{}
	}
	l.log.Info("relay attached", "relay", lk.addr, "idle_slots", lk.idle)
}

func (l *Listener) handle(ev event) {
	lk := ev.link
	switch ev.kind {
	case evRetryRefused:
		for _, lk := range l.links {
			if lk.denied && lk.failures > 0 {
				// At once, and a refusal again is said at once too: the
				// operator is waiting to see whether the fix took.
				lk.retryAt, lk.warnedAt = time.Now(), time.Time{}
			}
		}
	case evRelayID:
		l.sameRelay(lk, ev.claim)
	case evAvailable:
		if l.unavailable = !ev.available; l.unavailable {
			for _, lk := range l.links {
				l.withdrawIdle(lk)
			}
		}
	case evAttached:
		lk.connecting--
		lk.welcomed, lk.denied = true, false // a welcome: the credentials are good now
		probe := lk.capProbe
		lk.capProbe = false
		lk.idle++
		if ev.slot != nil {
			ev.slot.since = time.Now()
			lk.withdrawable = append(lk.withdrawable, ev.slot)
		}
		if l.unavailable {
			l.withdrawIdle(lk) // it was opening when the agent became unavailable
		}
		l.stats.idle.Add(1)
		if lk.capped {
			// The failures stay: a probe welcomed says the cap is higher
			// by one, or a slot freed, not that it is gone; with none
			// left, every slot up to Idle would open at once, and all but
			// one be refused. Until the cap is seen to have grown
			// (uncapIfWhole), or a probe past a whole pool is welcomed.
			// The probe's welcome counts as any other: the relay must
			// hold two streams of lk more than at the refusals (a
			// refusal one short of Idle: a whole pool and the probe).
			l.uncapIfWhole(lk)
			if probe && lk.idle > l.cfg.Idle && len(lk.withdrawable) > 0 {
				l.withdrawOne(lk) // the pool back to Idle
			}
			break
		}
		if ev.again {
			// An open stream taken again says nothing of new ones (a
			// relay at its slot cap, say, still takes it). Ending the
			// failures here made each such session restart the backoff,
			// with a log line and a refused stream each.
			break
		}
		if lk.failures > 0 && !lk.capped {
			// A slot attached: the outage is over, even if "relay
			// attached" never comes (clients take each slot as it
			// attaches): the next failure is a new outage, at Warn.
			lk.warnedAt = time.Time{}
		}
		lk.failures, lk.drainLogged, lk.drainProbe = 0, false, false
		// "relay attached" is logged by manage, once it has opened every
		// slot lk gets now (logAttached).
	case evFailed:
		lk.connecting--
		lk.capProbe = false
		if ev.again {
			lk.capFree() // a session's stream not taken again
		}
		var de *drainError
		if errors.As(ev.err, &de) {
			l.drained(lk, de)
		} else if ev.err != nil && ev.outage == lk.outage { // slots started together fail together: one failure
			l.backoff(lk, ev.err)
		}
	case evOpened:
		lk.forgetSlot(ev.slot)
		lk.idle--
		lk.active++
		if ev.sequential {
			lk.returning++
		}
		l.stats.idle.Add(-1)
		l.stats.active.Add(1)
		l.stats.sessions.Add(1)
		l.unaccepted++
	case evHandedOff:
		l.unaccepted--
	case evIdleEnded:
		lk.forgetSlot(ev.slot)
		lk.idle--
		lk.capFree()
		l.stats.idle.Add(-1)
		var de *drainError
		if errors.As(ev.err, &de) {
			l.drained(lk, de)
		} else if ev.err != nil && ev.outage == lk.outage && l.idleCtx.Err() == nil {
			l.backoff(lk, ev.err)
		}
	case evEnded:
		lk.active--
		lk.capFree()
		l.stats.active.Add(-1)
		if ev.sequential {
			lk.returning--
		}
	case evSessionEnd:
		lk.active--
		lk.returning--
		l.stats.active.Add(-1)
		// Offered again while the relay is short of idle slots; given up
		// otherwise (after a burst, or closing), which the relay cannot
		// mistake for anything else: it assigns no client before Welcome.
		again := l.idleCtx.Err() == nil && lk.idleCtx.Err() == nil && !lk.retired && !l.unavailable &&
			!time.Now().Before(lk.drainedUntil)
		if l.cfg.SlotCredits {
			// A warm stream: the relay gives it a client before any credit,
			// with no Offer and claim between them (coolWarm withdraws it
			// after WarmLinger unused). Up to Idle of them.
			again = again && lk.connecting+lk.idle < l.cfg.Idle
		} else {
			// Or, beyond Idle, when lk's other slots are all still on
			// their way: given up, the stream would leave the relay with
			// no slot of this agent for a moment ("host detached", and
			// its counts in ListHosts starting again), as with Idle 1,
			// whose replacement opens as the session begins. The next
			// session's end trims the pool back to Idle.
			again = again && (lk.connecting+lk.idle < l.cfg.Idle || lk.idle+lk.active == 0) && !l.anotherRelayShort(lk)
		}
		if again {
			lk.connecting++
		} else {
			lk.capFree()
		}
		ev.reply <- again
	case evCreditsAttached:
		lk.welcomed, lk.denied = true, false
		lk.granter = ev.granter
		lk.credits = ev.credits
		if ev.credits < lk.asked {
			// The relay took fewer (its --max-credits): asking for more
			// would only have the stream refused.
			lk.creditCap = ev.credits
		}
		lk.asked = 0
		l.stats.idle.Add(int64(ev.credits))
		lk.failures, lk.drainLogged = 0, false
		if !lk.ready {
			// The credit stream asked at once for every credit lk gets now
			// (its share of MaxSessions, see creditTarget), and the relay
			// took what its --max-credits allows: the pool is complete.
			lk.ready, lk.warnedAt = true, time.Time{} // the outage, if any, is over
			l.log.Info("relay attached", "relay", lk.addr, "idle_slots", ev.credits, "slot_credits", true)
		}
	case evOffer:
		if lk.credits > 0 { // a relay that offers more than it was granted gets no credit back for it
			lk.credits--
			l.stats.idle.Add(-1)
		}
		lk.connecting++
		l.slots.Add(1)
		// Its failure is the link's now, whenever the credit stream began:
		// a claim the relay refuses (its slot cap) must back off, or the
		// refill of credits it brings makes the next one at once.
		go l.runSlot(lk, lk.outage, ev.claim)
	case evCreditsEnded:
		lk.creditRunning = false
		lk.asked, lk.creditCap = 0, 0
		lk.granter = nil
		l.stats.idle.Add(-int64(lk.credits))
		if lk.capped {
			// Room the relay had shown: the next credit stream asks for
			// it again at once (the stream frees none, the cap not
			// counting it).
			lk.capFreed += lk.credits
		}
		lk.credits = 0
		var de *drainError
		if errors.As(ev.err, &de) {
			l.drained(lk, de)
		} else if ev.err != nil && ev.outage == lk.outage && l.idleCtx.Err() == nil {
			l.backoff(lk, ev.err)
		}
	}
}

// streamsHeld counts lk's streams that the relay has welcomed and holds
// now: idle slots, sessions, and the credit stream (which relays before
// 2026-11-28 counted in --max-slots-per-host; now a claim refused while
// lk holds it says that sessions of this host id fill the cap).
func (lk *link) streamsHeld() int {
	n := lk.idle + lk.active
	if lk.creditRunning {
		n++
	}
	return n
}

// capFree notes, on a link the relay caps, that a stream the relay counted
// has ended: the next slot or credit takes its room at once, with no probe
// and no backoff. Before, each session's end on a capped relay made a
// probe and, once welcomed, the slots up to Idle, all refused but one;
// with --stream-per-session, clients waited out the backoff (26
// sessions/s where the cap allowed a thousand).
func (lk *link) capFree() {
	if lk.capped {
		lk.capFreed++
	}
}

// anotherRelayShort reports whether, with MaxSessions reached, a stream of
// lk whose session ended should go to another relay instead: one with fewer
// slots that could take one now (a relay back from an outage or a drain,
// whose share lk took meanwhile). The manager then opens it there.
func (l *Listener) anotherRelayShort(lk *link) bool {
	if l.cfg.MaxSessions == 0 {
		return false
	}
	now := time.Now()
	// Counted as manage and rebalance count (sessions' streams for up to
	// half of Idle): with idle slots alone, a relay holding a long session
	// gave up every stream whose session ended there, rebalance moved a
	// slot back, and so on, for as long as clients came (QA: 163 moves in
	// 9 s, a line a second).
	has := func(lk *link) int { return lk.connecting + lk.idle + min(lk.returning, l.cfg.Idle/2) }
	mine := has(lk) // without the stream whose session ended
	for _, o := range l.links {
		if o == lk || o.retired || now.Before(o.drainedUntil) || o.creditRunning || o.drainProbe && o.connecting > 0 {
			continue
		}
		if o.failures > 0 && (o.connecting > 0 || now.Before(o.retryAt)) {
			continue // not to be tried yet: keep the stream where it is
		}
		if has(o) < mine { // lk would have mine+1 with the stream
			return true
		}
	}
	return false
}

// rebalance moves one idle slot, with MaxSessions reached, from the relay
// holding the most to one short of its share that could take a slot now (a
// relay back from an outage or a drain, which would otherwise get slots
// only as sessions end elsewhere: never, on an agent without traffic). The
// slot is withdrawn (Withdraw, which cannot take a client's session away);
// once it has ended, manage opens the next slot on the relay with the
// fewest. One withdrawal at a time, each only once the relay is known to
// be reachable.
func (l *Listener) rebalance(now time.Time, nextRetry *time.Time) {
	for _, lk := range l.links {
		if lk.withdrawing > 0 {
			return
		}
	}
	has := func(lk *link) int { return lk.connecting + lk.idle + min(lk.returning, l.cfg.Idle/2) }
	var short, starved *link
	for _, lk := range l.serving {
		if has(lk) >= l.cfg.Idle {
			continue
		}
		if lk.drainProbe && lk.connecting > 0 {
			continue // its probe first, as in manage: a slot moved to it now would go back
		}
		if lk.failures > 0 {
			if lk.connecting > 0 {
				continue
			}
			if now.Before(lk.retryAt) {
				if nextRetry.IsZero() || lk.retryAt.Before(*nextRetry) {
					*nextRetry = lk.retryAt
				}
				continue
			}
			// A relay still down would fail the probe that the withdrawn
			// slot becomes, and the slot would go back: a stream churned
			// every backoff for as long as the outage lasts. So only once
			// its connection is back (grpc-go redials it within
			// BackoffMax); until then, look again now and then.
			if !lk.connected() {
				if recheck := now.Add(rebalanceRecheck); nextRetry.IsZero() || recheck.Before(*nextRetry) {
					*nextRetry = recheck
				}
				continue
			}
		}
		if short == nil || has(lk) < has(short) {
			short = lk
		}
		if lk.connecting+lk.idle == 0 && starved == nil {
			// Starved for starveGrace, not for a moment: a short session
			// that took a relay's last idle slot ends within it, and a
			// slot moved to that relay for it would then be one too many
			// there, and be moved back by the share rule below.
			if lk.starvedAt.IsZero() {
				lk.starvedAt = now
			}
			if at := lk.starvedAt.Add(starveGrace); now.Before(at) {
				if nextRetry.IsZero() || at.Before(*nextRetry) {
					*nextRetry = at
				}
			} else {
				starved = lk
			}
		}
	}
	if short == nil {
		return
	}
	var long *link
	for _, lk := range l.links {
		// Never a relay's last idle slot: its next client would have none
		// (its sessions' streams count in has), and the next slot would
		// go straight back to it, as to any relay with none idle: a
		// withdraw and an open every round trip, for good.
		if lk == short || len(lk.withdrawable) == 0 || lk.connecting+lk.idle < 2 {
			continue
		}
		if long == nil || has(lk) > has(long) {
			long = lk
		}
	}
	if long == nil || has(long) <= has(short)+1 {
		// Shared out. But a relay whose every slot is in a session has
		// none for its next client, although its sessions' streams count
		// in its share: with a load balancer that sends one relay more
		// clients, they waited for --assign-timeout, and were reset, while
		// the agent held idle slots elsewhere. Move one to it from a relay
		// with two or more.
		if starved == nil {
			return
		}
		long = nil
		for _, lk := range l.links {
			if lk != starved && len(lk.withdrawable) >= 2 && (long == nil || len(lk.withdrawable) > len(long.withdrawable)) {
				long = lk
			}
		}
		if long == nil {
			return
		}
		l.log.Debug("moving an idle slot to a relay whose slots are all in sessions", "from_relay", long.addr, "to_relay", starved.addr)
		l.withdrawOne(long)
		return
	}
	// While the relay short of slots is failing, or drained (an operator's
	// drain answers each retry with Drain), each move is a probe that may
	// fail again: not worth a line each.
	level := slog.LevelInfo
	if short.failures > 0 || short.drainProbe {
		level = slog.LevelDebug
	}
	if level == slog.LevelInfo {
		l.moveLog.Do(func(skipped int) {
			l.log.Info("moving an idle slot to a relay short of its share of --max-sessions",
				"from_relay", long.addr, "to_relay", short.addr, "not_logged_since_last_line", skipped)
		})
	} else {
		l.log.Debug("moving an idle slot to a relay short of its share of --max-sessions", "from_relay", long.addr, "to_relay", short.addr)
	}
	l.withdrawOne(long)
}

// withdrawOne withdraws long's newest idle slot that can be; once it has
// ended, manage opens the next slot on the relay with the fewest.
func (l *Listener) withdrawOne(long *link) {
	w := long.withdrawable[len(long.withdrawable)-1]
	long.withdrawable = long.withdrawable[:len(long.withdrawable)-1]
	l.withdrawSlot(long, w)
}

// withdrawSlot sends w's Withdraw, off the manager's goroutine; w has left
// lk.withdrawable.
func (l *Listener) withdrawSlot(lk *link, w *withdrawer) {
	w.requested = true
	lk.withdrawing++
	l.slots.Add(1)
	go func() {
		defer l.slots.Done()
		w.withdraw()
	}()
}

// withdrawIdle withdraws every idle slot of lk that can be; each ends (or
// opens a session that crossed the Withdraw) as with rebalance.
func (l *Listener) withdrawIdle(lk *link) {
	for _, w := range lk.withdrawable {
		l.withdrawSlot(lk, w)
	}
	lk.withdrawable = nil
}

// starveGrace is how long a relay has no idle slot of this agent, with
// MaxSessions reached, before rebalance moves it one from another relay.
const starveGrace = 100 * time.Millisecond

// rebalanceRecheck is how often rebalance looks whether the connection to
// a relay short of slots, and failing, is back.
const rebalanceRecheck = 200 * time.Millisecond

// connected reports whether one of lk's gRPC connections is up; an idle
// one is asked to connect.
func (lk *link) connected() bool {
	up := false
	for _, cc := range lk.ccs {
		switch cc.GetState() {
		case connectivity.Ready:
			up = true
		case connectivity.Idle:
			cc.Connect()
		}
	}
	return up
}

// backingOff reports whether lk's backoff runs at now, and brings
// *nextRetry forward to when it ends. A backoff for a relay that could not
// be reached ends early once one of lk's connections is up: gRPC's own
// reconnect backoff runs under the agent's, and waiting out both after a
// relay's restart took up to twice the 5 s the README promises.
func (lk *link) backingOff(now time.Time, nextRetry *time.Time) bool {
	if !now.Before(lk.retryAt) {
		return false
	}
	if lk.unreachable && lk.connected() {
		lk.retryAt = now
		return false
	}
	at := lk.retryAt
	if recheck := now.Add(rebalanceRecheck); lk.unreachable && recheck.Before(at) {
		at = recheck // look again then
	}
	if nextRetry.IsZero() || at.Before(*nextRetry) {
		*nextRetry = at
	}
	return true
}

// forgetSlot drops an idle slot that has opened a session or ended from
// the ones the manager may withdraw.
func (lk *link) forgetSlot(w *withdrawer) {
	if w == nil {
		return
	}
	if w.requested {
		lk.withdrawing--
		return
	}
	if i := slices.Index(lk.withdrawable, w); i >= 0 {
		lk.withdrawable = slices.Delete(lk.withdrawable, i, i+1)
	}
}

// withdrawer withdraws an idle slot (Welcome.withdraw): it sends Withdraw
// unless Open has come. Its lock orders that Send against the session's
// first, so the stream never has two Sends at once.
type withdrawer struct {
	stream    relayv1.HostService_AttachClient
	requested bool      // the manager asked for the withdrawal; owned by the manager
	since     time.Time // when the slot became idle; owned by the manager

	mu    sync.Mutex
	state int // withdrawIdle, then withdrawSent or withdrawDone
}

const (
	withdrawIdle = iota
	withdrawSent
	withdrawDone // Open came, or the slot ended
)

// newWithdrawer returns the withdrawer of an idle slot on stream, or nil
// if the relay does not take Withdraw there. Not inlined, nor is done:
// in runSlot's frame they would grow the stack a slot keeps for its life.
//
//go:noinline
func newWithdrawer(stream relayv1.HostService_AttachClient, ok bool) *withdrawer {
	if !ok {
		return nil
	}
	return &withdrawer{stream: stream}
}

func (w *withdrawer) withdraw() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != withdrawIdle {
		return
	}
	w.state = withdrawSent
	// An error ends the stream, which the slot's Recv reports.
	w.stream.Send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Withdraw{Withdraw: &relayv1.Withdraw{}}})
}

// done ends the slot's idle life (Open came, or the stream ended): no
// Withdraw goes out after it. It reports whether one went out before.
//
//go:noinline
func (w *withdrawer) done() (sent bool) {
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	sent = w.state == withdrawSent
	w.state = withdrawDone
	return sent
}

// shareCredits keeps the serving links' credit streams running and their
// credits at Idle, within MaxSessions (*open counts the slots, sessions and
// credits of every relay). Credits are given one at a time to the relay
// with the fewest (then the fewest sessions): the room a session's end
// frees goes to a relay short of credits, not to the first one listed,
// which kept it while another relay had none and reset its clients.
func (l *Listener) shareCredits(now time.Time, nextRetry *time.Time, open *int, relays int) {
	if l.unaccepted >= l.cfg.Idle {
		return
	}
	room := math.MaxInt
	if l.cfg.MaxSessions > 0 {
		room = l.cfg.MaxSessions - *open
	}
	if room <= 0 {
		return // and no backoff looked at: a relay down would wake manage for nothing
	}
	give := l.give[:0]
	for _, lk := range l.serving {
		n := 0
		if lk.capped {
			// At the relay's slot cap, credits for the room freed go at
			// any time, and one beyond it once the backoff is over
			// (creditTarget): manage wakes then. (Not only after a
			// failure: a credit stream welcomed while capped ends the
			// failures, not the wait.)
			lk.backingOff(now, nextRetry)
		}
		switch {
		case lk.credits >= l.creditTarget(lk, relays, now):
		case !lk.capped && lk.failures > 0 && lk.backingOff(now, nextRetry):
			// Its credit stream failed, or a claim did: no new credits
			// until the backoff ends.
		case lk.creditRunning && lk.granter == nil: // not welcomed yet
		default:
			n = -1 // may get credits
		}
		give = append(give, n)
	}
	l.give = give
	for ; room > 0; room-- {
		best := -1
		for i, lk := range l.serving {
			if give[i] == 0 || lk.credits+max(give[i], 0) >= l.creditTarget(lk, relays, now) {
				continue
			}
			if best < 0 {
				best = i
				continue
			}
			b := l.serving[best]
			if has, bHas := lk.credits+max(give[i], 0), b.credits+max(give[best], 0); has < bHas || has == bHas && lk.active < b.active {
				best = i
			}
		}
		if best < 0 {
			break
		}
		give[best] = max(give[best], 0) + 1
	}
	for i, lk := range l.serving {
		if give[i] > 0 {
			l.grantCredits(lk, give[i], open)
			if lk.capped {
				lk.backingOff(now, nextRetry) // manage wakes for the next credit past the room
			}
		}
	}
}

// creditTarget is how many credits lk may hold: Idle, within what the
// relay took (its --max-credits), lk's share of MaxSessions, and, at the
// relay's slot cap, the room it showed (a credit beyond it is a claim the
// relay refuses: one at a time, once the backoff is over).
func (l *Listener) creditTarget(lk *link, relays int, now time.Time) int {
	target := l.cfg.Idle
	if lk.capped {
		room := lk.credits + lk.capFreed
		if !now.Before(lk.retryAt) && lk.connecting == 0 {
			// One credit past the room, once the backoff is over: its
			// claim asks whether the cap has room again (another agent of
			// this host id gone, say). grantCredits starts the next wait.
			room++
		}
		target = min(target, room)
	}
	if lk.creditCap > 0 {
		target = min(target, lk.creditCap)
	}
	if l.cfg.MaxSessions > 0 && relays > 0 {
		// MaxSessions shared out over the relays, not taken by the first.
		target = min(target, max(1, (l.cfg.MaxSessions+relays-1)/relays))
	}
	return target
}

// grantCredits gives lk n more credits: in the Hello of a new credit
// stream, or on the running one.
func (l *Listener) grantCredits(lk *link, n int, open *int) {
	*open += n
	if lk.capped {
		// In a new stream's Hello as on the running one: the room they
		// take is theirs now (capFreed counted it until then).
		if n > lk.capFreed {
			// A credit past the room (creditTarget): the next one no
			// sooner than a backoff from now, whether its claim is
			// welcomed or refused (a refusal backs off further).
			d := l.cfg.BackoffBase << min(max(lk.failures, 1)-1, 20)
			lk.retryAt = time.Now().Add(min(d, l.cfg.BackoffMax))
		}
		lk.capFreed = max(lk.capFreed-n, 0)
	}
	if !lk.creditRunning {
		lk.creditRunning = true
		lk.asked = n
		l.slots.Add(1)
		go l.runCredits(lk, lk.outage, n)
		return
	}
	lk.credits += n
	l.stats.idle.Add(int64(n))
	lk.granter.add(n)
}

// uncapIfWhole ends lk's capped state once the relay holds two streams of
// lk more than it did at the most at a refusal (capHeld, which can be low
// by one: the relay may not have let go of a stream that lk saw end; or
// high by one: a refusal handled after a later claim's welcome; a further
// session then shows the cap's end), and,
// without credits, lk's idle slots are whole again: the cap has grown
// (another agent of its host id left). Capped for good, an agent grew its slots back one probe at a
// time after every burst, its credits one per backoff, and began its next
// outage's backoff where the cap's had got to (a review: 1 replacement
// opened at a time, against 4). A whole pool alone is no evidence: at a
// cap that Idle idle slots and the sessions fill exactly, it is whole
// after every session, and uncapping on it cost a refused stream per
// session (a second review). Credits cost the cap nothing, so only the
// streams count: a credit agent finds the cap's end as its credits past
// the room, one per backoff, are claimed and welcomed.
func (l *Listener) uncapIfWhole(lk *link) {
	if lk.streamsHeld() <= lk.capHeld+1 || !l.cfg.SlotCredits && lk.idle < l.cfg.Idle {
		return
	}
	l.uncap(lk)
}

// setCapped sets lk.capped, and the count of capped relays in Stats.
func (l *Listener) setCapped(lk *link, capped bool) {
	if lk.capped != capped {
		lk.capped = capped
		if capped {
			l.stats.capped.Add(1)
		} else {
			l.stats.capped.Add(-1)
		}
	}
}

// uncap ends lk's capped state, and the failures of its cap's backoff.
func (l *Listener) uncap(lk *link) {
	l.setCapped(lk, false)
	lk.capFreed, lk.capHeld, lk.failures, lk.retryAt, lk.capProbeAt = 0, 0, 0, time.Time{}, time.Time{}
	l.log.Debug("relay's cap has room again", "relay", lk.addr, "streams", lk.streamsHeld())
}

// drained pauses lk as the relay asked: no new slots on it until the
// Drain's retry_after has passed; open sessions go on, and the other relays
// are not affected. Every idle slot of lk gets its own Drain: the first
// one logs, at Info the first time for a reason; an operator's drain is
// answered again at each retry until UndrainHost, and those lines are
// Debug.
func (l *Listener) drained(lk *link, de *drainError) {
	if l.idleCtx.Err() != nil {
		return
	}
	d := de.drain.GetRetryAfter().AsDuration()
	if d <= 0 {
		d = l.cfg.BackoffBase
	}
	d = min(d, l.cfg.BackoffMax*12) // a relay cannot park us for long
	now := time.Now()
	if !now.Before(lk.drainedUntil) {
		level := slog.LevelInfo
		if reason := de.drain.GetReason(); lk.drainLogged && lk.drainLoggedReason == reason {
			level = slog.LevelDebug // the same drain, answering a retry
		} else {
			lk.drainLogged, lk.drainLoggedReason = true, reason
			l.stats.drains.Add(1)
		}
		l.log.Log(context.Background(), level, "relay drained this host", "relay", lk.addr, "reason", de.drain.GetReason().String(),
			"detail", de.drain.GetDetail(), "retry_in", d)
	}
	lk.drainedUntil, lk.drainProbe = now.Add(d), true
	lk.forgetRelayID()
	l.setCapped(lk, false)
	lk.ready, lk.capFreed = false, 0 // log "relay attached" again when the pool is back
}

// backoff schedules the next attempt on lk: capped, jittered exponential.
func (l *Listener) backoff(lk *link, err error) {
	// Closing, or lk retired (its address left DNS): the slot was given up
	// by the agent itself (its attach canceled), not failed by the relay.
	if lk.idleCtx.Err() != nil {
		return
	}
	lk.failures++
	lk.outage++
	lk.forgetRelayID()
	wasCapped := lk.capped
	if status.Code(err) == codes.ResourceExhausted && strings.Contains(status.Convert(err).Message(), "--max-slots-per-") &&
		(lk.idle > 0 || lk.connecting+lk.streamsHeld() > 0) {
		// The relay names its slot cap (not --max-credits, say) and holds
		// idle slots of this agent, or has slots of it there (on their way, as slots opened
		// together are answered in any order, or all in sessions, or its
		// credit stream, which the cap counts), and
		// refuses more: its cap (relayd --max-slots-per-host,
		// --max-slots-per-conn), not an outage. With none at all, the cap
		// is held by others (another agent with this host id, or an old
		// instance): a failure to warn of.
		// Those slots are all lk gets now; more are asked for at each
		// backoff, in case the cap is shared and frees up.
		if !lk.capped {
			lk.capHeld = 0
		}
		l.setCapped(lk, true)
		lk.capFreed = 0 // the room is gone: another agent of this host id took it, or the relay had not let go of the stream yet
		// The most the relay held of lk at a refusal, this episode: an
		// estimate of the cap (low when the relay had not let go of a
		// stream that lk saw end) that uncapIfWhole must beat.
		lk.capHeld = max(lk.capHeld, lk.streamsHeld())
	} else {
		l.setCapped(lk, false)
		lk.ready, lk.capFreed = false, 0
	}
	if !lk.capped {
		l.stats.reconnects.Add(1) // a relay at its cap is not a reconnect to count (an alert on it fired)
	}
	lk.lostConn = status.Code(err) == codes.Unavailable
	lk.unreachable = lk.lostConn && !lk.connected()
	d := l.cfg.BackoffBase << min(lk.failures-1, 20)
	switch status.Code(err) {
	case codes.InvalidArgument, codes.FailedPrecondition:
		d = l.cfg.BackoffMax // retrying soon will not help
	}
	d = min(d, l.cfg.BackoffMax)
	denied := false
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied:
		d, denied = l.cfg.AuthBackoff, true // an operator must act (then RetryRefused)
	}
	lk.denied = denied
	d = d/2 + rand.N(d/2+1) // jitter: spread agents that failed together
	lk.retryAt = time.Now().Add(d)
	msg, level := "relay unreachable", slog.LevelWarn
	hint := ""
	code := status.Code(err)
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unavailable {
		msg = "relay refused the slot"
		err = fmt.Errorf("%s: %s", st.Code(), st.Message())
		switch {
		case st.Code() == codes.Unimplemented:
			hint = "this gRPC server does not serve relay.v1.HostService: check that the address is relayd's --grpc-addr, not its --admin-addr"
		case st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "larger than max"):
			// grpc-go's refusal of a frame over the relay's size limit; the
			// agent splits its Data to the relay's max_data_bytes, so it is
			// the Hello.
			hint = "the relay takes frames of up to its --max-data-bytes plus 1 KiB, and this agent's Hello is larger: shorten its --label values"
			level = slog.LevelError // nothing changes by itself
		case st.Code() == codes.FailedPrecondition && strings.Contains(st.Message(), "--max-slots-per-conn 1"):
			// A credit stream where the relay allows one stream per
			// connection: nothing changes by itself.
			hint = "this relay allows one stream per agent connection, and --slot-credits needs two (the credit stream and a claim): run without --slot-credits, or have the relay raise --max-slots-per-conn"
			level = slog.LevelError
		case st.Code() == codes.InvalidArgument && strings.HasPrefix(st.Message(), "Hello: "):
			// The relay's check of the Hello's strings (a relay with
			// stricter limits than this agent's): nothing changes by
			// itself.
			hint = "the relay refuses this agent's --host-id, --service or --label values: see err"
			level = slog.LevelError
		}
	} else if err != nil {
		hint = unreachableHint(err.Error())
	}
	switch {
	case denied && code == codes.PermissionDenied:
		msg, level = "relay refused this agent's service or host id (check --service and --host-id against the relay's services, and what its --auth-tokens grants this agent's token, --token-file or HOSTAGENT_TOKEN)", slog.LevelError
	case denied:
		msg, level = "relay refused this agent's credentials (check --token-file or HOSTAGENT_TOKEN, and the relay's --auth-tokens)", slog.LevelError
	case lk.capped:
		// Not a failure: the relay's cap is where this pool stays, and
		// each probe past it is refused. Said once, at Info, beside the
		// "relay attached" line with the slots held.
		msg, level = "relay caps this agent's idle slots (relayd --max-slots-per-host or --max-slots-per-conn): asking for more now and then", slog.LevelDebug
		if !wasCapped {
			level = slog.LevelInfo
		}
		l.log.Log(context.Background(), level, msg, "relay", lk.addr, "err", err, "retry_in", d.Round(time.Millisecond))
		return
	}
	// One outage, one line at Warn, then one every warnEvery with the
	// failures so far; those between are Debug (a relay down for 20
	// minutes made 376 Warn lines, one per BackoffMax). Refusals an
	// operator must act on (denied) are throttled alike, at Error: with
	// AuthBackoff they came every 30 s, now every minute or so. A failure
	// of another kind (message, code or hint) is logged at once: the
	// cause changed. Each kind is throttled on its own, as failures may
	// alternate between two (a refused client certificate reads as "tls:
	// certificate required" or as "broken pipe", by turns). The outage
	// ends at "relay attached" (logAttached) or at any slot attached.
	now := time.Now()
	kind := msg + "\x00" + code.String() + "\x00" + hint
	if lk.warnedAt.IsZero() {
		clear(lk.warnedKinds) // a new outage
	}
	if at, ok := lk.warnedKinds[kind]; ok && now.Sub(at) < warnEvery {
		level = slog.LevelDebug
	} else {
		if lk.warnedKinds == nil {
			lk.warnedKinds = make(map[string]time.Time) // a few: messages and hints are fixed texts
		}
		lk.warnedAt, lk.warnedKinds[kind] = now, now
	}
	attrs := []any{"relay", lk.addr, "err", err}
	if hint != "" {
		attrs = append(attrs, "hint", hint)
	}
	attrs = append(attrs, "retry_in", d.Round(time.Millisecond), "failures", lk.failures)
	l.log.Log(context.Background(), level, msg, attrs...)
}

// capProbeEvery is how often, at most, a capped link whose pool is whole
// asks past it (manage).
const capProbeEvery = time.Minute

// warnEvery is how often, at most, the failures of one outage of a relay
// are logged at Warn (or Error); the others are Debug.
const warnEvery = time.Minute

// unreachableHint says what to check when a relay ends the connection as
// it opens: a TLS mismatch and a connection limit both look like that from
// here, and grpc-go's error names neither. "" when the error says enough.
func unreachableHint(err string) string {
	switch {
	case strings.Contains(err, "error reading from server"), strings.Contains(err, "transport is closing"):
		return "" // a connection that was up broke: the relay restarted or the network failed
	case strings.Contains(err, "remote error: tls: expired certificate"):
		return "the relay says this agent's --tls-cert has expired (or a clock is wrong): renew it; SIGHUP makes the agent read it again"
	case strings.Contains(err, "remote error: tls:") && strings.Contains(err, "certificate"):
		return "the relay refused this agent's TLS certificate, or its lack of one: give --tls-cert and --tls-key, from a CA in the relay's --tls-client-ca"
	case strings.Contains(err, "first record does not look like a TLS handshake"):
		return "this address does not speak TLS: if it is relayd's gRPC port, relayd runs without --tls-cert (give it --tls-cert and --tls-key, or give this agent --insecure on a network you trust); otherwise check the port"
	case strings.Contains(err, "x509: certificate has expired or is not yet valid"):
		if strings.Contains(err, "is before") {
			return "the relay's certificate is not valid yet: check this machine's clock (and the relay's)"
		}
		return "the relay's certificate has expired: renew relayd's --tls-cert (relayd re-reads it by itself); if it should still be valid, check this machine's clock"
	case strings.Contains(err, "x509: cannot validate certificate for") && strings.Contains(err, "IP SANs"):
		return "the relay's certificate names no IP address, and --relay gives one: give --tls-server-name with a name the certificate holds, or reach the relay by that name"
	case strings.Contains(err, "x509: certificate is valid for"), strings.Contains(err, "x509: certificate is not valid for any names"):
		return "the relay's certificate names other hosts than this --relay address: give --tls-server-name with one it names, or reach the relay by a name in its certificate"
	case strings.Contains(err, "x509:") || strings.Contains(err, "tls: failed to verify certificate"):
		return "this agent does not trust the relay's certificate: give --tls-ca with the CA that signed it (and --tls-server-name if the certificate names another host)"
	case strings.Contains(err, "error reading server preface") && (strings.Contains(err, "use of closed network connection") || strings.Contains(err, "timeout")):
		return "the address accepted the connection but sent nothing: is it relayd's client port rather than its --grpc-addr? (or a relay that serves TLS: give --tls-ca)"
	case strings.Contains(err, "error reading server preface: http2:"):
		return "this address answered, but not in gRPC over HTTP/2: check that it is relayd's --grpc-addr, not its client, admin or metrics port or another service"
	case strings.Contains(err, "error reading server preface"):
		return "the relay ended the connection before HTTP/2 began: if it serves TLS, give --tls-ca (without TLS flags a loopback relay is dialed in plaintext); or this address is over the relay's --max-agent-conns-per-ip; or it is not relayd's --grpc-addr"
	case strings.Contains(err, "broken pipe"), strings.Contains(err, "connection reset by peer"):
		// TLS 1.3 ends the handshake on the client's side before the
		// relay has checked the client certificate: a certificate it
		// refused reads like this too, after a line that said why (QA).
		return "the relay ended the connection as it opened: if it requires client certificates (--tls-client-ca), this agent's --tls-cert is missing, expired or not from a CA in it (an earlier line may say which); or this address is over the relay's --max-agent-conns-per-ip"
	}
	return ""
}

// runSlot owns one Attach stream from open to end: one session, or with
// sequential sessions as many as the stream is offered again for.
func (l *Listener) runSlot(lk *link, outage int, claim string) {
	defer l.slots.Done()
	ctx, cancel := context.WithCancel(l.sessCtx)
	defer cancel()
	stopIdle := context.AfterFunc(lk.idleCtx, cancel)

	// The stream's setup and its first frames are the deepest calls a slot
	// makes; on goroutines of their own they do not double the stack that
	// this one keeps, parked in Recv, for the session's whole life. Not on
	// a shallow.Pool: grpc-go starts a goroutine per stream as it opens
	// (its watcher), and started from a pool's worker it more often reused
	// a dead goroutine, with the runtime's current starting stack (4 KiB
	// here), than got a new one of 2 KiB: +1.6 KB per held session. For
	// the same reason events are sent by small functions of their own
	// (report, betweenSessions): their literals in this frame pushed the
	// goroutine from 4 to 8 KiB (TestAgentGoroutineStacksPerSession).
	var (
		welcome *relayv1.Welcome
		stream  relayv1.HostService_AttachClient
		err     error
	)
	l.stats.streams.Add(1)
	shallow.Run(func() { welcome, stream, err = l.attach(ctx, lk, claim, 0) })
	if err != nil {
		stopIdle()
		if claim != "" && status.Code(err) == codes.NotFound {
			// The offer went elsewhere (it timed out, or the credit stream
			// ended): the relay is fine, and the room at its cap that the
			// credit stood for was not taken.
			l.reportUnclaimed(lk, outage)
			return
		}
		l.report(lk, evFailed, err, outage, false)
		return
	}
	w := newWithdrawer(stream, welcome.GetWithdraw() && claim == "")
	l.reportSlot(lk, evAttached, nil, outage, false, w)
	sequential := welcome.GetSequentialSessions() && !l.cfg.StreamPerSession
	sender := &clientSender{stream: stream}
	for {
		open, err := l.waitOpen(stream)
		// A Withdraw that crossed this Open is void: the session runs, and
		// the stream is offered again as any other (or moved by
		// anotherRelayShort).
		w.done()
		if !stopIdle() && err == nil {
			err = net.ErrClosed // the listener closed as Open arrived: too late
		}
		if err != nil {
			if lk.idleCtx.Err() != nil || err == io.EOF {
				err = nil
			}
			l.reportSlot(lk, evIdleEnded, err, outage, false, w)
			return
		}
		l.reportSlot(lk, evOpened, nil, outage, sequential, w)
		ended := l.serve(ctx, cancel, lk, welcome, open, sender)
		if !ended || !sequential {
			l.report(lk, evEnded, nil, outage, sequential)
			return
		}
		if !l.betweenSessions(lk, stream) {
			return
		}
		stopIdle = context.AfterFunc(lk.idleCtx, cancel)
		var again bool
		if w, again = l.offerAgain(lk, stream, outage); !again {
			stopIdle()
			return
		}
	}
}

// report sends the manager an event about lk.
//
//go:noinline
func (l *Listener) report(lk *link, kind eventKind, err error, outage int, sequential bool) {
	l.events <- event{link: lk, kind: kind, err: err, outage: outage, sequential: sequential}
}

// reportSlot is report for an idle slot's events, with its withdrawer.
//
//go:noinline
func (l *Listener) reportSlot(lk *link, kind eventKind, err error, outage int, sequential bool, w *withdrawer) {
	l.events <- event{link: lk, kind: kind, err: err, outage: outage, sequential: sequential, slot: w}
}

// reportUnclaimed reports a claim whose offer had gone: it failed, but took
// no room at the relay's cap (again, as for a stream not taken again).
//
//go:noinline
func (l *Listener) reportUnclaimed(lk *link, outage int) {
	l.events <- event{link: lk, kind: evFailed, outage: outage, again: true}
}

// reportAgain reports a stream welcomed again after its session.
//
//go:noinline
func (l *Listener) reportAgain(lk *link, outage int, w *withdrawer) {
	l.events <- event{link: lk, kind: evAttached, outage: outage, slot: w, again: true}
}

// betweenSessions asks the manager, after a session on a stream of
// sequential sessions ended cleanly, whether the stream carries another. A
// stream given up is half-closed here.
//
//go:noinline
func (l *Listener) betweenSessions(lk *link, stream relayv1.HostService_AttachClient) bool {
	reply := make(chan bool, 1)
	l.events <- event{link: lk, kind: evSessionEnd, reply: reply}
	if again := <-reply; again {
		return true
	}
	// Given up: the relay ends the stream with OK, which it cannot mistake
	// for anything else: it assigns no client before Welcome.
	shallow.Run(func() {
		if stream.CloseSend() == nil {
			l.drain(stream)
		}
	})
	return false
}

// offerAgain sends the empty Hello that offers the stream again and reads
// the relay's Welcome. It returns the idle slot's withdrawer (nil if the
// relay takes no Withdraw on it), and whether the stream waits for Open; if
// not, the manager has been told.
//
//go:noinline
func (l *Listener) offerAgain(lk *link, stream relayv1.HostService_AttachClient, outage int) (*withdrawer, bool) {
	var (
		welcome *relayv1.Welcome
		err     error
	)
	shallow.Run(func() { welcome, err = l.reoffer(stream) })
	if err == nil {
		// Its own Welcome's withdraw: a claimed stream's first did not
		// set it (it never was idle).
		w := newWithdrawer(stream, welcome.GetWithdraw())
		l.reportAgain(lk, outage, w)
		return w, true
	}
	switch {
	case err == io.EOF:
		// The relay ended the stream (a late frame of the last session
		// gave it up): not a failure of the relay.
		err = nil
	case status.Code(err) == codes.Unauthenticated || status.Code(err) == codes.PermissionDenied:
		// The relay checks a stream's token again before it takes
		// another client, and this one, sent when the stream opened, is
		// no longer good: rotated (SIGHUP to both), or revoked. A new
		// stream carries the agent's token now, at once; if the relay
		// refuses that one too, that is the failure, with its backoff.
		l.log.Debug("relay refused an open stream's token; opening a new stream", "relay", lk.addr, "err", err)
		err = nil
	}
	// again: a stream the relay counted, whose room at its cap is free now.
	l.events <- event{link: lk, kind: evFailed, err: err, outage: outage, again: true}
	return nil, false
}

// waitOpen waits, as long as the slot is idle, for the relay's Open.
func (l *Listener) waitOpen(stream relayv1.HostService_AttachClient) (*relayv1.Open, error) {
	var first *relayv1.AttachResponse
	var err error
	shallow.Run(func() { first, err = stream.Recv() })
	if err != nil {
		return nil, err
	}
	if open := first.GetOpen(); open != nil {
		return open, nil
	}
	err = fmt.Errorf("relay sent %T while the slot was idle", first.GetFrame())
	if first.GetClose() != nil {
		err = fmt.Errorf("relay closed the idle slot: %s", first.GetClose().GetDetail())
	}
	if d := first.GetDrain(); d != nil {
		err = &drainError{drain: d}
		shallow.Run(func() { l.drain(stream) }) // the relay ends the stream with OK
	}
	return nil, err
}

// serve runs one session on stream, from Open to its end. It reports
// whether the relay ended it with SessionEnd (the stream can carry
// another); otherwise the stream is over.
func (l *Listener) serve(ctx context.Context, cancel context.CancelFunc, lk *link, welcome *relayv1.Welcome, open *relayv1.Open, sender *clientSender) bool {
	maxData := int(welcome.GetMaxDataBytes())
	if maxData <= 0 {
		maxData = 16 * 1024
	}
	ss := &sessionSender{stream: sender}
	var conn *attachconn.Conn
	conn = attachconn.New(attachconn.Config{
		Sender:      ss,
		MaxData:     maxData,
		LocalAddr:   tcpAddr(open.GetListenerAddr()),
		RemoteAddr:  tcpAddr(open.GetClientAddr()),
		AbortReason: relayv1.CloseReason_CLOSE_REASON_HOST_ABORT,
		OnAbort: func(closeSent bool) {
			if !closeSent && !ss.isRetired() {
				// A Write is stuck: ending the stream releases it (a
				// canceled client stream resets at once), and the relay
				// takes that for the abort.
				conn.AbandonClose()
				cancel()
			}
		},
	})
	sc := &Conn{conn: conn, open: open, relay: lk.addr}
	var stopWatches func()
	shallow.Run(func() { stopWatches = watchSession(ctx, l.abortCtx, conn, welcome, l.cfg.StallTimeout) })
	defer stopWatches()
	select {
	case l.accept <- sc:
		l.events <- event{link: lk, kind: evHandedOff}
	case <-l.idleCtx.Done():
		l.events <- event{link: lk, kind: evHandedOff}
		conn.Abort(errors.New("agent closed before the session was accepted"))
		l.drain(sender.stream)
		return false
	}
	return l.receive(sender.stream, conn, ss)
}

// reoffer offers the stream again after SessionEnd: an empty Hello (the
// relay keeps the first one's fields), answered by Welcome. With slot
// credits the stream is a warm one, and its Hello sets idle_linger: the
// relay withdraws it after that even if this agent has stopped, when its
// own withdrawal (coolWarm) cannot come, and the stopped agent's credits
// are offered instead, to be claimed elsewhere.
func (l *Listener) reoffer(stream relayv1.HostService_AttachClient) (*relayv1.Welcome, error) {
	hello := &relayv1.Hello{}
	if l.cfg.SlotCredits {
		hello.IdleLinger = durationpb.New(l.cfg.WarmLinger)
	}
	if err := stream.Send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: hello}}); err != nil && err != io.EOF {
		return nil, err
	}
	resp, err := stream.Recv() // on a refused Send, Recv returns the status
	if err != nil {
		return nil, err
	}
	if d := resp.GetDrain(); d != nil {
		l.drain(stream) // the relay ends the stream with OK
		return nil, &drainError{drain: d}
	}
	if resp.GetWelcome() == nil {
		return nil, status.Errorf(codes.Internal, "relay answered Hello with %T, not Welcome", resp.GetFrame())
	}
	return resp.GetWelcome(), nil
}

// attach opens the stream and exchanges Hello and Welcome.
// A claim names the offer the stream takes; credits > 0 makes it the
// credit stream.
func (l *Listener) attach(ctx context.Context, lk *link, claim string, credits int) (*relayv1.Welcome, relayv1.HostService_AttachClient, error) {
	// The frame codec decodes Data payloads into pooled buffers; the wire
	// format is plain proto, so any relay understands it.
	stream, err := lk.client().Attach(ctx, grpc.ForceCodecV2(framecodec.Codec{}))
	if err != nil {
		return nil, nil, err
	}
	err = stream.Send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{
		Service: l.cfg.Service, HostId: l.cfg.HostID, Labels: l.cfg.Labels, AgentVersion: l.cfg.AgentVersion,
		Weight: uint32(max(l.cfg.Weight, 0)), SequentialSessions: !l.cfg.StreamPerSession,
		ClaimId: claim, SlotCredits: uint32(credits), AgentInstance: l.instance,
	}}})
	if err != nil && err != io.EOF {
		return nil, nil, err
	}
	resp, err := stream.Recv() // on a refused Send, Recv returns the status
	if err != nil {
		return nil, nil, err
	}
	if d := resp.GetDrain(); d != nil {
		l.drain(stream) // the relay ends the stream with OK
		return nil, nil, &drainError{drain: d}
	}
	welcome := resp.GetWelcome()
	if welcome == nil {
		return nil, nil, status.Errorf(codes.Internal, "relay answered Hello with %T, not Welcome", resp.GetFrame())
	}
	if id := welcome.GetRelayId(); id != "" {
		if last := lk.welcomedBy.Load(); last == nil || *last != id {
			lk.welcomedBy.Store(&id)
			l.events <- event{link: lk, kind: evRelayID, claim: id}
		}
	}
	return welcome, stream, nil
}

// receive feeds conn from the stream until the session ends. It reports
// whether the relay ended it with SessionEnd: then ss is retired, and the
// stream can carry another session.
func (l *Listener) receive(stream relayv1.HostService_AttachClient, conn *attachconn.Conn, ss *sessionSender) bool {
	// One message for the whole stream, not reset between frames: the
	// frame codec reuses its Data message (see framecodec).
	var resp relayv1.AttachResponse
	for {
		if err := stream.RecvMsg(&resp); err != nil {
			st := conn.Stats()
			if err == io.EOF && st.ReadClosed && st.WriteClosed {
				return false // both directions closed: the relay ended the RPC with OK
			}
			if err == io.EOF {
				err = errors.New("relay ended the session")
			}
			conn.DeliverAbort(relayv1.CloseReason_CLOSE_REASON_UNSPECIFIED, err)
			return false
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
		case *relayv1.AttachResponse_SessionEnd:
			// Nothing of this session may follow: a Close the Conn would
			// still send (aborted after both directions closed) would fall
			// into the next session.
			ss.retire()
			st := conn.Stats()
			if !st.ReadClosed || !st.WriteClosed || conn.Err() != nil {
				conn.DeliverAbort(relayv1.CloseReason_CLOSE_REASON_PROTOCOL_ERROR, errors.New("relay sent SessionEnd before both directions closed"))
				return false
			}
			return true
		default:
			// A frame from a newer relay: ignore it.
		}
	}
}

// watchSession aborts conn when ctx ends (the agent shuts down) and when it
// stalls (watchStalled: for stall, or past the relay's idle timeout); stop
// ends both watches. Apart from serve, and run
// on a short-lived goroutine: in serve's frame, and with the timer's calls,
// they grew the goroutine that keeps the session to 8 KiB.
func watchSession(ctx, abortCtx context.Context, conn *attachconn.Conn, welcome *relayv1.Welcome, stall time.Duration) (stop func()) {
	stopAbort := context.AfterFunc(ctx, func() {
		conn.DeliverAbort(relayv1.CloseReason_CLOSE_REASON_UNSPECIFIED, fmt.Errorf("agent shutting down: %w", context.Cause(ctx)))
	})
	stopTold := context.AfterFunc(abortCtx, func() {
		conn.AbortWith(relayv1.CloseReason_CLOSE_REASON_HOST_ABORT, errors.New("the agent is stopping, and its drain timeout has passed"))
	})
	limit, why := time.Duration(0), ""
	if d := welcome.GetIdleTimeout().AsDuration(); d > 0 {
		limit, why = d+max(time.Second, d/8), "the relay's idle timeout has passed"
	}
	if stall > 0 && (limit == 0 || stall < limit) {
		limit, why = stall, "the backend took none of the relay's bytes (the stall timeout, hostagent --stall-timeout)"
	}
	if limit == 0 {
		return func() { stopAbort(); stopTold() }
	}
	stopStalled := watchStalled(conn, limit, why)
	return func() {
		stopAbort()
		stopTold()
		stopStalled()
	}
}

// watchStalled aborts conn (CLOSE_REASON_TIMEOUT) once it has moved no
// byte either way for limit, while its receive loop is stuck delivering
// to the backend: for StallTimeout, or a little longer than the relay's
// idle timeout, after which the relay has ended the session, but perhaps
// without the agent learning of it. If the backend stopped reading, the receive loop is
// stuck writing to it, and the relay's Close waits behind data the loop
// cannot take; the abort releases that write (and resets the backend).
// A receive loop that is free reads the relay's Close when it comes: then
// the relay decides, and it sees a client that reads slowly make progress
// that these counters (moved by whole writes) miss. A timer, not a
// goroutine; stop ends it.
func watchStalled(conn *attachconn.Conn, limit time.Duration, why string) (stop func()) {
	var (
		mu          sync.Mutex
		last        = conn.Stats()
		lastMoved   = time.Now()
		lastKernel  uint64    // the sink socket's bytes acknowledged and received (forward's backend)
		kernelSeen  bool      // lastKernel has been read
		stuckSeenAt time.Time // when a look first found a Deliver under way (zero: none)
		t           *time.Timer
	)
	mu.Lock()
	defer mu.Unlock()
	// A look every limit/8, whatever it finds: a look finds when bytes
	// last moved, or a Deliver got stuck, only to within the time since
	// the one before (a look only at limit ended a session stuck from its
	// start at twice limit).
	step := limit / 8
	t = time.AfterFunc(step, func() {
		mu.Lock()
		defer mu.Unlock()
		if conn.Err() != nil {
			return
		}
		now := time.Now()
		if st := conn.Stats(); st != last {
			last, lastMoved = st, now
		}
		// A Deliver returns only once its whole payload is in the socket's
		// buffer, which a backend reading slowly frees in steps of a third
		// of it (22 s apart at 64 KiB/s in a review's run): its kernel's
		// counters show the bytes it takes as it takes them.
		if nc, ok := conn.Sink().(net.Conn); ok {
			if n, ok := splice.KernelProgress(nc); ok && n != lastKernel {
				if kernelSeen { // the first reading is the baseline, not progress
					lastMoved = now
				}
				lastKernel, kernelSeen = n, true
			}
		}
		// Stuck for limit counts from when a Deliver was first seen under
		// way, too: on a session quiet for longer (the relay keeps it, as
		// its client reads slowly), the first Deliver that waits a moment
		// must not end it.
		if !conn.Delivering() {
			stuckSeenAt = time.Time{}
		} else if stuckSeenAt.IsZero() {
			stuckSeenAt = now
		}
		from := lastMoved
		if stuckSeenAt.After(from) {
			from = stuckSeenAt
		}
		if still := now.Sub(from); still < limit || stuckSeenAt.IsZero() {
			t.Reset(step)
			return
		}
		conn.AbortWith(relayv1.CloseReason_CLOSE_REASON_TIMEOUT, fmt.Errorf("no byte either way for %v: %s", limit, why))
	})
	return func() { t.Stop() }
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

// sessionSender sends one session's frames. Once the session has ended
// (SessionEnd), retire stops them: the stream may be carrying the next
// session by then. The lock is the Conn's own order of sends (one at a
// time), taken only to wait for a send under way.
type sessionSender struct {
	mu      sync.Mutex
	retired bool
	stream  *clientSender
}

var errSessionEnded = errors.New("the relay ended the session (SessionEnd)")

func (s *sessionSender) SendData(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retired {
		return errSessionEnded
	}
	return s.stream.SendData(p)
}

func (s *sessionSender) SendCloseWrite() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retired {
		return errSessionEnded
	}
	return s.stream.SendCloseWrite()
}

func (s *sessionSender) SendClose(reason relayv1.CloseReason, detail string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retired {
		return errSessionEnded
	}
	return s.stream.SendClose(reason, detail)
}

// isRetired reports whether the session has ended: an abort of its Conn
// then concerns nobody else (the stream may carry the next session).
func (s *sessionSender) isRetired() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retired
}

func (s *sessionSender) retire() {
	s.mu.Lock()
	s.retired = true
	s.mu.Unlock()
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
