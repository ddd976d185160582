package cli_test

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/relayproject/relay/internal/cli"
)

func TestEnvName(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ prefix, flag, want string }{
		{"RELAYD", "grpc-addr", "RELAYD_GRPC_ADDR"},
		{"HOSTAGENT", "relay", "HOSTAGENT_RELAY"},
		{"HOSTAGENT", "max-sessions", "HOSTAGENT_MAX_SESSIONS"},
	} {
		if got := cli.EnvName(tt.prefix, tt.flag); got != tt.want {
			t.Errorf("EnvName(%q, %q) = %q, want %q", tt.prefix, tt.flag, got, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	newFS := func() (*flag.FlagSet, *string, *time.Duration) {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		return fs, fs.String("addr", "default", "where"), fs.Duration("wait", time.Second, "how long")
	}
	t.Setenv("X_ADDR", "from-env")
	t.Setenv("X_WAIT", "5s")

	fs, addr, wait := newFS()
	if err := cli.Parse(fs, "X", []string{"--wait", "2s"}); err != nil {
		t.Fatal(err)
	}
	if *addr != "from-env" || *wait != 2*time.Second {
		t.Errorf("addr %q wait %v, want from-env and 2s (the command line wins)", *addr, *wait)
	}
	if u := fs.Lookup("addr").Usage; !strings.Contains(u, "(env X_ADDR)") {
		t.Errorf("usage %q does not name X_ADDR", u)
	}

	t.Setenv("X_WAIT", "later")
	fs, _, _ = newFS()
	err := cli.Parse(fs, "X", nil)
	if !errors.As(err, new(cli.UsageError)) || !strings.Contains(err.Error(), `X_WAIT="later"`) {
		t.Errorf("bad X_WAIT: %v, want a usage error naming X_WAIT", err)
	}
}
