package main

import (
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/relayproject/relay/internal/cli"
)

// FuzzParseFlags: whatever the address and limit flags hold, parseFlags
// returns options that are usable or a usage error; it never panics and
// never accepts an address net.Listen could not parse or
// whose port is not a number from 0 to 65535.
func FuzzParseFlags(f *testing.F) {
	f.Add(":8000", "127.0.0.1:8001", ":8002", "10s", "100", "500")
	f.Add("[::1]:0", "localhost:0", "0.0.0.0:1", "1h", "0", "0.5")
	f.Add("8000", "", "host:port:extra", "-1s", "-3", "NaN")
	f.Add("[::1", "1.2.3.4:", "::", "soon", "1e99", "+Inf")
	f.Add(":8000", "127.0.0.1:8001", ":8002", "1s", "10", "NaN")
	f.Fuzz(func(t *testing.T, grpcAddr, adminAddr, clientAddr, timeout, maxSessions, rate string) {
		args := []string{
			"--grpc-addr", grpcAddr, "--admin-addr", adminAddr, "--client-addr", clientAddr,
			"--idle-timeout", timeout, "--max-sessions", maxSessions, "--client-rate", rate,
		}
		o, err := parseFlags(args, io.Discard)
		if err != nil {
			if !errors.As(err, new(cli.UsageError)) && !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("parseFlags(%q) = %v, not a usage error", args, err)
			}
			return
		}
		for _, a := range []string{o.grpcAddr, o.adminAddr, o.clientAddr} {
			_, port, err := net.SplitHostPort(a)
			if err != nil {
				t.Fatalf("accepted address %q: %v", a, err)
			}
			if _, err := strconv.ParseUint(port, 10, 16); err != nil {
				t.Fatalf("accepted address %q, whose port net.Listen would refuse or look up", a)
			}
		}
		if o.sec.idleTimeout < 0 || o.sec.maxSessions < 0 || !(o.sec.clientRate >= 0) {
			t.Fatalf("accepted a negative limit: %+v", o.sec)
		}
	})
}

func TestRateMustBeANumber(t *testing.T) {
	for _, rate := range []string{"NaN", "+Inf", "-1"} {
		if _, err := parseFlags([]string{"--client-rate", rate}, io.Discard); !errors.As(err, new(cli.UsageError)) {
			t.Errorf("--client-rate %s: %v, want a usage error", rate, err)
		}
	}
}

// TestRelayIDChecked: a relay id given on purpose, from a flag or the
// environment, is one a Welcome and a log can carry; an empty one is a
// mistake, not a request for the default.
func TestRelayIDChecked(t *testing.T) {
	for _, tc := range []struct {
		env  bool
		id   string
		want string // in the error; "" means accepted
	}{
		{id: "eu-west-1", want: ""},
		{id: "relay é 1", want: ""},
		{id: "", want: "must not be empty"},
		{env: true, id: "", want: "RELAYD_RELAY_ID"},
		{id: strings.Repeat("r", 129), want: "at most 128"},
		{id: "bad\xffid", want: "UTF-8"},
		{id: "two\nlines", want: "control character"},
	} {
		args := []string{"--relay-id", tc.id}
		if tc.env {
			t.Setenv("RELAYD_RELAY_ID", tc.id)
			args = nil
		}
		o, err := parseFlags(args, io.Discard)
		if tc.want == "" {
			if err != nil || o.relayID != tc.id {
				t.Errorf("relay id %q: %v, want it accepted", tc.id, err)
			}
			continue
		}
		if !errors.As(err, new(cli.UsageError)) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("relay id %q (env %v): %v, want a usage error with %q", tc.id, tc.env, err, tc.want)
		}
	}
	os.Unsetenv("RELAYD_RELAY_ID") // t.Setenv restores it after the test
	if o, err := parseFlags(nil, io.Discard); err != nil || o.relayID != "" {
		t.Errorf("no relay id: %v, %q; want it left for the default", err, o.relayID)
	}
}
