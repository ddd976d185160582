package agent_test

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/relayproject/relay/hostagent/agent"
	"github.com/relayproject/relay/relayd/relay"
)

// TestCappedClaimsBackOff: with --slot-credits, a relay at the host's
// --max-slots-per-host refuses the claim of a client offered to a credit,
// and offers the client again. The agent backs off: it grants no credit
// until its backoff ends, or until one of its sessions there ends, when
// the client is claimed at once. A refused claim was counted against the
// credit stream's first outage and skipped, so each refusal brought a new
// credit and a new claim: thousands of refused streams a second (QA).
func TestCappedClaimsBackOff(t *testing.T) {
	t.Parallel()
	const idle = 1                                           // so that the second client needs a credit granted again
	r := newRelayConfig(t, relay.Config{MaxSlotsPerHost: 2}) // the credit stream and one session
	l := listen(t, agent.Config{Relays: []string{r.GRPCAddr}, Idle: idle, SlotCredits: true,
		BackoffBase: time.Minute, BackoffMax: time.Minute}) // only a session's end cuts it short
	first := dialClient(t, r.ClientAddr)
	firstConn := accept(t, l)
	second := dialClient(t, r.ClientAddr)
	if _, err := second.Write([]byte("second")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(hangGuard)
	for r.Relay.LimitHits()[relay.LimitSlotsPerHost] == 0 { // a claim refused at the cap
		if time.Now().After(deadline) {
			t.Fatal("no claim was refused at the cap")
		}
		runtime.Gosched()
	}
	// 100 round trips on the first session: time in which a refused claim
	// that brought a new credit, and a new claim, would show many times.
	go io.Copy(firstConn, firstConn)
	buf := make([]byte, 1)
	for range 100 {
		if _, err := first.Write([]byte("r")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(first, buf); err != nil {
			t.Fatal(err)
		}
	}
	during := r.Relay.LimitHits()[relay.LimitSlotsPerHost]
	first.Close()
	firstConn.Close()
	conn := accept(t, l) // the second client, claimed once the first session ended
	got := make([]byte, len("second"))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "second" {
		t.Fatalf("second session read %q, %v", got, err)
	}
	conn.Close()
	// The credit granted after the first session began is refused, and
	// the few granted while a refused claim's failure was on its way to the
	// agent's manager (it races the relay's next offer: up to 5 seen in 300
	// loaded runs); none after that, while the first session lasts. Without
	// the backoff, 100 round trips saw over 100.
	if during > 10 {
		t.Errorf("%d claims refused at the cap while the first session lasted, want at most 10", during)
	}
}

// TestSessionsAtRelayCap: sessions one after another on a relay that caps
// the host below Idle (--max-slots-per-host 2) are served by the room the
// cap leaves, with a refused stream only now and then: the probe past the
// cap waits for its backoff, and a slot within the room the relay showed
// does not. Each session's end made a probe and the slots opened after
// its welcome, all refused but one; with a stream per session, clients
// waited out the backoff (26 sessions/s by hand, where the cap allowed
// over a thousand).
func TestSessionsAtRelayCap(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name string
		cfg  agent.Config
	}{
		{"stream per session", agent.Config{StreamPerSession: true}},
		{"slot credits", agent.Config{SlotCredits: true}},
		{"slot credits, stream per session", agent.Config{SlotCredits: true, StreamPerSession: true}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			r := newRelayConfig(t, relay.Config{MaxSlotsPerHost: 2})
			cfg := mode.cfg
			cfg.Relays, cfg.Idle = []string{r.GRPCAddr}, 5
			// No probe past the cap after the first refusals: a session
			// that waited for one would fail the test.
			cfg.BackoffBase, cfg.BackoffMax = time.Minute, time.Minute
			l := listen(t, cfg)
			const sessions = 60
			for i := range sessions {
				echoOnce(t, r, l, fmt.Sprintf("session %d\n", i))
			}
			// Those of the first slots opened together, or of the credits
			// granted before the cap was known (the relay offers a client
			// to each in turn while the host's stream is between two
			// sessions): up to Idle each.
			n := r.Relay.LimitHits()[relay.LimitSlotsPerHost]
			t.Logf("%s: %d streams refused", mode.name, n)
			if n > uint64(2*cfg.Idle) {
				t.Errorf("%d streams refused at the cap for %d sessions, want at most 2 × Idle (%d)", n, sessions, 2*cfg.Idle)
			}
		})
	}
}

// TestCappedCreditsGrowBack: a --slot-credits agent whose claims the
// relay's cap refused (the credits those claims used are gone) grows its
// credits back to Idle once its sessions have ended, one credit past the
// room per backoff. It kept the few it had left for as long as it stayed
// capped (a review: 1 of 4 for 30 s).
func TestCappedCreditsGrowBack(t *testing.T) {
	t.Parallel()
	const idle = 4
	r := newRelayConfig(t, relay.Config{MaxSlotsPerHost: 2}) // the credit stream and one session
	l := listen(t, agent.Config{Relays: []string{r.GRPCAddr}, Idle: idle, SlotCredits: true,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 40 * time.Millisecond, WarmLinger: 20 * time.Millisecond})
	waitStatus(t, r, "the credits", idleSlots(idle))
	clients := make([]*net.TCPConn, 3)
	for i := range clients {
		clients[i] = dialClient(t, r.ClientAddr)
	}
	deadline := time.Now().Add(hangGuard)
	for r.Relay.LimitHits()[relay.LimitSlotsPerHost] == 0 { // claims refused at the cap
		if time.Now().After(deadline) {
			t.Fatal("no claim was refused at the cap")
		}
		runtime.Gosched()
	}
	for _, c := range clients {
		c.CloseWrite()
	}
	for range clients { // one at a time, as the cap allows
		echo(accept(t, l))
	}
	for _, c := range clients {
		io.ReadAll(c)
	}
	waitStatus(t, r, "the credits back to Idle, the warm stream gone", idleSlots(idle))
}
