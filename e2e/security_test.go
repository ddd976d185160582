package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/tlsconf/tlstest"
)

const (
	goodToken  = "tok-good-0123456789abcdef"
	otherToken = "tok-other-0123456789abcdef"
	laterToken = "tok-later-0123456789abcdef"
)

func writeFile(tb testing.TB, dir, name, content string) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// waitRefused waits for the agent's line saying the relay refused it, and
// returns it.
func (a *agentProc) waitRefused(tb testing.TB, what string, match func(logLine) bool) logLine {
	tb.Helper()
	return a.waitLog(tb, startTimeout, what, func(l logLine) bool {
		return (l.msg() == "relay unreachable" || l.msg() == "relay refused the slot" ||
			strings.HasPrefix(l.msg(), "relay refused this agent's")) && match(l)
	})
}

// TestTLS: TLS on the gRPC port; an agent that trusts the relay's CA
// attaches and serves; one that does not (or speaks plaintext) is refused.
func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "relay")
	cert, key := ca.Issue(t, dir, "relayd", "127.0.0.1", "relay.test")
	r := startRelay(t, "--tls-cert", cert, "--tls-key", key, "--metrics-addr", "127.0.0.1:0")

	startAgent(t, r.grpcAddr, "--tls-ca", ca.File, "echo")
	roundTrip(t, dial(t, r.clientAddr), "over TLS\n")

	// The server name checked is the one asked for.
	named := startAgentNoWait(t, r.grpcAddr, "--tls-ca", ca.File, "--tls-server-name", "relay.test", "--host-id", "named", "echo")
	named.waitAttached(t)
	wrongName := startAgentNoWait(t, r.grpcAddr, "--tls-ca", ca.File, "--tls-server-name", "other.test", "echo")
	wrongName.waitRefused(t, "a certificate error", func(l logLine) bool { return strings.Contains(l.str("err"), "certificate") })

	// Another CA, and plaintext (the default for a loopback relay).
	other := tlstest.NewCA(t, dir, "other")
	strangerCA := startAgentNoWait(t, r.grpcAddr, "--tls-ca", other.File, "echo")
	strangerCA.waitRefused(t, "an unknown-authority error", func(l logLine) bool { return strings.Contains(l.str("err"), "certificate") })
	plain := startAgentNoWait(t, r.grpcAddr, "echo")
	plain.waitRefused(t, "a failed plaintext attach, with a hint to give --tls-ca", func(l logLine) bool { return strings.Contains(l.str("hint"), "--tls-ca") })
	// relayd says why too: grpc-go itself only closes the connection.
	r.waitLog(t, startTimeout, "relayd's line about a plaintext handshake", func(l logLine) bool {
		return l.msg() == "tls handshake failed" && strings.Contains(l.str("err"), "does not look like a TLS handshake") && strings.Contains(l.str("hint"), "--tls-ca")
	})
	// And counts each: the logged line is one a second at most.
	metrics := r.metricsAddr(t)
	waitFor(t, ioTimeout, func() (bool, string) {
		m := scrape(t, metrics)
		plain, cert := m[`relay_tls_handshake_failures_total{kind="plaintext"}`], m[`relay_tls_handshake_failures_total{kind="certificate"}`]
		return plain >= 1 && cert >= 1, fmt.Sprintf("relay_tls_handshake_failures_total plaintext %v, certificate %v; want each at least 1", plain, cert)
	})
}

// TestMTLS: with --tls-client-ca only agents with a certificate from that
// CA attach.
func TestMTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "fleet")
	cert, key := ca.Issue(t, dir, "relayd", "127.0.0.1")
	agentCert, agentKey := ca.Issue(t, dir, "agent")
	r := startRelay(t, "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", ca.File)

	startAgent(t, r.grpcAddr, "--tls-ca", ca.File, "--tls-cert", agentCert, "--tls-key", agentKey, "echo")
	roundTrip(t, dial(t, r.clientAddr), "over mTLS\n")

	noCert := startAgentNoWait(t, r.grpcAddr, "--tls-ca", ca.File, "--host-id", "no-cert", "echo")
	noCert.waitRefused(t, "a refused handshake, with a hint to give --tls-cert", func(l logLine) bool { return strings.Contains(l.str("hint"), "--tls-cert") })
	r.waitLog(t, startTimeout, "relayd's line about a handshake without a certificate", func(l logLine) bool {
		return l.msg() == "tls handshake failed" && strings.Contains(l.str("err"), "certificate") && strings.Contains(l.str("hint"), "--tls-client-ca")
	})
	other := tlstest.NewCA(t, dir, "other")
	strangerCert, strangerKey := other.Issue(t, dir, "stranger")
	stranger := startAgentNoWait(t, r.grpcAddr, "--tls-ca", ca.File, "--tls-cert", strangerCert, "--tls-key", strangerKey, "--host-id", "stranger", "echo")
	stranger.waitRefused(t, "a refused handshake", func(logLine) bool { return true })

	hosts, err := listHosts(statusClient(t, r))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts.GetHosts() {
		if id := h.GetHostId(); id == "no-cert" || id == "stranger" {
			t.Errorf("host %q attached without a certificate from the fleet CA", id)
		}
	}
}

