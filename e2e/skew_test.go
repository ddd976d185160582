package e2e

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// skewBases are the earlier versions TestMixedVersions runs against: two
// that landed (move them on as versions land, keeping the oldest one
// agents or relays may still run). RELAY_SKEW_BASES (revisions,
// comma-separated) overrides them.
const skewBases = "8424522,e82b84c"

// TestMixedVersions: during a rolling upgrade, agents of one version attach
// to relays of another. Each earlier version's relayd and hostagent are
// built from git (git archive of the revision; the working tree is not
// touched) and run against this tree's: a new relay with an old agent and an
// old relay with a new agent, each with idle streams and with slot credits,
// must agree on a token file's meaning (a grant, comments), relay bytes exactly, pass half-closes on, reset a client whose
// backend resets, and show the host in the admin API.
//
// It needs the revisions in the repository's history: without them (a
// shallow clone, an export) it is skipped, unless RELAY_REQUIRE_SKEW=1 (as
// in .ci/run) makes that a failure.
func TestMixedVersions(t *testing.T) {
	t.Parallel()
	bases := skewBases
	if env := os.Getenv("RELAY_SKEW_BASES"); env != "" {
		bases = env
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, rev := range strings.Split(bases, ",") {
		t.Run(rev, func(t *testing.T) {
			t.Parallel()
			old := buildRevision(t, root, strings.TrimSpace(rev))
			oldRelayd, oldAgent := filepath.Join(old, "relayd"), filepath.Join(old, "hostagent")
			for _, pair := range []struct{ name, relayd, agent string }{
				{"new_relayd_old_hostagent", "relayd", oldAgent},
				{"old_relayd_new_hostagent", oldRelayd, "hostagent"},
			} {
				t.Run(pair.name, func(t *testing.T) {
					t.Parallel()
					for _, mode := range [][]string{nil, {"--slot-credits"}} {
						checkSkewPair(t, pair.relayd, pair.agent, mode)
					}
				})
			}
		})
	}
}

// checkSkewPair runs one relayd and one hostagent (each a binary as
// startProcEnv takes it) with agentFlags and checks what must hold across
// versions.
func checkSkewPair(t *testing.T, relayd, agent string, agentFlags []string) {
	t.Helper()
	what := fmt.Sprintf("%s + %s %v", filepath.Base(filepath.Dir(relayd))+"/relayd", filepath.Base(filepath.Dir(agent))+"/hostagent", agentFlags)
	dir := t.TempDir()
	tokens := writeFile(t, dir, "tokens", "# the team's hosts\n"+goodToken+"  services=default hosts=echo-host,forward-host  # both\n")
	r := startRelayBin(t, relayd, "--auth-tokens", tokens)
	flags := append(append([]string{}, agentFlags...), "--idle", "2", "--token-file", writeFile(t, dir, "token", goodToken+"  # ours\n"))
	echo := startAgentBin(t, nil, agent, r.grpcAddr, append(flags, "--host-id", "echo-host", "echo")...)
	echo.waitAttached(t)

	// Sequential sessions on the same streams, each ending with a
	// half-close answered by the echo's own.
	for i := range 4 {
		c := dial(t, r.clientAddr)
		msg := fmt.Sprintf("%s: session %d %s\n", what, i, strings.Repeat("y", i*30_000))
		roundTrip(t, c, msg)
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		expectEOF(t, c, "")
		c.Close()
	}
	// Bulk both ways, every byte checked, then EOF after exactly as many.
	c := dial(t, r.clientAddr)
	if err := echoTransfer(c, 7, 4<<20); err != nil {
		t.Fatalf("%s: 4 MiB echo: %v", what, err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	expectEOF(t, c, "")
	c.Close()

	st := statusClient(t, r)
	hosts, err := listHosts(st)
	if err != nil || len(hosts.GetHosts()) != 1 || hosts.GetHosts()[0].GetHostId() != "echo-host" {
		t.Fatalf("%s: ListHosts: %v, %v; want the one host echo-host", what, hosts, err)
	}
	echo.stop(t)

	// A backend that resets: the client is reset, not given a clean EOF.
	b := startBackend(t, func(c *net.TCPConn) {
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return
		}
		c.Write([]byte(line))
		c.SetLinger(0)
		c.Close()
	})
	startAgentBin(t, nil, agent, r.grpcAddr, append(flags, "--host-id", "forward-host", "forward", b.addr)...).waitAttached(t)
	c = dial(t, r.clientAddr)
	roundTrip(t, c, "reset me\n")
	expectConnReset(t, c, what+": a client whose backend reset")
}

// buildRevision builds relayd and hostagent from rev of the repository at
// root into a directory of the test's, and returns that directory.
func buildRevision(t *testing.T, root, rev string) string {
	t.Helper()
	if out, err := exec.Command("git", "-C", root, "cat-file", "-e", rev+"^{commit}").CombinedOutput(); err != nil {
		msg := fmt.Sprintf("revision %s is not in this repository's history (git: %v %s): cannot build it to run against", rev, err, strings.TrimSpace(string(out)))
		if os.Getenv("RELAY_REQUIRE_SKEW") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg + "; RELAY_REQUIRE_SKEW=1 makes this a failure")
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "src"), filepath.Join(dir, rev)
	archive := exec.Command("git", "-C", root, "archive", "--format=tar", rev)
	out, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	archive.Stderr = &stderr
	if err := archive.Start(); err != nil {
		t.Fatal(err)
	}
	extractErr := extractTar(out, src)
	io.Copy(io.Discard, out)
	if err := archive.Wait(); err != nil || extractErr != nil {
		t.Fatalf("git archive %s: %v, %v: %s", rev, err, extractErr, stderr.String())
	}
	build := exec.Command(goBinary(), "build", "-o", bin+string(filepath.Separator), "./relayd", "./hostagent")
	build.Dir = src
	build.Env = append(os.Environ(), "GOWORK=off")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", rev, err, b)
	}
	return bin
}

// extractTar writes the regular files and directories of a tar stream
// under dir.
func extractTar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(name, dir+string(filepath.Separator)) {
			return fmt.Errorf("tar entry %q leaves %s", h.Name, dir)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(name, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}
