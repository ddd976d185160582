package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// runConfig sizes one run of the runner.
type runConfig struct {
	reps                int // passes over the throughput/RTT/rate figures; medians are reported
	bulk1MiB, bulk8MiB  int // MiB sent per connection, 1-conn and 8-conn bulk
	rttCount, rttWarmup int // round trips measured, and before measuring
	rateWorkers         int // concurrent session clients
	rateCount           int // sessions per rate run, at most
	rateDuration        time.Duration
	hold                int // sessions held for the memory figure
	idleSlots           int // --idle of the agent for the idle-slot figure
	memoryOnly          bool
	links               []string // "plaintext", "tls": the gRPC links measured
	base                string   // a git revision to build and measure beside the working tree, or ""
	credits             bool     // also measure hostagent --slot-credits (plaintext link)
	floor               bool     // also measure two chained plain proxies (relayload proxy)
	haproxy             bool     // also measure two chained haproxy processes
}

var (
	fullRun  = runConfig{reps: 3, bulk1MiB: 1024, bulk8MiB: 128, rttCount: 10000, rttWarmup: 200, rateWorkers: 4, rateCount: 20000, rateDuration: 3 * time.Second, hold: 2000, idleSlots: 1000}
	quickRun = runConfig{reps: 1, bulk1MiB: 256, bulk8MiB: 32, rttCount: 3000, rttWarmup: 200, rateWorkers: 4, rateCount: 10000, rateDuration: 1500 * time.Millisecond, hold: 500, idleSlots: 1000}
)

// Limits on how long one step may take; a step beyond them is a failure.
const (
	readyLimit = 30 * time.Second
	stepLimit  = 2 * time.Minute
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	quick := fs.Bool("quick", false, "a short run for development (1 pass, smaller sizes; under a minute)")
	reps := fs.Int("reps", 0, "passes over the throughput, RTT and rate figures (default 3, or 1 with --quick)")
	hold := fs.Int("hold", 0, "sessions held for the memory figure (default 2000, or 500 with --quick; 19000 is issue 3's target)")
	idle := fs.Int("idle-slots", 0, "idle slots of the agent for the idle-slot figure (default 1000)")
	memOnly := fs.Bool("memory-only", false, "only the memory figures (held sessions, idle slots): they stay exact on a busy machine, unlike speed")
	keepLogs := fs.Bool("keep-logs", false, "keep the build and the processes' logs (printed path)")
	link := fs.String("link", "both", "gRPC link between hostagent and relayd for the speed figures: plaintext, tls, or both (each in the same passes)")
	credits := fs.Bool("credits", false, "also measure this build with hostagent --slot-credits (plaintext link) in the same passes")
	base := fs.String("base", "", "also build this git `revision` (git archive of the module) and measure it in the same passes, as the \"before\" of a change")
	haproxy := fs.Bool("haproxy", false, "also measure two chained haproxy processes (TCP mode, their defaults) in the same passes, speed and held sessions: the floor in C; needs haproxy on PATH")
	floor := fs.Bool("floor", true, "also measure the floor in the same passes: two chained plain TCP proxies (relayload proxy), the same two hops with no framing, gRPC or scheduler")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg := fullRun
	if *quick {
		cfg = quickRun
	}
	if *reps != 0 {
		cfg.reps = *reps
	}
	if *hold != 0 {
		cfg.hold = *hold
	}
	if *idle != 0 {
		cfg.idleSlots = *idle
	}
	cfg.memoryOnly = *memOnly
	switch *link {
	case "both":
		cfg.links = []string{"plaintext", "tls"}
	case "plaintext", "tls":
		cfg.links = []string{*link}
	default:
		return usageError{fmt.Errorf("--link is plaintext, tls or both, got %q", *link)}
	}
	cfg.base = *base
	cfg.credits = *credits
	cfg.floor = *floor
	cfg.haproxy = *haproxy
	if cfg.haproxy {
		if _, err := exec.LookPath("haproxy"); err != nil {
			return usageError{errors.New("--haproxy: no haproxy on PATH (on Debian: apt-get install haproxy)")}
		}
	}
	if cfg.reps < 1 || cfg.reps > 9 || cfg.hold < 1 || cfg.hold > 19500 || cfg.idleSlots < 1 || cfg.idleSlots > 19500 {
		return usageError{errors.New("--reps in [1, 9], --hold and --idle-slots in [1, 19500] (the machine caps open files per process)")}
	}

	dir, err := os.MkdirTemp("", "relayload-")
	if err != nil {
		return err
	}
	r := &runner{cfg: cfg, dir: dir, log: stderr, started: time.Now()}
	err = r.run(ctx)
	r.stopAll()
	if err != nil || *keepLogs {
		fmt.Fprintf(stderr, "logs kept in %s\n", dir)
	} else {
		os.RemoveAll(dir)
	}
	if err != nil {
		return err
	}
	mode := "full"
	if *quick {
		mode = "quick"
	}
	if *memOnly {
		mode = "memory only"
	}
	r.report(stdout, mode)
	return nil
}

