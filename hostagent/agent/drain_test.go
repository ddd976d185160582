package agent_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/hostagent/agent"
)

// waitLogMsg waits for a log message, skipping others.
func waitLogMsg(tb testing.TB, logs <-chan string, want string) {
	tb.Helper()
	timer := time.NewTimer(hangGuard)
	defer timer.Stop()
	for {
		select {
		case msg := <-logs:
			if msg == want {
				return
			}
		case <-timer.C:
			tb.Fatalf("the agent did not log %q", want)
		}
	}
}

// TestDrainFromRelay: a relay that drains the host gets no new slots for a
// while; the open session there goes on, the other relay keeps serving, and
// the agent comes back once the relay undrains it.
func TestDrainFromRelay(t *testing.T) {
	t.Parallel()
	r1, r2 := newRelay(t), newRelay(t)
	logs := make(chan string, 256)
	l := listen(t, agent.Config{Relays: []string{r1.GRPCAddr, r2.GRPCAddr}, Logger: slog.New(logHandler{logs})})
	waitLogMsg(t, logs, "relay attached") // both pools full: the next such line
	waitLogMsg(t, logs, "relay attached") // can only be r1's return
	// An open session on r1, from before the drain.
	old := dialClient(t, r1.ClientAddr)
	oldConn := accept(t, l)

	ctx := context.Background()
	if _, err := r1.Relay.AdminService().DrainHost(ctx, &relayv1.DrainHostRequest{HostId: "test-host"}); err != nil {
		t.Fatalf("DrainHost: %v", err)
	}
	waitLogMsg(t, logs, "relay drained this host")
	if st := l.Stats(); st.Drains != 1 || st.ActiveSessions != 1 {
		t.Errorf("Stats = %+v, want 1 drain and 1 active session", st)
	}

	// r2 serves new clients.
	c2 := dialClient(t, r2.ClientAddr)
	conn2 := accept(t, l)
	c2.Write([]byte("r2"))
	c2.CloseWrite()
	echo(conn2)
	if got, err := io.ReadAll(c2); err != nil || string(got) != "r2" {
		t.Fatalf("client of r2 read %q, %v", got, err)
	}
	// The old session on r1 goes on to its clean end.
	old.Write([]byte("old"))
	old.CloseWrite()
	echo(oldConn)
	if got, err := io.ReadAll(old); err != nil || string(got) != "old" {
		t.Fatalf("the session open on r1 during the drain: client read %q, %v", got, err)
	}

	// Undrained, r1 gets slots again after the Drain's retry_after.
	if _, err := r1.Relay.AdminService().UndrainHost(ctx, &relayv1.UndrainHostRequest{HostId: "test-host"}); err != nil {
		t.Fatalf("UndrainHost: %v", err)
	}
	waitLogMsg(t, logs, "relay attached")
	c1 := dialClient(t, r1.ClientAddr)
	conn1 := accept(t, l)
	if conn1.(*agent.Conn).Relay() != r1.GRPCAddr {
		t.Fatalf("session from %s, want r1 %s", conn1.(*agent.Conn).Relay(), r1.GRPCAddr)
	}
	c1.Write([]byte("back"))
	c1.CloseWrite()
	echo(conn1)
	if got, err := io.ReadAll(c1); err != nil || string(got) != "back" {
		t.Fatalf("client of r1 after UndrainHost read %q, %v", got, err)
	}
}

// levelHandler passes each record's message and level.
type levelHandler struct{ records chan slog.Record }

func (h levelHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h levelHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.records <- r:
	default:
	}
	return nil
}
func (h levelHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h levelHandler) WithGroup(string) slog.Handler      { return h }

// nextRecord waits for the agent's next line with message msg and returns
// its level.
func nextRecord(tb testing.TB, records <-chan slog.Record, msg string) slog.Level {
	tb.Helper()
	timer := time.NewTimer(hangGuard)
	defer timer.Stop()
	for {
		select {
		case r := <-records:
			if r.Message == msg {
				return r.Level
			}
		case <-timer.C:
			tb.Fatalf("the agent did not log %q", msg)
		}
	}
}

func nextDrainedLine(tb testing.TB, records <-chan slog.Record) slog.Level {
	tb.Helper()
	return nextRecord(tb, records, "relay drained this host")
}

