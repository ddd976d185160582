package main

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relayproject/relay/hostagent/agent"
)

// backendWatch keeps `forward` from offering slots while its backend
// refuses connections, and offers them again as soon as it answers: a
// client then waits in the relay's queue, or goes to another host, instead
// of being given a session whose dial is bound to fail and reset (a
// backend restarting for a deploy, say). The relay passes over a host
// whose sessions fail that way too, but only when another host has slots;
// with one host, every client of the outage would be reset.
//
// A session's failed dial starts the outage; a probe then dials every
// interval until one connects, and closes it at once. No probe runs while
// the backend works, nor at start: a backend that serves one connection
// (nc -l) would take the probe for its client.
type backendWatch struct {
	l        *agent.Listener
	target   string
	timeout  time.Duration // a probe's dial timeout: --dial-timeout
	interval time.Duration // between probes; 0: never withhold slots
	log      *slog.Logger
	ctx      context.Context // ends the probing (the agent is stopping)
	wg       sync.WaitGroup  // the probing goroutine

	down atomic.Bool // the last dial, a session's or a probe's, failed

	mu      sync.Mutex
	probing bool      // a probing goroutine runs: the agent offers no slots
	since   time.Time // the outage's first failure
}

// newBackendWatch returns a watch for target, which start arms; with
// interval 0 it only tells whether the last dial failed.
func newBackendWatch(ctx context.Context, target string, timeout, interval time.Duration, log *slog.Logger) *backendWatch {
	return &backendWatch{ctx: ctx, target: target, timeout: timeout, interval: interval, log: log}
}

// withholds reports whether the agent offers no slots in an outage.
func (b *backendWatch) withholds() bool { return b.interval > 0 }

// start arms the watch on l.
func (b *backendWatch) start(l *agent.Listener) { b.l = l }

// wait waits for the probing goroutine; call it once ctx is done.
func (b *backendWatch) wait() { b.wg.Wait() }

// succeeded records a session's successful dial.
func (b *backendWatch) succeeded() { b.down.Store(false) }

// failed records a session's failed dial and tells how to log it: the
// first failure of an outage at Warn, the sessions that were already on
// their way after it at Debug.
func (b *backendWatch) failed() slog.Level {
	b.down.Store(true)
	if b.interval <= 0 {
		return slog.LevelWarn
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.probing {
		return slog.LevelDebug
	}
	b.probing, b.since = true, time.Now()
	b.l.SetAvailable(false)
	b.wg.Add(1)
	go b.probe()
	return slog.LevelWarn
}

// probe dials the backend every interval until a dial succeeds, then
// offers slots again.
func (b *backendWatch) probe() {
	defer b.wg.Done()
	timer := time.NewTimer(b.interval)
	defer timer.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-timer.C:
		}
		// With ctx: a backend that drops SYNs must not hold the agent's
		// exit for --dial-timeout.
		c, err := (&net.Dialer{Timeout: b.timeout}).DialContext(b.ctx, "tcp", b.target)
		if err != nil {
			timer.Reset(b.interval)
			continue
		}
		c.Close()
		b.down.Store(false)
		b.mu.Lock()
		b.probing = false
		b.log.Info("backend answers again: offering slots", "target", b.target, "down_for", time.Since(b.since).Round(time.Millisecond))
		// Under mu: a failure right after must reach the agent after
		// this, or it would be left offering slots.
		b.l.SetAvailable(true)
		b.mu.Unlock()
		return
	}
}
