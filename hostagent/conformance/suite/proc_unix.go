//go:build unix

package suite

import (
	"os/exec"
	"syscall"
)

// newProcessGroup makes the host the leader of its own process group, so
// that stopping it also stops the children a launcher (npm, a shell) made.
func newProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func terminate(cmd *exec.Cmd) { syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }

func kill(cmd *exec.Cmd) { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
