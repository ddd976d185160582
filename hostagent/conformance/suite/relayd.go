package suite

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// modulePath is the module whose relayd BuildRelayd builds.
const modulePath = "github.com/relayproject/relay"

// BuildRelayd builds relayd from the module the working directory is in
// (go env GOMOD) into dir and returns the binary's path. It is built without
// -race: the race detector would slow every byte the suite pushes through it.
func BuildRelayd(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w (is Go on PATH?)", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module: run from the relay repository, or pass --relayd")
	}
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	if !bytes.Contains(b, []byte("module "+modulePath+"\n")) {
		return "", fmt.Errorf("%s is not the go.mod of %s: run from the relay repository, or pass --relayd", gomod, modulePath)
	}
	bin := filepath.Join(dir, "relayd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./relayd")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./relayd: %v\n%s", err, out)
	}
	return bin, nil
}

// logLine is one JSON line of relayd's stderr (plain text lines have no fields).
type logLine struct {
	raw    string
	fields map[string]any
}

func (l logLine) msg() string { return l.str("msg") }

func (l logLine) str(key string) string {
	switch v := l.fields[key].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

// relayd is one running relayd. One goroutine reads its stderr into lines,
// then reaps it; the reader never blocks on a consumer (a relayd blocked on
// its log would stall the very event the suite waits for), so lines are kept
// in a slice and each append wakes the waiters by closing changed.
type relayd struct {
	cmd                             *exec.Cmd
	grpcAddr, adminAddr, clientAddr string
	cc                              *grpc.ClientConn
	status                          relayv1.StatusServiceClient

	mu      sync.Mutex
	lines   []logLine
	changed chan struct{}
	exited  chan struct{}
	waitErr error
}

// relaydDrain is relayd's --drain-timeout: short, so a restart is quick.
const relaydDrain = "2s"

// startRelayd starts bin on the given addresses ("127.0.0.1:0" picks a free
// port) and waits until it is ready.
func startRelayd(ctx context.Context, bin, grpcAddr, adminAddr, clientAddr string, extra ...string) (*relayd, error) {
	args := append([]string{
		"--grpc-addr", grpcAddr, "--admin-addr", adminAddr, "--client-addr", clientAddr,
		"--log-format", "json", "--log-level", "debug", "--drain-timeout", relaydDrain,
		"--relay-id", "conformance",
	}, extra...)
	cmd := exec.Command(bin, args...)
	// relayd takes any flag not on its command line from RELAYD_*: the
	// operator's variables (tokens, TLS, limits) must not shape the relay
	// the suite checks hosts against.
	cmd.Env = []string{} // not nil: nil would mean the whole environment
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RELAYD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start relayd: %w", err)
	}
	r := &relayd{cmd: cmd, changed: make(chan struct{}), exited: make(chan struct{})}
	go r.read(stderr)
	ready, _, err := r.waitLog(ctx, 0, "relayd ready", func(l logLine) bool { return l.msg() == "relayd ready" })
	if err != nil {
		r.stop()
		return nil, err
	}
	r.grpcAddr, r.adminAddr, r.clientAddr = ready.str("grpc_addr"), ready.str("admin_addr"), ready.str("client_addr")
	r.cc, err = grpc.NewClient(r.adminAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		r.stop()
		return nil, err
	}
	r.status = relayv1.NewStatusServiceClient(r.cc)
	return r, nil
}

func (r *relayd) read(rd io.Reader) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for sc.Scan() {
		l := logLine{raw: sc.Text()}
		if json.Unmarshal(sc.Bytes(), &l.fields) != nil {
			l.fields = nil
		}
		r.mu.Lock()
		r.lines = append(r.lines, l)
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
	}
	err := r.cmd.Wait() // only after every read: exec's rule for StderrPipe
	r.mu.Lock()
	r.waitErr = err
	r.mu.Unlock()
	close(r.exited)
}