// TestDrainLoggedOnce: an operator's drain is answered again at each of the
// agent's retries (every retry_after) until UndrainHost; the agent says so
// at Info once, not every 2 s, and again after it was welcomed back; each
// drain is counted once in Stats.Drains (hostagent_drains_total).
func TestDrainLoggedOnce(t *testing.T) {
	t.Parallel()
	r := newRelay(t)
	records := make(chan slog.Record, 256)
	l := listen(t, agent.Config{Relays: []string{r.GRPCAddr}, Idle: 1, Logger: slog.New(levelHandler{records})})
	nextRecord(t, records, "relay attached")
	ctx := context.Background()
	drain := func() {
		t.Helper()
		if _, err := r.Relay.AdminService().DrainHost(ctx, &relayv1.DrainHostRequest{HostId: "test-host"}); err != nil {
			t.Fatalf("DrainHost: %v", err)
		}
	}
	drain()
	if lv := nextDrainedLine(t, records); lv != slog.LevelInfo {
		t.Errorf("the first drain logged at %v, want INFO", lv)
	}
	if lv := nextDrainedLine(t, records); lv != slog.LevelDebug {
		t.Errorf("the drain answered again at the retry logged at %v, want DEBUG", lv)
	}
	if st := l.Stats(); st.Drains != 1 {
		t.Errorf("Stats.Drains = %d, want 1: the drain answered again at a retry is the same drain", st.Drains)
	}
	if _, err := r.Relay.AdminService().UndrainHost(ctx, &relayv1.UndrainHostRequest{HostId: "test-host"}); err != nil {
		t.Fatalf("UndrainHost: %v", err)
	}
	nextRecord(t, records, "relay attached")
	drain()
	if lv := nextDrainedLine(t, records); lv != slog.LevelInfo {
		t.Errorf("a new drain after the agent was welcomed back logged at %v, want INFO", lv)
	}
	if st := l.Stats(); st.Drains != 2 {
		t.Errorf("Stats.Drains = %d after a second DrainHost, want 2", st.Drains)
	}
}

// TestDrainedProbedWithOneSlot: a relay that keeps this host drained (an
// operator's DrainHost, until UndrainHost) answers each slot with Drain.
// After each retry_after the agent asks again with one slot, not with all
// its Idle: 4 streams every 2 s before, for as long as the drain lasted.
func TestDrainedProbedWithOneSlot(t *testing.T) {
	t.Parallel()
	r := newRelay(t)
	records := make(chan slog.Record, 4096)
	l := listen(t, agent.Config{Relays: []string{r.GRPCAddr}, Idle: 4, Logger: slog.New(levelHandler{records})})
	nextRecord(t, records, "relay attached")
	ctx := context.Background()
	if _, err := r.Relay.AdminService().DrainHost(ctx, &relayv1.DrainHostRequest{HostId: "test-host"}); err != nil {
		t.Fatalf("DrainHost: %v", err)
	}
	nextRecord(t, records, "relay drained this host") // the idle slots, ended
	before := l.Stats().StreamsOpened
	nextRecord(t, records, "relay drained this host") // the first retry: answered Drain
	nextRecord(t, records, "relay drained this host") // the second
	if got := l.Stats().StreamsOpened - before; got != 2 {
		t.Errorf("%d streams opened over two retries of a drained relay, want 2 (one each)", got)
	}
	if got := l.Stats().Drains; got != 1 {
		t.Errorf("Stats().Drains = %d after one DrainHost answered at two retries, want 1", got)
	}
	if _, err := r.Relay.AdminService().UndrainHost(ctx, &relayv1.UndrainHostRequest{HostId: "test-host"}); err != nil {
		t.Fatalf("UndrainHost: %v", err)
	}
	// Once one is welcomed, the rest follow: "relay attached" says all 4.
	nextRecord(t, records, "relay attached")
	if st := l.Stats(); st.IdleSlots != 4 {
		t.Errorf("%d idle slots after UndrainHost, want 4", st.IdleSlots)
	}
}

// TestDrainProbeNotRebalancedTo: with MaxSessions reached, a drained
// relay's probe needs an idle slot withdrawn from the other relay, which
// gets it back when the probe is answered Drain: one stream there per
// retry. While the probe is out, the drained relay is not short of slots:
// rebalance withdrew another slot for it, which the slot loop (waiting for
// the probe) opened on the other relay again, and again, each retry.
func TestDrainProbeNotRebalancedTo(t *testing.T) {
	t.Parallel()
	a, b := newRelay(t), newRelay(t)
	records := make(chan slog.Record, 4096)
	l := listen(t, agent.Config{Relays: []string{a.GRPCAddr, b.GRPCAddr}, Idle: 10, MaxSessions: 4, Logger: slog.New(levelHandler{records})})
	idle := func(ir *inProcessRelay) uint32 {
		st, err := ir.Relay.StatusService().GetStatus(context.Background(), &relayv1.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return st.GetIdleSlots()
	}
	waitStatus(t, b, "the slots shared out", func(*relayv1.GetStatusResponse) bool { return idle(a) == 2 && idle(b) == 2 })
	ctx := context.Background()
	if _, err := a.Relay.AdminService().DrainHost(ctx, &relayv1.DrainHostRequest{HostId: "test-host"}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, b, "every slot on b", func(*relayv1.GetStatusResponse) bool { return idle(b) == 4 && l.Stats().IdleSlots == 4 })
	nextRecord(t, records, "relay drained this host") // DrainHost's, logged already
	before := b.attachesSoFar()
	const probes = 3
	for range probes {
		nextRecord(t, records, "relay drained this host") // a probe, answered Drain
	}
	waitStatus(t, b, "every slot on b again", func(*relayv1.GetStatusResponse) bool { return idle(b) == 4 && l.Stats().IdleSlots == 4 })
	if n := b.attachesSoFar() - before; n > probes {
		t.Errorf("%d streams opened on b over %d probes of drained a, want at most one each", n, probes)
	}
}
