package e2e

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
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/portclaim"
)

// Bounds. Every wait in this package is one of these, so a hang is a
// failure with a message, never a test binary killed by go test's timeout.
const (
	startTimeout = 30 * time.Second // a binary prints its ready/attached line
	stopTimeout  = 15 * time.Second // SIGTERM to exit; above the drain timeouts below
	ioTimeout    = 10 * time.Second // one client exchange
	drainTimeout = "5s"             // passed to both binaries so cleanup stays bounded
)

// binDir holds the relayd and hostagent built by TestMain.
var binDir string

func TestMain(m *testing.M) {
	dir, err := buildBinaries()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// buildBinaries builds relayd and hostagent once for the whole package. They
// are built without -race: the race detector would slow every byte the bulk
// tests push through them, and the products' own packages run under -race in
// their unit tests.
func buildBinaries() (string, error) {
	dir, err := os.MkdirTemp("", "relay-e2e-")
	if err != nil {
		return "", err
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(goBinary(), "build", "-o", dir+string(filepath.Separator), "./relayd", "./hostagent")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return dir, nil
}

func goBinary() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" { // set by go test for its test binaries
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// repoRoot is the directory of the module's go.mod, found upwards from the
// test's working directory (the package directory under go test).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/relayproject/relay\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod of github.com/relayproject/relay not found above the working directory")
		}
		dir = parent
	}
}

// logLine is one line of a child's stderr: the JSON object when it parses,
// and the raw text either way (usage errors are plain text).
type logLine struct {
	raw    string
	fields map[string]any
}

func (l logLine) msg() string { s, _ := l.fields["msg"].(string); return s }

// time is when the line was logged; the zero time if it says not.
func (l logLine) time() time.Time {
	at, _ := time.Parse(time.RFC3339Nano, l.str("time"))
	return at
}

func (l logLine) str(key string) string {
	switch v := l.fields[key].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// proc is a running relayd or hostagent. One goroutine reads its stderr
// into lines and then reaps it. The reader never blocks on a consumer — a
// child blocked writing its log would stall the very event a test waits
// for — so lines are kept in a slice, and every append wakes the waiters by
// closing the current changed channel.
type proc struct {
	name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	lines   []logLine
	changed chan struct{} // closed and replaced on each new line and at exit
	next    int           // where the next waitLog starts; used by the test goroutine

	exited  chan struct{} // closed once the process is reaped
	waitErr error         // set before exited is closed
	killed  bool          // the test SIGKILLed it on purpose; guarded by mu
}

// startProc starts a binary from binDir and registers a cleanup that stops it.
func startProc(tb testing.TB, name string, args ...string) *proc {
	tb.Helper()
	return startProcEnv(tb, nil, name, args...)
}

// startProcEnv is startProc with env added to the test's environment.
// name is a binary in binDir, or a path to one (another version's, in
// TestMixedVersions).
func startProcEnv(tb testing.TB, env []string, name string, args ...string) *proc {
	tb.Helper()
	path := name
	if !strings.ContainsRune(name, filepath.Separator) {
		path = filepath.Join(binDir, name)
	}
	cmd := exec.Command(path, args...)
	// The binaries read RELAYD_* and HOSTAGENT_* as flags: only what a
	// test sets, never the developer's shell.
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "RELAYD_") || strings.HasPrefix(kv, "HOSTAGENT_")
	}), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, changed: make(chan struct{}), exited: make(chan struct{})}
	go p.read(stderr)
	tb.Cleanup(func() { p.stop(tb) })
	return p
}

func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for sc.Scan() {
		l := logLine{raw: sc.Text()}
		if json.Unmarshal(sc.Bytes(), &l.fields) != nil {
			l.fields = nil
		}
		p.mu.Lock()
		p.lines = append(p.lines, l)
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	// Wait only after every read: exec's rule for StderrPipe.
	err := p.cmd.Wait()
	p.mu.Lock()
	p.waitErr = err
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	close(p.exited)
}

// tail is the last n lines of the child's stderr, for failure messages.
func (p *proc) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	from := max(0, len(p.lines)-n)
	var b strings.Builder
	for _, l := range p.lines[from:] {
		b.WriteString("\n\t" + l.raw)
	}
	return b.String()
}

// waitLog waits for the next stderr line, after the last one this method
// returned, for which match is true, and fails the test if none comes
// within timeout or the process exits first.
func (p *proc) waitLog(tb testing.TB, timeout time.Duration, what string, match func(logLine) bool) logLine {
	tb.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		for ; p.next < len(p.lines); p.next++ {
			if l := p.lines[p.next]; l.fields != nil && match(l) {
				p.next++
				p.mu.Unlock()
				return l
			}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-p.exited:
			p.mu.Lock()
			more := p.next < len(p.lines)
			p.mu.Unlock()
			if !more {
				tb.Fatalf("%s exited (%v) before logging %s; stderr:%s", p.name, p.waitErr, what, p.tail(30))
			}
		case <-timer.C:
			tb.Fatalf("%s did not log %s within %v; stderr:%s", p.name, what, timeout, p.tail(30))
		}
	}
}

