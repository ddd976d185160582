package agent_test

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/hostagent/agent"
)

// fakeDNS answers lookups of one name with a settable address list.
type fakeDNS struct {
	mu    sync.Mutex
	ips   []string
	asked chan struct{} // one token per lookup answered
}

func (f *fakeDNS) set(ips ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ips = ips
}

func (f *fakeDNS) lookup(_ context.Context, host string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if host != "relays.test" {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	select {
	case f.asked <- struct{}{}:
	default:
	}
	return append([]string(nil), f.ips...), nil
}

// twoRelaysOneName starts relays on 127.0.0.1:P and 127.0.0.2:P, the two
// addresses of the fake name relays.test.
func twoRelaysOneName(t *testing.T) (a, b *inProcessRelay, port string) {
	for range 20 { // the port free on 127.0.0.1 may be taken on 127.0.0.2
		la, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = strconv.Itoa(la.Addr().(*net.TCPAddr).Port)
		lb, err := net.Listen("tcp", "127.0.0.2:"+port)
		if err != nil {
			la.Close()
			continue
		}
		return newRelayOn(t, la), newRelayOn(t, lb), port
	}
	t.Skip("no port free on both 127.0.0.1 and 127.0.0.2")
	return nil, nil, ""
}

// TestRelayNameResolvedToEveryAddress: one relay name with two addresses
// gets slots on both; an address that leaves DNS loses its idle slots but
// keeps its session; one that comes back gets slots again.
func TestRelayNameResolvedToEveryAddress(t *testing.T) {
	t.Parallel()
	a, b, port := twoRelaysOneName(t)
	dns := &fakeDNS{asked: make(chan struct{}, 1)}
	dns.set("127.0.0.1", "127.0.0.2")
	l := listen(t, agent.Config{
		Relays: []string{net.JoinHostPort("relays.test", port)}, Idle: 2,
		LookupHost: dns.lookup, ResolveInterval: 20 * time.Millisecond,
	})
	idle := func(n uint32) func(*relayv1.GetStatusResponse) bool {
		return func(st *relayv1.GetStatusResponse) bool { return st.GetIdleSlots() == n }
	}
	waitStatus(t, a, "2 idle slots on the first address", idle(2))
	waitStatus(t, b, "2 idle slots on the second address", idle(2))

	// A session on b, then b leaves DNS.
	cb := dialClient(t, b.ClientAddr)
	conn := accept(t, l)
	waitStatus(t, b, "b's pool refilled", idle(2))
	dns.set("127.0.0.1")
	waitStatus(t, b, "no idle slot left on the retired address", idle(0))
	if st, _ := b.Relay.StatusService().GetStatus(context.Background(), &relayv1.GetStatusRequest{}); st.GetActiveSessions() != 1 {
		t.Errorf("the session on the retired address ended: %v", st)
	}
	// The session still works both ways.
	cb.Write([]byte("still here"))
	cb.CloseWrite()
	echo(conn)
	if got, err := io.ReadAll(cb); err != nil || string(got) != "still here" {
		t.Errorf("session on the retired address: %q, %v", got, err)
	}
	// a keeps serving.
	ca := dialClient(t, a.ClientAddr)
	ca.Write([]byte("a"))
	ca.CloseWrite()
	echo(accept(t, l))
	if got, err := io.ReadAll(ca); err != nil || string(got) != "a" {
		t.Errorf("a: %q, %v", got, err)
	}

	// b comes back.
	dns.set("127.0.0.1", "127.0.0.2")
	waitStatus(t, b, "slots again on the returning address", idle(2))
}
