//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestChaos runs the harness in this process, so the race detector watches
// its clients, its fault injector and its custom bookkeeping, for a short
// bounded run that injects each of kill, term and relayterm at least once
// against 2 relays and 2 agent variants. It fails on any violation, leak or
// failed restart, if a fault kind was never injected, and if too few clients
// ended OK to mean anything. relayd, hostagent and relayload are built
// without -race: their own packages run under it in their unit tests, and
// here the race detector would slow every byte.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20 s run of real processes with faults; not with -short")
	}
	bin := t.TempDir()
	// The builds have a bound of their own: with a cold cache on a loaded
	// machine they took 2 minutes, most of what was once one bound for both.
	buildCtx, cancelBuild := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancelBuild()
	if err := buildBinaries(buildCtx, bin); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	// Seed 44 draws relayterm, kill and term as its first three faults, about
	// 7 s of the 14 s of load in: each is injected even on a slow machine.
	// No stall or long clients (they take up to 20 s); pause ones do.
	out := t.TempDir()
	cfg, err := parseFlags([]string{
		"-seed", "44", "-dur", "14s", "-max-clients", "1500", "-workers", "16",
		"-relays", "2", "-agents", "plain,credits",
		"-faults", "kill,term,relayterm", "-fault-gap", "2s", "-relay-drain", "2s", "-agent-drain", "3s",
		"-mix", "full=40,slow=6,pause=6,reset=10,empty=5,hc0=5,pingpong=12,noclosewrite=6,smallhc=6",
		"-hang", "30s", "-settle", "30s",
		"-bin", bin, "-out", out,
	}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}

	before := runtime.NumGoroutine()
	var log syncBuffer
	start := time.Now()
	sum, err := run(ctx, cfg, &log)
	if sum == nil {
		t.Fatalf("harness: %v\n%s", err, log.String())
	}
	t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), sum.line())
	failed := false
	if err != nil {
		t.Errorf("harness: %v", err)
		failed = true
	}
	for _, k := range []string{"kill", "term", "relayterm"} {
		if sum.faults[k] == 0 {
			t.Errorf("fault %s was never injected (faults: %v): the run proves nothing about it", k, sum.faults)
			failed = true
		}
	}
	// About 500 end OK here on 2 cores, and a few hundred under load.
	if ok := sum.outcomes[OK]; ok < 100 {
		t.Errorf("only %d of %d clients ended OK (want at least 100): the run proves little", ok, sum.clients)
		failed = true
	}
	if failed {
		t.Logf("events:\n%s", log.String())
		logTails(t, out)
	}

	// Every goroutine of the run has ended (some of net/http's end just
	// after their connection closes: a short grace).
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines outlived the run (%d before it):\n%s", n-before, before, buf[:runtime.Stack(buf, true)])
	}
}

// logTails logs the end of each process's log, for a failure in CI where
// the directory is gone afterwards.
func logTails(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		if filepath.Base(l) == "events.log" {
			continue
		}
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("%s (last %d lines):\n%s", filepath.Base(l), len(lines), strings.Join(lines, "\n"))
	}
}

// syncBuffer is a bytes.Buffer for writers on several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in the error; "" for none
	}{
		{nil, ""},
		{[]string{"-faults", "all,stopall", "-agents", "plain,sps,maxsess"}, ""},
		{[]string{"-backend", "custom", "-mix", "srvfirst=1,clireset=1"}, ""},
		{[]string{"-faults", "bogus"}, `unknown fault "bogus"`},
		{[]string{"-agents", "plain,x"}, `unknown variant "x"`},
		{[]string{"-mix", "full=x"}, "NAME=WEIGHT"},
		{[]string{"-mix", "full=0"}, "weight 0"},
		{[]string{"-mix", "srvfirst=1"}, "needs -backend custom"},
		{[]string{"-backend", "custom"}, "needs -mix"},
		{[]string{"-backend", "tcp"}, "echo or custom"},
		{[]string{"-workers", "0"}, "-workers must be in"},
		{[]string{"-dur", "0s"}, "-dur must be at least"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		_, err := parseFlags(tc.args, new(bytes.Buffer))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want one with %q", tc.args, err, tc.want)
		}
	}
}
