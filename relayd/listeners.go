package main

import (
	"fmt"
	"strings"

	"github.com/relayproject/relay/internal/cli"
)

// clientListener is one client port and the service it feeds.
type clientListener struct{ addr, service string }

// listenFlag is the repeatable --listen ADDR=SERVICE.
type listenFlag []clientListener

func (l *listenFlag) String() string {
	parts := make([]string, len(*l))
	for i, c := range *l {
		parts[i] = c.addr + "=" + c.service
	}
	return strings.Join(parts, ",")
}

// Repeatable makes RELAYD_LISTEN a comma-separated list (see cli.Parse).
func (l *listenFlag) Repeatable() {}

func (l *listenFlag) Set(s string) error {
	addr, service, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("want ADDR=SERVICE (e.g. :8443=web), got %q", s)
	}
	if err := cli.ListenAddr(addr); err != nil {
		return fmt.Errorf("ADDR %q: %w", addr, err)
	}
	if err := validService(service); err != nil {
		return err
	}
	*l = append(*l, clientListener{addr: addr, service: service})
	return nil
}

// validService accepts the names a Hello can carry and a log can show
// unquoted: letters, digits, '.', '-', '_', at most 128 bytes.
func validService(s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("service name %q: want 1 to 128 characters", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return fmt.Errorf("service name %q: only letters, digits, '.', '-' and '_'", s)
		}
	}
	return nil
}

// clientListeners returns the listeners to open: every --listen, and
// --client-addr for service "default" when it was given or no --listen was
// (then it comes first).
func (o *options) clientListeners() []clientListener {
	if !o.clientAddrListed() {
		return o.listens
	}
	return append([]clientListener{{addr: o.clientAddr, service: "default"}}, o.listens...)
}

// clientAddrListed reports whether --client-addr is among the listeners.
func (o *options) clientAddrListed() bool { return len(o.listens) == 0 || o.clientAddrSet }