// runner owns the processes of one run and its results.
type runner struct {
	cfg     runConfig
	dir     string
	log     io.Writer
	started time.Time

	cur, old bins    // the working tree's build, and --base's
	procs    []*proc // every process started, stopped in reverse order
	echoAddr string
	tls      tlsFiles

	paths []*path // in column order: direct first
	figs  map[string]*figure
	peak  struct{ relayd, agent int64 } // of the working tree's plaintext relay
	held  struct {
		n                    int
		relayKiB, agentKiB   int64 // RSS delta while n sessions were held
		relayBase, agentBase int64
		// The same through the floor's two proxies, both summed, and
		// through two haproxy processes; nil if not measured.
		floorKiB, haproxyKiB *int64
	}
	idle struct {
		n             int
		before, after int64 // relayd RSS, KiB
		agentRSS      int64
		// The same with hostagent --slot-credits: the idle slots are
		// credits on one stream.
		creditsBefore, creditsAfter int64
	}
}

// bins are the two binaries of one build.
type bins struct{ relayd, agent string }

// path is one way from the client to the echo backend: direct, through a
// relayd and hostagent of one build over one kind of gRPC link, or through
// a floor's two proxies.
type path struct {
	name   string // column label
	target string
	first  *proc // relayd or a floor's first proxy; nil for direct
	second *proc // hostagent or a floor's second proxy
	floor  bool  // a floor: measured beside the relay, held to no target

	cpuFirst, cpuSecond float64 // CPU seconds of each hop during this path's bulk runs
	relayed             int64   // payload bytes that crossed the relay in those runs, both directions
}

// figure is one row of the table: samples through each path, by name.
type figure struct {
	samples map[string][]float64
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.log, "[%5.1fs] "+format+"\n", append([]any{time.Since(r.started).Seconds()}, args...)...)
}

func (r *runner) fig(name string) *figure {
	if r.figs == nil {
		r.figs = map[string]*figure{}
	}
	f := r.figs[name]
	if f == nil {
		f = &figure{samples: map[string][]float64{}}
		r.figs[name] = f
	}
	return f
}

func (r *runner) run(ctx context.Context) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	if r.cur, err = r.build(ctx, root, filepath.Join(r.dir, "bin")); err != nil {
		return err
	}
	if r.cfg.base != "" {
		if r.old, err = r.buildRevision(ctx, root, r.cfg.base); err != nil {
			return err
		}
	}
	if r.tls, err = makeTLSFiles(r.dir); err != nil {
		return fmt.Errorf("throwaway TLS certificate: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	echo, m, err := r.start(ctx, "echo-server", "echo-server ready", self, "echo-server", "--addr", "127.0.0.1:0")
	if err != nil {
		return err
	}
	r.echoAddr, _ = m["addr"].(string)
	r.logf("echo backend %s (pid %d)", r.echoAddr, echo.pid())

	if !r.cfg.memoryOnly {
		if err := r.throughputPhase(ctx); err != nil {
			return err
		}
	}
	if err := r.holdPhase(ctx); err != nil {
		return err
	}
	return r.idlePhase(ctx)
}

// moduleRoot finds the module that holds this command's source through
// `go env GOMOD` from the working directory.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	if _, err := os.Stat(filepath.Join(root, "relayd", "run.go")); err != nil {
		return "", fmt.Errorf("run relayload from inside the relay module (no relayd/ under %s)", root)
	}
	return root, nil
}

// build compiles relayd and hostagent from the module at root into out.
func (r *runner) build(ctx context.Context, root, out string) (bins, error) {
	r.logf("building relayd and hostagent of %s into %s", root, out)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out+string(filepath.Separator), "./relayd", "./hostagent")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Run(); err != nil {
		return bins{}, fmt.Errorf("go build: %w", err)
	}
	return bins{filepath.Join(out, "relayd"), filepath.Join(out, "hostagent")}, nil
}

