//go:build unix

package portclaim

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestClaims: claimed ports are free, distinct, below the ephemeral range,
// and held against every other claimant (another process's flock on the
// same file conflicts like this second open's) until released.
func TestClaims(t *testing.T) {
	lo, hi, err := claimRange()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var claims []*Claim
	for range 40 {
		c, err := New()
		if err != nil {
			t.Fatal(err)
		}
		claims = append(claims, c)
		if seen[c.Addr] {
			t.Fatalf("%s claimed twice", c.Addr)
		}
		seen[c.Addr] = true
		_, port, _ := net.SplitHostPort(c.Addr)
		if p, _ := strconv.Atoi(port); p < lo || p > hi {
			t.Errorf("%s is outside %d-%d", c.Addr, lo, hi)
		}
		l, err := net.Listen("tcp", c.Addr)
		if err != nil {
			t.Fatalf("listen on the claimed %s: %v", c.Addr, err)
		}
		l.Close()
	}
	_, port, _ := net.SplitHostPort(claims[0].Addr)
	f, err := os.OpenFile(filepath.Join(lockDir(), port), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatalf("flock on a claimed port's file: %v, want EWOULDBLOCK", err)
	}
	for _, c := range claims {
		c.Release()
	}
	claims[0].Release() // twice is fine
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("flock after the release: %v", err)
	}
}

// TestRangeFromEnvironment: RELAY_PORT_RANGE sets the range; a value that
// is not one is an error naming it, not a silent fallback.
func TestRangeFromEnvironment(t *testing.T) {
	t.Setenv(RangeEnv, "20100-20109")
	for range 5 {
		c, err := New()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		_, port, _ := net.SplitHostPort(c.Addr)
		if p, _ := strconv.Atoi(port); p < 20100 || p > 20109 {
			t.Errorf("%s is outside %s", c.Addr, os.Getenv(RangeEnv))
		}
	}
	for _, bad := range []string{"9600", "9699-9600", "0-10", "a-b", "9600-70000"} {
		t.Setenv(RangeEnv, bad)
		if _, err := New(); err == nil || !strings.Contains(err.Error(), RangeEnv) {
			t.Errorf("%s=%q: %v, want an error naming %s", RangeEnv, bad, err, RangeEnv)
		}
	}
}

// TestPortRangeBelowEphemeral: with Linux's usual range, ports come from
// below it.
func TestPortRangeBelowEphemeral(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Skip("no /proc/sys/net/ipv4/ip_local_port_range")
	}
	var first, last int
	if _, err := fmt.Sscan(string(b), &first, &last); err != nil || first <= 2048 {
		t.Skipf("ephemeral range %q", b)
	}
	if lo, hi := portRange(); lo < 1024 || hi >= first || lo > hi {
		t.Errorf("portRange() = %d-%d, want within 1024-%d", lo, hi, first-1)
	}
}
