// Package relay is the host side of relayd: the HostService.Attach handler
// that turns each stream into a slot, the registry of hosts and sessions,
// the StatusService that reports them (and streams their events to
// watchers), the AdminService that acts on them, and their Prometheus
// metrics. Client sockets come from a
// clientbridge.Bridge; this package joins each assigned client to its slot.
//
// Goroutines per Attach stream: the gRPC handler (owns the stream's life:
// it returns when the session ends or is aborted) and one receive loop (the
// only caller of Recv, which during a session also writes the host's bytes
// to the client socket itself). A session's client → host copy
// (splice.Start, the only sender) has a goroutine only while the client has
// bytes to copy. The receive loop and the copy can outlive the handler by a
// moment (Recv and a Send blocked on flow control return once the handler
// has returned); Relay.Close waits.
package relay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/relayproject/relay/clientbridge"
	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/attachconn"
	"github.com/relayproject/relay/internal/framecodec"
	"github.com/relayproject/relay/internal/logging"
	"github.com/relayproject/relay/internal/names"
	"github.com/relayproject/relay/internal/shallow"
	"github.com/relayproject/relay/internal/splice"
)

// DefaultMaxDataBytes is the default largest Data payload: a full copy
// buffer, whose encoded frame stays under grpc-go's 32 KiB buffer class.
const DefaultMaxDataBytes = splice.BufferSize

// Config configures a Relay. The zero value of each field is documented.
type Config struct {
	// RelayID names this relay in Welcome and status; empty means
	// hostname-pid-xxxxxxxx (defaultRelayID).
	RelayID string
	// Version is reported by GetStatus.
	Version string
	// Bridge supplies clients; required.
	Bridge *clientbridge.Bridge
	// Services are the services with a client listener; a Hello naming
	// another service is refused. Empty means {"default"}.
	Services []string
	// MaxDataBytes is the largest Data payload accepted and sent; zero means
	// DefaultMaxDataBytes.
	MaxDataBytes int
	// HelloTimeout bounds the wait for Hello on a new stream; zero means 10s.
	HelloTimeout time.Duration
	// Logger receives session and host logs; nil discards.
	Logger *slog.Logger
	// WatchBuffer is how many events each WatchEvents stream may lag behind
	// before its events are dropped and counted; zero means DefaultWatchBuffer.
	WatchBuffer int
	// MaxWatchers bounds the WatchEvents streams open at once; zero means
	// no bound. One more ends with ResourceExhausted at once: each holds a
	// goroutine, its buffer of up to WatchBuffer events and a stream
	// window, and every event is offered to each (QA: 10,000 watchers
	// that did not read took relayd to 4 GB and slowed sessions 280-fold).
	MaxWatchers int

	// Authorize, if set, decides whether the stream (its context carries
	// the caller's credentials) may attach as hostID for service; its error
	// (PermissionDenied) ends the stream. It is asked again each time a
	// stream offers itself after SessionEnd, so that credentials withdrawn
	// since (a token removed, a grant narrowed) take effect.
	Authorize func(ctx context.Context, service, hostID string) error
	// MaxSlotsPerHost bounds the streams (idle and in session) of one host
	// id per service, and apart its credit streams; MaxSlotsPerConn every
	// stream of one agent connection. Zero means no bound. A stream beyond
	// either ends with ResourceExhausted.
	MaxSlotsPerHost, MaxSlotsPerConn int
	// IdleTimeout ends a session (CLOSE_REASON_TIMEOUT) that has moved no
	// byte either way for this long; zero means never.
	IdleTimeout time.Duration
	// MaxCredits bounds the credits (Hello.slot_credits) the credit streams
	// of one host id may hold at once; zero means DefaultMaxCredits. A
	// Hello asking for more is given what is left (none: ResourceExhausted);
	// a Credit frame that would pass it ends the stream with
	// ResourceExhausted.
	MaxCredits int
	// ClaimTimeout bounds the wait for the claim of an Offer; zero means
	// DefaultClaimTimeout. An offer not claimed in time goes back to the
	// queue, and its credit stream ends with DeadlineExceeded.
	ClaimTimeout time.Duration
}

// Limits hit, as counted by LimitHits and logged.
const (
	LimitSlotsPerHost = "max_slots_per_host"
	LimitSlotsPerConn = "max_slots_per_conn"
	LimitIdleTimeout  = "idle_timeout"
	LimitHelloTimeout = "hello_timeout"
	// LimitClaimTimeout (credits.go): an offer not claimed in time.
	// Connections to the gRPC port, counted by relayd's listener.
	LimitAgentConns      = "max_agent_conns"
	LimitAgentConnsPerIP = "max_agent_conns_per_ip"
	LimitHealthWatchers  = "max_health_watchers"
	// LimitWatchers: a WatchEvents stream over MaxWatchers.
	LimitWatchers = "max_watchers"
)

// How long an agent told to Drain should wait before it offers slots again:
// a restarted relay is usually back within a second; a drained host is
// undrained by hand, and comes back within this delay of UndrainHost.
const (
	shutdownRetryAfter = time.Second
	adminRetryAfter    = 2 * time.Second
)

// Relay implements relay.v1.HostService and relay.v1.StatusService.
type Relay struct {
	relayv1.UnimplementedHostServiceServer
	cfg      Config
	log      *slog.Logger
	services map[string]bool
	started  time.Time
	// refusals limits the lines of refused Hellos: an agent refused
	// retries all its --idle slots every backoff.
	refusals logging.Every

	ctx        context.Context // canceled by Shutdown: open sessions are aborted
	cancel     context.CancelFunc
	idleCtx    context.Context // canceled by Drain: idle slots end, no new sessions
	idleCancel context.CancelFunc

	mu          sync.Mutex
	hosts       map[hostKey]*host
	hostLines   map[hostKey]*hostLines // throttles attached/detached lines (hostLineLocked)
	linesPruned time.Time
	lineTimers  sync.WaitGroup // hostLines' settle timers, pending or running
	sessions    map[string]*session
	offers      map[string]*offer        // offers on credit streams not yet claimed (credits.go)
	totals      map[string]uint64        // sessions opened per service
	conns       map[string]int           // streams per agent connection (peer address)
	limits      map[string]uint64        // limits hit, by name
	limitLogged map[string]time.Time     // last log line per limit
	limitQuiet  map[string]uint64        // hits not logged since the last line
	limitRepeat map[string]repeatedLimit // last log line per limit and host (limitHitByLocked)
	now         func() time.Time         // the limits' clock (tests move it)
	drained     chan struct{}            // closed when the last session ends; made by Drain
	loops       sync.WaitGroup           // receive loops
	deep        *shallow.Pool            // runs the handlers' deep calls (see Attach)
	// drainedHosts are the hosts an operator drained; it outlives the host
	// entry, so that the host's new slots are drained too until UndrainHost.
	drainedHosts map[hostKey]bool
	// health is each agent's backend health (by host and agent instance,
	// or connection), kept past a host's last slot while its window is
	// open: an agent with one slot (--max-sessions 1) loses it with each
	// failure, and its host with it.
	health map[healthID]*backendHealth

	events eventHub
	// watchEnd is closed by Close, once the last event is out: WatchEvents
	// streams end then, not at Shutdown, so they see the sessions it aborts.
	watchEnd     chan struct{}
	watchEndOnce sync.Once
	metrics      *metrics // nil until RegisterMetrics

	slotSeq, sessionSeq, offerSeq atomic.Uint64
	listSeq                       uint64 // the last session.listSeq; guarded by mu

	hooks atomic.Pointer[testHooks] // nil outside tests
}

// testHooks stop the relay where a race is decided, so that a test can
// play each order of it (export_test.go sets them).
type testHooks struct {
	BeforeSetSession func()        // a client is assigned to a slot; its loop is not asked yet
	AfterSetSession  func(ok bool) // the loop took the session (ok) or had ended
	Withdrawn        func()        // a slot's loop took the host's Withdraw, and is to end
	OwedCloseLate    func()        // a session's end waited closeGrace for the Close its abort owes the host
}

// setSession is loop.setSession between the test hooks. It is apart from
// startSession so that its frame, which the session's handler keeps, does
// not grow.
//
//go:noinline
func (r *Relay) setSession(loop *recvLoop, conn *attachconn.Conn, onCloseWrite func(), health *backendHealth) bool {
	h := r.hooks.Load()
	if h != nil && h.BeforeSetSession != nil {
		h.BeforeSetSession()
	}
	ok := loop.setSession(conn, onCloseWrite, health)
	if h != nil && h.AfterSetSession != nil {
		h.AfterSetSession(ok)
	}
	return ok
}

type hostKey struct{ service, id string }

// host is every slot of one (service, host id).
type host struct {
	key           hostKey
	keyStr        string
	peerAddr      string
	attachedAt    time.Time
	labels        map[string]string
	agentVersion  string
	weight        atomic.Int64 // from the latest Hello; read by the scheduler under the bridge's lock
	slots         int          // open streams; guarded by Relay.mu
	creditStreams int          // those of them that are credit streams (Hello.slot_credits); guarded by Relay.mu
	active        atomic.Int64
	total         atomic.Uint64
	bytesTo       atomic.Uint64 // finished sessions only; open ones are added live
	bytesFrom     atomic.Uint64
	credits       atomic.Int64 // idle credits of its credit streams (credits.go)
	// waiting holds each slot's wake-up channel (attachment.woken), for
	// an operator's drain. Guarded by Relay.mu.
	waiting map[chan idleOutcome]struct{}
}

// healthID names an agent's backend health: its host, and its
// Hello.agent_instance or else its connection. Two agents may share a host
// id; only the one whose backend is down must be passed over.
type healthID struct {
	host  hostKey
	agent string
}

// backendHealth is the backend-failure state of one agent (its
// Hello.agent_instance, or its connection when the Hello has none). The
// scheduler passes its slots over, for others that are not failing, until
// the window ends.
type backendHealth struct {
	until atomic.Int64 // the window's end, Unix nanoseconds; 0: healthy

	mu     sync.Mutex // orders the updates: sessions end at once in a burst
	fails  int32      // windows opened in a row
	since  time.Time  // when this outage's first window opened
	warned bool       // this outage was logged at Warn
	refs   int        // slots of the agent; guarded by Relay.mu
}

