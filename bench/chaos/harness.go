//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/relayproject/relay/internal/portclaim"
)

// Bounds of the harness's own waits, so that a process that never comes up
// is an error with a message, not a run that hangs.
const (
	upTimeout     = 30 * time.Second // a process listens on all its ports
	attachTimeout = 30 * time.Second // every agent attached to every relay
	baseTimeout   = 15 * time.Second // the processes settle after the warm-up
	warmClients   = 20
	postClients   = 30
	leakGoroutine = 20 // above the baseline: a leak
	leakFDs       = 10
)

// harness is one run: its processes, its clients and its log.
type harness struct {
	cfg   *config
	ctx   context.Context // cancelled: the run is interrupted
	out   io.Writer
	dir   string
	bin   string
	start time.Time
	http  *http.Client

	evMu   sync.Mutex
	events *os.File

	procs       []*proc // all of them, echo first
	relays      []*proc
	agents      []*proc
	clientAddrs []string // client address of each relay
	backend     *customBackend
	claims      []*portclaim.Claim // released once every process is gone

	active sync.Map // id -> *activeClient, for the watchdog and an interrupt
}

// summary is what a run found.
type summary struct {
	seed        uint64
	dir         string
	clients     int
	outcomes    [4]int // by Outcome
	violations  []Result
	problems    []string // leaks and other failures, one line each
	faults      map[string]int
	fatal       error // the run could not go on (setup, a process)
	interrupted bool
}

// errFailed marks a failed run: violations, leaks, or an error that stopped
// it; the summary line says which.
var errFailed = errors.New("run failed")

func (s *summary) err() error {
	switch {
	case s.interrupted:
		return errors.New("interrupted")
	case s.fatal != nil || len(s.violations) > 0 || len(s.problems) > 0:
		var why []string
		if s.fatal != nil {
			why = append(why, s.fatal.Error())
		}
		if n := len(s.violations); n > 0 {
			why = append(why, fmt.Sprintf("%d violations (first: client %d %s: %s)", n, s.violations[0].ID, s.violations[0].Behaviour, s.violations[0].Detail))
		}
		why = append(why, s.problems...)
		return fmt.Errorf("%w: %s", errFailed, strings.Join(why, "; "))
	}
	return nil
}

// line is the one-line verdict.
func (s *summary) line() string {
	verdict := "PASS"
	if s.interrupted {
		verdict = "INTERRUPTED"
	} else if err := s.err(); err != nil {
		verdict = "FAIL: " + strings.TrimPrefix(err.Error(), errFailed.Error()+": ")
	}
	var fs []string
	for _, k := range slices.Sorted(maps.Keys(s.faults)) {
		fs = append(fs, fmt.Sprintf("%s×%d", k, s.faults[k]))
	}
	if len(fs) == 0 {
		fs = []string{"none"}
	}
	return fmt.Sprintf("chaos seed=%d: %s; %d clients (%d OK, %d SELF-ABORT, %d ABNORMAL, %d VIOLATION); faults %s; logs in %s",
		s.seed, verdict, s.clients, s.outcomes[OK], s.outcomes[SelfAbort], s.outcomes[Abnormal], s.outcomes[Violation], strings.Join(fs, " "), s.dir)
}

