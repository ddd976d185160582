package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// haproxyName labels the column of two chained haproxy processes.
const haproxyName = "2 haproxy"

// haproxyMaxConn bounds each haproxy's connections: two descriptors each,
// under the 20,000 open files this machine allows a process.
const haproxyMaxConn = 9500

// startHAProxyChain starts two haproxy processes in TCP mode, chained in
// front of the echo backend the way the floor's proxies are, each with its
// defaults (one thread per CPU, splice where it applies), and returns them,
// first hop first, and the first's address. It is the floor again, in C
// and event-driven: what two hops cost with no goroutine per connection.
func (r *runner) startHAProxyChain(ctx context.Context, name string) (first, second *proc, addr string, err error) {
	return r.startHAProxies(ctx, name, false)
}

// startHAProxyTLSChain is startHAProxyChain with TLS between the two hops,
// as relayd and hostagent have with --link tls: the second hop serves the
// run's throwaway certificate and the first verifies it against its CA.
func (r *runner) startHAProxyTLSChain(ctx context.Context, name string) (first, second *proc, addr string, err error) {
	return r.startHAProxies(ctx, name, true)
}

func (r *runner) startHAProxies(ctx context.Context, name string, tls bool) (first, second *proc, addr string, err error) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return nil, nil, "", fmt.Errorf("--haproxy: no haproxy on PATH (on Debian: apt-get install haproxy): %w", err)
	}
	var bindTLS, serverTLS string
	if tls {
		// haproxy takes the certificate and its key in one file.
		pem := filepath.Join(r.dir, name+"-cert-and-key.pem")
		cert, err1 := os.ReadFile(r.tls.cert)
		key, err2 := os.ReadFile(r.tls.key)
		if err := errors.Join(err1, err2); err != nil {
			return nil, nil, "", err
		}
		if err := os.WriteFile(pem, append(cert, key...), 0o600); err != nil {
			return nil, nil, "", err
		}
		bindTLS = " ssl crt " + pem
		serverTLS = " ssl verify required ca-file " + r.tls.ca
	}
	start := func(hop, target, bindOpts, serverOpts string) (*proc, string, error) {
		listen, err := freeLoopbackAddr()
		if err != nil {
			return nil, "", err
		}
		cfg := filepath.Join(r.dir, name+"-"+hop+".cfg")
		text := fmt.Sprintf(`global
  maxconn %d
defaults
  mode tcp
  timeout connect 10s
  timeout client 10m
  timeout server 10m
listen relayload
  bind %s%s
  server next %s%s
`, haproxyMaxConn, listen, bindOpts, target, serverOpts)
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			return nil, "", err
		}
		p, _, err := r.start(ctx, name+"-"+hop, "", bin, "-db", "-f", cfg)
		if err != nil {
			return nil, "", err
		}
		p.diesOnSIGTERM = true
		if err := waitListening(ctx, p, listen, readyLimit); err != nil {
			return nil, "", err
		}
		return p, listen, nil
	}
	second, next, err := start("hop2", r.echoAddr, bindTLS, "")
	if err != nil {
		return nil, nil, "", err
	}
	first, addr, err = start("hop1", next, "", serverTLS)
	if err != nil {
		return nil, nil, "", err
	}
	return first, second, addr, nil
}

// freeLoopbackAddr returns a loopback address that was free a moment ago,
// for a program that cannot listen on port 0 and say which port it got.
// Another process may take it before that program binds it; the program
// then fails to start, and the run with it.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitListening dials addr until it answers, p exits, or limit passes.
func waitListening(ctx context.Context, p *proc, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: nothing listening on %s within %v: %v\n%s", p.name, addr, limit, err, tail(p.logPath))
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it listened on %s: %v\n%s", p.name, addr, p.waitErr, tail(p.logPath))
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(delay):
		}
	}
}
