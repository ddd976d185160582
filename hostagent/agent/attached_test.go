package agent_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/hostagent/agent"
	"github.com/relayproject/relay/internal/portclaim"
	"github.com/relayproject/relay/relayd/relay"
)

// recordAttr returns the value of a record's attribute, or "" without it.
func recordAttr(r slog.Record, key string) string {
	v := ""
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

// nextMsg waits for the agent's next record with message msg.
func nextMsg(tb testing.TB, records <-chan slog.Record, msg string) slog.Record {
	tb.Helper()
	timer := time.NewTimer(hangGuard)
	defer timer.Stop()
	for {
		select {
		case r := <-records:
			if r.Message == msg {
				return r
			}
		case <-timer.C:
			tb.Fatalf("the agent did not log %q", msg)
		}
	}
}

// TestAttachedBelowIdle: a relay whose share of MaxSessions is below Idle
// is logged "relay attached" once that share is attached, once per relay.
func TestAttachedBelowIdle(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		maxSessions int
	}{
		{"one_each", 2},    // 1 slot on each relay
		{"two_and_one", 3}, // 2 on one, 1 on the other
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r1, r2 := newRelay(t), newRelay(t)
			records := make(chan slog.Record, 256)
			listen(t, agent.Config{Relays: []string{r1.GRPCAddr, r2.GRPCAddr}, Idle: 2, MaxSessions: tt.maxSessions,
				Logger: slog.New(levelHandler{records})})
			seen := map[string]string{} // relay → idle_slots
			for len(seen) < 2 {
				r := nextMsg(t, records, "relay attached")
				addr := recordAttr(r, "relay")
				if _, dup := seen[addr]; dup {
					t.Fatalf("relay attached logged twice for %s before the other relay's", addr)
				}
				seen[addr] = recordAttr(r, "idle_slots")
			}
			if _, ok := seen[r1.GRPCAddr]; !ok {
				t.Errorf("no relay attached line for r1 %s: %v", r1.GRPCAddr, seen)
			}
			if _, ok := seen[r2.GRPCAddr]; !ok {
				t.Errorf("no relay attached line for r2 %s: %v", r2.GRPCAddr, seen)
			}
			if got := seen[r1.GRPCAddr] + "+" + seen[r2.GRPCAddr]; tt.maxSessions == 2 && got != "1+1" ||
				tt.maxSessions == 3 && got != "1+2" && got != "2+1" {
				t.Errorf("idle_slots %s, want the %d slots of MaxSessions shared out", got, tt.maxSessions)
			}
		})
	}
}

// TestAttachedAtRelayCap: a relay that caps the host's slots below Idle
// (relayd --max-slots-per-host) refuses the rest; the agent logs "relay
// attached" with the slots it holds, and once: the refusals of its later
// probes do not count as a new attach. The cap is said once at Info, and
// the refused probes after it at Debug: it is where the pool stays, not a
// failure to warn of every minute.
func TestAttachedAtRelayCap(t *testing.T) {
	t.Parallel()
	r := newRelayConfig(t, relay.Config{MaxSlotsPerHost: 3})
	records := make(chan slog.Record, 256)
	l := listen(t, agent.Config{Relays: []string{r.GRPCAddr}, Idle: 5,
		BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		Logger: slog.New(levelHandler{records})})
	// "relay attached" once, with the slots held; the probes past the cap
	// are refused, and none of them logs another "relay attached".
	timer := time.NewTimer(hangGuard)
	defer timer.Stop()
	attached := false
	for refused := 0; !attached || refused < 4; {
		select {
		case rec := <-records:
			switch {
			case rec.Message == "relay attached":
				if attached {
					t.Fatalf("relay attached logged again at the cap: idle_slots %s", recordAttr(rec, "idle_slots"))
				}
				attached = true
				if got := recordAttr(rec, "idle_slots"); got != "3" {
					t.Errorf("relay attached with idle_slots %s, want the relay's cap 3", got)
				}
			case strings.HasPrefix(rec.Message, "relay caps this agent's idle slots"):
				want := slog.LevelDebug
				if refused == 0 {
					want = slog.LevelInfo
				}
				if rec.Level != want {
					t.Errorf("refusal %d at the cap logged at %v, want %v", refused+1, rec.Level, want)
				}
				refused++
			case rec.Level >= slog.LevelWarn:
				t.Errorf("logged at %v at the cap: %s", rec.Level, rec.Message)
			}
		case <-timer.C:
			t.Fatal("the agent did not probe the relay again beyond its cap")
		}
	}
	// Nor are they reconnects (hostagent_reconnects_total): an alert on
	// that counter fired for an agent that was only capped.
	if n := l.Stats().Reconnects; n != 0 {
		t.Errorf("Stats().Reconnects = %d after refusals at the cap, want 0", n)
	}
}