// mark is the index of the next log line: waitLog(ctx, mark, …) sees only
// what relayd logs from now on.
func (r *relayd) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lines)
}

// waitLog waits for the first JSON line at index from or later for which
// match is true; it returns the line and the index after it.
func (r *relayd) waitLog(ctx context.Context, from int, what string, match func(logLine) bool) (logLine, int, error) {
	for {
		r.mu.Lock()
		for ; from < len(r.lines); from++ {
			if l := r.lines[from]; l.fields != nil && match(l) {
				r.mu.Unlock()
				return l, from + 1, nil
			}
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-r.exited:
			if r.mark() == from {
				return logLine{}, from, fmt.Errorf("relayd exited (%v) before logging %s:%s", r.waitErr, what, r.tail(10))
			}
		case <-ctx.Done():
			return logLine{}, from, fmt.Errorf("relayd did not log %s in time", what)
		}
	}
}

// find returns the JSON lines from index from on for which match is true.
func (r *relayd) find(from int, match func(logLine) bool) []logLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []logLine
	for _, l := range r.lines[min(from, len(r.lines)):] {
		if l.fields != nil && match(l) {
			out = append(out, l)
		}
	}
	return out
}

func (r *relayd) tail(n int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, l := range r.lines[max(0, len(r.lines)-n):] {
		b.WriteString("\n\t" + l.raw)
	}
	return b.String()
}

// stop sends SIGTERM and waits for the exit (SIGKILL after a bound).
func (r *relayd) stop() error {
	if r.cc != nil {
		r.cc.Close()
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	select {
	case <-r.exited:
	case <-timer.C:
		r.cmd.Process.Kill()
		<-r.exited
		return errors.New("relayd did not exit within 15s of SIGTERM; killed")
	}
	if r.waitErr != nil {
		return fmt.Errorf("relayd: %v:%s", r.waitErr, r.tail(10))
	}
	return nil
}

// idleSlots asks relayd how many idle slots and attached hosts it has.
func (r *relayd) idleSlots(ctx context.Context) (idle, hosts int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := r.status.GetStatus(ctx, &relayv1.GetStatusRequest{})
	if err != nil {
		return 0, 0, err
	}
	return int(st.GetIdleSlots()), int(st.GetHosts()), nil
}

// waitIdle polls relayd's status until it has at least n idle slots. The
// number exists only in StatusService, so there is no event to wait on.
func (r *relayd) waitIdle(ctx context.Context, n int) error {
	ticker := time.NewTicker(10 * time.Millisecond)
	defer ticker.Stop()
	last, lastErr := 0, error(nil)
	for {
		idle, _, err := r.idleSlots(ctx)
		if err == nil && idle >= n {
			return nil
		}
		if ctx.Err() == nil { // an error caused by the deadline says nothing
			last, lastErr = idle, err
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("relay status: %v", lastErr)
			}
			return fmt.Errorf("%d idle slots on the relay, want at least %d", last, n)
		}
	}
}

// sessionEnd waits for relayd's log of how the session of the client at
// clientAddr ended: "session closed" (both directions closed, every byte
// delivered), "session aborted by host", "session lost with its host's
// stream …", or "session aborted".
func (r *relayd) sessionEnd(ctx context.Context, from int, clientAddr string) (logLine, error) {
	l, _, err := r.waitLog(ctx, from, "the end of session from "+clientAddr, func(l logLine) bool {
		return strings.HasPrefix(l.msg(), "session ") && l.msg() != "session opened" && l.str("client_addr") == clientAddr
	})
	return l, err
}

// describeEnd renders a session-end log line for a failure reason.
func describeEnd(l logLine) string {
	s := l.msg()
	if r := l.str("reason"); r != "" {
		s += " (" + r + ")"
	}
	if e := l.str("err"); e != "" {
		s += ": " + e
	}
	return s
}

// localAddr is the client's own address, which relayd logs as client_addr.
func localAddr(c net.Conn) string { return c.LocalAddr().String() }
