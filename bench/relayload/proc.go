package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a child process whose stderr carries JSON log lines. Its stderr
// is copied to a log file; the first line whose "msg" is the ready message
// is handed to waitReady.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	ready   chan map[string]any // the ready line, once
	exited  chan struct{}       // closed after Wait returned
	waitErr error
	stopped bool
	// diesOnSIGTERM: the program has no handler for SIGTERM (haproxy in
	// the foreground), so death by it is how it stops, not a failure.
	diesOnSIGTERM bool
}

// startProcFiles starts argv, with files passed to the child as
// descriptors 3, 4, and so on, and returns once the process has logged
// readyMsg (within limit), or fails with the tail of its log. With readyMsg
// "" it returns once the process has started: the caller has its own sign
// of readiness.
func startProcFiles(ctx context.Context, name, logDir, readyMsg string, limit time.Duration, files []*os.File, argv ...string) (*proc, map[string]any, error) {
	p := &proc{
		name:    name,
		logPath: filepath.Join(logDir, name+".log"),
		ready:   make(chan map[string]any, 1),
		exited:  make(chan struct{}),
	}
	logf, err := os.Create(p.logPath)
	if err != nil {
		return nil, nil, err
	}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	// If the runner dies without cleaning up, the kernel kills the child.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.Stdout = logf
	p.cmd.ExtraFiles = files
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, nil, err
	}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		defer close(p.exited)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		w := bufio.NewWriter(logf)
		sent := false
		for sc.Scan() {
			line := sc.Bytes()
			w.Write(line)
			w.WriteByte('\n')
			if !sent && readyMsg != "" && bytes.Contains(line, []byte(readyMsg)) {
				var m map[string]any
				if json.Unmarshal(line, &m) == nil && m["msg"] == readyMsg {
					p.ready <- m
					sent = true
					w.Flush()
				}
			}
		}
		w.Flush()
		logf.Close()
		p.waitErr = p.cmd.Wait() // after the last read, as exec requires
	}()
	if readyMsg == "" {
		return p, nil, nil
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case m := <-p.ready:
		return p, m, nil
	case <-p.exited:
		return nil, nil, fmt.Errorf("%s exited before %q: %v\n%s", name, readyMsg, p.waitErr, tail(p.logPath))
	case <-t.C:
		p.stop()
		return nil, nil, fmt.Errorf("%s: no %q within %v\n%s", name, readyMsg, limit, tail(p.logPath))
	case <-ctx.Done():
		p.stop()
		return nil, nil, context.Cause(ctx)
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM, waits up to 10s, then kills; safe to call twice. It
// reports an unclean exit.
func (p *proc) stop() error {
	if p.stopped {
		return nil
	}
	p.stopped = true
	p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not stop within 10s of SIGTERM; killed", p.name)
	}
	var ee *exec.ExitError
	if p.diesOnSIGTERM && errors.As(p.waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	if p.waitErr != nil {
		return fmt.Errorf("%s: %v\n%s", p.name, p.waitErr, tail(p.logPath))
	}
	return nil
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// procStatusKiB returns a "Vm…:" field of /proc/PID/status in KiB.
func procStatusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

func rssKiB(pid int) (int64, error) { return procStatusKiB(pid, "VmRSS") }

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuSeconds returns the user+system CPU time of pid from /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; fields after it start
	// with the state (field 3), so utime (14) and stime (15) are at 11, 12.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(ut+st) / clockTicks, nil
}
