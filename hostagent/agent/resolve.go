package agent

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// A relay entry given by DNS name stands for every address the name has:
// several relays behind one name. The agent keeps a link (and idle slots)
// on each address, and a resolver goroutine looks the name up again every
// ResolveInterval: a new address gets a link, an address gone from DNS has
// its link retired (its idle slots end, its sessions finish, then its
// connection closes). An entry that is an IP address, or localhost (whose
// two addresses usually reach one relay listening on both), is one link.

// resolveTimeout bounds one lookup.
const resolveTimeout = 5 * time.Second

// resolution is one lookup of an entry, for the manager.
type resolution struct {
	entry string
	addrs []string // sorted HOST:PORT; empty on error
	err   error
}

// relayName returns the DNS name of a --relay entry, or "" when the entry
// is dialled as it is.
func relayName(entry string) string {
	host, _, err := net.SplitHostPort(entry)
	if err != nil || net.ParseIP(host) != nil {
		return ""
	}
	if h := strings.ToLower(host); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return ""
	}
	return host
}

func (l *Listener) lookup(ctx context.Context, entry string) resolution {
	host, port, _ := net.SplitHostPort(entry)
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	lookup := l.cfg.LookupHost
	if lookup == nil {
		lookup = net.DefaultResolver.LookupHost
	}
	ips, err := lookup(ctx, host)
	if err == nil && len(ips) == 0 {
		err = fmt.Errorf("no address for %s", host)
	}
	if err != nil {
		return resolution{entry: entry, err: err}
	}
	addrs := make([]string, 0, len(ips))
	for _, ip := range ips {
		addrs = append(addrs, net.JoinHostPort(ip, port))
	}
	slices.Sort(addrs)
	return resolution{entry: entry, addrs: slices.Compact(addrs)}
}

// newLink dials addr for entry (lazily: grpc connects on first use). A link
// to one address of a name still presents the name (authority, TLS).
func (l *Listener) newLink(entry, addr string) (*link, error) {
	opts := slices.Clip(l.dialOpts)
	if l.cfg.DialOptionsFor != nil {
		opts = append(opts, l.cfg.DialOptionsFor(entry)...)
	}
	if addr != entry {
		opts = append(opts, grpc.WithAuthority(entry))
	}
	lk := &link{addr: addr, entry: entry}
	for range l.cfg.Conns {
		cc, err := grpc.NewClient(addr, opts...)
		if err != nil {
			lk.close()
			return nil, fmt.Errorf("agent: relay %s: %w", addr, err)
		}
		lk.ccs = append(lk.ccs, cc)
		lk.clients = append(lk.clients, relayv1.NewHostServiceClient(cc))
	}
	lk.idleCtx, lk.stopIdle = context.WithCancel(l.idleCtx)
	return lk, nil
}

// initialLinks makes the links of every entry; a name that does not
// resolve now is dialled as a name (grpc resolves it) until it does.
func (l *Listener) initialLinks(ctx context.Context) error {
	for _, entry := range l.cfg.Relays {
		addrs := []string{entry}
		if relayName(entry) != "" {
			if res := l.lookup(ctx, entry); res.err == nil {
				addrs = res.addrs
			} else {
				l.log.Warn("relay name does not resolve yet; dialling it as a name", "relay", entry, "err", res.err)
			}
		}
		for _, addr := range addrs {
			lk, err := l.newLink(entry, addr)
			if err != nil {
				return err
			}
			l.links = append(l.links, lk)
		}
	}
	return nil
}

// startResolver starts the goroutine that looks names up again; Shutdown
// waits for it. It ends when the listener closes.
func (l *Listener) startResolver() {
	l.resolved = make(chan resolution)
	l.resolverDone = make(chan struct{})
	var names []string
	for _, e := range l.cfg.Relays {
		if relayName(e) != "" {
			names = append(names, e)
		}
	}
	if len(names) == 0 || l.cfg.ResolveInterval < 0 {
		close(l.resolverDone)
		return
	}
	go func() {
		defer close(l.resolverDone)
		t := time.NewTicker(l.cfg.ResolveInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-l.idleCtx.Done():
				return
			}
			for _, e := range names {
				res := l.lookup(l.idleCtx, e)
				select {
				case l.resolved <- res:
				case <-l.idleCtx.Done():
					return
				}
			}
		}
	}()
}

