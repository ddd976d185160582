package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/relayproject/relay/internal/cli"
	"github.com/relayproject/relay/internal/names"
)

// FuzzParseFlags: whatever --relay, --label and the mode argument hold,
// parseFlags returns relays net.Dial can parse or a usage error.
func FuzzParseFlags(f *testing.F) {
	f.Add("localhost:8000", "k=v", "forward", "127.0.0.1:8080")
	f.Add("a:1, b:2,,", "=v", "echo", "")
	f.Add("[::1]:8000", "k", "forward", "nohostport")
	f.Add("", "", "", "")
	f.Fuzz(func(t *testing.T, relays, label, mode, target string) {
		args := []string{"--relay", relays, "--label", label, mode}
		if target != "" {
			args = append(args, target)
		}
		o, err := parseFlags(args, io.Discard)
		if err != nil {
			if !errors.As(err, new(cli.UsageError)) && !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("parseFlags(%q) = %v, not a usage error", args, err)
			}
			return
		}
		if len(o.relays) == 0 {
			t.Fatal("no relay accepted without an error")
		}
		if err := names.Labels(o.labels); err != nil {
			t.Fatalf("accepted labels the relay refuses: %v", err)
		}
		for _, r := range o.relays {
			if _, _, err := net.SplitHostPort(r); err != nil || strings.TrimSpace(r) != r {
				t.Fatalf("accepted relay %q", r)
			}
		}
		if o.mode == "forward" {
			if _, _, err := net.SplitHostPort(o.target); err != nil {
				t.Fatalf("accepted forward target %q", o.target)
			}
		}
	})
}

// TestHelloFlagsChecked: --host-id and --label are checked as the relay
// checks a Hello, so a mistake is a usage error at start, not an attach
// refused at each retry (a host id that is not UTF-8 did not even marshal,
// and was logged as "relay refused the slot"); an empty --host-id given on
// purpose is an error, not the hostname.
func TestHelloFlagsChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string // HOSTAGENT_HOST_ID, if set
		want string // in the error; "" means accepted
	}{
		{args: []string{"--host-id", "web-1", "--label", "zone=eu west"}},
		{args: []string{"--host-id", ""}, want: "must not be empty"},
		{env: " ", want: "HOSTAGENT_HOST_ID"},
		{args: []string{"--host-id", "a\xffb"}, want: "UTF-8"},
		{args: []string{"--host-id", strings.Repeat("h", 257)}, want: "at most 256"},
		{args: []string{"--label", "k=two\nlines"}, want: "control character"},
		{args: []string{"--label", strings.Repeat("k", 257) + "=v"}, want: "label key"},
	} {
		if tc.env != "" {
			t.Setenv("HOSTAGENT_HOST_ID", strings.TrimSpace(tc.env))
		}
		o, err := parseFlags(append(tc.args, "echo"), io.Discard)
		if tc.want == "" {
			if err != nil || o.hostID != "web-1" || o.labels["zone"] != "eu west" {
				t.Errorf("%q: %v, want it accepted", tc.args, err)
			}
			continue
		}
		if !errors.As(err, new(cli.UsageError)) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q (env %q): %v, want a usage error with %q", tc.args, tc.env, err, tc.want)
		}
	}
	os.Unsetenv("HOSTAGENT_HOST_ID") // t.Setenv restores it after the test
	var args []string
	for i := range names.MaxLabels + 1 {
		args = append(args, "--label", fmt.Sprintf("k%d=v", i))
	}
	if _, err := parseFlags(append(args, "echo"), io.Discard); !errors.As(err, new(cli.UsageError)) || !strings.Contains(err.Error(), "65 labels") {
		t.Errorf("65 labels: %v, want a usage error", err)
	}
}

// TestLinkSecurity: plaintext only to loopback relays or with --insecure;
// TLS whenever a TLS flag is given.
func TestLinkSecurity(t *testing.T) {
	for _, tt := range []struct {
		sec   securityOptions
		relay string
		want  string
	}{
		{securityOptions{}, "localhost:8000", "plaintext"},
		{securityOptions{}, "127.0.0.1:8000", "plaintext"},
		{securityOptions{}, "[::1]:8000", "plaintext"},
		{securityOptions{}, "relay.example.com:8000", "tls"},
		{securityOptions{}, "10.1.2.3:8000", "tls"},
		{securityOptions{insecure: true}, "relay.example.com:8000", "plaintext"},
		{securityOptions{tlsCA: "ca.pem"}, "localhost:8000", "tls"},
		{securityOptions{tlsServerName: "relay"}, "127.0.0.1:8000", "tls"},
		{securityOptions{tlsCert: "c.pem", tlsKey: "k.pem"}, "relay.example.com:8000", "mtls"},
	} {
		if got := tt.sec.linkDescription(tt.relay); got != tt.want {
			t.Errorf("%+v to %s: %s, want %s", tt.sec, tt.relay, got, tt.want)
		}
	}
	// dialOptions decides with linkDescription; what it adds is the
	// credentials and, when there is one, the token.
	s := securityOptions{}
	dialFor, _, _, err := s.dialOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(dialFor("relay.example.com:8000")); n != 1 {
		t.Errorf("%d dial options without a token, want 1 (the credentials)", n)
	}
	t.Setenv(tokenEnv, "0123456789abcdef-token")
	dialFor, _, _, err = s.dialOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(dialFor("localhost:8000")); n != 2 {
		t.Errorf("%d dial options with a token, want 2 (credentials and the token)", n)
	}
}

// TestTokenFromEnvChecked: a $HOSTAGENT_TOKEN that no gRPC header can carry
// is a usage error at start, naming the variable; before, the agent
// started, and grpc-go refused every attempt with "relay refused the slot".
func TestTokenFromEnvChecked(t *testing.T) {
	t.Setenv(tokenEnv, "anytökenBBBBBBBBBBBBBBBBBBBBBBB")
	_, err := (&securityOptions{}).token()
	if !errors.As(err, new(cli.UsageError)) || !strings.Contains(err.Error(), "$HOSTAGENT_TOKEN: the token has a character that is not printable ASCII") {
		t.Errorf("token() = %v, want a usage error naming $HOSTAGENT_TOKEN", err)
	}
	t.Setenv(tokenEnv, "token-one-0123456789\ntoken-two-0123456789")
	if _, err := (&securityOptions{}).token(); err == nil || !strings.Contains(err.Error(), "white space or a control character at byte 21") {
		t.Errorf("two tokens: token() = %v, want an error naming the white space", err)
	}
	// As in a token file, a byte-order mark and surrounding white space are
	// not part of the token.
	t.Setenv(tokenEnv, "\ufeff  plain-token-0123456789  ")
	if tok, err := (&securityOptions{}).token(); err != nil || tok != "plain-token-0123456789" {
		t.Errorf("token() = %q, %v", tok, err)
	}
}
