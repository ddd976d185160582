package suite

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relayproject/relay/internal/tlsconf/tlstest"
)

// nodeHostDir returns examples/node-host with its pinned dependencies
// installed (npm ci, when node_modules is missing). Without node or npm it
// skips, unless RELAY_REQUIRE_NODE is set (CI sets it, so that a machine
// without Node cannot pass CI by skipping). The tests that call it are not
// parallel: one npm ci at a time.
func nodeHostDir(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("RELAY_REQUIRE_NODE") != "" {
				t.Fatalf("%s is not on PATH (%v), and RELAY_REQUIRE_NODE is set", tool, err)
			}
			t.Skipf("%s is not on PATH: %v", tool, err)
		}
	}
	dir, err := filepath.Abs("../../../examples/node-host")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); os.IsNotExist(err) {
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}
	return dir
}

// TestNodeHostPasses: examples/node-host passes every case.
func TestNodeHostPasses(t *testing.T) {
	dir := nodeHostDir(t)
	report := runSuite(t, Config{Command: []string{"npm", "start"}, Dir: dir})
	if !report.Passed() {
		t.Error("the Node.js host failed the conformance suite")
	}
}

// TestNodeHostRefusedBacksOff: a refusal that retrying soon will not cure
// (here a service the relay does not serve) makes the Node.js host wait 15
// to 30 s, as docs/writing-a-host.md asks and hostagent does, and say it was
// refused; it retried within milliseconds, as for an outage.
func TestNodeHostRefusedBacksOff(t *testing.T) {
	dir := nodeHostDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := startRelayd(ctx, filepath.Join(binDir, "relayd"), "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer r.stop()
	cmd := exec.CommandContext(ctx, "node", "host.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RELAY_ADDR="+r.grpcAddr, "SERVICE=nosuch", "IDLE=2")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stderr)
	retry := regexp.MustCompile(`refused this host \(PERMISSION_DENIED: .*"nosuch".*\); retrying in (\d+)ms`)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "unavailable") {
			t.Fatalf("a refusal logged as an outage: %s", sc.Text())
		}
		m := retry.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if ms, _ := strconv.Atoi(m[1]); ms < 15000 {
			t.Errorf("retrying in %d ms after a refusal, want 15000 or more: %s", ms, sc.Text())
		}
		return
	}
	t.Fatalf("the Node.js host did not log a refusal (%v)", sc.Err())
}

// TestNodeHostOverTLS: with RELAY_TLS_CA the Node.js host attaches to a
// relay with --tls-cert and serves its clients; it spoke plaintext only,
// so a token crossed the network in the clear (QA).
func TestNodeHostOverTLS(t *testing.T) {
	dir := nodeHostDir(t)
	certs := t.TempDir()
	ca := tlstest.NewCA(t, certs, "relay-ca")
	cert, key := ca.Issue(t, certs, "relayd", "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := startRelayd(ctx, filepath.Join(binDir, "relayd"), "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.stop()
	cmd := exec.CommandContext(ctx, "node", "host.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RELAY_ADDR="+r.grpcAddr, "RELAY_TLS_CA="+ca.File, "IDLE=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	c, err := net.Dial("tcp", r.clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second)) // the host's start and attach, then one echo
	const msg = "over TLS\n"
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		cmd.Process.Kill()
		cmd.Wait() // stderr is written until then
		t.Fatalf("echo %q, %v; want %q (node host: %s)", got, err, msg, stderr.String())
	}
}

// TestNodeHostRefusesPlaintextOffLoopback: without TLS, the Node.js host
// refuses a relay address off loopback at start (exit 2, saying what to
// set), as hostagent does: its token and its clients' bytes would cross
// the network in the clear.
func TestNodeHostRefusesPlaintextOffLoopback(t *testing.T) {
	dir := nodeHostDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, addr := range []string{"192.0.2.1:8000", "[::ffff:192.0.2.1]:8000", "relay.example:8000", "[fe80::1%eth0]:8000"} {
		cmd := exec.CommandContext(ctx, "node", "host.js")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "RELAY_ADDR="+addr, "RELAY_TOKEN=secret-token-0123456789")
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "RELAY_TLS_CA") {
			t.Errorf("RELAY_ADDR=%s: %v, %s; want exit status 2 naming RELAY_TLS_CA", addr, err, out)
		}
	}
	// Loopback in any form hostagent takes is let through: the host tries
	// it (nothing listens on port 1) and says so as it retries.
	for _, addr := range []string{"[0:0:0:0:0:0:0:1]:1", "[::ffff:127.0.0.1]:1", "dns:///localhost:1", "ipv4:127.0.0.1:1"} {
		cmd := exec.CommandContext(ctx, "node", "host.js")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "RELAY_ADDR="+addr, "IDLE=1")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		tried := false
		for !tried && sc.Scan() {
			tried = strings.Contains(sc.Text(), "retrying in")
		}
		cmd.Process.Kill()
		cmd.Wait()
		if !tried {
			t.Errorf("RELAY_ADDR=%s: the host never tried the relay (refused as off loopback?)", addr)
		}
	}
}

// TestNodeHostOutageLogsOnce: while its relay is down, the Node.js host
// says so once (then once a minute), not at each of its retries. The
// "relay" here is a listener that takes each connection and resets it, so
// every retry is counted where it lands.
func TestNodeHostOutageLogsOnce(t *testing.T) {
	dir := nodeHostDir(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	const attempts = 5 // backoff 50–100, 100–200, … ms: about 2 s
	accepted := make(chan struct{}, attempts)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "host.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RELAY_ADDR="+lis.Addr().String(), "IDLE=2")
	var out strings.Builder // written by exec's copier, read after Wait
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := range attempts {
		select {
		case <-accepted:
		case <-ctx.Done():
			t.Fatalf("the host made %d attempts in 30 s, want %d", i, attempts)
		}
	}
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	text := out.String()
	if n := strings.Count(text, "unavailable ("); n != 1 {
		t.Errorf("%d lines about the outage over %d attempts, want 1:\n%s", n, attempts, text)
	}
	if !strings.Contains(text, "set RELAY_TLS_CA") {
		t.Errorf("the outage's line has no hint for a TLS relay reached in plaintext:\n%s", text)
	}
}
