//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/relayproject/relay/internal/portclaim"
)

// claimPorts claims n free loopback ports for the rest of the run: a
// relayd that a fault stops comes back on the same ports, and its agents
// redial them meanwhile, so no other socket (of another test run in
// parallel, say) may take one in between. A listen on port 0 would give a
// port from the ephemeral range, free for any socket once closed.
func (h *harness) claimPorts(n int) ([]string, error) {
	var addrs []string
	for range n {
		c, err := portclaim.New()
		if err != nil {
			return nil, err
		}
		h.claims = append(h.claims, c)
		addrs = append(addrs, c.Addr)
	}
	return addrs, nil
}

// proc is one child process (relayd, hostagent or the echo backend) that
// faults stop, kill and restart: each start is a new generation with the same
// arguments, appending to the same log.
type proc struct {
	name    string
	bin     string
	args    []string
	logPath string
	serves  []string // addresses it listens on: up when all answer
	pprof   string
	metrics string
	http    *http.Client

	mu   sync.Mutex
	cmd  *exec.Cmd
	gen  int
	done chan struct{} // closed when the current generation has exited
}

// Start starts a new generation; the previous one must have exited. A
// goroutine per generation waits for its exit: it ends with the process,
// and kill waits for it.
func (p *proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s already running", p.name)
		}
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	p.gen++
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout = f
	cmd.Stderr = f
	// Its own process group, so a terminal's Ctrl-C reaches the harness
	// only (which then kills it); SIGKILL if the harness dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	fmt.Fprintf(f, "=== chaos: start gen %d pid %d at %s args %v\n", p.gen, cmd.Process.Pid, time.Now().Format(time.RFC3339Nano), p.args)
	p.cmd = cmd
	done := make(chan struct{})
	p.done = done
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "=== chaos: exit pid %d at %s: %v\n", cmd.Process.Pid, time.Now().Format(time.RFC3339Nano), err)
		f.Close()
		close(done)
	}()
	return nil
}

// errExited is a process that exited while it was awaited.
var errExited = errors.New("exited")

// waitUp waits until every address p serves accepts a connection.
func (p *proc) waitUp(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if !p.Running() {
			return errExited
		}
		up := true
		for _, a := range p.serves {
			c, err := net.DialTimeout("tcp", a, 500*time.Millisecond)
			if err != nil {
				up = false
				break
			}
			c.Close()
		}
		if up {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not listening on all of %v after %v (see %s)", p.name, p.serves, limit.Round(time.Millisecond), p.logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startUp starts p and waits until it serves. A process that exits (a port
// in use, say: claimed ports are below the ephemeral range, but a process
// outside the harness may hold one) is started again for a while.
func (p *proc) startUp(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if err := p.Start(); err != nil {
			return err
		}
		err := p.waitUp(time.Until(deadline))
		if !errors.Is(err, errExited) {
			return err
		}
		last := p.lastLogLine()
		if !strings.Contains(last, "address already in use") || time.Now().After(deadline) {
			return fmt.Errorf("%s exited at start: %s (see %s)", p.name, last, p.logPath)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lastLogLine is the last line the process wrote to its log.
func (p *proc) lastLogLine() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if !strings.HasPrefix(lines[i], "=== chaos:") {
			return strings.TrimSpace(lines[i])
		}
	}
	return "(no output)"
}

func (p *proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *proc) Gen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

func (p *proc) Running() bool {
	p.mu.Lock()
	d := p.done
	p.mu.Unlock()
	if d == nil {
		return false
	}
	select {
	case <-d:
		return false
	default:
		return true
	}
}

func (p *proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return fmt.Errorf("%s not started", p.name)
	}
	return p.cmd.Process.Signal(sig)
}

// WaitExit waits up to d for the current generation to exit.
func (p *proc) WaitExit(d time.Duration) bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// kill ends the current generation (a stopped one too) and waits for it.
func (p *proc) kill() error {
	if !p.Running() {
		return nil
	}
	p.Signal(syscall.SIGCONT)
	p.Signal(syscall.SIGKILL)
	if !p.WaitExit(30 * time.Second) {
		return fmt.Errorf("%s (pid %d) did not exit 30 s after SIGKILL", p.name, p.Pid())
	}
	return nil
}

func (p *proc) get(url string) (string, error) {
	resp, err := p.http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Goroutines asks the process's pprof endpoint; -1 if it cannot.
func (p *proc) Goroutines() int {
	if p.pprof == "" {
		return -1
	}
	s, err := p.get("http://" + p.pprof + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(s, "\n")
	var n int
	if _, err := fmt.Sscanf(line, "goroutine profile: total %d", &n); err != nil {
		return -1
	}
	return n
}

func (p *proc) GoroutineDump(path string) {
	if p.pprof == "" {
		return
	}
	s, err := p.get("http://" + p.pprof + "/debug/pprof/goroutine?debug=1")
	if err == nil {
		os.WriteFile(path, []byte(s), 0o644)
	}
}

// FDs counts the open files of the process; -1 if it cannot.
func (p *proc) FDs() int {
	pid := p.Pid()
	if pid == 0 || !p.Running() {
		return -1
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

func (p *proc) RSSKiB() int {
	pid := p.Pid()
	if pid == 0 || !p.Running() {
		return -1
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return -1
}

// Metric sums all samples of a Prometheus metric (all its label sets).
func (p *proc) Metric(name string) (float64, error) {
	if p.metrics == "" {
		return 0, fmt.Errorf("%s has no metrics", p.name)
	}
	s, err := p.get("http://" + p.metrics + "/metrics")
	if err != nil {
		return 0, err
	}
	var sum float64
	found := false
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if line == name || strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err == nil {
				sum += v
				found = true
			}
		}
	}
	if !found {
		return 0, fmt.Errorf("metric %s not found", name)
	}
	return sum, nil
}

// logPathIn is where a process named name logs in dir.
func logPathIn(dir, name string) string { return filepath.Join(dir, name+".log") }