// failing reports whether the window is open at now (Unix nanoseconds).
// Healthy agents cost one atomic load: the scheduler asks for every
// candidate, and a window that has passed reads as 0 again (failing's
// caller may clear it; fails and since stay until a session succeeds).
func (b *backendHealth) failing(now int64) bool {
	u := b.until.Load()
	if u == 0 {
		return false
	}
	if now >= u {
		b.until.CompareAndSwap(u, 0)
		return false
	}
	return true
}

// Backend-failure windows: 1 s after a session that the agent ended with
// BACKEND_UNAVAILABLE, doubling (up to 16 s) each time one ends so after
// the window before has passed (a probe that failed). Failures inside an
// open window (a burst, all sent before the first failure) do not lengthen
// it. When it ends, the next client may go there again: a probe, which
// costs that one client when the backend is still down.
const (
	backendFailBase = time.Second
	backendFailMax  = 16 * time.Second
)

// backendFailed records a session the agent ended with
// BACKEND_UNAVAILABLE.
func (b *backendHealth) backendFailed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if b.failing(now.UnixNano()) {
		return // a failure of the same burst
	}
	if b.fails == 0 {
		b.since = now
	}
	b.fails++
	b.until.Store(now.Add(backendFailWindow(b.fails)).UnixNano())
}

// warnOnce reports whether this outage is still to be logged at Warn (once
// per outage), and the failures in a row.
func (b *backendHealth) warnOnce() (warn bool, fails int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	warn = b.fails > 0 && !b.warned
	if warn {
		b.warned = true
	}
	return warn, b.fails
}

// sessionSucceeded records a session that ended otherwise: the backend
// answered. Only a session opened since the outage began counts: one
// opened before it proves nothing about the backend now.
func (b *backendHealth) sessionSucceeded(openedAt time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fails == 0 || openedAt.Before(b.since) {
		return
	}
	b.fails, b.warned = 0, false
	b.until.Store(0)
}

// failingNow is failing, reading the clock only when a window was opened.
func (b *backendHealth) failingNow() bool {
	return b.until.Load() != 0 && b.failing(time.Now().UnixNano())
}

// state returns the failures in a row and the window's end (zero if none
// is open).
func (b *backendHealth) state() (fails int32, until time.Time) {
	b.mu.Lock()
	fails = b.fails
	b.mu.Unlock()
	if b.failingNow() {
		until = time.Unix(0, b.until.Load())
	}
	return fails, until
}

// backendFailWindow is the window after the nth failure in a row.
func backendFailWindow(n int32) time.Duration {
	if n > 5 {
		return backendFailMax
	}
	return min(backendFailBase<<(n-1), backendFailMax)
}

// wakeSlots tells every slot of h how its idle wait ends (its sessions,
// if any, go on). r.mu is held.
func (h *host) wakeSlots(how idleOutcome) {
	for w := range h.waiting {
		wake(w, how)
	}
}

// wake sends how to a slot's woken channel, unless it already holds two
// wake-ups (one of each kind is all a slot can act on).
func wake(w chan idleOutcome, how idleOutcome) {
	select {
	case w <- how:
	default:
	}
}

// session is one open client session, for status.
type session struct {
	seq uint64 // the number in id: sessions in the order they opened
	// listSeq orders ListSessions' pages: given under mu as the session
	// joins r.sessions. seq is drawn before the Open frame is sent, which
	// can block, so a page could end past a session not listed yet, and
	// the next page skip it (QA, by reading).
	listSeq    uint64
	id, slotID string
	host       *host
	health     *backendHealth // its agent connection's
	clientAddr string
	openedAt   time.Time
	conn       *attachconn.Conn

	// abortMu orders an abort from outside the handler (shutdown, admin)
	// against the handler's return: the Close frame it may send must never
	// use the stream once the handler has returned.
	abortMu  sync.Mutex
	returned bool
}

// abort aborts the session with reason unless its handler has returned; it
// reports whether it did.
func (s *session) abort(reason relayv1.CloseReason, cause error) bool {
	s.abortMu.Lock()
	defer s.abortMu.Unlock()
	if s.returned {
		return false
	}
	s.conn.AbortWith(reason, cause)
	return true
}

// defaultRelayID is hostname-pid and eight random hex digits. Agents take
// two addresses that answer with one relay id for one relay; hostname-pid
// alone collided for relays in containers that share a hostname (a pod's),
// each with pid 1.
func defaultRelayID() string {
	h, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return fmt.Sprintf("%s-%d-%x", h, os.Getpid(), b)
}

// New returns a Relay.
func New(cfg Config) (*Relay, error) {
	if cfg.Bridge == nil {
		return nil, errors.New("relay: Config.Bridge is required")
	}
	if cfg.RelayID == "" {
		cfg.RelayID = defaultRelayID()
	}
	if len(cfg.Services) == 0 {
		cfg.Services = []string{"default"}
	}
	if cfg.MaxDataBytes <= 0 {
		cfg.MaxDataBytes = DefaultMaxDataBytes
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = 10 * time.Second
	}
	if cfg.MaxCredits <= 0 {
		cfg.MaxCredits = DefaultMaxCredits
	}
	if cfg.ClaimTimeout <= 0 {
		cfg.ClaimTimeout = DefaultClaimTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Relay{
		cfg: cfg, log: log, services: map[string]bool{}, started: time.Now(),
		hosts: map[hostKey]*host{}, hostLines: map[hostKey]*hostLines{}, sessions: map[string]*session{}, totals: map[string]uint64{},
		drainedHosts: map[hostKey]bool{}, watchEnd: make(chan struct{}),
		conns: map[string]int{}, limits: map[string]uint64{}, offers: map[string]*offer{}, health: map[healthID]*backendHealth{},
		limitLogged: map[string]time.Time{}, limitQuiet: map[string]uint64{}, limitRepeat: map[string]repeatedLimit{}, now: time.Now,
	}
	r.events.buffer, r.events.max = cfg.WatchBuffer, cfg.MaxWatchers
	if r.events.buffer <= 0 {
		r.events.buffer = DefaultWatchBuffer
	}
	for _, s := range cfg.Services {
		r.services[s] = true
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.idleCtx, r.idleCancel = context.WithCancel(r.ctx)
	r.deep = shallow.NewPool(0)
	return r, nil
}

// limitHit counts a limit hit and logs it. Limits a stranger can hit at
// will (hello timeout) are logged at most once a second.
func (r *Relay) limitHit(name string, attrs ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.limitHitLocked(name, attrs...)
}

func (r *Relay) limitHitLocked(name string, attrs ...any) bool {
	r.limits[name]++
	now := r.now()
	if now.Sub(r.limitLogged[name]) < time.Second {
		r.limitQuiet[name]++
		return false
	}
	r.limitLogged[name] = now
	attrs = append([]any{"limit", name, "total", r.limits[name]}, attrs...)
	if n := r.limitQuiet[name]; n > 0 {
		attrs = append(attrs, "not_logged_since_last_line", n)
		r.limitQuiet[name] = 0
	}
	r.log.Warn("limit hit", attrs...)
	return true
}

// limitRepeatEvery is how often, at most, one host's hits of one slot cap
// are logged. An agent whose --idle is above the cap holds what it got and
// asks for more every few seconds, for as long as it runs: a line each
// time would be noise, and the metric counts every hit.
const limitRepeatEvery = time.Minute

// limitHitByLocked is limitHitLocked for a limit that one host (by) hits
// again and again while the cause lasts: after a line for it, its hits of
// that limit are counted, not logged, for limitRepeatEvery; its next line
// says how many (repeats_not_logged).
func (r *Relay) limitHitByLocked(name, by string, attrs ...any) {
	key := name + "\x00" + by
	now := r.now()
	last, ok := r.limitRepeat[key]
	if ok && now.Sub(last.at) < limitRepeatEvery {
		r.limits[name]++
		last.quiet++
		r.limitRepeat[key] = last
		return
	}
	if len(r.limitRepeat) >= 1024 { // hosts come and go: forget the quiet ones
		for k, l := range r.limitRepeat {
			if now.Sub(l.at) >= limitRepeatEvery {
				delete(r.limitRepeat, k)
			}
		}
	}
	if last.quiet > 0 {
		attrs = append(attrs, "repeats_not_logged", last.quiet)
	}
	if r.limitHitLocked(name, attrs...) {
		r.limitRepeat[key] = repeatedLimit{at: now}
	}
}

// repeatedLimit is when a limit's last line for one host was logged, and
// the host's hits of it since.
type repeatedLimit struct {
	at    time.Time
	quiet uint64
}

// LimitHits returns how often each limit was hit since the start.
func (r *Relay) LimitHits() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.limits)
}

// LimitHit counts a limit hit outside the relay (relayd's gRPC listener)
// and logs it like the relay's own, at most once a second.
func (r *Relay) LimitHit(name string, attrs ...any) { r.limitHit(name, attrs...) }

// limitHitsAll adds the bridge's client limits (and accept failures) to
// LimitHits, for the metrics; every limit shows, hit or not.
func (r *Relay) limitHitsAll() map[string]uint64 {
	all := r.LimitHits()
	for _, name := range []string{LimitSlotsPerHost, LimitSlotsPerConn, LimitIdleTimeout, LimitHelloTimeout, LimitClaimTimeout, LimitCredits, LimitAgentConns, LimitAgentConnsPerIP, LimitHealthWatchers, LimitWatchers} {
		all[name] += 0
	}
	rej := r.cfg.Bridge.Rejections()
	for _, name := range []string{clientbridge.RejectMaxClients, clientbridge.RejectMaxClientsPerIP, clientbridge.RejectRateLimited, clientbridge.RejectQueueFull, clientbridge.RejectAcceptError} {
		all[name] = rej[name]
	}
	return all
}

// ID returns the relay id.
func (r *Relay) ID() string { return r.cfg.RelayID }

// ActiveSessions returns the number of open sessions.
func (r *Relay) ActiveSessions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

// Drain ends every idle slot (status UNAVAILABLE, so agents go elsewhere)
// and refuses new streams; open sessions go on. It then waits until they
// have all ended or ctx is done, and reports whether they all ended.
func (r *Relay) Drain(ctx context.Context) bool {
	r.stopIdle()
	r.mu.Lock()
	if r.drained == nil {
		r.drained = make(chan struct{})
		if len(r.sessions) == 0 {
			close(r.drained)
		}
	}
	drained := r.drained
	r.mu.Unlock()
	select {
	case <-drained:
		return true
	case <-ctx.Done():
		return false
	}
}

