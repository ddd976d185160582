package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// haproxyName labels the column of two chained haproxy processes.
const haproxyName = "2 haproxy"

// haproxyMaxConn bounds each haproxy's connections: two descriptors each,
// with 1,000 to spare, under the open files a process may have (9,500 at
// this machine's 20,000).
func haproxyMaxConn() int { return max((openFilesLimit()-1000)/2, 100) }

// floorMaxHeld bounds the sessions held through the Go floor: six
// descriptors per session in each proxy (two sockets, two splice pipes),
// with 2,000 to spare (3,000 at this machine's 20,000).
func floorMaxHeld() int { return max((openFilesLimit()-2000)/6, 0) }

// openFilesLimit is the hard limit on open files the runner's children
// inherit: Go programs raise their soft limit to it, haproxy to what its
// maxconn needs.
func openFilesLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Max > 1<<30 {
		return 1 << 20 // unknown or unlimited: no bound of ours binds first
	}
	return int(l.Max)
}

// startHAProxyChain starts two haproxy processes in TCP mode, chained in
// front of the echo backend the way the floor's proxies are, each with its
// defaults (one thread per CPU; no splicing, which takes option
// splice-auto), and returns them, first hop first, and the first's
// address. It is the floor again, in C and event-driven: what two hops
// cost with no goroutine per connection.
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
	// haproxy cannot listen on port 0 and say which port it got, so the
	// runner listens and hands it the socket as descriptor 3: no other
	// process can take the port between a probe and haproxy's bind.
	start := func(hop, target, bindOpts, serverOpts string) (*proc, string, error) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, "", err
		}
		defer lis.Close()
		f, err := lis.(*net.TCPListener).File()
		if err != nil {
			return nil, "", err
		}
		defer f.Close() // the child holds its own copy
		cfg := filepath.Join(r.dir, name+"-"+hop+".cfg")
		text := fmt.Sprintf(`global
  maxconn %d
defaults
  mode tcp
  timeout connect 10s
  timeout client 10m
  timeout server 10m
listen relayload
  bind fd@3%s
  server next %s%s
`, haproxyMaxConn(), bindOpts, target, serverOpts)
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			return nil, "", err
		}
		p, _, err := r.startFiles(ctx, name+"-"+hop, "", []*os.File{f}, bin, "-db", "-f", cfg)
		if err != nil {
			return nil, "", err
		}
		p.diesOnSIGTERM = true
		return p, lis.Addr().String(), nil
	}
	second, next, err := start("hop2", r.echoAddr, bindTLS, "")
	if err != nil {
		return nil, nil, "", err
	}
	first, addr, err = start("hop1", next, "", serverTLS)
	if err != nil {
		return nil, nil, "", err
	}
	// The sockets listen before haproxy runs, so a connection alone proves
	// nothing: one byte echoed through both hops does.
	if err := waitEchoes(ctx, addr, readyLimit, first, second); err != nil {
		return nil, nil, "", err
	}
	return first, second, addr, nil
}

// waitEchoes sends one byte to addr until it comes back, one of procs
// exits, or limit passes. It tries again after a failure: a proxy that dies
// resets or refuses the connection before its exit is seen, and trying
// again lets the exit, with the proxy's log, be the error.
func waitEchoes(ctx context.Context, addr string, limit time.Duration, procs ...*proc) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	var watchers sync.WaitGroup
	defer watchers.Wait()
	defer cancel()
	done := make(chan error, 1)
	watchers.Go(func() {
		for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
			err := echoOnce(ctx, addr)
			if err == nil || ctx.Err() != nil {
				done <- err
				return
			}
			select {
			case <-ctx.Done():
				done <- err
				return
			case <-time.After(delay):
			}
		}
	})
	exited := make(chan *proc, len(procs))
	for _, p := range procs {
		watchers.Go(func() {
			select {
			case <-p.exited:
				exited <- p
			case <-ctx.Done():
			}
		})
	}
	select {
	case err := <-done:
		if err == nil {
			return nil
		}
		logs := ""
		for _, p := range procs {
			logs += fmt.Sprintf("\n%s:\n%s", p.name, tail(p.logPath))
		}
		return fmt.Errorf("no echo through %s within %v: %w%s", addr, limit, err, logs)
	case p := <-exited:
		return fmt.Errorf("%s exited before it passed a byte: %v\n%s", p.name, p.waitErr, tail(p.logPath))
	}
}

// echoOnce dials addr, writes one byte and reads it back, within ctx.
func echoOnce(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := c.Write([]byte{'r'}); err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if b[0] != 'r' {
		return fmt.Errorf("echoed %q, want %q", b, "r")
	}
	return nil
}
