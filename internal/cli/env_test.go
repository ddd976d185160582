package cli_test

import (
	"errors"
	"flag"
	"io"
	"os"
	"slices"
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

// A mistake on the command line or in a variable is one line saying what
// was wanted, not the whole usage; -h still shows the usage.
func TestParseErrorsSayWhatWasWanted(t *testing.T) {
	newFS := func(out io.Writer) *flag.FlagSet {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(out)
		fs.Usage = func() { io.WriteString(out, "USAGE") }
		fs.Duration("wait", time.Second, "how long")
		fs.Int("count", 1, "how many")
		fs.Float64("rate", 1, "how fast")
		fs.Bool("on", false, "whether")
		return fs
	}
	for _, tt := range []struct {
		args []string
		env  string // X_WAIT
		want string
	}{
		{args: []string{"--wait", "10"}, want: `invalid value "10" for --wait: want a duration with a unit, such as 10s, 500ms or 1m30s`},
		{args: []string{"--count", "ten"}, want: `invalid value "ten" for --count: want a whole number`},
		{args: []string{"--rate", "fast"}, want: `invalid value "fast" for --rate: want a number`},
		{args: []string{"--on=maybe"}, want: `invalid value "maybe" for --on: want true or false`},
		{args: []string{"--nope"}, want: "flag provided but not defined: --nope (see -h for the flags)"},
		{args: []string{"--wait"}, want: "flag needs an argument: --wait (see -h for the flags)"},
		{args: []string{"-=x"}, want: "bad flag syntax: -=x (see -h for the flags)"},
		{env: "10", want: `X_WAIT="10" (for --wait): want a duration with a unit, such as 10s, 500ms or 1m30s`},
	} {
		if tt.env != "" {
			t.Setenv("X_WAIT", tt.env)
		} else {
			os.Unsetenv("X_WAIT")
		}
		var out strings.Builder
		err := cli.Parse(newFS(&out), "X", tt.args)
		if !errors.As(err, new(cli.UsageError)) || err.Error() != tt.want {
			t.Errorf("%v X_WAIT=%q: error %v, want a usage error %q", tt.args, tt.env, err, tt.want)
		}
		if out.Len() != 0 {
			t.Errorf("%v: printed %q besides the error, want nothing", tt.args, out.String())
		}
	}
	var out strings.Builder
	if err := cli.Parse(newFS(&out), "X", []string{"-h"}); !errors.Is(err, flag.ErrHelp) || out.String() != "USAGE" {
		t.Errorf("-h: error %v, printed %q; want flag.ErrHelp and the usage", err, out.String())
	}
}

// TestUnknownEnv: a variable with the program's prefix that sets no flag
// (a typo) is reported; flags' variables and the extra names are not.
func TestUnknownEnv(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("grpc-addr", "", "")
	t.Setenv("XTEST_GRPC_ADDR", "a")
	t.Setenv("XTEST_GRPC_ADR", "typo")
	t.Setenv("XTEST_TOKEN", "read elsewhere")
	t.Setenv("XTESTING", "another prefix")
	got := cli.UnknownEnv(fs, "XTEST", "XTEST_TOKEN")
	if len(got) != 1 || got[0] != "XTEST_GRPC_ADR" {
		t.Errorf("UnknownEnv = %q, want [XTEST_GRPC_ADR]", got)
	}
}

// repeatable is a list flag, which may be given many times.
type repeatable []string

func (r *repeatable) String() string     { return strings.Join(*r, ",") }
func (r *repeatable) Set(v string) error { *r = append(*r, v); return nil }
func (r *repeatable) Repeatable()        {}

// TestRepeated: a flag that takes one value, given twice, is reported (the
// last replaces the others); a Repeatable flag, a value that looks like a
// flag, and arguments after the flags are not.
func TestRepeated(t *testing.T) {
	newFS := func() *flag.FlagSet {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.String("relay", "", "where")
		fs.Bool("v", false, "verbose")
		fs.Var(new(repeatable), "label", "labels")
		return fs
	}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--relay", "a", "--relay", "b", "--relay", "c"}, []string{"relay"}},
		{[]string{"--relay=a", "-relay", "b", "echo"}, []string{"relay"}},
		{[]string{"-v", "-v=false", "--relay", "a"}, []string{"v"}},
		{[]string{"--label", "a=1", "--label", "b=2", "--relay", "a"}, nil},
		{[]string{"--relay", "--relay"}, nil}, // the value of --relay is "--relay"
		{[]string{"--relay", "a", "echo", "--relay", "b"}, nil},
		{[]string{"--relay", "a", "--", "--relay", "b"}, nil},
	} {
		fs := newFS()
		if err := cli.Parse(fs, "X", tt.args); err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		if got := cli.Repeated(fs, tt.args); !slices.Equal(got, tt.want) {
			t.Errorf("%q: Repeated = %q, want %q", tt.args, got, tt.want)
		}
	}
}