// Close aborts every open session with CLOSE_REASON_RELAY_SHUTDOWN and
// waits for the receive loops. Call it after the gRPC server has stopped
// (so every handler has returned).
func (r *Relay) Close() {
	r.cancel()
	r.Drain(context.Background()) // wakes the idle slots
	r.loops.Wait()
	r.deep.Close()
	r.flushHostLines()
	// Every event has been published: watchers send what they hold, then end.
	r.watchEndOnce.Do(func() { close(r.watchEnd) })
}

// Shutdown aborts open sessions at once; unlike Close it does not wait for
// the gRPC handlers' receive loops, so it may run before the server stops.
func (r *Relay) Shutdown() { r.stopIdle(); r.cancel() }

// stopIdle ends the relay's idle time: no new slots, and every idle slot is
// woken to send Drain. Synchronous, under mu, as addSlot checks idleCtx.
func (r *Relay) stopIdle() {
	r.idleCancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.hosts {
		h.wakeSlots(idleShutdown)
	}
}

// AbortSessions is Shutdown, then a wait until every aborted session has
// ended (its host sent Close{CLOSE_REASON_RELAY_SHUTDOWN}) or ctx is done.
// Stopping the gRPC server before then would cancel the streams first, and
// the hosts would learn no reason. It reports whether they all ended.
func (r *Relay) AbortSessions(ctx context.Context) bool {
	r.Shutdown()
	return r.Drain(ctx)
}

var (
	errShutdown                    = errors.New("relay shutting down")
	errHalfClosedWithoutCloseWrite = errors.New("host half-closed the stream during a session without sending CloseWrite")
)

// Attach implements relay.v1.HostService.
//
// It runs on the goroutine grpc-go starts for the stream, which waits for
// most of the stream's life (see package shallow). grpc-go and the
// interceptors take ≈ 3 KiB below the handler; so that the goroutine stays
// at 4 KiB, the handler's frames are small and everything deep before a
// wait (sends, events, logging) runs on the relay's shallow.Pool. (attach
// waits there for Hello too, as the receive loop does: a peer that stalls
// before Hello keeps a worker until the hello timeout, and calls meanwhile
// run on goroutines of their own, as without the pool.)
func (r *Relay) Attach(stream relayv1.HostService_AttachServer) error {
	var a *attachment
	var err error
	r.deep.Run(func() { a, err = r.attach(stream) })
	if a == nil {
		return err
	}
	defer a.release()
	if a.credits != nil {
		return r.serveCredits(a)
	}
	for {
		client, how, endErr := a.waitIdle()
		if how != idleAssigned || client == nil {
			if again, err := r.afterIdle(a, how, endErr); !again {
				return err
			}
			continue
		}
		if r.hostDrained(a.key) {
			// Drained as this client was assigned: the client, untouched,
			// goes to another host.
			r.giveBack(a.sl, client)
			a.detach = "drained"
			return r.sendDrain(stream, relayv1.DrainReason_DRAIN_REASON_ADMIN, adminRetryAfter, "host drained by an operator")
		}
		a.detach = "session ended"
		var run *sessionRun
		r.deep.Run(func() { run, err = r.startSession(a, client) })
		if run == nil {
			// The stream ended as the client was assigned (given back
			// untouched): no session ran.
			a.detach = "slot given up"
			if err != nil {
				a.detach = detachReason(err)
			}
			return err
		}
		run.wait()
		// The session's log line alone would grow the stack to 8 KiB, a
		// copy of every frame below it just before the goroutine ends.
		r.deep.Run(func() { err = r.finishSession(run) })
		a.detach = run.detach
		if err != nil || !a.sequential || !run.clean() || !r.betweenSessions(a, run, &err) {
			return err
		}
	}
}

// betweenSessions takes a stream of sequential sessions from a clean end to
// its next idle wait: SessionEnd instead of OK, then the host's Hello (the
// slot waits again) or the stream's end (false; *err is the handler's
// status). Apart from Attach, which it would make deeper for the slot's
// whole life.
//
//go:noinline
func (r *Relay) betweenSessions(a *attachment, run *sessionRun, err *error) bool {
	var again bool
	r.deep.Run(func() { again, *err = r.endSession(a, run) })
	if !again {
		return false
	}
	hello, endErr := a.waitHello()
	r.deep.Run(func() { again, *err = r.reoffer(a, hello, endErr) })
	return again
}

// endSession sends SessionEnd after a clean session on a stream of
// sequential sessions. It reports whether the stream waits for the host's
// next Hello, or the handler's status.
func (r *Relay) endSession(a *attachment, run *sessionRun) (again bool, err error) {
	if !a.loop.nextSession() {
		// The host half-closed the RPC after its CloseWrite: it gives the
		// stream up, and the session's OK is the stream's.
		return false, nil
	}
	// The timer before SessionEnd goes out: the host may answer at once.
	a.helloTimer = time.NewTimer(r.cfg.HelloTimeout)
	if err := a.stream.Send(&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_SessionEnd{SessionEnd: &relayv1.SessionEnd{SessionId: run.sess.id}}}); err != nil {
		a.helloTimer.Stop()
		a.detach = "stream broke"
		return false, err
	}
	a.detach = "slot ended"
	return true, nil
}

// waitHello waits for the host's Hello after SessionEnd, or the stream's
// end. Small on purpose, as waitIdle.
func (a *attachment) waitHello() (*relayv1.Hello, error) {
	for {
		select {
		case h := <-a.loop.hello:
			return h, nil
		case err := <-a.loop.idleEnd:
			return nil, err
		case <-a.ctx.Done():
			return nil, a.loop.streamEnd(a.ctx)
		case how := <-a.woken:
			if how == idleLingered {
				a.lingerTaken()
				continue // the last idle wait's, stopped as it fired
			}
			a.wokenAgain = how // acted on in reoffer
			return nil, nil
		case <-a.helloTimer.C:
			return nil, errHelloTimeout
		}
	}
}

// errHelloTimeout is waitHello's timer.
var errHelloTimeout = errors.New("hello timeout")

// reoffer makes the stream an idle slot again after the host's Hello, as
// attach did after the first: Welcome, or Drain if the relay or the host is
// draining. It reports whether the slot waits for a client, or the
// handler's status.
func (r *Relay) reoffer(a *attachment, hello *relayv1.Hello, endErr error) (again bool, err error) {
	a.helloTimer.Stop()
	how := a.wokenAgain
	a.wokenAgain = idleAssigned // none
	switch {
	case how == idleShutdown || (hello != nil && r.idleCtx.Err() != nil):
		a.detach = "relay shutting down"
		return false, r.sendDrain(a.stream, relayv1.DrainReason_DRAIN_REASON_SHUTDOWN, shutdownRetryAfter, "relay shutting down; attach to another relay")
	case how == idleDrained || (hello != nil && r.hostDrained(a.key)):
		a.detach = "drained"
		return false, r.sendDrain(a.stream, relayv1.DrainReason_DRAIN_REASON_ADMIN, adminRetryAfter, "host drained by an operator")
	case errors.Is(endErr, errHelloTimeout):
		r.limitHit(LimitHelloTimeout, "peer_addr", a.peerAddr)
		a.detach = "no Hello after SessionEnd"
		return false, status.Errorf(codes.DeadlineExceeded, "no Hello within %v of SessionEnd", r.cfg.HelloTimeout)
	case hello == nil:
		if errors.Is(endErr, context.Canceled) || errors.Is(endErr, context.DeadlineExceeded) {
			endErr = status.FromContextError(endErr).Err()
		}
		if endErr != nil {
			a.detach = detachReason(endErr)
		} else {
			a.detach = "slot given up"
		}
		return false, endStatus(endErr)
	}
	if r.cfg.Authorize != nil {
		// Checked again: the token may have been removed, or its grant
		// narrowed, since the stream attached (SIGHUP). Without this a
		// stream of sequential sessions kept taking clients for good.
		if err := r.cfg.Authorize(a.ctx, a.service, a.key.id); err != nil {
			// Not a refused attach: in a token rotation every stream of
			// the old token ends so, and the agent opens new ones. The
			// slot's end says why.
			a.log.Debug("stream's token no longer accepted", "err", err)
			a.detach = "its token is no longer accepted: " + status.Convert(err).Message()
			return false, err
		}
	}
	if id := hello.GetClaimId(); id != "" {
		// The stream claims an offer instead of waiting for a client.
		c, err := r.claim(a.key, id)
		if err != nil {
			a.detach = "claim refused"
			return false, err
		}
		if err := r.sendWelcome(a, 0); err != nil {
			r.giveBackClient(a.h, c)
			a.detach = "stream broke"
			return false, err
		}
		a.sl.assigned <- c
		r.emitSlotOpened(a.key, a.sl.id)
		return true, nil
	}
	if !r.cfg.Bridge.AddIdle(a.service, a.sl) {
		a.detach = "relay shutting down"
		return false, status.Error(codes.Unavailable, "relay is shutting down; attach to another relay")
	}
	if err := a.stream.Send(&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{
		RelayId: r.cfg.RelayID, SlotId: a.sl.id, MaxDataBytes: uint32(r.cfg.MaxDataBytes), SequentialSessions: true,
		Withdraw: true, IdleTimeout: r.idleTimeout(),
	}}}); err != nil {
		r.withdraw(a.service, a.sl)
		a.detach = "stream broke"
		return false, err
	}
	r.emitSlotOpened(a.key, a.sl.id)
	if d := hello.GetIdleLinger().AsDuration(); d > 0 {
		a.lingerUntil = time.Now().Add(d)
		gen := a.lingerGen.Add(1)
		if a.lingerTimer != nil {
			a.lingerTimer.Stop()
		}
		a.lingerTimer = time.AfterFunc(d, func() { a.lingerFired(gen) })
	}
	return true, nil
}

// lingerFired wakes the idle wait bound as generation gen, if it is still
// the latest, with idleLingered. At most one such wake-up is queued at a
// time: a stale one (the wait had ended as its timer fired) can stay in
// woken until a later wait passes over it, and two of them would fill the
// channel and drop an operator's drain.
func (a *attachment) lingerFired(gen uint64) {
	if a.lingerGen.Load() != gen || !a.lingerQueued.CompareAndSwap(false, true) {
		return
	}
	select {
	case a.woken <- idleLingered:
	default:
		a.lingerQueued.Store(false) // two drains are queued: the slot ends anyway
	}
}