// TestCertificateReload: a renewed certificate is used for new agent
// connections, after SIGHUP and when the files change, and sessions open
// across the renewal go on.
func TestCertificateReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	oldCA := tlstest.NewCA(t, dir, "old")
	cert, key := oldCA.Issue(t, dir, "relayd", "127.0.0.1")
	r := startRelay(t, "--tls-cert", cert, "--tls-key", key)
	startAgent(t, r.grpcAddr, "--tls-ca", oldCA.File, "--host-id", "old", "--idle", "2", "echo")
	held := dial(t, r.clientAddr)
	roundTrip(t, held, "before the renewal\n")

	for i, how := range []string{"sighup", "file_change"} {
		ca := tlstest.NewCA(t, t.TempDir(), "new-"+how)
		renewedCert, renewedKey := ca.Issue(t, t.TempDir(), "relayd", "127.0.0.1")
		for _, f := range [][2]string{{renewedCert, cert}, {renewedKey, key}} {
			if err := os.Rename(f[0], f[1]); err != nil {
				t.Fatal(err)
			}
		}
		if how == "sighup" {
			r.cmd.Process.Signal(syscall.SIGHUP)
			r.waitLog(t, startTimeout, `"tls certificate loaded"`, func(l logLine) bool { return l.msg() == "tls certificate loaded" })
		}
		// File change: the next handshake notices it (at most a second
		// after the last check), so the agent may be refused once and retry.
		a := startAgentNoWait(t, r.grpcAddr, "--tls-ca", ca.File, "--host-id", how, "echo")
		a.waitAttached(t)
		roundTrip(t, held, "still here after "+how+"\n")
		_ = i
	}
	held.CloseWrite()
	expectEOF(t, held, "")
}

// TestExpiredCertificateWarned: a relay certificate that is not valid now
// is loaded (it is the operator's file) with a Warn that says so: agents
// refuse it, and relayd's only other line was "bad certificate".
func TestExpiredCertificateWarned(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	cert, key := ca.IssueValid(t, dir, "relayd", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), "127.0.0.1")
	r := startRelay(t, "--tls-cert", cert, "--tls-key", key) // logged before "relayd ready"
	if n := r.countLog(func(l logLine) bool {
		return strings.HasPrefix(l.msg(), "tls certificate loaded, but it is not valid now") && l.str("level") == "WARN"
	}); n != 1 {
		t.Errorf("%d Warn lines about the expired certificate, want 1:%s", n, r.tail(10))
	}
}

// certLife is how long the short-lived certificates of the expiry tests
// are valid: long enough for a loaded machine to start the process before
// the last third of it begins.
const certLife = 9 * time.Second

// TestCertificateExpiresWhileRunning: relayd says that the certificate it
// serves expires soon (Warn), and that it has expired (Error), while it
// runs, not only when it loads one; a renewed one (SIGHUP) is watched from
// then on, and relay_tls_cert_not_after_seconds follows it. The first
// certificate lives certLife, so the warning comes with a third of that left.
func TestCertificateExpiresWhileRunning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	notAfter := time.Now().Add(certLife).Truncate(time.Second)
	cert, key := ca.IssueValid(t, dir, "relayd", notAfter.Add(-certLife), notAfter, "127.0.0.1")
	r := startRelay(t, "--tls-cert", cert, "--tls-key", key, "--metrics-addr", "127.0.0.1:0")
	if got := scrape(t, r.metricsAddr(t))["relay_tls_cert_not_after_seconds"]; got != float64(notAfter.Unix()) {
		t.Errorf("relay_tls_cert_not_after_seconds = %v, want %d", got, notAfter.Unix())
	}
	soon := r.waitLog(t, ioTimeout, "the certificate expires soon", func(l logLine) bool {
		return strings.HasPrefix(l.msg(), "tls certificate expires soon") && l.str("level") == "WARN"
	})
	expired := r.waitLog(t, ioTimeout, "the certificate expired", func(l logLine) bool {
		return strings.HasPrefix(l.msg(), "tls certificate expired") && l.str("level") == "ERROR"
	})
	if left := notAfter.Sub(soon.time()); left <= 0 || left > certLife/3+100*time.Millisecond {
		t.Errorf("the warning came %v before the expiry, want within the last third (%v)", left, certLife/3)
	}
	if at := expired.time(); at.Before(notAfter) {
		t.Errorf("the expiry was logged at %v, before %v", at, notAfter)
	}

	renewed := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
	ca.IssueValid(t, dir, "relayd", time.Now().Add(-time.Hour), renewed, "127.0.0.1")
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog(t, startTimeout, "the renewed certificate loaded", func(l logLine) bool { return l.msg() == "tls certificate loaded" })
	if got := scrape(t, r.metricsAddr(t))["relay_tls_cert_not_after_seconds"]; got != float64(renewed.Unix()) {
		t.Errorf("relay_tls_cert_not_after_seconds after the renewal = %v, want %d", got, renewed.Unix())
	}
	if n := r.countLog(func(l logLine) bool { return strings.HasPrefix(l.msg(), "tls certificate expire") }); n != 2 {
		t.Errorf("%d expiry lines, want 2 (one each):%s", n, r.tail(10))
	}
}