// matchingLines returns the lines read so far that match, in order.
func (p *proc) matchingLines(match func(logLine) bool) []logLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []logLine
	for _, l := range p.lines {
		if l.fields != nil && match(l) {
			out = append(out, l)
		}
	}
	return out
}

// countLog counts the lines read so far that match.
func (p *proc) countLog(match func(logLine) bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if l.fields != nil && match(l) {
			n++
		}
	}
	return n
}

// terminate sends SIGTERM and waits for the exit; it returns the exit error
// (nil for status 0), or fails the test if the process does not exit in time.
func (p *proc) terminate(tb testing.TB) error {
	tb.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(stopTimeout):
		p.cmd.Process.Kill()
		<-p.exited
		tb.Errorf("%s did not exit within %v of SIGTERM; killed; stderr:%s", p.name, stopTimeout, p.tail(30))
		return p.waitErr
	}
}

// kill sends SIGKILL and reaps the process: a crash, as far as its peers know.
func (p *proc) kill(tb testing.TB) {
	tb.Helper()
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		tb.Fatalf("%s not reaped within %v of SIGKILL", p.name, stopTimeout)
	}
}

// stop is the cleanup: SIGTERM, and both binaries promise exit status 0 for
// it, so anything else is a test failure.
func (p *proc) stop(tb testing.TB) {
	select {
	case <-p.exited:
		p.mu.Lock()
		killed := p.killed
		p.mu.Unlock()
		if !killed && p.waitErr != nil && !tb.Failed() {
			// It died on its own during the test.
			tb.Errorf("%s exited unexpectedly: %v; stderr:%s", p.name, p.waitErr, p.tail(30))
		}
		return
	default:
	}
	if err := p.terminate(tb); err != nil {
		tb.Errorf("%s: SIGTERM: want exit status 0, got %v; stderr:%s", p.name, err, p.tail(30))
	}
}

// relayProc is a running relayd.
type relayProc struct {
	*proc
	grpcAddr, adminAddr, clientAddr string
}

// startRelay starts relayd on free loopback ports and waits until it is
// listening. extraArgs come last, so they may override the addresses.
//
// The ports are claimed for the whole test (portclaim), not picked with
// port 0: a test that stops the relay has agents redialling its port and
// may start it again there, and a port from the ephemeral range could be
// taken by another test's socket in between.
func startRelay(tb testing.TB, extraArgs ...string) *relayProc {
	tb.Helper()
	return startRelayBin(tb, "relayd", extraArgs...)
}

// startRelayBin is startRelay with the binary named as startProcEnv takes it.
func startRelayBin(tb testing.TB, bin string, extraArgs ...string) *relayProc {
	tb.Helper()
	args := append([]string{
		"--grpc-addr", portclaim.MustAddr(tb), "--admin-addr", portclaim.MustAddr(tb), "--client-addr", portclaim.MustAddr(tb),
		"--log-format", "json", "--drain-timeout", drainTimeout,
	}, extraArgs...)
	p := startProc(tb, bin, args...)
	ready := p.waitLog(tb, startTimeout, `"relayd ready"`, func(l logLine) bool { return l.msg() == "relayd ready" })
	r := &relayProc{proc: p, grpcAddr: ready.str("grpc_addr"), adminAddr: ready.str("admin_addr"), clientAddr: ready.str("client_addr")}
	for _, a := range []string{r.grpcAddr, r.adminAddr, r.clientAddr} {
		if host, port, err := net.SplitHostPort(a); err != nil || host != "127.0.0.1" || port == "0" {
			tb.Fatalf("relayd ready line has bad addresses: %s", ready.raw)
		}
	}
	return r
}

// agentProc is a running hostagent.
type agentProc struct {
	*proc
	relayAddr string
}

// startAgent starts hostagent attached to relayAddr and waits until its idle
// pool there is full. args are flags followed by the mode ("echo" or
// "forward", HOST:PORT).
func startAgent(tb testing.TB, relayAddr string, args ...string) *agentProc {
	tb.Helper()
	a := startAgentNoWait(tb, relayAddr, args...)
	a.waitAttached(tb)
	return a
}

// startAgentNoWait starts hostagent without waiting for it to attach.
func startAgentNoWait(tb testing.TB, relayAddr string, args ...string) *agentProc {
	tb.Helper()
	return startAgentEnv(tb, nil, relayAddr, args...)
}

// startAgentEnv starts hostagent with env added to its environment, without
// waiting for it to attach.
func startAgentEnv(tb testing.TB, env []string, relayAddr string, args ...string) *agentProc {
	tb.Helper()
	return startAgentBin(tb, env, "hostagent", relayAddr, args...)
}

// startAgentBin is startAgentEnv with the binary named as startProcEnv takes it.
func startAgentBin(tb testing.TB, env []string, bin, relayAddr string, args ...string) *agentProc {
	tb.Helper()
	all := append([]string{"--relay", relayAddr, "--log-format", "json", "--drain-timeout", drainTimeout}, args...)
	return &agentProc{proc: startProcEnv(tb, env, bin, all...), relayAddr: relayAddr}
}