// lingerTaken records that an idleLingered wake-up left woken.
func (a *attachment) lingerTaken() { a.lingerQueued.Store(false) }

// attachment is an Attach stream that has become a slot.
type attachment struct {
	stream   relayv1.HostService_AttachServer
	ctx      context.Context
	loop     *recvLoop
	key      hostKey
	service  string
	peerAddr string
	h        *host
	// woken receives idleDrained when an operator drains the host, and
	// idleShutdown when the relay drains (see host.waiting). A channel of
	// its own: slots parking in a select on one channel shared by all
	// (the relay's Done, a host's drain) contend for its lock, a deep path
	// (lock2, futex) that grew many handlers' stacks to 8 KiB.
	woken   chan idleOutcome
	sl      *slot
	log     lazyLog
	detach  string // how the slot ended, for the host's detach event
	release func()

	// Sequential sessions (Hello.sequential_sessions): the stream waits
	// for the host's next Hello after each clean session.
	sequential bool
	helloTimer *time.Timer // bounds that wait; made and stopped on the pool
	wokenAgain idleOutcome // a wake-up (idleShutdown, idleDrained) during it
	// Hello.idle_linger of the latest Hello: the timer wakes the idle
	// wait with idleLingered; lingerUntil is zero while no wait is bound.
	lingerTimer  *time.Timer
	lingerUntil  time.Time
	lingerGen    atomic.Uint64 // bumped as each wait is bound or ends: a timer of an earlier one stays quiet
	lingerQueued atomic.Bool   // an idleLingered wake-up is in woken (see lingerFired)

	credits *creditStream // a credit stream (Hello.slot_credits): no session
}

// attach takes the stream from Hello to Welcome. It returns nil and the
// handler's status if the stream does not become a slot.
func (r *Relay) attach(stream relayv1.HostService_AttachServer) (*attachment, error) {
	ctx := stream.Context()
	if r.idleCtx.Err() != nil {
		// Draining: tell the agent to go elsewhere for a while, as its idle
		// slots were told, rather than fail it (it would count a failure).
		return nil, r.sendDrain(stream, relayv1.DrainReason_DRAIN_REASON_SHUTDOWN, shutdownRetryAfter, "relay shutting down; attach to another relay")
	}
	peerAddr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		peerAddr = p.Addr.String()
	}
	loop := &recvLoop{stream: stream, deep: r.deep, maxData: r.cfg.MaxDataBytes, hello: make(chan *relayv1.Hello, 1), idleEnd: make(chan error, 1), credits: make(chan uint32), hooks: r.hooks.Load()}
	r.loops.Add(1)
	go func() {
		defer r.loops.Done()
		loop.run()
	}()

	// Hello, within the hello timeout.
	timer := time.NewTimer(r.cfg.HelloTimeout)
	defer timer.Stop()
	var hello *relayv1.Hello
	select {
	case hello = <-loop.hello:
	case err := <-loop.idleEnd:
		return nil, endStatus(err)
	case <-timer.C:
		r.limitHit(LimitHelloTimeout, "peer_addr", peerAddr)
		return nil, status.Errorf(codes.DeadlineExceeded, "no Hello within %v", r.cfg.HelloTimeout)
	case <-ctx.Done():
		return nil, loop.streamEnd(ctx)
	case <-r.idleCtx.Done():
		return nil, r.sendDrain(stream, relayv1.DrainReason_DRAIN_REASON_SHUTDOWN, shutdownRetryAfter, "relay shutting down; attach to another relay")
	}
	timer.Stop()
	if err := checkHello(hello); err != nil {
		err = status.Errorf(codes.InvalidArgument, "Hello: %v", err)
		r.logRefused(shorten(hello.GetHostId()), shorten(hello.GetService()), peerAddr, err)
		return nil, err
	}
	service := hello.GetService()
	if service == "" {
		service = "default"
	}
	if !r.services[service] {
		err := status.Errorf(codes.PermissionDenied, "service %q is not served by this relay", service)
		r.logRefused(hello.GetHostId(), service, peerAddr, err)
		return nil, err
	}
	hostID := hello.GetHostId()
	if hostID == "" {
		hostID = peerAddr
	}
	if r.cfg.Authorize != nil {
		if err := r.cfg.Authorize(ctx, service, hostID); err != nil {
			r.logRefused(hostID, service, peerAddr, err)
			return nil, err
		}
	}
	key := hostKey{service, hostID}
	if hello.GetSlotCredits() > 0 && hello.GetClaimId() != "" {
		return nil, status.Error(codes.InvalidArgument, "Hello sets both slot_credits and claim_id: a credit stream carries no session")
	}
	if r.hostDrained(key) {
		// Instead of Welcome: the host is drained, it should come back later.
		return nil, r.sendDrain(stream, relayv1.DrainReason_DRAIN_REASON_ADMIN, adminRetryAfter, "host drained by an operator")
	}
	woken := make(chan idleOutcome, 2)
	healthKey := "conn " + peerAddr
	if id := hello.GetAgentInstance(); id != "" {
		healthKey = "agent " + id
	}
	if id := hello.GetClaimId(); id != "" && hello.GetSlotCredits() == 0 {
		if err := r.checkClaim(key, id); err != nil {
			return nil, err
		}
	}
	h, health, err := r.addSlot(key, peerAddr, healthKey, hello, woken)
	if err != nil {
		if id := hello.GetClaimId(); id != "" {
			r.releaseClaim(key, id)
		}
		return nil, err
	}
	a := &attachment{stream: stream, ctx: ctx, loop: loop, key: key, service: service, peerAddr: peerAddr, h: h, woken: woken, detach: "slot ended", sequential: hello.GetSequentialSessions()}
	credit := hello.GetSlotCredits() > 0
	a.release = func() {
		if a.lingerTimer != nil {
			a.lingerTimer.Stop()
		}
		r.removeSlot(h, credit, peerAddr, healthKey, woken, a.detach)
	}
	defer func() {
		if p := recover(); p != nil {
			a.release() // as Attach would have: the slot is not counted forever
			panic(p)
		}
	}()
	a.sl = &slot{id: "s" + strconv.FormatUint(r.slotSeq.Add(1), 10), host: h, health: health, assigned: make(chan *clientbridge.Client, 1)}
	a.log = lazyLog{base: r.log, attrs: []any{"host_id", hostID, "service", service, "slot_id", a.sl.id}}
	if hello.GetSlotCredits() > 0 {
		return r.attachCredits(a, hello.GetSlotCredits())
	}
	if id := hello.GetClaimId(); id != "" {
		return r.attachClaim(a, id)
	}

	// The slot is idle before Welcome goes out, so a host (and status) that
	// has seen Welcome can count on it; a client assigned meanwhile is sent
	// Open right after Welcome.
	if !r.cfg.Bridge.AddIdle(service, a.sl) {
		a.release()
		return nil, status.Error(codes.Unavailable, "relay is shutting down; attach to another relay")
	}
	if err := stream.Send(&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{
		RelayId: r.cfg.RelayID, SlotId: a.sl.id, MaxDataBytes: uint32(r.cfg.MaxDataBytes), SequentialSessions: a.sequential,
		Withdraw: true, IdleTimeout: r.idleTimeout(),
	}}}); err != nil {
		r.withdraw(service, a.sl)
		a.detach = "stream broke"
		a.release()
		return nil, err
	}
	r.emitSlotOpened(key, a.sl.id)
	return a, nil
}

// lazyLog is a logger with attributes of its own, formatted only when a
// line is logged: slog's With formats them at once, a cost (≈ 0.5 KB and
// its CPU) every slot and every session paid whether it logged or not.
type lazyLog struct {
	base  *slog.Logger
	attrs []any
}

func (l lazyLog) with(args ...any) lazyLog {
	return lazyLog{base: l.base, attrs: append(l.attrs[:len(l.attrs):len(l.attrs)], args...)}
}

func (l lazyLog) log(level slog.Level, msg string, args []any) {
	if l.base.Enabled(context.Background(), level) {
		l.base.Log(context.Background(), level, msg, append(l.attrs[:len(l.attrs):len(l.attrs)], args...)...)
	}
}

func (l lazyLog) Debug(msg string, args ...any) { l.log(slog.LevelDebug, msg, args) }
func (l lazyLog) Info(msg string, args ...any)  { l.log(slog.LevelInfo, msg, args) }

// How an idle slot's wait ended.
type idleOutcome int

const (
	idleAssigned idleOutcome = iota // a client, or nil: a reservation was dropped
	idleEnded                       // the stream ended; the error says how (nil: given up)
	idleShutdown                    // the relay drains
	idleDrained                     // an operator drained the host
	idleLingered                    // Hello.idle_linger has passed (or an earlier wait's, stopped too late)
)

// waitIdle waits for a client or the slot's end. Small on purpose: the
// handler's goroutine spends the slot's idle life here.
func (a *attachment) waitIdle() (*clientbridge.Client, idleOutcome, error) {
	select {
	case c := <-a.sl.assigned:
		return c, idleAssigned, nil
	case err := <-a.loop.idleEnd:
		return nil, idleEnded, err
	case <-a.ctx.Done():
		return nil, idleEnded, a.loop.streamEnd(a.ctx)
	case how := <-a.woken:
		return nil, how, nil
	}
}

