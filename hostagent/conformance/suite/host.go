package suite

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// host is the host process under test. Its stdout and stderr are kept (the
// last lines, for failure reasons) and copied to Config.HostOutput.
type host struct {
	cmd     *exec.Cmd
	out     *tailBuffer
	exited  chan struct{}
	waitErr error
}

// startHost starts the host command with {relay} in its arguments replaced
// by relayAddr and RELAY_ADDR=relayAddr in its environment.
func startHost(cfg Config, relayAddr string) (*host, error) {
	args := make([]string, len(cfg.Command)-1)
	for i, a := range cfg.Command[1:] {
		args[i] = strings.ReplaceAll(a, "{relay}", relayAddr)
	}
	cmd := exec.Command(cfg.Command[0], args...)
	cmd.Dir = cfg.Dir
	cmd.Env = append(append(os.Environ(), cfg.Env...), "RELAY_ADDR="+relayAddr)
	out := &tailBuffer{max: 40}
	var w io.Writer = out
	if cfg.HostOutput != nil {
		w = io.MultiWriter(out, cfg.HostOutput)
	}
	cmd.Stdout, cmd.Stderr = w, w
	newProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start host %q: %w", cfg.Command[0], err)
	}
	h := &host{cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		h.waitErr = cmd.Wait()
		close(h.exited)
	}()
	return h, nil
}

// running reports an error once the host has exited.
func (h *host) running() error {
	select {
	case <-h.exited:
		how := "with status 0"
		if h.waitErr != nil {
			how = "(" + h.waitErr.Error() + ")"
		}
		return fmt.Errorf("host exited %s; its last output:%s", how, h.out.String())
	default:
		return nil
	}
}

// stop asks the host's process group to stop (SIGTERM), and kills it if it
// has not exited within the bound. A launcher such as npm starts the real
// host as its child: signalling the group reaches both.
func (h *host) stop(bound time.Duration) error {
	select {
	case <-h.exited:
		return nil
	default:
	}
	terminate(h.cmd)
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case <-h.exited:
		return nil
	case <-timer.C:
		kill(h.cmd)
		<-h.exited
		return fmt.Errorf("host did not exit within %v of SIGTERM; killed", bound)
	}
}

// tailBuffer keeps the last max lines written to it.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	lines   []string
	partial []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.lines = append(t.lines, string(t.partial[:i]))
		t.partial = t.partial[i+1:]
		if len(t.lines) > t.max {
			t.lines = t.lines[len(t.lines)-t.max:]
		}
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	for _, l := range append(t.lines, string(t.partial)) {
		if l != "" {
			b.WriteString("\n\t" + l)
		}
	}
	return b.String()
}
