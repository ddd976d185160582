// Package metricshttp serves a Prometheus registry on /metrics over plain
// HTTP, for relayd's and hostagent's --metrics-addr. It owns the listener
// and the one goroutine that serves it.
package metricshttp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
)

// idleTimeout is how long a connection may wait for its next request; a
// variable for tests.
var idleTimeout = 2 * time.Minute

// maxConns bounds the connections served at once.
const maxConns = 64

// Server serves /metrics until Close.
type Server struct {
	lis  net.Listener
	srv  *http.Server
	done chan error
}

// Listen starts serving reg's metrics on addr ("127.0.0.1:9090"); the
// caller must Close it.
func Listen(addr string, reg *prometheus.Registry) (*Server, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen %s: %w", addr, errors.Unwrap(err))
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	// Each connection holds a goroutine and its buffers: a peer that
	// scrapes once and then idles, or never reads the answer, would hold
	// them for good (a review: 500 of 500 idle connections still open after
	// 15 s). Scrapers reuse a connection every 15-60 s, within IdleTimeout;
	// more connections than maxConns wait in the listen backlog.
	s := &Server{
		lis: lis,
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: idleTimeout},
		done: make(chan error, 1),
	}
	lis = netutil.LimitListener(lis, maxConns)
	go func() { s.done <- s.srv.Serve(lis) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// Close stops the server, giving scrapes in flight a moment, and waits for
// its goroutine.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil {
		s.srv.Close()
	}
	<-s.done
}

// AddrString is the listening address, or "off" for a nil Server (metrics
// not enabled), for log lines.
func (s *Server) AddrString() string {
	if s == nil {
		return "off"
	}
	return s.lis.Addr().String()
}