// run is the whole harness: build (unless -bin), start, load with faults,
// check. The error is nil only for a clean run; every goroutine and child
// process it starts has ended when it returns.
func run(ctx context.Context, cfg *config, stdout io.Writer) (*summary, error) {
	if cfg.bin != "" { // before -out is made: a typo leaves no empty run behind
		for _, b := range []string{"relayd", "hostagent", "relayload"} {
			if _, err := os.Stat(filepath.Join(cfg.bin, b)); err != nil {
				return nil, fmt.Errorf("-bin %s has no %s: build them with go build -o %s/ ./relayd ./hostagent ./bench/relayload, or leave -bin out", cfg.bin, b, cfg.bin)
			}
		}
	}
	dir := cfg.out
	if dir == "" {
		d, err := os.MkdirTemp("", fmt.Sprintf("relay-chaos-seed%d-", cfg.seed))
		if err != nil {
			return nil, err
		}
		dir = d
	} else {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("-out: %w", err)
		}
		if ents, err := os.ReadDir(dir); err != nil {
			return nil, fmt.Errorf("-out: %w", err)
		} else if len(ents) > 0 {
			return nil, fmt.Errorf("-out %s is not empty: give a new or empty directory (a run's logs would mix with another's)", dir)
		}
	}
	ev, err := os.Create(filepath.Join(dir, "events.log"))
	if err != nil {
		return nil, err
	}
	defer ev.Close()

	bin := cfg.bin
	if bin == "" {
		d, err := os.MkdirTemp("", "relay-chaos-bin-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		fmt.Fprintf(stdout, "building relayd, hostagent and relayload into %s\n", d)
		if err := buildBinaries(ctx, d); err != nil {
			return nil, err
		}
		bin = d
	}

	// Keep-alives off: no idle connection, no goroutine, outlives a request.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	h := &harness{cfg: cfg, ctx: ctx, out: stdout, dir: dir, bin: bin, start: time.Now(), events: ev,
		http: &http.Client{Timeout: 3 * time.Second, Transport: tr}}
	// An interrupt ends the clients at once (their deadlines pass); the
	// processes are killed on the way out.
	interrupted := make(chan struct{})
	stopAfter := context.AfterFunc(ctx, func() {
		defer close(interrupted)
		h.active.Range(func(_, v any) bool {
			v.(*activeClient).conn.SetDeadline(time.Now())
			return true
		})
	})
	defer func() {
		if !stopAfter() { // it ran: wait until it is done
			<-interrupted
		}
	}()

	sum := &summary{seed: cfg.seed, dir: dir, faults: map[string]int{}}
	err = h.run(sum)
	if kerr := h.shutdown(); kerr != nil {
		sum.problems = append(sum.problems, kerr.Error())
	}
	for _, c := range h.claims {
		c.Release()
	}
	if ctx.Err() != nil {
		sum.interrupted = true
	}
	if err != nil && !sum.interrupted {
		sum.fatal = err
	}
	return sum, sum.err()
}

// shutdown kills every process and stops the custom backend.
func (h *harness) shutdown() error {
	var errs []error
	for _, p := range h.procs {
		errs = append(errs, p.kill())
	}
	if h.backend != nil {
		h.backend.close()
	}
	return errors.Join(errs...)
}

func (h *harness) logEvent(format string, a ...any) {
	h.evMu.Lock()
	defer h.evMu.Unlock()
	s := fmt.Sprintf("%s +%7.2fs %s\n", time.Now().Format("15:04:05.000"), time.Since(h.start).Seconds(), fmt.Sprintf(format, a...))
	h.events.WriteString(s)
	io.WriteString(h.out, s)
}

// sleep sleeps for d, or less if the run is interrupted (then false).
func (h *harness) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-h.ctx.Done():
		return false
	}
}

func (h *harness) addActive(ac *activeClient) {
	h.active.Store(ac.id, ac)
	if h.ctx.Err() != nil { // the interrupt may have missed it
		ac.conn.SetDeadline(time.Now())
	}
}

func (h *harness) newProc(name, bin string, args []string, serves []string) *proc {
	p := &proc{name: name, bin: filepath.Join(h.bin, bin), args: args, logPath: logPathIn(h.dir, name), serves: serves, http: h.http}
	h.procs = append(h.procs, p)
	return p
}

