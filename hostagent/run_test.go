package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/cli"
)

// TestFlagsFromEnvironment: every flag may come from HOSTAGENT_*, the
// command line wins, -h names the variables, and a bad value names its
// variable.
func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("HOSTAGENT_RELAY", "a:8000,b:8000")
	t.Setenv("HOSTAGENT_IDLE", "3")
	t.Setenv("HOSTAGENT_HOST_ID", "from-env")
	var stderr bytes.Buffer
	o, err := parseFlags([]string{"--host-id", "from-flag", "echo"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.relays, ",") != "a:8000,b:8000" || o.idle != 3 || o.hostID != "from-flag" {
		t.Errorf("relays %v idle %d host-id %q, want a:8000,b:8000, 3, from-flag (the flag wins)", o.relays, o.idle, o.hostID)
	}

	stderr.Reset()
	if _, err := parseFlags([]string{"-h"}, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"HOSTAGENT_RELAY", "HOSTAGENT_METRICS_ADDR", "HOSTAGENT_DRAIN_TIMEOUT"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("-h does not name %s:\n%s", want, stderr.String())
		}
	}

	t.Setenv("HOSTAGENT_IDLE", "many")
	_, err = parseFlags([]string{"echo"}, &stderr)
	if !errors.As(err, new(cli.UsageError)) || !strings.Contains(err.Error(), "HOSTAGENT_IDLE") {
		t.Errorf("bad HOSTAGENT_IDLE: %v, want a usage error naming the variable", err)
	}
}

// TestLabelsFromEnvironment: HOSTAGENT_LABEL holds a comma-separated list of
// KEY=VALUE, as --label may be repeated.
func TestLabelsFromEnvironment(t *testing.T) {
	t.Setenv("HOSTAGENT_LABEL", "zone=a,rack=7")
	o, err := parseFlags([]string{"echo"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.labels) != 2 || o.labels["zone"] != "a" || o.labels["rack"] != "7" {
		t.Errorf("HOSTAGENT_LABEL=zone=a,rack=7: labels %v, want zone=a and rack=7", map[string]string(o.labels))
	}
}

// TestNegativeTimeoutsRefused: a negative --dial-timeout made every
// forward session fail with an i/o timeout, and a negative --drain-timeout
// was taken silently; both are usage errors (exit status 2), as relayd's are.
func TestNegativeTimeoutsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--dial-timeout", "-1s", "forward", "127.0.0.1:1"},
		{"--dial-timeout", "0s", "forward", "127.0.0.1:1"},
		{"--drain-timeout", "-5s", "echo"},
		{"--backend-probe-interval", "-1s", "forward", "127.0.0.1:1"},
		{"--service", "", "echo"}, // the relay took it as "default", and the agent's log said service=""
	} {
		_, err := parseFlags(args, io.Discard)
		if !errors.As(err, new(cli.UsageError)) || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: %v, want a usage error naming %s", args, err, args[0])
		}
	}
	if _, err := parseFlags([]string{"--drain-timeout", "0s", "echo"}, io.Discard); err != nil {
		t.Errorf("--drain-timeout 0s: %v, want it taken (close at once)", err)
	}
	if _, err := parseFlags([]string{"--backend-probe-interval", "0s", "forward", "127.0.0.1:1"}, io.Discard); err != nil {
		t.Errorf("--backend-probe-interval 0s: %v, want it taken (never withhold slots)", err)
	}
}

// TestRelayListChecked: a port out of range, and the same relay twice (twice
// the idle slots there, found by an operator), are usage errors.
func TestRelayListChecked(t *testing.T) {
	for _, relays := range []string{"127.0.0.1:99999", "127.0.0.1:0", "a:8000,b:8000,a:8000"} {
		_, err := parseFlags([]string{"--relay", relays, "echo"}, io.Discard)
		if !errors.As(err, new(cli.UsageError)) || !strings.Contains(err.Error(), "--relay") {
			t.Errorf("--relay %s: %v, want a usage error naming --relay", relays, err)
		}
	}
}