// TestClientCertificateExpiresWhileRunning: hostagent says, as relayd
// does of its own, that its client certificate expires soon (Warn) and
// that it has expired (Error), while it runs: relays that require one then
// refuse it, and say only "bad certificate".
func TestClientCertificateExpiresWhileRunning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "fleet")
	cert, key := ca.Issue(t, dir, "relayd", "127.0.0.1")
	r := startRelay(t, "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", ca.File)
	notAfter := time.Now().Add(certLife).Truncate(time.Second)
	agentCert, agentKey := ca.IssueValid(t, dir, "agent", notAfter.Add(-certLife), notAfter)
	a := startAgent(t, r.grpcAddr, "--tls-ca", ca.File, "--tls-cert", agentCert, "--tls-key", agentKey, "echo")
	soon := a.waitLog(t, ioTimeout, "the client certificate expires soon", func(l logLine) bool {
		return strings.HasPrefix(l.msg(), "client certificate expires soon") && l.str("level") == "WARN"
	})
	expired := a.waitLog(t, ioTimeout, "the client certificate expired", func(l logLine) bool {
		return strings.HasPrefix(l.msg(), "client certificate expired") && l.str("level") == "ERROR"
	})
	if left := notAfter.Sub(soon.time()); left <= 0 || left > certLife/3+100*time.Millisecond {
		t.Errorf("the warning came %v before the expiry, want within the last third (%v)", left, certLife/3)
	}
	if at := expired.time(); at.Before(notAfter) {
		t.Errorf("the expiry was logged at %v, before %v", at, notAfter)
	}
}

