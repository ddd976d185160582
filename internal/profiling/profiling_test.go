package profiling_test

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/relayproject/relay/internal/profiling"
)

// TestPortInUse: a port in use reads as --metrics-addr's does, listen and
// the address once, and names the flag to change; it once read "pprof:
// listen ADDR: listen tcp ADDR: bind: ...", without a hint.
func TestPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	stop, err := profiling.Start(addr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		stop()
		t.Fatalf("Start(%s) with the port in use: no error", addr)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "pprof: listen "+addr+": ") || strings.Count(msg, "listen") != 1 || strings.Count(msg, addr) != 1 ||
		!strings.HasSuffix(msg, "address already in use (see --pprof-addr)") {
		t.Errorf("Start(%s) with the port in use: %q, want \"pprof: listen %s: bind: address already in use (see --pprof-addr)\"", addr, msg, addr)
	}
}