// afterIdle handles the ends of an idle wait other than a client: it
// reports whether the slot waits again, or the handler's status.
func (r *Relay) afterIdle(a *attachment, how idleOutcome, endErr error) (again bool, err error) {
	switch how {
	case idleAssigned: // a reservation was dropped: offer the slot again
		a.sl.host.active.Add(-1)
		if !r.cfg.Bridge.AddIdle(a.service, a.sl) {
			return false, status.Error(codes.Unavailable, "relay is shutting down; attach to another relay")
		}
		return true, nil
	case idleShutdown:
		r.withdraw(a.service, a.sl)
		a.detach = "relay shutting down"
		a.log.Debug("slot drained: relay shutting down")
		return false, r.sendDrain(a.stream, relayv1.DrainReason_DRAIN_REASON_SHUTDOWN, shutdownRetryAfter, "relay shutting down; attach to another relay")
	case idleDrained:
		r.withdraw(a.service, a.sl)
		a.detach = "drained"
		a.log.Debug("slot drained by an operator")
		return false, r.sendDrain(a.stream, relayv1.DrainReason_DRAIN_REASON_ADMIN, adminRetryAfter, "host drained by an operator")
	case idleLingered:
		a.lingerTaken()
		if a.lingerUntil.IsZero() || time.Now().Before(a.lingerUntil) {
			return true, nil // an earlier wait's timer: the slot waits on
		}
		// As the host's Withdraw would: a client being given the slot
		// at this moment goes back to the queue untouched.
		r.withdraw(a.service, a.sl)
		a.detach = "withdrawn after its idle_linger"
		a.log.Debug("idle slot withdrawn: no client within the Hello's idle_linger")
		return false, nil
	}
	if errors.Is(endErr, context.Canceled) || errors.Is(endErr, context.DeadlineExceeded) {
		endErr = status.FromContextError(endErr).Err()
	}
	r.withdraw(a.service, a.sl)
	a.log.Debug("slot ended while idle", "err", endErr)
	if endErr != nil {
		a.detach = detachReason(endErr)
	} else {
		a.detach = "slot given up"
	}
	return false, endStatus(endErr)
}

// withdraw takes an idle slot back from the bridge; a client reserved for
// it at this very moment is handed on.
func (r *Relay) withdraw(service string, sl *slot) {
	if !r.cfg.Bridge.RemoveIdle(service, sl) {
		r.giveBack(sl, <-sl.assigned)
	}
}

// giveBack undoes a reservation that will not become a session: the
// client, untouched, goes back to the head of the queue.
func (r *Relay) giveBack(sl *slot, c *clientbridge.Client) {
	sl.host.active.Add(-1)
	if c != nil {
		r.cfg.Bridge.Requeue(c)
	}
}

// endStatus turns a receive-loop ending into the handler's return value:
// nil (the host gave the slot up) or a status error.
func endStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Unavailable, err.Error())
}

// sessionRun is a session under way on a slot.
type sessionRun struct {
	ctx          context.Context // the stream's
	sess         *session
	c            *clientbridge.Client
	log          lazyLog
	now          time.Time
	joined       chan splice.Result
	res          splice.Result
	closeSession func()
	cleanup      []func() // run last first when the session is over
	cleanEnd     bool     // set by finishSession
	detach       string   // set by finishSession: the slot's end, if the stream ends with the session
}

// startSession sends Open for client c on slot a and starts the session.
// It returns nil and the handler's status if the session does not start.
func (r *Relay) startSession(a *attachment, c *clientbridge.Client) (*sessionRun, error) {
	ctx, stream, loop, sl, log := a.ctx, a.stream, a.loop, a.sl, a.log
	if a.lingerTimer != nil {
		// A wake-up it sent already is stale: afterIdle finds no wait
		// bound, and waitHello passes over it.
		a.lingerGen.Add(1)
		a.lingerTimer.Stop()
		a.lingerUntil = time.Time{}
	}
	now := time.Now()
	seq := r.sessionSeq.Add(1)
	sess := &session{
		seq:        seq,
		id:         "c" + strconv.FormatUint(seq, 10),
		slotID:     sl.id,
		host:       sl.host,
		health:     sl.health,
		clientAddr: c.Conn.RemoteAddr().String(),
		openedAt:   now,
	}
	log = log.with("session_id", sess.id, "client_addr", sess.clientAddr)
	sess.conn = attachconn.New(attachconn.Config{
		// The relay sends CloseWrite when the client's FIN has come through.
		Sender:      &serverSender{stream: stream, onCloseWrite: func() { r.emitHalfClosed(sess, relayv1.SessionSide_SESSION_SIDE_CLIENT) }},
		MaxData:     r.cfg.MaxDataBytes,
		LocalAddr:   c.ListenerAddr,
		RemoteAddr:  c.Conn.RemoteAddr(),
		AbortReason: relayv1.CloseReason_CLOSE_REASON_CLIENT_RESET,
		// A send to the host fails when its stream broke: as the receive
		// loop and the stream's context would say, not as the client's
		// reset that the splice's abort on the failed write would record.
		LostReason: relayv1.CloseReason_CLOSE_REASON_HOST_LOST,
		// The Close of an abort may wait for the host to read; finishSession
		// bounds that wait (awaitOwedClose), not whoever aborted.
		AsyncClose: true,
	})
	if !r.setSession(loop, sess.conn, func() { r.emitHalfClosed(sess, relayv1.SessionSide_SESSION_SIDE_HOST) }, sess.health) {
		// The host ended the stream (Close, half-close, protocol error) as
		// the client was assigned: the client is untouched, give it on.
		r.giveBack(sl, c)
		return nil, endStatus(<-loop.idleEnd)
	}
	err := stream.Send(&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Open{Open: &relayv1.Open{
		SessionId:    sess.id,
		ClientAddr:   sess.clientAddr,
		ListenerAddr: c.ListenerAddr.String(),
		Service:      c.Service,
		OpenedAt:     timestamppb.New(now),
	}}})
	if err != nil {
		// The stream broke before the session began: the client is untouched.
		r.giveBack(sl, c)
		return nil, err
	}
	r.openSession(sess, c.Service)
	// Closed before the session_closed event and metrics below, so that
	// whoever sees the event and then asks for status sees it gone.
	run := &sessionRun{ctx: ctx, sess: sess, c: c, log: log, now: now, joined: make(chan splice.Result, 1)}
	run.closeSession = sync.OnceFunc(func() { r.closeSession(sess) })
	run.cleanup = append(run.cleanup, run.closeSession)
	joinStarted := false
	defer func() {
		if p := recover(); p != nil {
			// As finishSession would have: the session does not stay listed
			// (Drain would wait for it), and no abort uses the stream. The
			// client, if no join owns it yet, is reset: nothing it sent
			// went through.
			run.runCleanup()
			if !joinStarted {
				c.Conn.SetLinger(0)
				c.Conn.Close()
				c.Release()
			}
			panic(p)
		}
	}()
	wait := now.Sub(c.AcceptedAt)
	r.metrics.sessionOpened(c.Service, wait)
	r.emitSessionOpened(sess, wait)
	log.Debug("session opened")

	stopBroken := context.AfterFunc(ctx, func() {
		// The receive loop sees the stream's end too, at once unless it is
		// stuck writing to the client, and knows better why: grpc-go ends
		// the stream of a host that broke the frame limit itself, before the
		// loop reads its RESOURCE_EXHAUSTED. Its abort, if it comes, wins.
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-sess.conn.Aborted():
		case <-t.C:
		}
		t.Stop()
		sess.conn.DeliverAbort(relayv1.CloseReason_CLOSE_REASON_HOST_LOST, fmt.Errorf("attach stream ended: %w", context.Cause(ctx)))
	})
	run.cleanup = append(run.cleanup, func() { stopBroken() })
	// The shutdown abort may send a Close frame: never once the handler
	// has returned (the stream must not be used then); session.abort
	// checks.
	stopShutdown := context.AfterFunc(r.ctx, func() {
		sess.abort(relayv1.CloseReason_CLOSE_REASON_RELAY_SHUTDOWN, errShutdown)
	})
	run.cleanup = append(run.cleanup, func() {
		stopShutdown()
		sess.abortMu.Lock()
		sess.returned = true
		sess.abortMu.Unlock()
	})
	if d := r.cfg.IdleTimeout; d > 0 {
		// A timer, not a goroutine: it looks at the byte counters every
		// d/8 and ends the session once they have not moved for d, so it
		// ends between d and 9d/8 after the last byte (a look every d
		// against the previous look's counters ended it up to 2d after).
		var last attachconn.Stats
		var lastKernel uint64 // the client socket's (splice.KernelProgress)
		lastMoved := time.Now()
		step := d / 8
		var idle *time.Timer
		idle = time.AfterFunc(time.Duration(math.MaxInt64), func() {
			// A callback running as the handler returns must not re-arm
			// the timer, nor count a hit for a session already over.
			sess.abortMu.Lock()
			over := sess.returned || sess.conn.Err() != nil
			sess.abortMu.Unlock()
			if over {
				return
			}
			now := time.Now()
			if st := sess.conn.Stats(); st != last {
				last, lastMoved = st, now
			}
			// The counters above move when a write returns; a write to a
			// client that reads slowly returns only when much of the
			// socket's buffer is free again, long after its bytes began to
			// flow. The kernel's count of bytes the client acknowledged, or
			// sent, moves as they do.
			if k, ok := splice.KernelProgress(c.Conn); ok && k != lastKernel {
				lastKernel, lastMoved = k, now
			}
			if still := now.Sub(lastMoved); still < d {
				idle.Reset(min(step, d-still))
				return
			}
			if sess.abort(relayv1.CloseReason_CLOSE_REASON_TIMEOUT, fmt.Errorf("no byte either way for %v (relayd --idle-timeout)", d)) {
				r.limitHit(LimitIdleTimeout, "session_id", sess.id, "client_addr", sess.clientAddr, "idle_timeout", d)
			}
		})
		idle.Reset(step) // after the assignments the callback reads
		run.cleanup = append(run.cleanup, func() { idle.Stop() })
	}

	// The join runs apart from the handler (splice.Start: a silent client
	// waits in an epoll set, a goroutine copies only while it has bytes) so
	// that the handler can return once the session is aborted: if the
	// client → host copy is stuck in Send because the host stopped reading,
	// no Close frame can go out until it returns (awaitOwedClose), and
	// ending the RPC releases that Send.
	// (The Close frame, when it could be sent, went out before Aborted is
	// closed.) The join then finishes on its own (the client is reset after
	// the bytes it already has); Close waits for it.
	joined := run.joined
	r.loops.Add(1)
	joinStarted = true
	splice.Start(c.Conn, sess.conn, func(res splice.Result) {
		c.Release() // the join closed the client's socket
		joined <- res
		r.loops.Done()
	})
	return run, nil
}

// idleTimeout is Welcome.idle_timeout: IdleTimeout, or nil without one.
func (r *Relay) idleTimeout() *durationpb.Duration {
	if r.cfg.IdleTimeout <= 0 {
		return nil
	}
	return durationpb.New(r.cfg.IdleTimeout)
}