// TestAuthTokens: agents present bearer tokens; a missing or unknown
// token is Unauthenticated, a token used beyond its grant is
// PermissionDenied, and the agent backs off and says why. Tokens are
// re-read on SIGHUP and never logged.
func TestAuthTokens(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokens := writeFile(t, dir, "tokens", "# hosts of the web team\n"+goodToken+" services=default hosts=web-1,web-2\n"+otherToken+" services=other\n")
	r := startRelay(t, "--auth-tokens", tokens)

	startAgentEnv(t, []string{"HOSTAGENT_TOKEN=" + goodToken}, r.grpcAddr, "--host-id", "web-1", "echo").waitAttached(t)
	roundTrip(t, dial(t, r.clientAddr), "authenticated\n")
	tokenFile := writeFile(t, dir, "agent-token", goodToken+"\n")
	startAgent(t, r.grpcAddr, "--token-file", tokenFile, "--host-id", "web-2", "echo")

	for _, tt := range []struct {
		name string
		env  []string
		args []string
		want codes.Code
	}{
		{"no_token", nil, []string{"--host-id", "web-1"}, codes.Unauthenticated},
		{"unknown_token", []string{"HOSTAGENT_TOKEN=tok-unknown-0123456789abcdef"}, []string{"--host-id", "web-1"}, codes.Unauthenticated},
		{"wrong_service", []string{"HOSTAGENT_TOKEN=" + otherToken}, []string{"--host-id", "web-1"}, codes.PermissionDenied},
		{"wrong_host", []string{"HOSTAGENT_TOKEN=" + goodToken}, []string{"--host-id", "db-1"}, codes.PermissionDenied},
	} {
		t.Run(tt.name, func(t *testing.T) { // not parallel: the token file changes below
			a := startAgentEnv(t, tt.env, r.grpcAddr, append(tt.args, "echo")...)
			l := a.waitRefused(t, tt.want.String(), func(l logLine) bool { return strings.Contains(l.str("err"), tt.want.String()) })
			if l.fields["level"] != "ERROR" || !strings.Contains(l.msg(), "--token-file") {
				t.Errorf("the refusal is not an error line telling what to check: %s", l.raw)
			}
			// A grant refused points at the service and host id; a token
			// refused does not (they are not what is wrong).
			if names := strings.Contains(l.msg(), "--host-id"); names != (tt.want == codes.PermissionDenied) {
				t.Errorf("%s: the line names --host-id: %v, want %v: %s", tt.want, names, tt.want == codes.PermissionDenied, l.raw)
			}
			// Backing off, not hammering: the next try is many seconds away.
			if ns, _ := l.fields["retry_in"].(float64); time.Duration(ns) < 10*time.Second {
				t.Errorf("retry_in = %v, want a long backoff after a refused credential", time.Duration(ns))
			}
		})
	}

	// A token added to the file works after SIGHUP.
	if err := os.WriteFile(tokens, []byte(goodToken+" services=default hosts=web-1,web-2\n"+laterToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog(t, startTimeout, `"auth tokens loaded"`, func(l logLine) bool { return l.msg() == "auth tokens loaded" })
	startAgentEnv(t, []string{"HOSTAGENT_TOKEN=" + laterToken}, r.grpcAddr, "--host-id", "later", "echo").waitAttached(t)

	// A broken file on reload keeps the tokens in use.
	if err := os.WriteFile(tokens, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog(t, startTimeout, `"auth tokens reload failed"`, func(l logLine) bool { return strings.HasPrefix(l.msg(), "auth tokens reload failed") })
	startAgentEnv(t, []string{"HOSTAGENT_TOKEN=" + laterToken}, r.grpcAddr, "--host-id", "later-2", "echo").waitAttached(t)

	// Health checks need no token (load balancers probe them).
	cc, err := grpc.NewClient(r.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health check without a token: %v", err)
	}

	for _, tok := range []string{goodToken, otherToken, laterToken} {
		if strings.Contains(r.tail(1000), tok) {
			t.Errorf("relayd logged a token")
		}
	}
}

// TestAdminToken: with --admin-token-file the admin port answers only
// calls that carry the token (health checks excepted).
func TestAdminToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	adminTok := "admin-0123456789abcdef"
	r := startRelay(t, "--admin-token-file", writeFile(t, dir, "admin", adminTok+"\n"))
	st := statusClient(t, r)
	if _, err := getStatus(st); status.Code(err) != codes.Unauthenticated {
		t.Errorf("GetStatus without the token: %v, want Unauthenticated", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	wrong := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer not-the-admin-token")
	if _, err := st.GetStatus(wrong, &relayv1.GetStatusRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("GetStatus with a wrong token: %v, want Unauthenticated", err)
	}
	right := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+adminTok)
	if _, err := st.GetStatus(right, &relayv1.GetStatusRequest{}); err != nil {
		t.Errorf("GetStatus with the token: %v", err)
	}
	cc, err := grpc.NewClient(r.adminAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health check without a token: %v", err)
	}

	// Rotation: SIGHUP re-reads the file; the new token works from then
	// on, and the old one no longer: a watcher opened with it is ended.
	watch, err := st.WatchEvents(right, &relayv1.WatchEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Header(); err != nil { // headers: the watcher is registered
		t.Fatalf("WatchEvents with the token: %v", err)
	}
	newTok := "admin-fedcba9876543210"
	writeFile(t, dir, "admin", newTok+"\n")
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog(t, ioTimeout, `"admin token loaded"`, func(l logLine) bool { return l.msg() == "admin token loaded" })
	for {
		_, err := watch.Recv()
		if err == nil {
			continue // an event from before the reload
		}
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "admin token was replaced") {
			t.Errorf("watcher opened with the old token, after SIGHUP: %v, want Unauthenticated (the admin token was replaced)", err)
		}
		break
	}
	rotated := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+newTok)
	if _, err := st.GetStatus(rotated, &relayv1.GetStatusRequest{}); err != nil {
		t.Errorf("GetStatus with the new token after SIGHUP: %v", err)
	}
	if _, err := st.GetStatus(right, &relayv1.GetStatusRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("GetStatus with the old token after SIGHUP: %v, want Unauthenticated", err)
	}

	// Anyone who reaches the port can be refused at will: 20 calls make
	// one "admin call refused" line a second, not 20 (and 20 more for
	// their ends, at Warn).
	for range 20 {
		if _, err := st.GetStatus(wrong, &relayv1.GetStatusRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("GetStatus with a wrong token: %v, want Unauthenticated", err)
		}
	}
	var last time.Time
	for _, l := range r.matchingLines(func(l logLine) bool { return l.msg() == "admin call refused" }) {
		at, err := time.Parse(time.RFC3339Nano, l.str("time"))
		if err != nil {
			t.Fatalf("admin call refused: time: %v (%s)", err, l.raw)
		}
		if !last.IsZero() && at.Sub(last) < 500*time.Millisecond {
			t.Errorf("admin call refused lines %v apart, want one a second at most (%s)", at.Sub(last), l.raw)
		}
		last = at
	}
	if n := r.countLog(func(l logLine) bool {
		return l.msg() == "finished call" && l.str("grpc.code") == "Unauthenticated" && l.str("level") != "DEBUG"
	}); n > 0 {
		t.Errorf("%d refused calls logged as finished above Debug (the refusal line says it)", n)
	}
}

// TestSecurityBadCommandLine: security flags that cannot work exit 2 with
// a message naming the problem, before anything listens.
func TestSecurityBadCommandLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	badTokens := writeFile(t, dir, "tokens", goodToken+"\nshort services=a\n")
	emptyTokens := writeFile(t, dir, "empty", "# nobody\n")
	junk := writeFile(t, dir, "junk.pem", "not a certificate")
	free := []string{"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--client-addr", "127.0.0.1:0"}
	for _, tt := range []struct {
		name, binary string
		env          []string
		args         []string
		want         string
	}{
		{"cert_without_key", "relayd", nil, []string{"--tls-cert", junk}, "--tls-cert and --tls-key go together"},
		{"client_ca_without_tls", "relayd", nil, []string{"--tls-client-ca", junk}, "--tls-client-ca needs TLS"},
		{"junk_certificate", "relayd", nil, append(free, "--tls-cert", junk, "--tls-key", junk), "--tls-cert/--tls-key/--tls-client-ca"},
		{"bad_token_file", "relayd", nil, append(free, "--auth-tokens", badTokens), "line 2: token has 5 characters"},
		{"empty_token_file", "relayd", nil, append(free, "--auth-tokens", emptyTokens), "no token in the file"},
		{"public_admin_without_token", "relayd", nil, []string{"--admin-addr", "0.0.0.0:0"}, "--admin-addr 0.0.0.0:0 is not a loopback address: give --admin-token-file"},
		{"negative_limit", "relayd", nil, []string{"--max-sessions", "-1"}, "--max-sessions must not be negative"},
		{"agent_insecure_and_tls", "hostagent", nil, []string{"--insecure", "--tls-ca", junk, "echo"}, "--insecure turns TLS off"},
		{"agent_cert_without_key", "hostagent", nil, []string{"--tls-cert", junk, "echo"}, "--tls-cert and --tls-key go together"},
		{"agent_short_env_token", "hostagent", []string{"HOSTAGENT_TOKEN=short"}, []string{"--relay", "127.0.0.1:1", "echo"}, "$HOSTAGENT_TOKEN has 5 characters"},
		{"agent_missing_token_file", "hostagent", nil, []string{"--relay", "127.0.0.1:1", "--token-file", filepath.Join(dir, "missing"), "echo"}, "--token-file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, filepath.Join(binDir, tt.binary), tt.args...)
			cmd.Env = append(os.Environ(), tt.env...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("%s %v: %v, want exit status 2\n%s", tt.binary, tt.args, err, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("%s %v: output lacks %q:\n%s", tt.binary, tt.args, tt.want, out)
			}
			if strings.Contains(string(out), goodToken) {
				t.Errorf("the message names a token:\n%s", out)
			}
		})
	}
}

// TestAgentConnectionLimits: the gRPC port holds at most
// --max-agent-conns-per-ip connections from one address; more are reset,
// counted and logged, and a closed connection gives its place back.
func TestAgentConnectionLimits(t *testing.T) {
	t.Parallel()
	r := startRelay(t, "--max-agent-conns-per-ip", "2")
	var held []net.Conn
	for range 2 {
		c, err := net.DialTimeout("tcp", r.grpcAddr, ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	expectRefused(t, r.grpcAddr, "a third connection to the gRPC port")
	r.waitLog(t, startTimeout, `"limit hit" max_agent_conns_per_ip`, func(l logLine) bool {
		return l.msg() == "limit hit" && l.str("limit") == "max_agent_conns_per_ip"
	})
	// Silent connections give their places back when they close: an agent
	// (one connection) attaches and serves.
	for _, c := range held {
		c.Close()
	}
	startAgent(t, r.grpcAddr, "echo")
	roundTrip(t, dial(t, r.clientAddr), "after the limit\n")
}

// handshakingConn opens a raw TCP connection to relayd's plaintext gRPC
// port and reads the start of the server's SETTINGS frame, which grpc-go
// writes before it waits for the client's preface: from then on the
// connection is in its HTTP/2 handshake, and says nothing more.
func handshakingConn(tb testing.TB, addr string) net.Conn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	var header [9]byte
	if _, err := io.ReadFull(c, header[:]); err != nil {
		tb.Fatalf("reading the relay's first HTTP/2 frame: %v", err)
	}
	if header[3] != 0x4 { // http2.FrameSettings
		tb.Fatalf("the relay's first frame has type %d, want SETTINGS (4)", header[3])
	}
	return c
}

// TestShutdownWithHandshakingConn: a TCP connection that never finishes its
// HTTP/2 handshake, on the gRPC port or the admin port, does not hold
// relayd's exit for --hello-timeout (grpc-go waits for such connections in
// both GracefulStop and Stop); relayd closes it and exits at once.
func TestShutdownWithHandshakingConn(t *testing.T) {
	t.Parallel()
	r := startRelay(t, "--hello-timeout", "10m")
	conns := []net.Conn{handshakingConn(t, r.grpcAddr), handshakingConn(t, r.adminAddr)}
	if err := r.terminate(t); err != nil {
		t.Fatalf("relayd: SIGTERM: want exit status 0, got %v", err)
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(ioTimeout))
		if _, err := io.Copy(io.Discard, c); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the handshaking connection to %s is still open after relayd's exit: %v", c.RemoteAddr(), err)
		}
	}
}

