package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/relayproject/relay/internal/cli"
)

// TestBadCommandLine: a command line the suite cannot run is a usage error
// (exit status 2) that says what is wrong, before anything is built or run.
func TestBadCommandLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no_command", []string{}, "no host command given"},
		{"only_dashes", []string{"--"}, "no host command given"},
		{"unknown_case", []string{"--run", "echo_small,nope", "--", "true"}, `unknown case "nope"`},
		// exit_on_sigterm always runs, and naming it is no error.
		{"exit_case_named", []string{"--run", "exit_on_sigterm,nope", "--", "true"}, `unknown case "nope"`},
		{"bad_timeout", []string{"--timeout", "0s", "--", "true"}, "--timeout must be positive"},
		{"unknown_flag", []string{"--frobnicate", "--", "true"}, "frobnicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := run(context.Background(), context.Background(), tt.args, io.Discard)
			if !errors.As(err, new(cli.UsageError)) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%q): got %v, want a usage error containing %q", tt.args, err, tt.want)
			}
		})
	}
}