// buildRevision builds rev of the repository at root from a `git archive`
// unpacked in the run's directory: no checkout, no worktree, the
// repository is only read.
func (r *runner) buildRevision(ctx context.Context, root, rev string) (bins, error) {
	src := filepath.Join(r.dir, "base-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return bins{}, err
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", root, rev, src)
	cmd.Stderr = r.log
	if err := cmd.Run(); err != nil {
		return bins{}, fmt.Errorf("git archive %s: %w", rev, err)
	}
	return r.build(ctx, src, filepath.Join(r.dir, "base-bin"))
}

func (r *runner) start(ctx context.Context, name, readyMsg string, argv ...string) (*proc, map[string]any, error) {
	return r.startFiles(ctx, name, readyMsg, nil, argv...)
}

// startFiles is start with files passed to the child as descriptors 3, 4…
func (r *runner) startFiles(ctx context.Context, name, readyMsg string, files []*os.File, argv ...string) (*proc, map[string]any, error) {
	p, m, err := startProcFiles(ctx, name, r.dir, readyMsg, readyLimit, files, argv...)
	if err != nil {
		return nil, nil, err
	}
	r.procs = append(r.procs, p)
	return p, m, nil
}

// stop stops p and reports an unclean exit as a warning: it does not spoil
// the figures, but it is worth a look.
func (r *runner) stop(p *proc) {
	if err := p.stop(); err != nil {
		r.logf("warning: %v", err)
	}
}

func (r *runner) stopAll() {
	for _, p := range slices.Backward(r.procs) {
		r.stop(p)
	}
}

// startRelay starts relayd on free loopback ports and returns its grpc and
// client addresses.
// With tls, the gRPC port serves the run's throwaway certificate.
func (r *runner) startRelay(ctx context.Context, name string, b bins, tls bool) (p *proc, grpcAddr, clientAddr string, err error) {
	argv := []string{b.relayd,
		"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--client-addr", "127.0.0.1:0",
		"--log-format", "json", "--drain-timeout", "2s",
		// The load comes from one address at rates and counts the safety
		// limits exist to refuse: measure the relay, not its limits.
		"--client-rate", "0", "--max-clients-per-ip", "0", "--max-sessions", "0",
		"--max-slots-per-host", "0", "--max-slots-per-conn", "0"}
	if b == r.cur {
		// Builds before slot credits (--base) do not know the flag.
		argv = append(argv, "--max-credits", "19500")
	}
	if tls {
		argv = append(argv, "--tls-cert", r.tls.cert, "--tls-key", r.tls.key)
	}
	p, m, err := r.start(ctx, name, "relayd ready", argv...)
	if err != nil {
		return nil, "", "", err
	}
	grpcAddr, _ = m["grpc_addr"].(string)
	clientAddr, _ = m["client_addr"].(string)
	if grpcAddr == "" || clientAddr == "" {
		return nil, "", "", fmt.Errorf("%s: ready line without grpc_addr or client_addr: %v", name, m)
	}
	return p, grpcAddr, clientAddr, nil
}

// startAgent starts `hostagent forward <echo>` and returns once its idle
// pool on the relay is full. With tls, it trusts the run's throwaway CA
// (and so dials the relay with TLS).
func (r *runner) startAgent(ctx context.Context, name string, b bins, grpcAddr string, idle int, tls bool, flags ...string) (*proc, error) {
	argv := append([]string{b.agent, "--relay", grpcAddr, "--idle", fmt.Sprint(idle), "--host-id", "bench",
		"--log-format", "json", "--drain-timeout", "2s"}, flags...)
	if tls {
		argv = append(argv, "--tls-ca", r.tls.ca)
	}
	p, _, err := r.start(ctx, name, "relay attached", append(argv, "forward", r.echoAddr)...)
	return p, err
}

// startPaths starts a relayd and an agent for every build and link of the
// run, each pair on its own ports, and returns the paths in column order.
// The pairs not being measured sit idle (keepalives only) meanwhile.
func (r *runner) startPaths(ctx context.Context) ([]*path, error) {
	paths := []*path{{name: "direct", target: r.echoAddr}}
	builds := []struct {
		label string
		b     bins
	}{{"relay", r.cur}}
	if r.cfg.base != "" {
		builds = append(builds, struct {
			label string
			b     bins
		}{"base " + r.cfg.base, r.old})
	}
	for _, bd := range builds {
		for _, link := range r.cfg.links {
			tls := link == "tls"
			name := bd.label
			if tls {
				name += " TLS"
			}
			suffix := strings.NewReplacer(" ", "-", "/", "-").Replace(name)
			relayd, grpcAddr, clientAddr, err := r.startRelay(ctx, "relayd-"+suffix, bd.b, tls)
			if err != nil {
				return nil, err
			}
			agent, err := r.startAgent(ctx, "hostagent-"+suffix, bd.b, grpcAddr, 10, tls)
			if err != nil {
				return nil, err
			}
			r.logf("%s: relayd pid %d (client port %s), hostagent forward pid %d (default --idle 10), %s gRPC link",
				name, relayd.pid(), clientAddr, agent.pid(), link)
			paths = append(paths, &path{name: name, target: clientAddr, first: relayd, second: agent})
		}
	}
	if r.cfg.credits {
		relayd, grpcAddr, clientAddr, err := r.startRelay(ctx, "relayd-credits", r.cur, false)
		if err != nil {
			return nil, err
		}
		agent, err := r.startAgent(ctx, "hostagent-credits", r.cur, grpcAddr, 10, false, "--slot-credits")
		if err != nil {
			return nil, err
		}
		r.logf("relay credits: relayd pid %d (client port %s), hostagent --slot-credits forward pid %d, plaintext gRPC link", relayd.pid(), clientAddr, agent.pid())
		paths = append(paths, &path{name: "relay credits", target: clientAddr, first: relayd, second: agent})
	}
	if r.cfg.floor {
		first, second, addr, err := r.startFloor(ctx, "floor")
		if err != nil {
			return nil, err
		}
		r.logf("%s: relayload proxy pids %d → %d (client port %s), plain TCP, dialing its next hop per session", floorName, first.pid(), second.pid(), addr)
		paths = append(paths, &path{name: floorName, target: addr, first: first, second: second, floor: true})
	}
	if r.cfg.haproxy {
		for _, link := range r.cfg.links {
			start, name := r.startHAProxyChain, haproxyName
			if link == "tls" {
				start, name = r.startHAProxyTLSChain, haproxyName+" TLS"
			}
			first, second, addr, err := start(ctx, strings.ReplaceAll(name, " ", "-"))
			if err != nil {
				return nil, err
			}
			r.logf("%s: haproxy pids %d → %d (client port %s), %s between them", name, first.pid(), second.pid(), addr, link)
			paths = append(paths, &path{name: name, target: addr, first: first, second: second, floor: true})
		}
	}
	return paths, nil
}

// floorName labels the floor's column: two chained plain proxies.
const floorName = "floor: 2 proxies"

// startFloor starts two chained `relayload proxy` processes in front of
// the echo backend and returns them, first hop first, and the first's
// address.
func (r *runner) startFloor(ctx context.Context, name string) (first, second *proc, addr string, err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, "", err
	}
	second, m, err := r.start(ctx, name+"-proxy2", "proxy ready", self, "proxy", "--addr", "127.0.0.1:0", "--target", r.echoAddr)
	if err != nil {
		return nil, nil, "", err
	}
	next, _ := m["addr"].(string)
	first, m, err = r.start(ctx, name+"-proxy1", "proxy ready", self, "proxy", "--addr", "127.0.0.1:0", "--target", next)
	if err != nil {
		return nil, nil, "", err
	}
	addr, _ = m["addr"].(string)
	if next == "" || addr == "" {
		return nil, nil, "", fmt.Errorf("%s: proxy ready line without addr", name)
	}
	return first, second, addr, nil
}