// TestHandshakeTimeoutCounted: a connection that does not finish its
// handshakes within --hello-timeout is closed, logged and counted as a
// hello_timeout limit hit (grpc-go closes it without a word).
func TestHandshakeTimeoutCounted(t *testing.T) {
	t.Parallel()
	r := startRelay(t, "--hello-timeout", "200ms", "--metrics-addr", "127.0.0.1:0")
	c := handshakingConn(t, r.grpcAddr)
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("the silent connection did not end within %v: %v", ioTimeout, err)
	}
	line := r.waitLog(t, ioTimeout, `"limit hit" hello_timeout during the handshakes`, func(l logLine) bool {
		return l.msg() == "limit hit" && l.str("limit") == "hello_timeout" && strings.Contains(l.str("during"), "handshake")
	})
	if line.str("peer_addr") != c.LocalAddr().String() {
		t.Errorf("peer_addr %q, want the connection's %s", line.str("peer_addr"), c.LocalAddr())
	}
	if got := scrape(t, r.metricsAddr(t))[`relay_limit_hits_total{limit="hello_timeout"}`]; got != 1 {
		t.Errorf(`relay_limit_hits_total{limit="hello_timeout"} = %v, want 1`, got)
	}
}

// TestTLSAgentPlaintextRelay: an agent with TLS flags dialing a plaintext
// relay is told so, and relayd logs it too (grpc-go only closes the
// connection).
func TestTLSAgentPlaintextRelay(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, t.TempDir(), "relay")
	r := startRelay(t)
	a := startAgentNoWait(t, r.grpcAddr, "--tls-ca", ca.File, "echo")
	a.waitRefused(t, "a hint that the relay has no TLS", func(l logLine) bool {
		return strings.Contains(l.str("hint"), "relayd runs without --tls-cert")
	})
	r.waitLog(t, startTimeout, "relayd's line about a TLS agent", func(l logLine) bool {
		return strings.HasPrefix(l.msg(), "an agent speaks TLS to this plaintext gRPC port")
	})
}