// setup starts the backend, the relays and the agents, and waits until every
// agent is attached to every relay with idle slots.
func (h *harness) setup() error {
	cfg := h.cfg
	ports, err := h.claimPorts(1)
	if err != nil {
		return err
	}
	echo := h.newProc("echo", "relayload", []string{"echo-server", "--addr", ports[0]}, ports)
	if err := echo.startUp(upTimeout); err != nil {
		return err
	}
	target := ports[0]
	if cfg.backend == "custom" {
		if h.backend, err = startCustomBackend(); err != nil {
			return err
		}
		target = h.backend.l.Addr().String()
		h.logEvent("custom backend on %s", target)
	}

	var grpcAddrs []string
	for i := range cfg.relays {
		ports, err := h.claimPorts(5)
		if err != nil {
			return err
		}
		g, c, a, m, pp := ports[0], ports[1], ports[2], ports[3], ports[4]
		args := []string{"--grpc-addr", g, "--client-addr", c, "--admin-addr", a, "--metrics-addr", m, "--pprof-addr", pp,
			"--client-rate", "0", "--max-clients-per-ip", "0", "--drain-timeout", cfg.relayDrain.String(),
			"--relay-id", fmt.Sprintf("relay%d", i), "--log-level", cfg.logLevel}
		args = append(args, cfg.relayArgs...)
		// Up when the other ports answer, not the client port: a dial there
		// is a client, queued and counted. relayd binds every port before it
		// serves any.
		p := h.newProc(fmt.Sprintf("relay%d", i), "relayd", args, []string{g, a, m, pp})
		p.pprof, p.metrics = pp, m
		if err := p.startUp(upTimeout); err != nil {
			return err
		}
		h.relays = append(h.relays, p)
		h.clientAddrs = append(h.clientAddrs, c)
		grpcAddrs = append(grpcAddrs, g)
		h.logEvent("relay%d grpc=%s client=%s admin=%s metrics=%s pprof=%s", i, g, c, a, m, pp)
	}
	for i, v := range cfg.agents {
		ports, err := h.claimPorts(2)
		if err != nil {
			return err
		}
		m, pp := ports[0], ports[1]
		name := fmt.Sprintf("agent%d-%s", i, v)
		args := []string{"--relay", strings.Join(grpcAddrs, ","), "--host-id", name,
			"--metrics-addr", m, "--pprof-addr", pp, "--log-level", cfg.logLevel, "--drain-timeout", cfg.agentDrain.String(),
			"--idle", fmt.Sprint(cfg.idle)}
		switch v {
		case "credits":
			args = append(args, "--slot-credits")
		case "conns2":
			args = append(args, "--conns", "2")
		case "maxsess":
			args = append(args, "--max-sessions", "8")
		case "sps":
			args = append(args, "--stream-per-session")
		}
		args = append(args, cfg.agentArgs...)
		args = append(args, "forward", target)
		p := h.newProc(name, "hostagent", args, ports)
		p.pprof, p.metrics = pp, m
		if err := p.startUp(upTimeout); err != nil {
			return err
		}
		h.agents = append(h.agents, p)
		h.logEvent("%s metrics=%s pprof=%s", name, m, pp)
	}
	deadline := time.Now().Add(attachTimeout)
	for {
		missing := h.relaysReady()
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) || !h.sleep(100*time.Millisecond) {
			return fmt.Errorf("agents not attached after %v: %s (see the logs in %s)", attachTimeout, strings.Join(missing, "; "), h.dir)
		}
	}
}

// relaysReady lists the relays without every agent attached or without an
// idle slot.
func (h *harness) relaysReady() []string {
	var missing []string
	for _, p := range h.relays {
		hosts, err1 := p.Metric("relay_hosts_attached")
		idle, err2 := p.Metric("relay_idle_slots")
		if err := errors.Join(err1, err2); err != nil {
			missing = append(missing, fmt.Sprintf("%s: %v", p.name, err))
		} else if int(hosts) < len(h.agents) || idle < 1 {
			missing = append(missing, fmt.Sprintf("%s: %v of %d agents attached, %v idle slots", p.name, hosts, len(h.agents), idle))
		}
	}
	return missing
}

type snap struct{ g, fd int }

func (h *harness) snapshot(ps []*proc) map[string]snap {
	m := map[string]snap{}
	for _, p := range ps {
		m[p.name] = snap{p.Goroutines(), p.FDs()}
	}
	return m
}

