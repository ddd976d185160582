package e2e

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFrozenAgentsClientsReset: a client given to the idle slot of an
// agent that has stopped (SIGSTOP; a frozen VM) is reset once the relay's
// keepalive ping goes unanswered, within --agent-keepalive and as long
// again: its kernel keeps the connection up, so nothing else ends it. The
// flag lets an operator whose agents have fast links find them sooner than
// the 40 s of the default (QA).
func TestFrozenAgentsClientsReset(t *testing.T) {
	t.Parallel()
	r := startRelay(t, "--agent-keepalive", "1s")
	frozen := startAgent(t, r.grpcAddr, "--idle", "1", "--host-id", "frozen", "echo")
	if err := frozen.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer frozen.cmd.Process.Signal(syscall.SIGCONT) // before the cleanup's SIGTERM
	waitFor(t, ioTimeout, func() (bool, string) { return stopped(t, frozen.cmd.Process.Pid) })
	c := dial(t, r.clientAddr)
	if _, err := c.Write([]byte("to a frozen host\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	if n, err := c.Read(make([]byte, 64)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read %d bytes, %v; want a reset within %v (relayd:%s)", n, err, ioTimeout, r.tail(15))
	}
	// Its session's line says the stream was lost, naming the keepalive,
	// not that the host aborted it.
	r.waitLog(t, ioTimeout, `"session lost with its host's stream …--agent-keepalive)"`, func(l logLine) bool {
		return strings.HasPrefix(l.msg(), "session lost with its host's stream") && strings.Contains(l.msg(), "--agent-keepalive") &&
			l.str("reason") == "CLOSE_REASON_HOST_LOST"
	})
	r.waitLog(t, ioTimeout, `"host detached" for the frozen agent`, func(l logLine) bool {
		return l.msg() == "host detached" && l.str("host_id") == "frozen"
	})
}
