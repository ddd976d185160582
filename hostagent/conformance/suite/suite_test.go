package suite

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// binDir holds relayd and hostagent, built once by TestMain.
var binDir string

// brokenHostEnv, when set in the environment, makes the test binary run as
// a broken host (see broken_test.go) instead of running tests.
const brokenHostEnv = "RELAY_CONFORMANCE_BROKEN_HOST"

func TestMain(m *testing.M) {
	if mode := os.Getenv(brokenHostEnv); mode != "" {
		if err := runBrokenHost(mode, os.Getenv("RELAY_ADDR")); err != nil {
			fmt.Fprintln(os.Stderr, "broken host:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir, err := buildBinaries()
	if err != nil {
		fmt.Fprintln(os.Stderr, "suite:", err)
		os.Exit(1)
	}
	binDir = dir
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// buildBinaries builds relayd (through BuildRelayd, the path the command
// takes) and hostagent, without -race: they are the products under test,
// not the code under test, and the race detector would slow every byte.
func buildBinaries() (string, error) {
	dir, err := os.MkdirTemp("", "relay-conformance-test-")
	if err != nil {
		return "", err
	}
	if _, err := BuildRelayd(context.Background(), dir); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "hostagent"), "github.com/relayproject/relay/hostagent")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build hostagent: %v\n%s", err, out)
	}
	return dir, nil
}

// runSuite runs the suite on command and logs the table.
func runSuite(t *testing.T, cfg Config) *Report {
	t.Helper()
	cfg.Relayd = filepath.Join(binDir, "relayd")
	if cfg.CaseTimeout == 0 {
		cfg.CaseTimeout = 30 * time.Second
	}
	out := &tailBuffer{max: 200}
	cfg.HostOutput = out
	report, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("suite did not run: %v", err)
	}
	var b strings.Builder
	report.Print(&b)
	t.Logf("conformance of %s:\n%s", strings.Join(cfg.Command, " "), b.String())
	if t.Failed() || !report.Passed() {
		t.Logf("host output (last lines):%s", out.String())
	}
	return report
}

// TestHostagentEchoPasses: the packaged echo host passes every case.
func TestHostagentEchoPasses(t *testing.T) {
	t.Parallel()
	report := runSuite(t, Config{Command: []string{filepath.Join(binDir, "hostagent"), "--relay", "{relay}", "--log-format", "json", "echo"}})
	if !report.Passed() {
		t.Error("hostagent echo failed the conformance suite")
	}
	if len(report.Results) != len(CaseNames())+1 {
		t.Errorf("ran %d cases, want all %d and %s", len(report.Results), len(CaseNames()), ExitCase)
	}
}

// TestRunBadConfig: a Config the suite cannot run is an error, not a report.
func TestRunBadConfig(t *testing.T) {
	t.Parallel()
	relayd := filepath.Join(binDir, "relayd")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no_command", Config{Relayd: relayd}, "no host command"},
		{"no_relayd", Config{Command: []string{"true"}}, "no relayd"},
		{"unknown_case", Config{Command: []string{"true"}, Relayd: relayd, Cases: []string{"nope"}}, `unknown case "nope"`},
		{"host_not_found", Config{Command: []string{filepath.Join(binDir, "no-such-host")}, Relayd: relayd}, "start host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Run(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run: got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestRelaydIgnoresEnvironment: relayd takes every flag from RELAYD_*
// variables; the suite's own relayd must not pick up the operator's (auth
// tokens, TLS, limits), or the suite would test a relay the host under
// test was not configured for.
func TestRelaydIgnoresEnvironment(t *testing.T) {
	t.Setenv("RELAYD_AUTH_TOKENS", filepath.Join(t.TempDir(), "no-such-file"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := startRelayd(ctx, filepath.Join(binDir, "relayd"), "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("relayd with RELAYD_AUTH_TOKENS in the environment: %v", err)
	}
	r.stop()
}