// baseline waits until the processes are quiet after the warm-up (no
// session active, the same goroutines and files twice in a row) and returns
// their counts then.
func (h *harness) baseline(ps []*proc) map[string]snap {
	deadline := time.Now().Add(baseTimeout)
	prev := h.snapshot(ps)
	for h.sleep(300 * time.Millisecond) {
		cur := h.snapshot(ps)
		quiet := true
		for _, p := range h.relays {
			if a, err := p.Metric("relay_sessions_active"); err != nil || a != 0 {
				quiet = false
			}
		}
		for k, v := range cur {
			if v != prev[k] || v.g < 0 || v.fd < 0 {
				quiet = false
			}
		}
		prev = cur
		if quiet {
			break
		}
		if time.Now().After(deadline) {
			h.logEvent("processes still busy %v after the warm-up: baseline taken as it is", baseTimeout)
			break
		}
	}
	return prev
}

// leaks lists what is not back to the baseline: a process not running, too
// many goroutines or files, a session still active, an agent not attached.
func (h *harness) leaks(base map[string]snap) []string {
	var out []string
	for _, p := range append(slices.Clone(h.relays), h.agents...) {
		if !p.Running() {
			out = append(out, p.name+" not running")
			continue
		}
		g, fd, b := p.Goroutines(), p.FDs(), base[p.name]
		if g < 0 || fd < 0 {
			out = append(out, fmt.Sprintf("%s: no goroutine or file count (pprof %s not answering?)", p.name, p.pprof))
			continue
		}
		if g > b.g+leakGoroutine {
			out = append(out, fmt.Sprintf("%s: %d goroutines (baseline %d)", p.name, g, b.g))
		}
		if fd > b.fd+leakFDs {
			out = append(out, fmt.Sprintf("%s: %d open files (baseline %d)", p.name, fd, b.fd))
		}
	}
	for _, p := range h.relays {
		if a, err := p.Metric("relay_sessions_active"); err != nil {
			out = append(out, fmt.Sprintf("%s: %v", p.name, err))
		} else if a != 0 {
			out = append(out, fmt.Sprintf("%s: %v sessions still active", p.name, a))
		}
	}
	return append(out, h.relaysReady()...)
}