// closeGrace bounds how long an aborted session's stream stays open for
// the Close frame the abort owes the host (awaitOwedClose).
const closeGrace = 5 * time.Second

// awaitOwedClose waits, after an abort that found the client → host copy
// stuck in Send (the host not reading), for that Send to return and the
// owed Close frame to follow it, at most closeGrace. The receive loop
// reads on meanwhile, dropping what the host sends: a host that is stuck
// sending too (an echo backend blocked on its answers, which fill the
// stream) reads again once its sends go through. Ending the RPC instead
// would not tell the host: grpc-go queues the stream's end behind the
// data it cannot send, so the host would hold the session, its stream and
// its backend connection for good.
func (r *Relay) awaitOwedClose(run *sessionRun) {
	conn := run.sess.conn
	if !conn.CloseOwed() {
		return
	}
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-conn.CloseSettled():
	case <-t.C:
		run.log.Debug("the host did not read its Close in time; ending its stream", "grace", closeGrace)
		if h := r.hooks.Load(); h != nil && h.OwedCloseLate != nil {
			h.OwedCloseLate()
		}
	case <-run.ctx.Done():
	case <-r.ctx.Done(): // shutting down: the connection goes too
	}
	conn.AbandonClose()
}

// clean reports whether the session ended with both directions closed
// and every byte delivered; finishSession has run.
func (run *sessionRun) clean() bool { return run.cleanEnd }

// runCleanup undoes what startSession set up, last first.
func (run *sessionRun) runCleanup() {
	for i := len(run.cleanup) - 1; i >= 0; i-- {
		run.cleanup[i]()
	}
}

// wait waits for the session's end. Small on purpose: the handler's
// goroutine spends the session here.
func (run *sessionRun) wait() {
	select {
	case run.res = <-run.joined:
	case <-run.sess.conn.Aborted():
	}
}

// finishSession reports a session that has ended and returns the
// handler's status.
func (r *Relay) finishSession(run *sessionRun) error {
	defer run.runCleanup()
	r.awaitOwedClose(run)
	sess, c, log, now, res, closeSession := run.sess, run.c, run.log, run.now, run.res, run.closeSession
	// No abort from outside (idle timeout, shutdown, admin) from here on:
	// one now would send Close for a session this reports as it finds it,
	// perhaps clean, and that SessionEnd may follow.
	sess.abortMu.Lock()
	sess.returned = true
	sess.abortMu.Unlock()
	// An abort that came after the wait above owes the host nothing more:
	// the stream ends now, and no send may start after that.
	sess.conn.AbandonClose()
	st := sess.conn.Stats()
	ae := sess.conn.AbortCause()
	dur := time.Since(now)
	closed := &relayv1.SessionClosed{
		SessionId: sess.id, HostId: sess.host.key.id, Service: c.Service, ClientAddr: sess.clientAddr,
		BytesToHost: uint64(st.BytesWritten), BytesFromHost: uint64(st.BytesRead), Duration: durationpb.New(dur),
	}
	run.detach = "session ended"
	switch {
	case ae == nil && res.Err == nil:
		closed.Clean = true
		run.cleanEnd = true
	case ae != nil:
		closed.Reason = ae.Reason
		if ae.Cause != nil {
			closed.Detail = ae.Cause.Error()
		}
		switch ae.Reason {
		case relayv1.CloseReason_CLOSE_REASON_HOST_LOST:
			run.detach = detachReason(ae.Cause) // as for an idle slot whose stream broke
		case relayv1.CloseReason_CLOSE_REASON_RELAY_SHUTDOWN:
			run.detach = "relay shutting down"
		default:
			run.detach = "session aborted (" + ae.Reason.String() + ")"
		}
	default:
		closed.Detail = res.Err.Error()
		run.detach = "session aborted"
	}
	closeSession()
	r.metrics.sessionClosed(c.Service, closed)
	r.emitSessionClosed(sess, closed)
	// The one line per session end, with its numbers.
	attrs := []any{"bytes_to_host", st.BytesWritten, "bytes_from_host", st.BytesRead, "duration", dur.Round(time.Microsecond)}
	switch {
	case ae == nil && res.Err == nil:
		log.Info("session closed", attrs...)
		sess.health.sessionSucceeded(sess.openedAt)
		return nil
	case ae != nil && ae.Remote:
		msg := "session aborted by host"
		if ae.Reason == relayv1.CloseReason_CLOSE_REASON_HOST_LOST {
			// No Close came: the stream broke. Said so, with the likely
			// causes (QA: "aborted by host" read oddly for an agent the
			// relay's keepalive gave up on).
			msg = "session lost with its host's stream (the agent stopped, crashed, or its connection failed or missed --agent-keepalive)"
		}
		log.Info(msg, append(attrs, "reason", ae.Reason.String(), "err", ae.Cause)...)
		if ae.Reason != relayv1.CloseReason_CLOSE_REASON_BACKEND_UNAVAILABLE {
			sess.health.sessionSucceeded(sess.openedAt)
		} else if warn, n := sess.health.warnOnce(); n > 0 { // the receive loop opened a window
			level := slog.LevelDebug
			if warn {
				level = slog.LevelWarn // once an outage
			}
			r.log.Log(context.Background(), level, "host cannot reach its backend: clients go to other hosts first", "host_id", sess.host.key.id,
				"service", sess.host.key.service, "for", backendFailWindow(n), "failures_in_a_row", n)
		}
		if _, ok := status.FromError(ae.Cause); ok {
			return ae.Cause // a protocol error: the host learns which
		}
		// Not OK, which would claim every byte delivered. A host that sent
		// Close knows; one that half-closed the stream without CloseWrite
		// learns what that did; a lost one never reads it.
		return status.Errorf(codes.Aborted, "session aborted by the host (%s): %v", ae.Reason, ae.Cause)
	default:
		// OK would claim both directions closed with every byte delivered.
		var cause error = res.Err
		if ae != nil {
			cause = ae.Cause
		}
		log.Info("session aborted", append(attrs, "reason", closed.Reason.String(), "err", cause)...)
		reason := relayv1.CloseReason_CLOSE_REASON_UNSPECIFIED
		if ae != nil {
			reason = ae.Reason
		}
		return status.Errorf(codes.Aborted, "session aborted (%s): %v", reason, cause)
	}
}

// addSlot counts a new slot of host k, whose idle wait is woken through
// woken, and returns the host; a slot beyond the limits is refused with
// ResourceExhausted.
func (r *Relay) addSlot(k hostKey, peerAddr, healthKey string, hello *relayv1.Hello, woken chan idleOutcome) (*host, *backendHealth, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hosts[k]
	// The cap counts the streams that carry a session or wait for one,
	// and, apart, a host's credit streams: counted with them, credit
	// streams that filled the cap left no room for a single claim, and
	// the host served no client at all while its credits were offered
	// (QA: --max-slots-per-host 2 and two --slot-credits agents).
	credit := hello.GetSlotCredits() > 0
	if max := r.cfg.MaxSlotsPerHost; max > 0 && h != nil {
		if n := h.slots - h.creditStreams; !credit && n >= max {
			r.limitHitByLocked(LimitSlotsPerHost, k.service+"\x00"+k.id, "host_id", k.id, "service", k.service, "peer_addr", peerAddr, "max", max)
			return nil, nil, status.Errorf(codes.ResourceExhausted, "host %q already holds %d slots for service %q (relayd --max-slots-per-host)", k.id, n, k.service)
		}
		if credit && h.creditStreams >= max {
			r.limitHitByLocked(LimitSlotsPerHost, k.service+"\x00"+k.id, "host_id", k.id, "service", k.service, "peer_addr", peerAddr, "max", max)
			return nil, nil, status.Errorf(codes.ResourceExhausted, "host %q already holds %d credit streams for service %q (relayd --max-slots-per-host)", k.id, h.creditStreams, k.service)
		}
	}
	if credit && r.cfg.MaxSlotsPerConn == 1 {
		// HTTP/2 allows the connection one stream (the limit is also its
		// MaxConcurrentStreams): the credit stream, and no claim beside it.
		// Taken, its credits would draw every client to a claim refused
		// here, each reset after --assign-timeout (QA).
		r.limitHitByLocked(LimitSlotsPerConn, peerAddr, "host_id", k.id, "peer_addr", peerAddr, "max", 1)
		return nil, nil, status.Errorf(codes.FailedPrecondition, "relayd --max-slots-per-conn 1 leaves no stream for a claim beside a credit stream: run hostagent without --slot-credits, or relayd with --max-slots-per-conn 2 or more")
	}
	if max := r.cfg.MaxSlotsPerConn; max > 0 && r.conns[peerAddr] >= max {
		r.limitHitByLocked(LimitSlotsPerConn, peerAddr, "host_id", k.id, "peer_addr", peerAddr, "max", max)
		return nil, nil, status.Errorf(codes.ResourceExhausted, "this connection already holds %d slots (relayd --max-slots-per-conn): open another connection", r.conns[peerAddr])
	}
	r.conns[peerAddr]++
	if h == nil {
		h = &host{key: k, keyStr: k.id, peerAddr: peerAddr, attachedAt: time.Now(), waiting: map[chan idleOutcome]struct{}{}}
		r.hosts[k] = h
		r.hostLineLocked(k, "")
		// Under mu, so that a host's attached and detached events keep their order.
		r.emitHostAttached(k, peerAddr, hello.GetAgentVersion())
	}
	h.slots++
	if credit {
		h.creditStreams++
	}
	hid := healthID{k, healthKey}
	hh := r.health[hid]
	if hh == nil {
		// Agents without slots keep their entry while its window is open
		// (removeSlot); one whose window has passed is let go.
		for id, old := range r.health {
			if old.refs == 0 && !old.failingNow() {
				delete(r.health, id)
			}
		}
		hh = &backendHealth{}
		r.health[hid] = hh
	}
	hh.refs++
	h.peerAddr = peerAddr
	h.labels = hello.GetLabels()
	h.agentVersion = hello.GetAgentVersion()
	h.weight.Store(int64(max(hello.GetWeight(), 1)))
	h.waiting[woken] = struct{}{}
	// Under mu, as DrainHost and the relay's drain wake slots: a slot
	// added after either has its wake-up at once.
	if r.drainedHosts[k] {
		wake(woken, idleDrained)
	}
	if r.idleCtx.Err() != nil {
		wake(woken, idleShutdown)
	}
	return h, hh, nil
}