// throughputPhase measures bulk, RTT and session rate, direct and through
// every relayed path, interleaved pass by pass so that drifting load on
// the machine hits all of them.
func (r *runner) throughputPhase(ctx context.Context) error {
	paths, err := r.startPaths(ctx)
	if err != nil {
		return err
	}
	r.paths = paths

	// A short warm-up through every path: first connections, heap growth.
	for _, p := range paths {
		if _, err := runBulk(ctx, p.target, 2, 16<<20, stepLimit); err != nil {
			return fmt.Errorf("warm-up, %s: %w", p.name, err)
		}
	}

	cfg := r.cfg
	add := func(fig string, p *path, v float64) {
		f := r.fig(fig)
		f.samples[p.name] = append(f.samples[p.name], v)
	}
	bulk := func(fig string, p *path, conns, mib int) error {
		var c0, a0 float64
		if p.first != nil {
			c0, _ = cpuSeconds(p.first.pid())
			a0, _ = cpuSeconds(p.second.pid())
		}
		res, err := runBulk(ctx, p.target, conns, int64(mib)<<20, stepLimit)
		if err != nil {
			return fmt.Errorf("%s, %s: %w", fig, p.name, err)
		}
		if p.first != nil {
			c1, err1 := cpuSeconds(p.first.pid())
			a1, err2 := cpuSeconds(p.second.pid())
			if err := errors.Join(err1, err2); err != nil {
				return err
			}
			p.cpuFirst += c1 - c0
			p.cpuSecond += a1 - a0
			p.relayed += 2 * res.Bytes
		}
		add(fig, p, res.MBps())
		r.logf("%-14s %-12s %8.0f MB/s  (%d MiB in %v)", fig, p.name, res.MBps(), res.Bytes>>20, res.Elapsed.Round(time.Millisecond))
		return nil
	}
	for rep := 1; rep <= cfg.reps; rep++ {
		r.logf("pass %d of %d", rep, cfg.reps)
		for _, p := range paths {
			if err := bulk(figBulk1, p, 1, cfg.bulk1MiB); err != nil {
				return err
			}
		}
		for _, p := range paths {
			if err := bulk(figBulk8, p, 8, cfg.bulk8MiB); err != nil {
				return err
			}
		}
		for _, p := range paths {
			res, err := runRTT(ctx, p.target, cfg.rttCount, cfg.rttWarmup, 64, stepLimit)
			if err != nil {
				return fmt.Errorf("rtt, %s: %w", p.name, err)
			}
			add(figP50, p, us(res.P50))
			add(figP99, p, us(res.P99))
			r.logf("%-14s %-12s p50 %6.0f µs, p99 %6.0f µs (%d round trips)", "rtt 64 B", p.name, us(res.P50), us(res.P99), res.Count)
		}
		for _, p := range paths {
			res, err := runRate(ctx, p.target, cfg.rateWorkers, cfg.rateCount, cfg.rateDuration)
			if err != nil {
				return fmt.Errorf("rate, %s: %w", p.name, err)
			}
			add(figRate, p, res.PerSecond())
			r.logf("%-14s %-12s %8.0f sessions/s (%d in %v)", "sessions/s", p.name, res.PerSecond(), res.Sessions, res.Elapsed.Round(time.Millisecond))
		}
	}
	if p := paths[1]; p.first != nil {
		r.peak.relayd, _ = procStatusKiB(p.first.pid(), "VmHWM")
		r.peak.agent, _ = procStatusKiB(p.second.pid(), "VmHWM")
	}
	for _, p := range slices.Backward(paths) {
		if p.first != nil {
			r.stop(p.second)
			r.stop(p.first)
		}
	}
	return nil
}