func (h *harness) run(sum *summary) error {
	cfg := h.cfg
	if err := h.setup(); err != nil {
		return err
	}
	procs := append(slices.Clone(h.relays), h.agents...)

	// Warm-up: a few quick clients so pools are allocated, then the baseline.
	var warmBad []string
	for i := range warmClients {
		ri := i % len(h.clientAddrs)
		r := h.runClient(-1-i, h.clientAddrs[ri], ri, h.warmBehaviour(), clientCfg{hangBound: 20 * time.Second})
		if r.Outcome != OK {
			h.logEvent("warm-up client not OK: %+v", r)
			warmBad = append(warmBad, fmt.Sprintf("client %d %s on relay%d: %s %s %s", r.ID, r.Behaviour, r.Relay, r.Outcome, r.Err, r.Detail))
		}
	}
	if h.ctx.Err() != nil {
		return h.ctx.Err()
	}
	if len(warmBad) > 0 {
		return fmt.Errorf("%d of %d warm-up clients (before any fault) did not end OK: %s", len(warmBad), warmClients, warmBad[0])
	}
	base := h.baseline(procs)
	for _, p := range procs {
		h.logEvent("baseline %s: goroutines=%d fds=%d rss=%dKiB", p.name, base[p.name].g, base[p.name].fd, p.RSSKiB())
	}

	stop := make(chan struct{})
	var maxRSS sync.Map
	var monWG sync.WaitGroup
	monWG.Add(2)
	go func() {
		defer monWG.Done()
		h.monitor(procs, &maxRSS, stop)
	}()
	go func() {
		defer monWG.Done()
		h.watchdog(procs, stop)
	}()
	// However run ends, the monitors end with it.
	stopMonitors := sync.OnceFunc(func() { close(stop); monWG.Wait() })
	defer stopMonitors()

	loadEnd := time.Now().Add(cfg.dur)
	faultStop := make(chan struct{})
	closeFaults := sync.OnceFunc(func() { close(faultStop) })
	var faultWG sync.WaitGroup
	var faultCounts map[string]int
	if len(cfg.faults) > 0 {
		faultWG.Add(1)
		go func() {
			defer faultWG.Done()
			faultCounts = h.injectFaults(loadEnd, faultStop, sum)
		}()
	}
	defer func() { closeFaults(); faultWG.Wait() }()

	resFile, err := os.Create(filepath.Join(h.dir, "results.jsonl"))
	if err != nil {
		return err
	}
	defer resFile.Close()
	results := make(chan Result, 1024)
	var nextID atomic.Int64
	var wg sync.WaitGroup
	for w := range cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wr := rand.New(rand.NewPCG(cfg.seed, uint64(1000+w)))
			for time.Now().Before(loadEnd) && h.ctx.Err() == nil {
				id := int(nextID.Add(1))
				if cfg.maxClients > 0 && id > cfg.maxClients {
					return
				}
				ri := wr.IntN(len(h.clientAddrs))
				results <- h.runClient(id, h.clientAddrs[ri], ri, cfg.behaviour, clientCfg{hangBound: cfg.hang})
			}
		}()
	}
	for i := range cfg.stallers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !h.sleep(time.Duration(i*50) * time.Millisecond) {
				return
			}
			ri := i % len(h.clientAddrs)
			results <- h.runClient(500000+i, h.clientAddrs[ri], ri, "bigstall", clientCfg{hangBound: cfg.hang + cfg.stallFor, stallFor: cfg.stallFor})
		}()
	}
	go func() { wg.Wait(); close(results) }() // ends when the clients do: run drains results below

	counts := map[string]*[4]int{}
	errs := map[string]int{}
	var slow, all []Result
	lastPrint := time.Now()
	for r := range results {
		if h.ctx.Err() != nil {
			continue // cut short by the interrupt: not a verdict
		}
		all = append(all, r)
		sum.clients++
		sum.outcomes[r.Outcome]++
		b, _ := json.Marshal(r)
		resFile.Write(append(b, '\n'))
		if counts[r.Behaviour] == nil {
			counts[r.Behaviour] = new([4]int)
		}
		counts[r.Behaviour][r.Outcome]++
		if r.Outcome == Abnormal {
			errs[r.Err+" "+r.Detail]++
		}
		if r.Outcome == Violation {
			sum.violations = append(sum.violations, r)
			h.logEvent("VIOLATION client %d beh=%s relay=%d local=%s size=%d sent=%d recv=%d: %s err=%s dur=%v", r.ID, r.Behaviour, r.Relay, r.Local, r.Size, r.Sent, r.Recv, r.Detail, r.Err, r.Dur)
		}
		if r.Dur > 30*time.Second && r.Behaviour != "stall" && r.Behaviour != "bigstall" {
			slow = append(slow, r)
		}
		if time.Since(lastPrint) > 10*time.Second {
			lastPrint = time.Now()
			h.logEvent("progress: %d clients, %d violations", sum.clients, len(sum.violations))
		}
	}
	closeFaults()
	faultWG.Wait()
	sum.faults = faultCounts
	if h.ctx.Err() != nil {
		return h.ctx.Err()
	}

	// Everything running again, then back to the baseline?
	for _, p := range procs {
		if p.Running() {
			p.Signal(syscall.SIGCONT)
		} else {
			h.logEvent("final: restarting %s", p.name)
			if err := p.startUp(upTimeout); err != nil {
				sum.problems = append(sum.problems, "final restart: "+err.Error())
			}
		}
	}
	h.logEvent("load done: %d clients; waiting (at most %v) for the processes to settle", sum.clients, cfg.settle)
	t0 := time.Now()
	deadline := t0.Add(cfg.settle)
	var leaks []string
	for {
		leaks = h.leaks(base)
		if len(leaks) == 0 || time.Now().After(deadline) || !h.sleep(250*time.Millisecond) {
			break
		}
	}
	if h.ctx.Err() != nil {
		return h.ctx.Err()
	}
	h.logEvent("settled after %v", time.Since(t0).Round(time.Millisecond))
	for _, p := range procs {
		g, fd, b := p.Goroutines(), p.FDs(), base[p.name]
		mr, _ := maxRSS.Load(p.name)
		note := ""
		if g > b.g+leakGoroutine || fd > b.fd+leakFDs {
			note = "  <-- above baseline"
			p.GoroutineDump(filepath.Join(h.dir, p.name+".goroutines.txt"))
		}
		h.logEvent("final %s (gen %d): goroutines=%d (base %d) fds=%d (base %d) rss=%dKiB maxrss=%vKiB%s", p.name, p.Gen(), g, b.g, fd, b.fd, p.RSSKiB(), mr, note)
	}
	for _, p := range h.relays {
		a, err := p.Metric("relay_sessions_active")
		pe, _ := p.Metric("relay_pending_clients")
		idle, _ := p.Metric("relay_idle_slots")
		hosts, _ := p.Metric("relay_hosts_attached")
		h.logEvent("final %s: sessions_active=%v pending=%v idle_slots=%v hosts=%v %v", p.name, a, pe, idle, hosts, err)
	}
	for _, l := range leaks {
		sum.problems = append(sum.problems, "leak: "+l)
		h.logEvent("LEAK %s", l)
	}

	// After the chaos, every relay serves new clients.
	post := map[string]int{}
	postBad := 0
	for i := range postClients {
		ri := i % len(h.clientAddrs)
		r := h.runClient(100000+i, h.clientAddrs[ri], ri, h.warmBehaviour(), clientCfg{hangBound: 20 * time.Second})
		post[r.Outcome.String()+" "+r.Err]++
		if r.Outcome == Violation {
			sum.violations = append(sum.violations, r)
		}
		if r.Outcome != OK {
			postBad++
		}
	}
	h.logEvent("post-chaos clients: %v", post)
	if postBad > 0 {
		sum.problems = append(sum.problems, fmt.Sprintf("%d of %d clients after the chaos did not end OK: %v", postBad, postClients, post))
	}
	stopMonitors()
	h.report(sum, counts, errs, slow, all)
	return nil
}

