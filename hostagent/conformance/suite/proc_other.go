//go:build !unix

package suite

import (
	"os"
	"os/exec"
)

// Without process groups, only the host process itself is stopped.
func newProcessGroup(*exec.Cmd) {}

func terminate(cmd *exec.Cmd) { cmd.Process.Signal(os.Interrupt) }

func kill(cmd *exec.Cmd) { cmd.Process.Kill() }
