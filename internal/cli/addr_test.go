package cli_test

import (
	"strings"
	"testing"

	"github.com/relayproject/relay/internal/cli"
)

// TestListenAddr: a port net.Listen would refuse, or look up by name, is
// found on the command line; port 0 and an empty host stay allowed.
func TestListenAddr(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1:0", ":8000", "[::1]:65535", "localhost:08000", "0.0.0.0:1"} {
		if err := cli.ListenAddr(addr); err != nil {
			t.Errorf("ListenAddr(%q) = %v, want it taken", addr, err)
		}
	}
	for _, tt := range []struct{ addr, want string }{
		{"127.0.0.1:99999", `port "99999" is not a number from 0 to 65535`},
		{"127.0.0.1:65536", `port "65536" is not a number from 0 to 65535`},
		{"127.0.0.1:-1", `port "-1" is not a number from 0 to 65535`},
		{"127.0.0.1:abc", `port "abc" is not a number from 0 to 65535`},
		{":http", `port "http" is not a number from 0 to 65535`},
		{"127.0.0.1:", `port "" is not a number from 0 to 65535`},
		{"foo", "missing port in address (want HOST:PORT or :PORT)"},
		{"8000", "missing port in address (want HOST:PORT or :PORT)"},
		{"", "missing port in address (want HOST:PORT or :PORT)"},
	} {
		if err := cli.ListenAddr(tt.addr); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ListenAddr(%q) = %v, want an error containing %q", tt.addr, err, tt.want)
		}
	}
}