// waitAttached waits for the next "relay attached" line for a.relayAddr.
func (a *agentProc) waitAttached(tb testing.TB) logLine {
	tb.Helper()
	return a.waitLog(tb, startTimeout, `"relay attached" for `+a.relayAddr, func(l logLine) bool {
		return l.msg() == "relay attached" && l.str("relay") == a.relayAddr
	})
}

// backend is a TCP server on loopback standing for the local server behind
// `hostagent forward`. Each accepted connection is passed to handle on its
// own goroutine; cleanup closes the listener and every connection and waits
// for the handlers, so a handler must return once its conn is closed.
type backend struct {
	addr string
	lis  *net.TCPListener

	mu    sync.Mutex
	conns []*net.TCPConn
	wg    sync.WaitGroup
}

func startBackend(tb testing.TB, handle func(c *net.TCPConn)) *backend {
	tb.Helper()
	return startBackendAt(tb, "127.0.0.1:0", handle)
}

// startBackendAt is startBackend listening on addr (a claimed port, to
// start a backend again where an agent forwards).
func startBackendAt(tb testing.TB, addr string, handle func(c *net.TCPConn)) *backend {
	tb.Helper()
	la, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	lis, err := net.ListenTCP("tcp", la)
	if err != nil {
		tb.Fatal(err)
	}
	b := &backend{addr: lis.Addr().String(), lis: lis}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := lis.AcceptTCP()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	tb.Cleanup(b.stop)
	return b
}

// stop closes the listener and every connection, and waits for the
// handlers; once is enough, more are no-ops.
func (b *backend) stop() {
	b.lis.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.conns = nil
	b.mu.Unlock()
	b.wg.Wait()
}

// dial connects a client to addr, with a deadline bounding everything the
// test does on it; cleanup closes it.
func dial(tb testing.TB, addr string) *net.TCPConn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	tc := c.(*net.TCPConn)
	tc.SetDeadline(time.Now().Add(2 * ioTimeout))
	tb.Cleanup(func() { tc.Close() })
	return tc
}

// expectRefused connects a client the relay must refuse: it is reset at
// once (the reset may even beat connect) and reads nothing.
func expectRefused(tb testing.TB, addr, what string) {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			tb.Fatalf("%s: dial: %v, want a reset", what, err)
		}
		return
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		tb.Fatalf("%s: read %d bytes, %v; want a reset", what, n, err)
	}
}

// roundTrip writes msg and reads back exactly len(msg) bytes.
func roundTrip(tb testing.TB, c net.Conn, msg string) {
	tb.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		tb.Fatalf("write %q: %v", msg, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		tb.Fatalf("read echo of %q: %v (got %q)", msg, err, got)
	}
	if string(got) != msg {
		tb.Fatalf("echo: got %q, want %q", got, msg)
	}
}

// expectEOF reads c to its end and fails unless it ends with a clean EOF
// after exactly want more bytes.
func expectEOF(tb testing.TB, c net.Conn, want string) {
	tb.Helper()
	got, err := io.ReadAll(c)
	if err != nil {
		tb.Fatalf("read to EOF: %v (after %q)", err, got)
	}
	if string(got) != want {
		tb.Fatalf("read to EOF: got %q, want %q", got, want)
	}
}

// statusClient dials the relay's admin address; cleanup closes it.
func statusClient(tb testing.TB, r *relayProc) relayv1.StatusServiceClient {
	tb.Helper()
	cc, err := grpc.NewClient(r.adminAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return relayv1.NewStatusServiceClient(cc)
}

// getStatus, listHosts and listSessions call the admin API with a bound.
func getStatus(st relayv1.StatusServiceClient) (*relayv1.GetStatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	return st.GetStatus(ctx, &relayv1.GetStatusRequest{})
}

func listHosts(st relayv1.StatusServiceClient) (*relayv1.ListHostsResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	return st.ListHosts(ctx, &relayv1.ListHostsRequest{})
}

func listSessions(st relayv1.StatusServiceClient) (*relayv1.ListSessionsResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	return st.ListSessions(ctx, &relayv1.ListSessionsRequest{})
}

// waitFor polls cond until it reports done, failing after timeout with its
// last explanation. Used only for state that the relay exposes solely
// through StatusService (idle slot counts, the pending queue), where there
// is no event to wait on; the interval is short and the count bounded.
func waitFor(tb testing.TB, timeout time.Duration, cond func() (done bool, why string)) {
	tb.Helper()
	const interval = 10 * time.Millisecond
	deadline := time.Now().Add(timeout)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for n := 0; n < int(timeout/interval)+1; n++ {
		done, why := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: %s", timeout, why)
		}
		<-ticker.C
	}
	done, why := cond()
	if !done {
		tb.Fatalf("after %v: %s", timeout, why)
	}
}
