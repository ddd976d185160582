package clientbridge

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound what clients can take, checked as each one is accepted. A
// client over a limit is closed at once, counted and logged as rejected.
// Zero in a field means no bound.
type Limits struct {
	// MaxClients bounds the clients held at once: waiting for a slot or in
	// a session. It keeps a flood from exhausting file descriptors.
	MaxClients int
	// MaxClientsPerIP bounds the clients held at once from one IP address.
	MaxClientsPerIP int
	// RatePerIP and BurstPerIP bound new connections per second from one
	// IP address (a token bucket: BurstPerIP at once, then RatePerIP a
	// second). BurstPerIP zero means max(1, RatePerIP).
	RatePerIP  float64
	BurstPerIP int
}

// Rejection reasons of Limits.
const (
	RejectMaxClients      = "max_clients"
	RejectMaxClientsPerIP = "max_clients_per_ip"
	RejectRateLimited     = "rate_limited"
)

// admission tracks held clients per IP. Its map holds only addresses with
// a client held or a bucket still refilling, and is swept as it grows, so
// a flood from many addresses costs memory only while it lasts.
type admission struct {
	lim     Limits
	mu      sync.Mutex
	total   int
	byIP    map[netip.Addr]*ipState
	sweepAt int
}

type ipState struct {
	held   int
	tokens float64
	at     time.Time // when tokens was computed
}

func newAdmission(lim Limits) *admission {
	if lim.BurstPerIP <= 0 {
		lim.BurstPerIP = max(1, int(lim.RatePerIP))
	}
	return &admission{lim: lim, byIP: map[netip.Addr]*ipState{}, sweepAt: 1024}
}

func clientIP(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// admit takes a place for a client from ip, or says which limit refuses
// it. A taken place is given back with release.
func (a *admission) admit(ip netip.Addr, now time.Time) (reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lim.MaxClients > 0 && a.total >= a.lim.MaxClients {
		return RejectMaxClients
	}
	st := a.byIP[ip]
	if st == nil {
		if len(a.byIP) >= a.sweepAt {
			a.sweepLocked(now)
		}
		st = &ipState{tokens: float64(a.lim.BurstPerIP), at: now}
		a.byIP[ip] = st
	}
	if a.lim.MaxClientsPerIP > 0 && st.held >= a.lim.MaxClientsPerIP {
		return RejectMaxClientsPerIP
	}
	if a.lim.RatePerIP > 0 {
		st.refill(now, a.lim)
		if st.tokens < 1 {
			return RejectRateLimited
		}
		st.tokens--
	}
	st.held++
	a.total++
	return ""
}

func (st *ipState) refill(now time.Time, lim Limits) {
	st.tokens = min(float64(lim.BurstPerIP), st.tokens+now.Sub(st.at).Seconds()*lim.RatePerIP)
	st.at = now
}

func (a *admission) release(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if st := a.byIP[ip]; st != nil {
		st.held--
	}
}

// sweepLocked forgets addresses with nothing held and a full bucket: they
// are indistinguishable from new ones.
func (a *admission) sweepLocked(now time.Time) {
	for ip, st := range a.byIP {
		if st.held > 0 {
			continue
		}
		if a.lim.RatePerIP > 0 {
			st.refill(now, a.lim)
			if st.tokens < float64(a.lim.BurstPerIP) {
				continue
			}
		}
		delete(a.byIP, ip)
	}
	a.sweepAt = max(1024, 2*len(a.byIP))
}

// tracked returns the number of addresses remembered (for tests).
func (a *admission) tracked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.byIP)
}

// releaser gives a client's place back once.
type releaser struct {
	a    *admission
	ip   netip.Addr
	done atomic.Bool
}

func (r *releaser) release() {
	if r != nil && r.done.CompareAndSwap(false, true) {
		r.a.release(r.ip)
	}
}

// LimitListener wraps l so that Accept refuses (resets) connections over
// lim, reporting each refusal to onReject, and hands out connections that
// give their place back when closed. The gRPC port uses it: every HTTP/2
// connection costs the relay buffers before any authentication.
func LimitListener(l net.Listener, lim Limits, onReject func(remote net.Addr, reason string)) net.Listener {
	return &limitListener{Listener: l, adm: newAdmission(lim), onReject: onReject}
}

type limitListener struct {
	net.Listener
	adm      *admission
	onReject func(net.Addr, string)
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := clientIP(c)
		if reason := l.adm.admit(ip, time.Now()); reason != "" {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			c.Close()
			if l.onReject != nil {
				l.onReject(c.RemoteAddr(), reason)
			}
			continue
		}
		return &limitedConn{Conn: c, place: &releaser{a: l.adm, ip: ip}}, nil
	}
}

// limitedConn gives its place back on Close (once).
type limitedConn struct {
	net.Conn
	place *releaser
}

// NetConn returns the connection below (as tls.Conn's does), for socket
// options.
func (c *limitedConn) NetConn() net.Conn { return c.Conn }

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.place.release()
	return err
}
