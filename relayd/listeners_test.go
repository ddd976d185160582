package main

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/relayproject/relay/internal/cli"
)

func TestListenFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // the listeners opened, ADDR=SERVICE,...
	}{
		{nil, ":8002=default"},
		{[]string{"--client-addr", "127.0.0.1:9"}, "127.0.0.1:9=default"},
		{[]string{"--listen", ":9000=web", "--listen", "[::1]:9001=db"}, ":9000=web,[::1]:9001=db"},
		{[]string{"--listen", ":9000=web", "--client-addr", ":8002"}, ":8002=default,:9000=web"},
		{[]string{"--listen", ":9000=web", "--listen", ":9001=web"}, ":9000=web,:9001=web"},
	} {
		o, err := parseFlags(tt.args, io.Discard)
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		var got []string
		for _, l := range o.clientListeners() {
			got = append(got, l.addr+"="+l.service)
		}
		if strings.Join(got, ",") != tt.want {
			t.Errorf("%q: listeners %s, want %s", tt.args, strings.Join(got, ","), tt.want)
		}
	}
	// One address for two listeners is a usage error naming both.
	for _, args := range [][]string{
		{"--listen", "127.0.0.1:9000=web", "--listen", "127.0.0.1:9000=db"},
		{"--client-addr", ":9000", "--listen", ":9000=web"},
		{"--grpc-addr", "127.0.0.1:9000", "--admin-addr", "127.0.0.1:9000"},
		{"--metrics-addr", "127.0.0.1:9000", "--pprof-addr", "127.0.0.1:9000"},
		{"--admin-addr", "127.0.0.1:8000"}, // --grpc-addr's default, :8000, is every address
		{"--grpc-addr", "0.0.0.0:9000", "--metrics-addr", "localhost:9000"},
		{"--grpc-addr", "localhost:9000", "--metrics-addr", "127.0.0.1:9000"},
		{"--grpc-addr", "[::]:9000", "--listen", "[::1]:9000=web"},
		{"--grpc-addr", "127.0.0.1:09000", "--metrics-addr", "127.0.0.1:9000"},
		{"--grpc-addr", "127.0.0.1:9000", "--admin-addr", "[::ffff:127.0.0.1]:9000"},
	} {
		_, err := parseFlags(args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "is taken by") {
			t.Errorf("%q: %v, want an error naming both listeners", args, err)
		}
	}
	_, err := parseFlags([]string{"--client-addr", "127.0.0.1:9000", "--listen", "127.0.0.1:9000=default"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--listen 127.0.0.1:9000=default: port 9000 is taken by --client-addr") {
		t.Errorf("--client-addr and --listen on one port: %v, want the error to name both flags", err)
	}
	for _, args := range [][]string{
		{"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--client-addr", "127.0.0.1:0"}, // the kernel picks
		{"--grpc-addr", "127.0.0.1:9000", "--admin-addr", "127.0.0.2:9000", "--client-addr", "[::1]:9000"},
	} {
		if _, err := parseFlags(args, io.Discard); err != nil {
			t.Errorf("%q: %v, want distinct listeners", args, err)
		}
	}
	for _, bad := range []struct{ arg, want string }{
		{"9000=web", "want HOST:PORT"},
		{":9000", "want ADDR=SERVICE"},
		{":9000=", "want 1 to 128 characters"},
		{":9000=we b", "only letters, digits"},
		{":9000=" + strings.Repeat("x", 129), "want 1 to 128 characters"},
	} {
		_, err := parseFlags([]string{"--listen", bad.arg}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("--listen %q: %v, want an error containing %q", bad.arg, err, bad.want)
		}
	}
}

// TestListenFromEnvironment: RELAYD_LISTEN holds a comma-separated list of
// ADDR=SERVICE, as --listen may be repeated.
func TestListenFromEnvironment(t *testing.T) {
	t.Setenv("RELAYD_LISTEN", ":9000=web, [::1]:9001=db")
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range o.clientListeners() {
		got = append(got, l.addr+"="+l.service)
	}
	if want := ":9000=web,[::1]:9001=db"; strings.Join(got, ",") != want {
		t.Errorf("RELAYD_LISTEN: listeners %s, want %s", strings.Join(got, ","), want)
	}
	// The command line wins over the variable, as for every flag.
	o, err = parseFlags([]string{"--listen", ":9002=api"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.listens) != 1 || o.listens[0].addr != ":9002" {
		t.Errorf("--listen with RELAYD_LISTEN set: %v, want only :9002=api", o.listens)
	}
}

// TestListenAddrsChecked: an address flag whose port net.Listen would
// refuse was found only when listening, an exit status 1 that blamed no
// flag; it is a usage error (exit status 2) naming the flag and the value.
// Port 0 (the kernel picks) and an empty host stay allowed.
func TestListenAddrsChecked(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--grpc-addr", "127.0.0.1:99999"}, `--grpc-addr "127.0.0.1:99999": port "99999" is not a number from 0 to 65535`},
		{[]string{"--grpc-addr", "127.0.0.1:abc"}, `--grpc-addr "127.0.0.1:abc": port "abc" is not a number from 0 to 65535`},
		{[]string{"--admin-addr", "127.0.0.1:65536"}, `--admin-addr "127.0.0.1:65536": port "65536"`},
		{[]string{"--client-addr", "127.0.0.1:-1"}, `--client-addr "127.0.0.1:-1": port "-1"`},
		{[]string{"--client-addr", ":http"}, `--client-addr ":http": port "http"`},
		{[]string{"--listen", "127.0.0.1:70000=web"}, `for --listen: ADDR "127.0.0.1:70000": port "70000" is not a number from 0 to 65535`},
		{[]string{"--metrics-addr", "127.0.0.1:99999"}, `--metrics-addr "127.0.0.1:99999": port "99999"`},
		{[]string{"--pprof-addr", "foo"}, `--pprof-addr "foo": address foo: missing port in address (want HOST:PORT or :PORT)`},
		{[]string{"--pprof-addr", "127.0.0.1:99999"}, `--pprof-addr "127.0.0.1:99999": port "99999"`},
	} {
		_, err := parseFlags(tt.args, io.Discard)
		if !errors.As(err, new(cli.UsageError)) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want a usage error containing %s", tt.args, err, tt.want)
		}
	}
	for _, args := range [][]string{
		{"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--client-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--pprof-addr", "127.0.0.1:0"},
		{"--grpc-addr", ":9000", "--listen", ":9001=web", "--metrics-addr", ":9002", "--pprof-addr", "[::1]:9003"},
	} {
		if _, err := parseFlags(args, io.Discard); err != nil {
			t.Errorf("%q: %v, want it taken", args, err)
		}
	}
}