func (h *harness) warmBehaviour() string {
	if h.cfg.backend == "custom" {
		return "srvfirst"
	}
	return "smallhc"
}

// report logs the summary tables.
func (h *harness) report(sum *summary, counts map[string]*[4]int, errs map[string]int, slow, all []Result) {
	names := slices.Sorted(maps.Keys(counts))
	h.logEvent("=== summary seed=%d clients=%d violations=%d", h.cfg.seed, sum.clients, len(sum.violations))
	for _, n := range names {
		c := counts[n]
		h.logEvent("  %-13s OK=%d SELF-ABORT=%d ABNORMAL=%d VIOLATION=%d", n, c[OK], c[SelfAbort], c[Abnormal], c[Violation])
	}
	durs := map[string][]time.Duration{}
	for _, r := range all {
		if r.Outcome == OK {
			durs[r.Behaviour] = append(durs[r.Behaviour], r.Dur)
		}
	}
	for _, n := range names {
		d := durs[n]
		if len(d) == 0 {
			continue
		}
		slices.Sort(d)
		h.logEvent("  %-13s OK durations p50=%v p90=%v p99=%v max=%v", n, d[len(d)/2].Round(time.Millisecond), d[len(d)*9/10].Round(time.Millisecond), d[len(d)*99/100].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
	}
	ek := slices.Collect(maps.Keys(errs))
	sort.Slice(ek, func(i, j int) bool { return errs[ek[i]] > errs[ek[j]] })
	for _, k := range ek {
		h.logEvent("  abnormal: %5d %s", errs[k], k)
	}
	sort.Slice(slow, func(i, j int) bool { return slow[i].Dur > slow[j].Dur })
	for i, r := range slow {
		if i >= 10 {
			break
		}
		h.logEvent("  slow client %d beh=%s size=%d relay=%d local=%s dur=%v outcome=%s err=%s", r.ID, r.Behaviour, r.Size, r.Relay, r.Local, r.Dur, r.Outcome, r.Err)
	}
	for _, v := range sum.violations {
		h.logEvent("  VIOLATION %+v", v)
	}
}

// monitor logs the processes' RSS and goroutines every 2 s into
// events.log, and keeps each one's largest RSS, until stop.
func (h *harness) monitor(procs []*proc, maxRSS *sync.Map, stop <-chan struct{}) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		var parts []string
		for _, p := range procs {
			rss := p.RSSKiB()
			old, _ := maxRSS.LoadOrStore(p.name, rss)
			if rss > old.(int) {
				maxRSS.Store(p.name, rss)
			}
			parts = append(parts, fmt.Sprintf("%s:rss=%dM,g=%d", p.name, rss/1024, p.Goroutines()))
		}
		h.evMu.Lock()
		fmt.Fprintf(h.events, "%s +%7.2fs monitor %s\n", time.Now().Format("15:04:05.000"), time.Since(h.start).Seconds(), strings.Join(parts, " "))
		h.evMu.Unlock()
	}
}