// TestRelayCapWithEverySlotBusy: at the relay's cap with every slot in a
// session, the probes for more are refused for the cap as before: not an
// outage, so not a Warn, and no new "relay attached" once the sessions
// end (the agent took them for failures, at Warn, and logged attached
// again).
func TestRelayCapWithEverySlotBusy(t *testing.T) {
	t.Parallel()
	r := newRelayConfig(t, relay.Config{MaxSlotsPerHost: 2})
	records := make(chan slog.Record, 4096)
	l := listen(t, agent.Config{Relays: []string{r.GRPCAddr}, Idle: 4,
		BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		Logger: slog.New(levelHandler{records})})
	nextMsg(t, records, "relay attached")
	var held []net.Conn
	for i := range 2 {
		client := dialClient(t, r.ClientAddr)
		held = append(held, client)
		msg := "held " + strconv.Itoa(i) + "\n"
		if _, err := client.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		conn := accept(t, l)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
			t.Fatalf("session %d: read %q, %v", i, got, err)
		}
	}
	timer := time.NewTimer(hangGuard)
	defer timer.Stop()
	for refused := 0; refused < 10; {
		select {
		case rec := <-records:
			switch {
			case strings.HasPrefix(rec.Message, "relay caps this agent's idle slots"):
				refused++
			case rec.Message == "relay attached":
				t.Fatalf("relay attached logged again with every slot busy at the cap")
			case rec.Level >= slog.LevelWarn:
				t.Fatalf("logged at %v with every slot busy at the cap: %s %s", rec.Level, rec.Message, recordAttr(rec, "err"))
			}
		case <-timer.C:
			t.Fatal("the agent did not probe the relay beyond its cap")
		}
	}
	for _, c := range held {
		c.Close()
	}
}

// TestCapHeldByAnotherAgentWarned: a refusal that names the relay's cap,
// for an agent that holds no slot there at all, is not this agent's pool
// at the cap but others holding it (a host id in use twice, an old
// instance still running): a failure, at Warn.
func TestCapHeldByAnotherAgentWarned(t *testing.T) {
	t.Parallel()
	r := newRelayConfig(t, relay.Config{MaxSlotsPerHost: 2})
	first := make(chan slog.Record, 256)
	listen(t, agent.Config{Relays: []string{r.GRPCAddr}, Idle: 2, HostID: "twice", Logger: slog.New(levelHandler{first})})
	nextMsg(t, first, "relay attached")
	records := make(chan slog.Record, 4096)
	listen(t, agent.Config{Relays: []string{r.GRPCAddr}, Idle: 2, HostID: "twice",
		BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		Logger: slog.New(levelHandler{records})})
	rec := nextMsg(t, records, "relay refused the slot")
	if rec.Level != slog.LevelWarn || !strings.Contains(recordAttr(rec, "err"), "--max-slots-per-host") {
		t.Errorf("the second agent's refusal: %v %q, want WARN naming --max-slots-per-host", rec.Level, recordAttr(rec, "err"))
	}
}

// TestUnreachableLoggedOnce: while a relay is down, the agent says so at
// Warn once, and at Debug at each retry after it (each with the failures so
// far); once the relay is back and logged attached, its next outage is
// logged at Warn again.
func TestUnreachableLoggedOnce(t *testing.T) {
	t.Parallel()
	addr := portclaim.MustAddr(t) // claimed, and nothing listens there yet
	records := make(chan slog.Record, 4096)
	listen(t, agent.Config{Relays: []string{addr}, Idle: 1,
		BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond,
		Logger: slog.New(levelHandler{records})})
	lastFailures := 0
	for i := range 10 {
		r := nextMsg(t, records, "relay unreachable")
		want := slog.LevelDebug
		if i == 0 {
			want = slog.LevelWarn
		}
		if r.Level != want {
			t.Fatalf("failure %d of the outage logged at %v, want %v", i+1, r.Level, want)
		}
		failures, err := strconv.Atoi(recordAttr(r, "failures"))
		if err != nil || failures <= lastFailures {
			t.Fatalf("failures=%s after failures=%d, want a climbing count", recordAttr(r, "failures"), lastFailures)
		}
		lastFailures = failures
	}

	// The relay comes up, and goes down again.
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ir, err := startRelay(lis)
	if err != nil {
		t.Fatal(err)
	}
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(ir.stop) }
	t.Cleanup(stop)
	nextMsg(t, records, "relay attached")
	stop()
	if r := nextMsg(t, records, "relay unreachable"); r.Level != slog.LevelWarn {
		t.Fatalf("the first failure of the next outage logged at %v, want WARN", r.Level)
	}
	if r := nextMsg(t, records, "relay unreachable"); r.Level != slog.LevelDebug {
		t.Fatalf("the second failure of the next outage logged at %v, want DEBUG", r.Level)
	}
}

