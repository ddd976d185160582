//go:build unix

package portclaim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// RangeEnv names the variable that sets the range ports are drawn from,
// as "LO-HI" (a firewall or another suite may want them elsewhere).
const RangeEnv = "RELAY_PORT_RANGE"

// New claims a free loopback port.
func New() (*Claim, error) {
	lo, hi, err := claimRange()
	if err != nil {
		return nil, err
	}
	dir := lockDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("portclaim: %w", err)
	}
	for range 200 {
		port := lo + rand.IntN(hi-lo+1)
		// The lock files stay: removing one would race with a process that
		// has just opened it.
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("portclaim: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue // claimed by another process
			}
			return nil, fmt.Errorf("portclaim: lock %s: %w", f.Name(), err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		// Free now? Something outside this package may be listening there.
		l, err := net.Listen("tcp", addr)
		if err != nil {
			f.Close()
			continue
		}
		l.Close()
		return &Claim{Addr: addr, lock: f}, nil
	}
	return nil, fmt.Errorf("portclaim: no free port in %d-%d after 200 tries", lo, hi)
}

// lockDir holds the lock files, one directory per user: another user's
// directory (its mode, or files planted in it) cannot stop this one's
// claims. Claims of two users do not exclude each other, but both stay
// clear of the ephemeral range.
func lockDir() string {
	return filepath.Join(os.TempDir(), "relay-portclaim-"+strconv.Itoa(os.Getuid()))
}

// portRange is the range ports are drawn from: the upper half of the ports
// below the ephemeral range (16384-32767 with Linux's default 32768-60999).
func portRange() (lo, hi int) {
	lo, hi = 16384, 32767
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return lo, hi
	}
	first, err := strconv.Atoi(f[0])
	if err != nil || first <= 2048 {
		// Nearly every port is ephemeral: the flock still keeps this
		// package's users apart.
		return lo, hi
	}
	return max(1024, first/2), first - 1
}

// claimRange is RangeEnv's range if it is set, else portRange's.
func claimRange() (lo, hi int, err error) {
	v := os.Getenv(RangeEnv)
	if v == "" {
		lo, hi = portRange()
		return lo, hi, nil
	}
	if lo, hi, err = parseRange(v); err != nil {
		return 0, 0, fmt.Errorf("portclaim: %s=%q: %v", RangeEnv, v, err)
	}
	return lo, hi, nil
}

// parseRange parses "LO-HI", two ports with LO <= HI.
func parseRange(v string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(v, "-")
	if !ok {
		return 0, 0, errors.New("want LO-HI, two ports such as 9600-9699")
	}
	if lo, err = strconv.Atoi(strings.TrimSpace(a)); err != nil || lo < 1 || lo > 65535 {
		return 0, 0, fmt.Errorf("%q is not a port from 1 to 65535", a)
	}
	if hi, err = strconv.Atoi(strings.TrimSpace(b)); err != nil || hi < 1 || hi > 65535 {
		return 0, 0, fmt.Errorf("%q is not a port from 1 to 65535", b)
	}
	if lo > hi {
		return 0, 0, fmt.Errorf("%d is above %d", lo, hi)
	}
	return lo, hi, nil
}