// watchdog logs clients that made no progress for -stall-report (and dumps
// the processes' goroutines, at most every 30 s) until stop: a hang shows
// up while it happens, not only at -hang.
func (h *harness) watchdog(procs []*proc, stop <-chan struct{}) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	var lastDump time.Time
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		var stuck []string
		h.active.Range(func(k, v any) bool {
			a := v.(*activeClient)
			if a.pausing.Load() || a.reported {
				return true
			}
			if since := time.Since(time.Unix(0, a.progress.Load())); since > h.cfg.stallReport {
				a.reported = true
				stuck = append(stuck, fmt.Sprintf("id=%d beh=%s relay=%d local=%s size=%d sent=%d recv=%d age=%v noprogress=%v",
					a.id, a.beh, a.relay, a.local, a.size, a.sent.Load(), a.recv.Load(), time.Since(a.start).Round(time.Millisecond), since.Round(time.Millisecond)))
			}
			return true
		})
		for _, s := range stuck {
			h.logEvent("STUCK %s", s)
		}
		if len(stuck) > 0 && time.Since(lastDump) > 30*time.Second {
			lastDump = time.Now()
			ts := time.Now().Format("150405")
			for _, p := range procs {
				p.GoroutineDump(filepath.Join(h.dir, fmt.Sprintf("%s.stuck-%s.goroutines.txt", p.name, ts)))
			}
			h.logEvent("dumped goroutines (stuck-%s)", ts)
		}
	}
}

