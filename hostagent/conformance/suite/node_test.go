package suite

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestNodeHostPasses: examples/node-host passes every case. It installs the
// example's pinned dependencies with npm ci when node_modules is missing.
// Without node or npm it skips, unless RELAY_REQUIRE_NODE is set (CI sets
// it, so that a machine without Node cannot pass CI by skipping).
func TestNodeHostPasses(t *testing.T) {
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
	report := runSuite(t, Config{Command: []string{"npm", "start"}, Dir: dir})
	if !report.Passed() {
		t.Error("the Node.js host failed the conformance suite")
	}
}