// holdPhase measures the RSS cost of held sessions on a fresh relayd and
// agent, so that buffers left over from bulk runs do not hide it.
func (r *runner) holdPhase(ctx context.Context) error {
	relayd, grpcAddr, clientAddr, err := r.startRelay(ctx, "relayd-hold", r.cur, false)
	if err != nil {
		return err
	}
	agent, err := r.startAgent(ctx, "hostagent-hold", r.cur, grpcAddr, 10, false)
	if err != nil {
		return err
	}
	rb, err1 := rssKiB(relayd.pid())
	ab, err2 := rssKiB(agent.pid())
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	t0 := time.Now()
	h, err := runHold(ctx, clientAddr, r.cfg.hold, 8, stepLimit)
	if err != nil {
		return err
	}
	ra, err1 := rssKiB(relayd.pid())
	aa, err2 := rssKiB(agent.pid())
	h.Close()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	r.held.n = r.cfg.hold
	r.held.relayKiB, r.held.agentKiB = ra-rb, aa-ab
	r.held.relayBase, r.held.agentBase = rb, ab
	r.logf("held %d sessions (opened and verified in %v): relayd RSS %d → %d KiB, hostagent %d → %d KiB",
		r.cfg.hold, time.Since(t0).Round(time.Millisecond), rb, ra, ab, aa)
	r.stop(agent)
	r.stop(relayd)
	// A proxy holds two sockets per session (its client's and its next
	// hop's) where relayd and hostagent hold one each, and the Go floor
	// two splice pipes more while its copies wait: beyond what the limit
	// on open files allows, a floor is not measured.
	skip := func(name string, most int) bool {
		if r.cfg.hold <= most {
			return false
		}
		r.logf("%s: not held: --hold %d is over the %d sessions it can hold in %d open files (ulimit -Hn)", name, r.cfg.hold, most, openFilesLimit())
		return true
	}
	if r.cfg.floor && !skip(floorName, floorMaxHeld()) {
		kib, err := r.holdThrough(ctx, floorName, "floor-hold", r.startFloor)
		if err != nil {
			return err
		}
		r.held.floorKiB = &kib
	}
	if r.cfg.haproxy && !skip(haproxyName, haproxyMaxConn()) {
		kib, err := r.holdThrough(ctx, haproxyName, "haproxy-hold", r.startHAProxyChain)
		if err != nil {
			return err
		}
		r.held.haproxyKiB = &kib
	}
	return nil
}