// TestReattachWhenConnectionBack: a relay that could not be reached is
// tried again as soon as a gRPC connection to it is up, not at the end of
// the agent's backoff as well: gRPC's own reconnect backoff runs under
// it, and a relay's restart waited out both (up to twice BackoffMax).
// Here the agent's backoff is ten minutes and gRPC's a few milliseconds.
func TestReattachWhenConnectionBack(t *testing.T) {
	t.Parallel()
	addr := portclaim.MustAddr(t) // claimed, and nothing listens there yet
	records := make(chan slog.Record, 4096)
	listen(t, agent.Config{Relays: []string{addr}, Idle: 2,
		BackoffBase: 10 * time.Minute, BackoffMax: 10 * time.Minute,
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 5 * time.Millisecond, Multiplier: 1.6, MaxDelay: 20 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
		Logger: slog.New(levelHandler{records})})
	nextMsg(t, records, "relay unreachable")
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ir, err := startRelay(lis)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ir.stop)
	nextMsg(t, records, "relay attached") // within hangGuard, not minutes
}

// TestListenChecksHelloStrings: Listen refuses a Config whose Hello the
// relay would refuse, as hostagent's flags do; it returned nil, and the
// agent retried the refused slots for good, logging a Warn and then
// Debug lines (a review).
func TestListenChecksHelloStrings(t *testing.T) {
	t.Parallel()
	for _, cfg := range []agent.Config{
		{HostID: "two\nlines"},
		{Service: "web\tapi"},
		{Labels: map[string]string{"note": strings.Repeat("v", 1000), "more": strings.Repeat("v", 1000), "and": strings.Repeat("v", 1000),
			"yet": strings.Repeat("v", 1000), "so": strings.Repeat("v", 1000), "on": strings.Repeat("v", 1000), "and on": strings.Repeat("v", 1000),
			"a": strings.Repeat("v", 1000), "b": strings.Repeat("v", 1000), "c": strings.Repeat("v", 1000), "d": strings.Repeat("v", 1000),
			"e": strings.Repeat("v", 1000), "f": strings.Repeat("v", 1000), "g": strings.Repeat("v", 1000), "h": strings.Repeat("v", 1000),
			"i": strings.Repeat("v", 1000), "j": strings.Repeat("v", 1000)}}, // 17 KB in all: no Hello of it fits a default relay frame
		{HostID: strings.Repeat("h", 257)},
		{Labels: map[string]string{"site": "a\tb"}},
		{Labels: map[string]string{"": "v"}},
		{AgentVersion: strings.Repeat("v", 129)},
	} {
		cfg.Relays = []string{"127.0.0.1:1"}
		l, err := agent.Listen(context.Background(), cfg)
		if err == nil {
			l.Close()
			t.Errorf("Listen(%+v) = nil error, want the field named", cfg)
		}
	}
}

// stricterRelay refuses every Hello as a relay with stricter limits on its
// strings than this agent's would.
type stricterRelay struct {
	relayv1.UnimplementedHostServiceServer
}

func (stricterRelay) Attach(stream relayv1.HostService_AttachServer) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	return status.Error(codes.InvalidArgument, `Hello: label "site": value: 300 bytes, want at most 256`)
}

// TestHelloRefusedSaidAtError: a relay that refuses the Hello's strings
// is said at Error with a hint naming the flags, as nothing changes by
// itself; it was a Warn like an outage's, then Debug.
func TestHelloRefusedSaidAtError(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	relayv1.RegisterHostServiceServer(srv, stricterRelay{})
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-served })
	records := make(chan slog.Record, 64)
	listen(t, agent.Config{Relays: []string{lis.Addr().String()}, Idle: 1, Logger: slog.New(levelHandler{records})})
	timer := time.NewTimer(hangGuard)
	defer timer.Stop()
	for {
		select {
		case r := <-records:
			if r.Message != "relay refused the slot" {
				continue
			}
			if hint := recordAttr(r, "hint"); r.Level != slog.LevelError || !strings.Contains(hint, "--label") {
				t.Fatalf("refusal logged at %v with hint %q, want Error naming --label", r.Level, hint)
			}
			return
		case <-timer.C:
			t.Fatal(`no "relay refused the slot" logged`)
		}
	}
}