// TestListenAddrsChecked: a --metrics-addr or --pprof-addr whose port
// net.Listen would refuse was found only when listening, an exit status 1;
// it is a usage error (exit status 2) naming the flag and the value. Port 0
// and an empty host stay allowed.
func TestListenAddrsChecked(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--metrics-addr", "127.0.0.1:99999"}, `--metrics-addr "127.0.0.1:99999": port "99999" is not a number from 0 to 65535`},
		{[]string{"--metrics-addr", "127.0.0.1:abc"}, `--metrics-addr "127.0.0.1:abc": port "abc"`},
		{[]string{"--metrics-addr", "9091"}, `--metrics-addr "9091": address 9091: missing port in address (want HOST:PORT or :PORT)`},
		{[]string{"--pprof-addr", "foo"}, `--pprof-addr "foo": address foo: missing port in address (want HOST:PORT or :PORT)`},
		{[]string{"--pprof-addr", "127.0.0.1:-1"}, `--pprof-addr "127.0.0.1:-1": port "-1" is not a number from 0 to 65535`},
	} {
		_, err := parseFlags(append(tt.args, "echo"), io.Discard)
		if !errors.As(err, new(cli.UsageError)) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want a usage error containing %s", tt.args, err, tt.want)
		}
	}
	for _, args := range [][]string{
		{"--metrics-addr", "127.0.0.1:0", "--pprof-addr", "127.0.0.1:0", "echo"},
		{"--metrics-addr", ":9091", "--pprof-addr", "[::1]:6060", "echo"},
	} {
		if _, err := parseFlags(args, io.Discard); err != nil {
			t.Errorf("%q: %v, want it taken", args, err)
		}
	}
}

// TestForwardTargetChecked: a forward target whose port cannot be dialed is
// a usage error at start, not a reset for every client.
func TestForwardTargetChecked(t *testing.T) {
	for _, target := range []string{"127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1:-1", "127.0.0.1:no-such-service"} {
		_, err := parseFlags([]string{"forward", target}, io.Discard)
		if !errors.As(err, new(cli.UsageError)) || !strings.Contains(err.Error(), "is not a number from 1 to 65535") {
			t.Errorf("forward %s: %v, want a usage error about the port", target, err)
		}
	}
	for _, target := range []string{"localhost:8080", "127.0.0.1:http"} {
		if _, err := parseFlags([]string{"forward", target}, io.Discard); err != nil {
			t.Errorf("forward %s: %v", target, err)
		}
	}
}

// TestDialFailureReason: a backend that refuses or cannot be reached is
// BACKEND_UNAVAILABLE (the relay passes the agent over); one that reset the
// connection as it opened is up, and the session ends HOST_ABORT.
func TestDialFailureReason(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	reset := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNRESET)}
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	for _, tt := range []struct {
		err  error
		want relayv1.CloseReason
	}{
		{refused, relayv1.CloseReason_CLOSE_REASON_BACKEND_UNAVAILABLE},
		{timeout, relayv1.CloseReason_CLOSE_REASON_BACKEND_UNAVAILABLE},
		{reset, relayv1.CloseReason_CLOSE_REASON_HOST_ABORT},
	} {
		if got := dialFailureReason(tt.err); got != tt.want {
			t.Errorf("dialFailureReason(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestInertFlags: a flag given that does nothing with the others
// (--warm-linger without --slot-credits, a forward flag with echo) is
// named, so that it can be said at start; one that acts is not.
func TestInertFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--warm-linger", "2s", "echo"}, "warm-linger"},
		{[]string{"--dial-timeout", "2s", "echo"}, "dial-timeout"},
		{[]string{"--backend-probe-interval", "1s", "echo"}, "backend-probe-interval"},
		{[]string{"--warm-linger", "2s", "--slot-credits", "echo"}, ""},
		{[]string{"--dial-timeout", "2s", "forward", "127.0.0.1:1"}, ""},
	} {
		o, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		got := ""
		for _, f := range o.inert {
			got += f[0]
		}
		if got != tc.want {
			t.Errorf("%q: inert flags %v, want %q", tc.args, o.inert, tc.want)
		}
	}
	t.Setenv("HOSTAGENT_WARM_LINGER", "2s") // from the environment too
	if o, err := parseFlags([]string{"echo"}, io.Discard); err != nil || len(o.inert) != 1 {
		t.Errorf("HOSTAGENT_WARM_LINGER without --slot-credits: inert %v, %v; want warm-linger", o.inert, err)
	}
}