// removeSlot uncounts a slot; reason says how the host's last slot ended.
func (r *Relay) removeSlot(h *host, credit bool, peerAddr, healthKey string, woken chan idleOutcome, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(h.waiting, woken)
	if r.conns[peerAddr]--; r.conns[peerAddr] <= 0 {
		delete(r.conns, peerAddr)
	}
	h.slots--
	if credit {
		h.creditStreams--
	}
	hid := healthID{h.key, healthKey}
	if hh := r.health[hid]; hh != nil {
		// An agent whose every slot ended in its window (one slot, or
		// --max-sessions 1) must find it again on its next slot.
		if hh.refs--; hh.refs <= 0 && !hh.failingNow() {
			delete(r.health, hid)
		}
	}
	if h.slots == 0 {
		delete(r.hosts, h.key)
		r.hostLineLocked(h.key, reason)
		r.emitHostDetached(h.key, reason)
	}
}

// hostLines is the state of one host's attached and detached lines: a host
// that flaps (a Hello, then a half-close, again and again) gets two lines a
// second, then one that says where the lines it skipped left it.
type hostLines struct {
	window  time.Time   // when the current second of lines began
	lines   int         // logged in it
	skipped int         // not logged since the last line
	reason  string      // of the last detach
	settle  *time.Timer // logs the state the skipped lines left; nil when none are
}

const hostLinesPerSecond = 2

// hostLineLocked logs host k's "host attached" (reason "") or "host
// detached" line, unless k already had its lines this second: then the
// last state is logged when the second ends, with the count not logged.
// Called under mu, after r.hosts has changed.
func (r *Relay) hostLineLocked(k hostKey, reason string) {
	now := time.Now()
	if now.Sub(r.linesPruned) >= time.Second { // at most once a second: a mass detach calls this per host
		r.linesPruned = now
		for key, l := range r.hostLines {
			if l.settle == nil && now.Sub(l.window) >= time.Second {
				delete(r.hostLines, key)
			}
		}
	}
	l := r.hostLines[k]
	if l == nil || (l.settle == nil && now.Sub(l.window) >= time.Second) {
		l = &hostLines{window: now}
		r.hostLines[k] = l
	}
	if reason != "" {
		l.reason = reason
	}
	if l.settle == nil && l.lines < hostLinesPerSecond {
		l.lines++
		r.logHostLine(k, 0)
		return
	}
	l.skipped++
	if l.settle == nil {
		r.lineTimers.Add(1)
		l.settle = time.AfterFunc(l.window.Add(time.Second).Sub(now), func() {
			defer r.lineTimers.Done()
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.hostLines[k] == l && l.settle != nil {
				r.settleHostLinesLocked(k, l)
			}
		})
	}
}

// settleHostLinesLocked logs the state host k's skipped lines left it in,
// and starts a new second of lines.
func (r *Relay) settleHostLinesLocked(k hostKey, l *hostLines) {
	l.settle = nil
	r.logHostLine(k, l.skipped-1) // the line stands for the last skipped one
	l.window, l.lines, l.skipped = time.Now(), 1, 0
}

// logHostLine logs host k's state: attached, or detached for the last
// reason; notLogged counts its lines since the last one that were not
// logged.
func (r *Relay) logHostLine(k hostKey, notLogged int) {
	var extra []any
	if notLogged > 0 {
		extra = []any{"not_logged_since_last_line", notLogged}
	}
	if h := r.hosts[k]; h != nil {
		r.log.Info("host attached", append([]any{"host_id", k.id, "service", k.service, "peer_addr", h.peerAddr}, extra...)...)
		return
	}
	reason := ""
	if l := r.hostLines[k]; l != nil {
		reason = l.reason
	}
	r.log.Info("host detached", append([]any{"host_id", k.id, "service", k.service, "reason", reason}, extra...)...)
}

// flushHostLines logs at once what pending settles would have (the relay
// is closing), and waits for those already running.
func (r *Relay) flushHostLines() {
	r.mu.Lock()
	for k, l := range r.hostLines {
		if l.settle != nil && l.settle.Stop() {
			r.lineTimers.Done()
			r.settleHostLinesLocked(k, l)
		}
	}
	r.mu.Unlock()
	r.lineTimers.Wait()
}

func (r *Relay) hostDrained(k hostKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.drainedHosts[k]
}

// sendDrain tells an idle slot's host to go elsewhere for a while, and ends
// the stream with OK: nothing went wrong.
func (r *Relay) sendDrain(stream relayv1.HostService_AttachServer, reason relayv1.DrainReason, retryAfter time.Duration, detail string) error {
	return stream.Send(&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Drain{Drain: &relayv1.Drain{
		Reason: reason, RetryAfter: durationpb.New(retryAfter), Detail: detail,
	}}})
}

func (r *Relay) openSession(s *session, service string) {
	r.mu.Lock()
	r.listSeq++
	s.listSeq = r.listSeq
	r.sessions[s.id] = s
	r.totals[service]++
	r.mu.Unlock()
	s.host.total.Add(1) // active was counted when the slot was reserved
}

func (r *Relay) closeSession(s *session) {
	st := s.conn.Stats()
	// Under mu, with the delete: ListHosts adds the bytes of the sessions it
	// finds in r.sessions, and must not count a closing one twice.
	r.mu.Lock()
	s.host.bytesTo.Add(uint64(st.BytesWritten))
	s.host.bytesFrom.Add(uint64(st.BytesRead))
	s.host.active.Add(-1)
	delete(r.sessions, s.id)
	if r.drained != nil && len(r.sessions) == 0 {
		select {
		case <-r.drained: // a session reserved before the drain came and went
		default:
			close(r.drained)
		}
	}
	r.mu.Unlock()
}

// slot is one idle Attach stream, as the bridge sees it.
type slot struct {
	id       string
	host     *host
	health   *backendHealth            // its agent connection's
	assigned chan *clientbridge.Client // capacity 1
}

func (s *slot) HostKey() string { return s.host.keyStr }

func (s *slot) HostLoad() (int, int) { return int(s.host.active.Load()), int(s.host.weight.Load()) }

func (s *slot) Failing() bool { return s.health.failingNow() }

func (s *slot) Reserve() { s.host.active.Add(1) }

func (s *slot) Assign(c *clientbridge.Client) { s.assigned <- c }

// serverSender sends the relay's frames, reusing one message per kind: grpc
// encodes a message before SendMsg returns, and no stats handler or binary
// log keeps it, so the steady-state data path allocates nothing per frame.
type serverSender struct {
	stream       relayv1.HostService_AttachServer
	onCloseWrite func() // the client's FIN went out as CloseWrite
	msg          relayv1.AttachResponse
	data         relayv1.Data
	frame        relayv1.AttachResponse_Data
}

func (s *serverSender) SendData(p []byte) error {
	s.data.Payload = p
	s.frame.Data = &s.data
	s.msg.Frame = &s.frame
	err := s.stream.Send(&s.msg)
	s.data.Payload = nil
	return err
}

func (s *serverSender) SendCloseWrite() error {
	// The event first: the host may read the frame and answer it (with its
	// own CloseWrite, another event) before Send returns here.
	if s.onCloseWrite != nil {
		s.onCloseWrite()
	}
	return s.stream.Send(&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_CloseWrite{CloseWrite: &relayv1.CloseWrite{}}})
}

func (s *serverSender) SendClose(reason relayv1.CloseReason, detail string) error {
	return s.stream.Send(&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Close{Close: &relayv1.Close{Reason: reason, Detail: detail}}})
}

// recvLoop is the only caller of stream.Recv. It enforces the host's side
// of the protocol and feeds the session's Conn.
type recvLoop struct {
	stream relayv1.HostService_AttachServer
	// deep receives Hello: decoding it (a map, by reflection) is the
	// deepest call the loop makes, and would double the stack it keeps,
	// parked in Recv with less than 4 KiB in use, for the stream's life.
	deep    *shallow.Pool
	maxData int
	hello   chan *relayv1.Hello // the Hello, once
	idleEnd chan error          // how the stream ended before a session: nil = given up
	credits chan uint32         // a credit stream's Credit frames
	session atomic.Pointer[attachconn.Conn]
	// onCloseWrite runs when the host's CloseWrite arrives; written by
	// setSession before session is stored, so the loop sees it once it sees
	// the session.
	onCloseWrite func()
	// health is the session's agent connection's, written by setSession
	// with the session and read at the loop's end, under endMu.
	health *backendHealth

	endMu sync.Mutex // orders setSession against the loop's end
	ended bool       // guarded by endMu

	// helloAgain is set by nextSession, before SessionEnd goes out: the
	// host may send Hello once more.
	helloAgain atomic.Bool

	hooks *testHooks // nil outside tests
}

// nextSession makes the loop wait for the next Hello, after a clean
// session on a stream of sequential sessions. It returns false if the loop
// has already ended.
func (l *recvLoop) nextSession() bool {
	l.endMu.Lock()
	defer l.endMu.Unlock()
	if l.ended {
		return false
	}
	l.session.Store(nil)
	l.helloAgain.Store(true)
	return true
}

// withdrawIdle ends the loop for a Withdraw if no session has the slot:
// from then on setSession fails, so a client being assigned to the slot
// goes back to the queue untouched. It returns false, and the Withdraw is
// void, if a session has it.
func (l *recvLoop) withdrawIdle() bool {
	l.endMu.Lock()
	defer l.endMu.Unlock()
	if l.session.Load() != nil {
		return false
	}
	l.ended = true
	return true
}

// errWithdrawn ends a receive loop whose idle slot the host withdrew.
var errWithdrawn = errors.New("slot withdrawn")

// setSession hands the loop the session's Conn. It returns false if the
// loop has already ended; then its ending is (or will be) in idleEnd.
func (l *recvLoop) setSession(conn *attachconn.Conn, onCloseWrite func(), h *backendHealth) bool {
	l.endMu.Lock()
	defer l.endMu.Unlock()
	if l.ended {
		return false
	}
	l.onCloseWrite, l.health = onCloseWrite, h
	l.session.Store(conn)
	return true
}