// applyResolution adds links for new addresses of res.entry and retires
// those of addresses gone. A failed lookup changes nothing: relays keep
// serving while DNS has trouble.
func (l *Listener) applyResolution(res resolution) {
	if l.idleCtx.Err() != nil {
		return
	}
	if res.err != nil {
		l.log.Warn("relay name lookup failed; keeping its current addresses", "relay", res.entry, "err", res.err)
		return
	}
	have := map[string]*link{}
	for _, lk := range l.links {
		if lk.entry == res.entry && !lk.retired {
			have[lk.addr] = lk
		}
	}
	for _, addr := range res.addrs {
		if have[addr] != nil {
			delete(have, addr)
			continue
		}
		lk, err := l.newLink(res.entry, addr)
		if err != nil {
			l.log.Warn("cannot dial a new relay address", "relay", res.entry, "addr", addr, "err", err)
			continue
		}
		l.log.Info("relay address added", "relay", res.entry, "addr", addr)
		l.links = append(l.links, lk)
	}
	for addr, lk := range have { // left DNS
		l.log.Info("relay address gone from DNS; its idle slots end, its sessions finish", "relay", res.entry, "addr", addr)
		lk.retired = true
		lk.stopIdle()
	}
	l.warnShare()
}

// warnShare says so when MaxSessions is below the number of relay
// addresses, once for each count: an idle slot may get a client at any
// time, so it counts towards MaxSessions, and with fewer than one per
// relay some relay has none while the others hold them.
func (l *Listener) warnShare() {
	n := 0
	for _, lk := range l.links {
		if !lk.retired {
			n++
		}
	}
	if l.cfg.MaxSessions <= 0 || n <= l.cfg.MaxSessions || n <= l.shareWarned {
		return
	}
	l.shareWarned = n
	l.log.Warn("--max-sessions is below the number of relay addresses: while every allowed slot is on other relays, a relay has no idle slot of this host, and its clients wait for another host (or are reset after relayd's --assign-timeout); give each relay at least one",
		"max_sessions", l.cfg.MaxSessions, "relays", n)
}

// sameRelay notes that lk's relay calls itself id (Welcome.relay_id), and
// warns, once per pair, when another link reaches the same relay now: two
// --relay entries for one relay, or a name whose addresses (IPv4 and IPv6,
// say) all reach it. Each link keeps its own idle slots, so that relay
// holds twice --idle of them, and --max-sessions is shared out as if it
// were two. A link that is failing or drained is not compared: the relay
// it knew may have moved (an id given with relayd --relay-id stays), and
// its id is forgotten when it fails (forgetRelayID).
func (l *Listener) sameRelay(lk *link, id string) {
	if id == "" || id == lk.relayID {
		return
	}
	lk.relayID = id
	if lk.retired {
		return
	}
	now := time.Now()
	for _, o := range l.links {
		if o == lk || o.retired || o.relayID != id || o.failures > 0 || now.Before(o.drainedUntil) {
			continue
		}
		pair := [2]string{min(o.addr, lk.addr), max(o.addr, lk.addr)}
		if l.sameWarned[pair] {
			continue
		}
		if l.sameWarned == nil {
			l.sameWarned = map[[2]string]bool{}
		}
		l.sameWarned[pair] = true
		if o.entry == lk.entry {
			l.log.Warn("a --relay name has two addresses that reach the same relay: this agent keeps idle slots on it through each, so it holds twice --idle of them and gets a double share of --max-sessions; give one of its addresses, or a name with one, in --relay (or, if these are two relays, give them distinct relayd --relay-id)",
				"entry", lk.entry, "relay_id", id, "relay", o.addr, "also_as", lk.addr)
			continue
		}
		l.log.Warn("two relay addresses reach the same relay: this agent keeps idle slots on it through each, so it holds twice --idle of them and gets a double share of --max-sessions; give one address of it in --relay (or, if these are two relays, give them distinct relayd --relay-id)",
			"relay_id", id, "relay", o.addr, "also_as", lk.addr)
	}
}

// forgetRelayID forgets which relay lk reached, as it fails or is drained:
// the relay at its address may be another when it comes back, and is
// compared again then.
func (lk *link) forgetRelayID() {
	lk.relayID = ""
	lk.welcomedBy.Store(nil)
}

// reapRetired closes retired links with no slot left.
func (l *Listener) reapRetired() {
	l.links = slices.DeleteFunc(l.links, func(lk *link) bool {
		if lk.retired && lk.connecting+lk.idle+lk.active == 0 && !lk.creditRunning {
			l.setCapped(lk, false)
			lk.close()
			return true
		}
		return false
	})
}

// client returns the connection for the next slot: slots go to the link's
// connections in turn, so sessions spread over them.
func (lk *link) client() relayv1.HostServiceClient {
	return lk.clients[int(lk.next.Add(1)-1)%len(lk.clients)]
}

// close closes the link's connections.
func (lk *link) close() {
	for _, cc := range lk.ccs {
		cc.Close()
	}
}