// holdThrough holds the run's sessions through two fresh processes that
// start starts (their logs named after prefix), and returns their RSS
// growth in KiB.
func (r *runner) holdThrough(ctx context.Context, name, prefix string, start func(context.Context, string) (*proc, *proc, string, error)) (int64, error) {
	first, second, addr, err := start(ctx, prefix)
	if err != nil {
		return 0, err
	}
	defer r.stop(second)
	defer r.stop(first)
	before, err := sumRSS([]int{first.pid(), second.pid()})
	if err != nil {
		return 0, err
	}
	h, err := runHold(ctx, addr, r.cfg.hold, 8, stepLimit)
	if err != nil {
		return 0, fmt.Errorf("hold, %s: %w", name, err)
	}
	after, err := sumRSS([]int{first.pid(), second.pid()})
	h.Close()
	if err != nil {
		return 0, err
	}
	r.logf("held %d sessions through %s: RSS %d → %d KiB", r.cfg.hold, name, before, after)
	return after - before, nil
}

// idlePhase measures what idle slots cost the relay: its RSS before and
// after an agent with --idle N has filled its pool.
func (r *runner) idlePhase(ctx context.Context) error {
	relayd, grpcAddr, _, err := r.startRelay(ctx, "relayd-idle", r.cur, false)
	if err != nil {
		return err
	}
	before, err := rssKiB(relayd.pid())
	if err != nil {
		return err
	}
	agent, err := r.startAgent(ctx, "hostagent-idle", r.cur, grpcAddr, r.cfg.idleSlots, false)
	if err != nil {
		return err
	}
	after, err1 := rssKiB(relayd.pid())
	arss, err2 := rssKiB(agent.pid())
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	r.idle.n, r.idle.before, r.idle.after, r.idle.agentRSS = r.cfg.idleSlots, before, after, arss
	r.logf("%d idle slots: relayd RSS %d → %d KiB; hostagent RSS %d KiB", r.cfg.idleSlots, before, after, arss)
	r.stop(agent)
	r.stop(relayd)

	relayd, grpcAddr, _, err = r.startRelay(ctx, "relayd-credits", r.cur, false)
	if err != nil {
		return err
	}
	if r.idle.creditsBefore, err = rssKiB(relayd.pid()); err != nil {
		return err
	}
	agent, err = r.startAgent(ctx, "hostagent-credits", r.cur, grpcAddr, r.cfg.idleSlots, false, "--slot-credits")
	if err != nil {
		return err
	}
	if r.idle.creditsAfter, err = rssKiB(relayd.pid()); err != nil {
		return err
	}
	r.logf("%d idle slots as credits (--slot-credits): relayd RSS %d → %d KiB", r.cfg.idleSlots, r.idle.creditsBefore, r.idle.creditsAfter)
	r.stop(agent)
	r.stop(relayd)
	return nil
}

// Figure names, in table order.
const (
	figBulk1 = "bulk, 1 conn (MB/s)"
	figBulk8 = "bulk, 8 conns (MB/s)"
	figP50   = "echo RTT p50 (µs)"
	figP99   = "echo RTT p99 (µs)"
	figRate  = "sessions/s (dial, 1-byte echo, close)"
)

// target is issue 3's target for a figure: a bound on relay ÷ direct, or
// on the relay's absolute value.
type target struct {
	text  string
	ratio bool // bound applies to the ratio, else to the value
	min   bool // a lower bound, else an upper bound
	bound float64
}

func (t target) met(v float64) string {
	if t.text == "" {
		return ""
	}
	if (t.min && v >= t.bound) || (!t.min && v <= t.bound) {
		return "met"
	}
	return "**missed**"
}