// streamEnd is the status of a stream whose context is done while the
// loop holds no session. grpc-go ends the stream itself when a Recv fails
// (a frame over the size limit, bytes that do not decode), and its context
// is canceled before the loop has the error: the loop's error, which comes
// at once, says what happened, where Canceled would hide it (no log line
// at Warn, and counted as Canceled).
func (l *recvLoop) streamEnd(ctx context.Context) error {
	t := time.NewTimer(100 * time.Millisecond) // the loop may be elsewhere than Recv
	defer t.Stop()
	select {
	case err := <-l.idleEnd:
		if err != nil && status.Code(err) != codes.Canceled && !errors.Is(err, context.Canceled) {
			return endStatus(err)
		}
	case <-t.C:
	}
	return status.FromContextError(ctx.Err()).Err()
}

func protocolError(code codes.Code, format string, args ...any) error {
	return status.Errorf(code, "protocol error: "+format, args...)
}

func (l *recvLoop) run() {
	err := l.loop()
	l.endMu.Lock()
	l.ended = true
	conn, h := l.session.Load(), l.health
	l.endMu.Unlock()
	if conn != nil {
		if err == nil {
			return
		}
		// The stream broke (Canceled, Unknown, a transport error) unless
		// the host said why, or broke the protocol.
		reason := relayv1.CloseReason_CLOSE_REASON_HOST_LOST
		var ce *closeFrameError
		if errors.As(err, &ce) {
			reason = ce.reason
		} else if errors.Is(err, errHalfClosedWithoutCloseWrite) {
			reason = relayv1.CloseReason_CLOSE_REASON_HOST_ABORT
		} else if _, ok := status.FromError(err); ok && status.Code(err) != codes.Canceled && status.Code(err) != codes.Unknown {
			reason = relayv1.CloseReason_CLOSE_REASON_PROTOCOL_ERROR
		}
		if reason == relayv1.CloseReason_CLOSE_REASON_BACKEND_UNAVAILABLE && h != nil {
			// Before the client's reset: its next try must see the window.
			h.backendFailed()
		}
		conn.DeliverAbort(reason, err)
		return
	}
	var ce *closeFrameError
	if errors.As(err, &ce) || err == errWithdrawn {
		err = nil // Close before Open, or Withdraw: the host gives the slot up
	}
	l.idleEnd <- err
}

// hostClose is the loop's end for the host's Close frame. A reason that
// only the relay sets (the client's reset, its own shutdown, an operator's
// CloseSession, a lost stream) is recorded as HOST_ABORT, with what the
// host said in the detail: events and metrics say what happened, and a
// host cannot pass its aborts off as the operator's or the relay's.
func hostClose(c *relayv1.Close) *closeFrameError {
	reason, detail := c.GetReason(), hostDetail(c.GetDetail())
	switch reason {
	case relayv1.CloseReason_CLOSE_REASON_CLIENT_RESET, relayv1.CloseReason_CLOSE_REASON_RELAY_SHUTDOWN,
		relayv1.CloseReason_CLOSE_REASON_ADMIN, relayv1.CloseReason_CLOSE_REASON_HOST_LOST:
		said := fmt.Sprintf("the host sent %s, which only the relay sets", reason)
		if detail == "" {
			detail = said
		} else {
			detail += " (" + said + ")"
		}
		reason = relayv1.CloseReason_CLOSE_REASON_HOST_ABORT
	}
	return &closeFrameError{reason: reason, detail: detail}
}

// hostDetail bounds a host's Close.detail as an operator's is
// (maxCloseDetail), cut at a character's start: it goes into the session's
// log line and SessionClosed event, and each watcher that lags holds up to
// --watch-buffer of those (a review: 30 KB details, 33 MB per stalled
// watcher).
func hostDetail(detail string) string {
	if len(detail) <= maxCloseDetail {
		return detail
	}
	cut := maxCloseDetail
	for cut > 0 && !utf8.RuneStart(detail[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes cut)", detail[:cut], len(detail)-cut)
}

// closeFrameError is the host's Close frame, seen as the loop's end.
type closeFrameError struct {
	reason relayv1.CloseReason
	detail string
}

func (e *closeFrameError) Error() string {
	return fmt.Sprintf("host sent Close (%s): %s", e.reason, e.detail)
}

// loop returns nil when the host ends cleanly, or why it stopped.
func (l *recvLoop) loop() error {
	var first *relayv1.AttachRequest
	var err error
	l.deep.Run(func() { first, err = l.stream.Recv() })
	if err != nil {
		if err == io.EOF {
			return nil
		}
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return protocolError(codes.InvalidArgument, "the first frame must be Hello, got %s", frameName(first))
	}
	l.hello <- hello
	if hello.GetSlotCredits() > 0 {
		return l.creditLoop()
	}
	sequential := hello.GetSequentialSessions()
	hostClosedWrite := false
	var last *attachconn.Conn // the session hostClosedWrite is about
	// One message for the whole stream, not reset between frames: the
	// frame codec reuses its Data message (see framecodec).
	var req relayv1.AttachRequest
	for {
		if err := l.stream.RecvMsg(&req); err != nil {
			if err == io.EOF {
				// The host half-closed the RPC. While idle that gives the slot
				// up; in a session without CloseWrite it is no FIN: the host
				// may never have seen Open, and the client must not take an
				// end for a clean one.
				if l.session.Load() != nil && !hostClosedWrite {
					return errHalfClosedWithoutCloseWrite
				}
				return nil
			}
			return err
		}
		conn := l.session.Load()
		if conn != last {
			last, hostClosedWrite = conn, false // the next session
		}
		switch f := req.Frame.(type) {
		case *relayv1.AttachRequest_Hello:
			if conn == nil && l.helloAgain.CompareAndSwap(true, false) {
				l.hello <- f.Hello // only its claim_id counts
				continue
			}
			if sequential && hostClosedWrite {
				return protocolError(codes.FailedPrecondition, "Hello before SessionEnd")
			}
			return protocolError(codes.FailedPrecondition, "Hello sent twice")
		case *relayv1.AttachRequest_Close:
			return hostClose(f.Close)
		case *relayv1.AttachRequest_Withdraw:
			if l.withdrawIdle() {
				if l.hooks != nil && l.hooks.Withdrawn != nil {
					l.hooks.Withdrawn()
				}
				return errWithdrawn
			}
			// Void: a session has the slot (its Open crossed the
			// Withdraw), and the host serves it.
		case *relayv1.AttachRequest_Credit:
			return protocolError(codes.FailedPrecondition, "Credit on a stream that is not a credit stream (Hello.slot_credits)")
		case *relayv1.AttachRequest_Data:
			switch {
			case conn == nil:
				return protocolError(codes.FailedPrecondition, "Data with no session open (before Open, or after SessionEnd)")
			case hostClosedWrite:
				return protocolError(codes.FailedPrecondition, "Data after CloseWrite")
			case len(f.Data.GetPayload()) > l.maxData:
				return protocolError(codes.ResourceExhausted, "Data payload of %d bytes exceeds max_data_bytes %d", len(f.Data.GetPayload()), l.maxData)
			}
			// Deliver has consumed the payload when it returns: its pooled
			// buffer is free for the next frame.
			// After an abort Deliver drops the payload at once: the loop
			// reads on until the stream ends, so that a host stuck sending
			// can take the Close frame the abort may still owe it (see
			// awaitOwedClose).
			conn.Deliver(f.Data.Payload) //nolint:errcheck // the session's end is the handler's
			framecodec.Recycle(f.Data.Payload)
			f.Data.Payload = nil
		case *relayv1.AttachRequest_CloseWrite:
			switch {
			case conn == nil:
				return protocolError(codes.FailedPrecondition, "CloseWrite with no session open (before Open, or after SessionEnd)")
			case hostClosedWrite:
				return protocolError(codes.FailedPrecondition, "CloseWrite sent twice")
			}
			hostClosedWrite = true
			// The event first: once delivered, the session may end and
			// report so before this loop runs again.
			if l.onCloseWrite != nil {
				l.onCloseWrite()
			}
			conn.DeliverCloseWrite()
		default:
			return protocolError(codes.InvalidArgument, "frame with no known field set")
		}
	}
}

func frameName(req *relayv1.AttachRequest) string {
	switch req.Frame.(type) {
	case *relayv1.AttachRequest_Data:
		return "Data"
	case *relayv1.AttachRequest_CloseWrite:
		return "CloseWrite"
	case *relayv1.AttachRequest_Close:
		return "Close"
	case *relayv1.AttachRequest_Hello:
		return "Hello"
	case *relayv1.AttachRequest_Credit:
		return "Credit"
	case *relayv1.AttachRequest_Withdraw:
		return "Withdraw"
	default:
		return "an empty frame"
	}
}

// detachReason words how a host's last stream ended, for the "host
// detached" line and event: a canceled stream is the agent stopping, or its
// connection breaking, which the relay cannot tell apart (grpc-go cancels
// the stream's context in both cases).
func detachReason(err error) string {
	if errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
		return "stream canceled: the agent stopped, or its connection broke"
	}
	return err.Error()
}

// logRefused logs a refused Hello, at most once a second.
// checkHello refuses the strings of a first Hello that the relay would
// keep per host and write into every line about it (names): before, each
// could be as long as the message limit, and a control character in a host
// id went into logs and ListHosts as it came.
func checkHello(h *relayv1.Hello) error {
	if err := names.Text(h.GetService(), names.MaxService); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if err := names.HostID(h.GetHostId()); err != nil {
		return err
	}
	if err := names.Labels(h.GetLabels()); err != nil {
		return err
	}
	if err := names.Text(h.GetAgentVersion(), names.MaxAgentVersion); err != nil {
		return fmt.Errorf("agent version: %w", err)
	}
	if err := names.Text(h.GetAgentInstance(), names.MaxAgentVersion); err != nil {
		return fmt.Errorf("agent instance: %w", err)
	}
	return nil
}

// shorten bounds what a refused Hello puts in a log line.
func shorten(s string) string {
	if len(s) <= 64 {
		return s
	}
	return strings.ToValidUTF8(s[:64], "") + "…"
}

func (r *Relay) logRefused(hostID, service, peerAddr string, err error) {
	r.refusals.Do(func(skipped int) {
		r.log.Warn("attach refused", "host_id", hostID, "service", service, "peer_addr", peerAddr, "err", err, "refused_since_last_line", skipped)
	})
}