// injectFaults injects one fault every -fault-gap on average until loadEnd
// or stop, and counts them by kind. A failed restart is a problem of the
// run (sum.problems is the injector's until it returns).
func (h *harness) injectFaults(loadEnd time.Time, stop <-chan struct{}, sum *summary) map[string]int {
	cfg := h.cfg
	r := rand.New(rand.NewPCG(cfg.seed, 777))
	kinds := cfg.faults
	counts := map[string]int{}
	sleep := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-stop:
			return false
		case <-h.ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	restart := func(p *proc) {
		if err := p.startUp(upTimeout); err != nil {
			h.logEvent("FAULT restart of %s failed: %v", p.name, err)
			sum.problems = append(sum.problems, "restart after a fault: "+err.Error())
			return
		}
		h.logEvent("FAULT restart %s (pid %d)", p.name, p.Pid())
	}
	for {
		gap := time.Duration(float64(cfg.faultGap) * (0.5 + r.Float64()))
		if !sleep(gap) || time.Now().After(loadEnd) {
			return counts
		}
		k := kinds[r.IntN(len(kinds))]
		counts[k]++
		switch k {
		case "kill":
			a := h.agents[r.IntN(len(h.agents))]
			h.logEvent("FAULT SIGKILL %s pid %d", a.name, a.Pid())
			a.Signal(syscall.SIGKILL)
			a.WaitExit(5 * time.Second)
			sleep(time.Duration(200+r.IntN(2000)) * time.Millisecond)
			restart(a)
		case "stop":
			a := h.agents[r.IntN(len(h.agents))]
			d := time.Duration(1000+r.IntN(5000)) * time.Millisecond
			h.logEvent("FAULT SIGSTOP %s pid %d for %v", a.name, a.Pid(), d)
			a.Signal(syscall.SIGSTOP)
			sleep(d)
			a.Signal(syscall.SIGCONT)
			h.logEvent("FAULT SIGCONT %s", a.name)
		case "stopall":
			d := time.Duration(2000+r.IntN(10000)) * time.Millisecond
			h.logEvent("FAULT SIGSTOP all agents for %v", d)
			for _, a := range h.agents {
				a.Signal(syscall.SIGSTOP)
			}
			sleep(d)
			for _, a := range h.agents {
				a.Signal(syscall.SIGCONT)
			}
			h.logEvent("FAULT SIGCONT all agents")
		case "term":
			a := h.agents[r.IntN(len(h.agents))]
			h.logEvent("FAULT SIGTERM %s pid %d", a.name, a.Pid())
			a.Signal(syscall.SIGTERM)
			h.awaitExit(a, "SIGTERM", cfg.agentDrain+10*time.Second)
			restart(a)
		case "relayterm", "relaykill":
			p := h.relays[r.IntN(len(h.relays))]
			sig := syscall.SIGTERM
			if k == "relaykill" {
				sig = syscall.SIGKILL
			}
			h.logEvent("FAULT %v %s pid %d", sig, p.name, p.Pid())
			p.Signal(sig)
			h.awaitExit(p, sig.String(), cfg.relayDrain+10*time.Second)
			sleep(time.Duration(200+r.IntN(1500)) * time.Millisecond)
			restart(p)
		}
	}
}

// awaitExit waits for a signalled process to exit, and kills it after limit.
func (h *harness) awaitExit(p *proc, sig string, limit time.Duration) {
	t0 := time.Now()
	if p.WaitExit(limit) {
		h.logEvent("FAULT %s exited %v after %s", p.name, time.Since(t0).Round(time.Millisecond), sig)
		return
	}
	h.logEvent("FAULT %s did not exit %v after %s; SIGKILL", p.name, time.Since(t0).Round(time.Millisecond), sig)
	p.Signal(syscall.SIGKILL)
	p.WaitExit(5 * time.Second)
}

// buildBinaries builds relayd, hostagent and relayload of the module the
// working directory is in into dir.
func buildBinaries(ctx context.Context, dir string) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, goBinary(), "build", "-o", dir+string(filepath.Separator), "./relayd", "./hostagent", "./bench/relayload")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build in %s: %v\n%s", root, err, out)
	}
	return nil
}

const modulePath = "github.com/relayproject/relay"

// moduleRoot is the directory of the relay module's go.mod: `go env GOMOD`,
// or, if that names another module or none, the first go.mod of the relay
// module above the working directory.
func moduleRoot(ctx context.Context) (string, error) {
	isRelay := func(gomod string) bool {
		b, err := os.ReadFile(gomod)
		return err == nil && bytes.Contains(b, []byte("module "+modulePath+"\n"))
	}
	if out, err := exec.CommandContext(ctx, goBinary(), "env", "GOMOD").Output(); err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && isRelay(gomod) {
			return filepath.Dir(gomod), nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isRelay(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the " + modulePath + " module: run from its checkout, or pass -bin DIR with relayd, hostagent and relayload built")
		}
		dir = parent
	}
}

// goBinary is the go command: on PATH, or in GOROOT (go test sets it for a
// test binary).
func goBinary() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}