// TestTokenRotation: a host token is rotated without a restart. relayd
// takes the new token beside the old one (SIGHUP), the agent re-reads its
// --token-file (SIGHUP, which used to end it), relayd drops the old token
// (SIGHUP); the agent's new slots carry the new token, and serve.
func TestTokenRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokens := writeFile(t, dir, "tokens", goodToken+"\n")
	r := startRelay(t, "--auth-tokens", tokens)
	agentToken := writeFile(t, dir, "agent-token", goodToken+"\n")
	a := startAgent(t, r.grpcAddr, "--token-file", agentToken, "--idle", "2", "echo")
	roundTrip(t, dial(t, r.clientAddr), "with the old token\n")

	reloadRelay := func(content string) {
		t.Helper()
		if err := os.WriteFile(tokens, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		r.cmd.Process.Signal(syscall.SIGHUP)
		r.waitLog(t, startTimeout, `"auth tokens loaded"`, func(l logLine) bool { return l.msg() == "auth tokens loaded" })
	}
	reloadRelay(goodToken + "\n" + laterToken + "\n")
	if err := os.WriteFile(agentToken, []byte(laterToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.cmd.Process.Signal(syscall.SIGHUP)
	a.waitLog(t, startTimeout, `"token loaded"`, func(l logLine) bool { return l.msg() == "token loaded" })
	reloadRelay(laterToken + "\n")

	// Each session takes the agent's one idle slot, and the agent opens
	// the next one: from the second session on, every slot was opened
	// after the rotation, with the new token (the old one is refused now).
	for i := range 3 {
		roundTrip(t, dial(t, r.clientAddr), fmt.Sprintf("session %d after the rotation\n", i))
	}
	if strings.Contains(r.tail(1000), `"agent refused"`) {
		t.Errorf("relayd refused the agent during the rotation:%s", r.tail(20))
	}
	// The streams opened with the old token end after their sessions (the
	// relay checks the token again there), and the agent opens new ones
	// with its token at once: no refusal to act on, and no backoff.
	if n := a.countLog(func(l logLine) bool { return strings.HasPrefix(l.msg(), "relay refused this agent's credentials") }); n > 0 {
		t.Errorf("the agent logged %d credential refusals during a rotation:%s", n, a.tail(20))
	}
}

// TestTokenRotationCredits: a rotation (README: add the new token, SIGHUP
// both, remove the old) costs an agent with --slot-credits neither a
// client nor a backoff. Its credit stream was opened with the old token;
// the relay checks that again before it offers the stream a client, ends
// the stream instead, and hands the client on untouched; the agent opens
// a new credit stream with its new token at once.
func TestTokenRotationCredits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokens := writeFile(t, dir, "tokens", goodToken+"\n")
	r := startRelay(t, "--auth-tokens", tokens, "--assign-timeout", "3s", "--log-level", "debug")
	agentToken := writeFile(t, dir, "agent-token", goodToken+"\n")
	a := startAgent(t, r.grpcAddr, "--token-file", agentToken, "--slot-credits", "--idle", "2", "echo")
	roundTrip(t, dial(t, r.clientAddr), "with the old token\n")

	reloadRelay := func(content string) {
		t.Helper()
		if err := os.WriteFile(tokens, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		r.cmd.Process.Signal(syscall.SIGHUP)
		r.waitLog(t, startTimeout, `"auth tokens loaded"`, func(l logLine) bool { return l.msg() == "auth tokens loaded" })
	}
	reloadRelay(goodToken + "\n" + laterToken + "\n")
	if err := os.WriteFile(agentToken, []byte(laterToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.cmd.Process.Signal(syscall.SIGHUP)
	a.waitLog(t, startTimeout, `"token loaded"`, func(l logLine) bool { return l.msg() == "token loaded" })
	reloadRelay(laterToken + "\n")

	// Without the agent's new stream at once, its backoff (15-30 s) would
	// outlast --assign-timeout, and the client would be reset.
	for i := range 3 {
		roundTrip(t, dial(t, r.clientAddr), fmt.Sprintf("session %d after the rotation\n", i))
	}
	r.waitLog(t, ioTimeout, "the old credit stream ended for its token", func(l logLine) bool {
		return l.msg() == "credit stream's token no longer accepted"
	})
	if n := a.countLog(func(l logLine) bool { return strings.HasPrefix(l.msg(), "relay refused this agent's credentials") }); n > 0 {
		t.Errorf("the agent logged %d credential refusals during a rotation:%s", n, a.tail(20))
	}
}

// TestTokenRevoked: a token removed from --auth-tokens (SIGHUP) stops an
// agent's streams of sequential sessions taking clients. Each was let in
// once, with the token, and offered itself again after every session for
// good; now the relay checks the token again at that point. A session
// under way runs to its end; the agent's new streams are refused, and it
// says so once, at Error; the stream of the session is not taken again.
func TestTokenRevoked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokens := writeFile(t, dir, "tokens", goodToken+"\n")
	r := startRelay(t, "--auth-tokens", tokens, "--assign-timeout", "1s")
	a := startAgentEnv(t, []string{"HOSTAGENT_TOKEN=" + goodToken}, r.grpcAddr, "--idle", "1", "echo")
	a.waitAttached(t)
	// A session under way when the token goes, and the idle slot the
	// agent opens beside it, welcomed with the token.
	held := dial(t, r.clientAddr)
	roundTrip(t, held, "before\n")
	st := statusClient(t, r)
	waitFor(t, ioTimeout, func() (bool, string) {
		s, err := getStatus(st)
		if err != nil {
			return false, err.Error()
		}
		return s.GetIdleSlots() == 1, fmt.Sprintf("%d idle slots, want 1", s.GetIdleSlots())
	})

	if err := os.WriteFile(tokens, []byte(laterToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog(t, startTimeout, `"auth tokens loaded"`, func(l logLine) bool { return l.msg() == "auth tokens loaded" })
	roundTrip(t, held, "during\n")
	// The idle slot the agent opened as that session began was welcomed
	// with the token, and serves one more client. The stream the agent
	// opens meanwhile, to refill its pool, is refused; its backoff is
	// 15-30 s.
	second := dial(t, r.clientAddr)
	roundTrip(t, second, "the slot that was waiting\n")
	a.waitLog(t, ioTimeout, "the refused credentials at Error", func(l logLine) bool {
		return strings.HasPrefix(l.msg(), "relay refused this agent's credentials") && l.str("level") == "ERROR"
	})
	// The sessions end; their streams offer themselves again, and are
	// refused now. So the next client finds no slot, and is reset at
	// --assign-timeout. Before, those streams were taken, and served it.
	for _, c := range []*net.TCPConn{held, second} {
		c.CloseWrite()
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("a session under way: %v, want its clean end", err)
		}
	}
	c := dial(t, r.clientAddr)
	if _, err := c.Write([]byte("after\n")); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	if got, err := io.ReadAll(c); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("a client after the revocation read %q, %v; want a reset (no slot)", got, err)
	}
}

// TestHealthWatchersBounded: health needs no token, and each Watch holds
// memory on relayd until its caller leaves, so a port holds at most
// --max-health-watchers of them; more are refused with ResourceExhausted
// and counted, and a watcher that leaves makes room.
func TestHealthWatchersBounded(t *testing.T) {
	t.Parallel()
	tokens := writeFile(t, t.TempDir(), "tokens", goodToken+"\n")
	r := startRelay(t, "--auth-tokens", tokens, "--max-health-watchers", "3", "--metrics-addr", "127.0.0.1:0")
	cc, err := grpc.NewClient(r.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	watch := func() (healthpb.Health_WatchClient, context.CancelFunc, error) {
		wctx, wcancel := context.WithCancel(ctx)
		w, err := hc.Watch(wctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			var h *healthpb.HealthCheckResponse
			if h, err = w.Recv(); err == nil && h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				err = fmt.Errorf("status %v, want SERVING", h.GetStatus())
			}
		}
		return w, wcancel, err
	}
	var cancels []context.CancelFunc
	for i := range 3 {
		_, c, err := watch()
		if err != nil {
			t.Fatalf("watcher %d of 3: %v", i+1, err)
		}
		cancels = append(cancels, c)
	}
	_, c, err := watch()
	c()
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "--max-health-watchers") {
		t.Fatalf("a 4th watcher: %v, want ResourceExhausted naming --max-health-watchers", err)
	}
	if got := scrape(t, r.metricsAddr(t))[`relay_limit_hits_total{limit="max_health_watchers"}`]; got != 1 {
		t.Errorf(`relay_limit_hits_total{limit="max_health_watchers"} = %v, want 1`, got)
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("Check with every watcher taken: %v", err)
	}
	// A watcher that leaves makes room; the relay sees it leave some time
	// after the cancel, so try until it has.
	cancels[0]()
	for {
		_, c, err := watch()
		if err == nil {
			c()
			break
		}
		if status.Code(err) != codes.ResourceExhausted || ctx.Err() != nil {
			t.Fatalf("a watcher after one left: %v", err)
		}
	}
	for _, c := range cancels[1:] {
		c()
	}
}

// TestIdleAgentConnClosed: a connection to the gRPC port that holds no
// stream for --hello-timeout is closed with a GOAWAY, so that anyone who
// can finish the handshakes cannot hold connections (which count against
// --max-agent-conns before any token is checked) for ever.
func TestIdleAgentConnClosed(t *testing.T) {
	t.Parallel()
	tokens := writeFile(t, t.TempDir(), "tokens", goodToken+"\n")
	r := startRelay(t, "--auth-tokens", tokens, "--hello-timeout", "1s")
	nc, err := net.Dial("tcp", r.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// The client's half of the HTTP/2 handshake: its preface and SETTINGS.
	if _, err := nc.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")); err != nil {
		t.Fatal(err)
	}
	// grpc-go sends its GOAWAY and a PING, and closes the connection some
	// seconds later when the PING is not answered (as here).
	const bound = 30 * time.Second
	nc.SetReadDeadline(time.Now().Add(bound))
	start := time.Now()
	got, err := io.ReadAll(nc)
	if err != nil {
		t.Fatalf("the idle connection was not closed within %v: %v (after %d bytes)", bound, err, len(got))
	}
	if !strings.Contains(string(got), "max_idle") {
		t.Errorf("the idle connection was closed after %v without a GOAWAY naming max_idle: %q", time.Since(start), got)
	}
}

// TestFixedTokenRetriedOnSIGHUP: an agent refused for its token backs off
// for 15–30 s, but a SIGHUP that reloads its --token-file tries again at
// once: an operator who fixed the token does not wait out the backoff.
func TestFixedTokenRetriedOnSIGHUP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := startRelay(t, "--auth-tokens", writeFile(t, dir, "tokens", goodToken+"\n"))
	tokenFile := writeFile(t, dir, "agent-token", "tok-unknown-0123456789abcdef\n")
	a := startAgentNoWait(t, r.grpcAddr, "--token-file", tokenFile, "echo")
	refused := a.waitRefused(t, "Unauthenticated", func(l logLine) bool { return strings.Contains(l.str("err"), "Unauthenticated") })
	retryIn, _ := refused.fields["retry_in"].(float64)
	writeFile(t, dir, "agent-token", goodToken+"\n")
	sent := time.Now()
	a.cmd.Process.Signal(syscall.SIGHUP)
	// Well within the backoff (at least 15 s): the retry came from the SIGHUP.
	bound := time.Duration(retryIn) / 2
	a.waitLog(t, bound, `"relay attached" after the SIGHUP`, func(l logLine) bool { return l.msg() == "relay attached" })
	t.Logf("attached %v after the SIGHUP (the backoff had %v left)", time.Since(sent).Round(time.Millisecond), time.Duration(retryIn))
}