var targets = map[string]target{
	figBulk1: {"≥ 0.25 × direct", true, true, 0.25},
	figBulk8: {"≥ 0.22 × direct", true, true, 0.22},
	figP50:   {"≤ 5 × direct", true, false, 5},
	figP99:   {"≤ 5 × direct", true, false, 5},
	figRate:  {"≥ 0.40 × direct", true, true, 0.40},
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *runner) report(w io.Writer, mode string) {
	cfg := r.cfg
	fmt.Fprintf(w, "\n## relayload run (%s): %s\n\n", mode, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "Machine: %d CPUs (%s), kernel %s, %s, load average at the end %s.\n",
		runtime.NumCPU(), cpuModel(), kernel(), runtime.Version(), loadavg())
	fmt.Fprintf(w, "Topology: client → echo backend (direct) and client → relayd → hostagent forward → echo backend (relay), all on 127.0.0.1; gRPC link %s. ",
		strings.Join(cfg.links, " and "))
	if cfg.base != "" {
		fmt.Fprintf(w, "Columns \"base …\" are revision %s, built and measured in the same passes. ", cfg.base)
	}
	// The floors are named in speed columns and, under --memory-only,
	// only in memory rows.
	if cfg.floor {
		fmt.Fprintf(w, "%q is the floor: client → relayload proxy → relayload proxy → echo backend, two plain TCP proxies (splice both ways, each session's next hop dialed when it starts), the same two hops and four processes with no framing, gRPC or scheduler. ", floorName)
	}
	if cfg.haproxy {
		fmt.Fprintf(w, "%q is the same floor with two haproxy processes (TCP mode, their defaults)", haproxyName)
		if slices.Contains(cfg.links, "tls") && !cfg.memoryOnly {
			fmt.Fprintf(w, "; %q has TLS between them, as on the relay's TLS link", haproxyName+" TLS")
		}
		fmt.Fprint(w, ". ")
	}
	if !cfg.memoryOnly {
		fmt.Fprintf(w, "Median of %d passes, all paths interleaved; bulk sends %d MiB on 1 conn, %d MiB on each of 8; RTT over %d × 64 B; sessions/s with %d clients for up to %v.",
			cfg.reps, cfg.bulk1MiB, cfg.bulk8MiB, cfg.rttCount, cfg.rateWorkers, cfg.rateDuration)
	}
	fmt.Fprint(w, "\n\n")

	relayed := []*path{}
	if len(r.paths) > 1 {
		relayed = r.paths[1:]
	}
	// Header: direct, then each relayed path with its ratio, target, and
	// whether each relay column (not a floor) meets it.
	hdr, sep := "| figure | direct |", "|---|---:|"
	if len(relayed) == 0 { // --memory-only: no direct column, no ratios
		hdr, sep = "| figure | relay |", "|---|---:|"
	}
	for _, p := range relayed {
		hdr += fmt.Sprintf(" %s | ÷ direct |", p.name)
		sep += "---:|---:|"
	}
	hdr += " target (issue 3) | met |"
	sep += "---|---|"
	fmt.Fprintln(w, hdr)
	fmt.Fprintln(w, sep)
	empty := strings.Repeat(" – | – |", max(len(relayed)-1, 0))
	for _, name := range []string{figBulk1, figBulk8, figP50, figP99, figRate} {
		f := r.figs[name]
		if f == nil {
			continue
		}
		d := median(f.samples["direct"])
		t := targets[name]
		line := fmt.Sprintf("| %s | %.0f |", name, d)
		var met []string
		for _, p := range relayed {
			v := median(f.samples[p.name])
			line += fmt.Sprintf(" %.0f | %.2f |", v, v/d)
			if !p.floor {
				met = append(met, t.met(v/d))
			}
		}
		fmt.Fprintf(w, "%s %s | %s |\n", line, t.text, strings.Join(met, " / "))
	}
	// Memory rows are the working tree's, plaintext: TLS buffers are per
	// connection, not per stream.
	row := func(name, value, tgt, met string) {
		if len(relayed) == 0 {
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", name, value, tgt, met)
			return
		}
		fmt.Fprintf(w, "| %s | – | %s | – |%s %s | %s |\n", name, value, empty, tgt, met)
	}
	if r.held.n > 0 {
		per := float64(r.held.relayKiB+r.held.agentKiB) / float64(r.held.n)
		row(fmt.Sprintf("memory per held session, relayd + hostagent RSS (KiB; %d held; plaintext)", r.held.n),
			fmt.Sprintf("%.1f", per), "≤ 24 KiB", target{text: "x", bound: 24}.met(per))
		row("… of which relayd / hostagent (KiB)",
			fmt.Sprintf("%.1f / %.1f", float64(r.held.relayKiB)/float64(r.held.n), float64(r.held.agentKiB)/float64(r.held.n)), "", "")
		status := ""
		if r.held.n >= 19000 {
			status = "met"
		}
		row("concurrent sessions held and verified", fmt.Sprint(r.held.n), "19,000", status)
		// The floors' rows have no target: issue 3's is the relay's.
		for _, f := range []struct {
			name string
			kib  *int64
		}{{floorName, r.held.floorKiB}, {haproxyName, r.held.haproxyKiB}} {
			if f.kib != nil {
				per := float64(*f.kib) / float64(r.held.n)
				row(fmt.Sprintf("memory per held session, %s (KiB; %d held)", f.name, r.held.n),
					fmt.Sprintf("%.1f", per), "", "")
			}
		}
	}
	if r.idle.n > 0 {
		per := float64(r.idle.after-r.idle.before) / float64(r.idle.n)
		row(fmt.Sprintf("idle slot on relayd (KiB RSS each; %d slots; plaintext)", r.idle.n),
			fmt.Sprintf("%.1f", per), "≤ 4 KiB", target{text: "x", bound: 4}.met(per))
		per = float64(r.idle.creditsAfter-r.idle.creditsBefore) / float64(r.idle.n)
		row(fmt.Sprintf("… as credits, hostagent --slot-credits (KiB RSS each; %d slots)", r.idle.n),
			fmt.Sprintf("%.2f", per), "≤ 4 KiB", target{text: "x", bound: 4}.met(per))
	}
	for _, p := range relayed {
		if p.relayed > 0 {
			gb := float64(p.relayed) / 1e9
			row(fmt.Sprintf("CPU seconds per GB relayed, first hop / second hop (relayd / hostagent, or the floor's proxies; %s)", p.name),
				fmt.Sprintf("%.2f / %.2f", p.cpuFirst/gb, p.cpuSecond/gb), "", "")
		}
	}
	if r.peak.relayd > 0 {
		row(fmt.Sprintf("relayd / hostagent peak RSS in the bulk/RTT/rate phase (MiB; %s)", r.paths[1].name),
			fmt.Sprintf("%.1f / %.1f", float64(r.peak.relayd)/1024, float64(r.peak.agent)/1024), "", "")
	}

	fmt.Fprintf(w, "\nMB = 10^6 bytes of payload one way. \"GB relayed\" counts payload crossing the relay in both directions (an echoed byte counts twice), over the relayed bulk runs. ")
	fmt.Fprintf(w, "Memory per held session is the RSS growth of a fresh relayd and hostagent while %d sessions are open (baseline %d + %d KiB); the idle-slot figure is relayd's RSS growth (%d → %d KiB) when an agent with --idle %d attaches.\n\n",
		r.held.n, r.held.relayBase, r.held.agentBase, r.idle.before, r.idle.after, r.idle.n)
	if lo, hi, ok := r.directRTTSpread(); ok && hi > 2*lo {
		fmt.Fprintf(w, "Direct RTT p50 ranged %.0f–%.0f µs across passes. A loopback round trip is several times faster when the scheduler runs client and backend on one CPU than across two (17 against 63 µs on the 2-vCPU machine of docs/performance.md, pinned with taskset), and the placement changes from connection to connection, so every RTT ratio here moves with it: compare the paths' µs, pass by pass.\n\n", lo, hi)
	}
	if !cfg.memoryOnly {
		names := make([]string, len(r.paths))
		for i, p := range r.paths {
			names[i] = p.name
		}
		fmt.Fprintf(w, "Samples, in pass order (%s):\n\n", strings.Join(names, " | "))
	}
	for _, name := range []string{figBulk1, figBulk8, figP50, figP99, figRate} {
		if f := r.figs[name]; f != nil {
			cols := make([]string, len(r.paths))
			for i, p := range r.paths {
				cols[i] = join(f.samples[p.name])
			}
			fmt.Fprintf(w, "- %s: %s\n", name, strings.Join(cols, " | "))
		}
	}
	fmt.Fprintf(w, "\nTotal run time %v.\n", time.Since(r.started).Round(time.Second))
}

// directRTTSpread returns the lowest and highest of direct's RTT p50
// samples.
func (r *runner) directRTTSpread() (lo, hi float64, ok bool) {
	f := r.figs[figP50]
	if f == nil || len(f.samples["direct"]) == 0 {
		return 0, 0, false
	}
	v := f.samples["direct"]
	return slices.Min(v), slices.Max(v), true
}

func join(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(s, ", ")
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
