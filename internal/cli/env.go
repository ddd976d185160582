package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// EnvName is the environment variable that may set flag name of the
// program whose variables start with prefix: ("RELAYD", "grpc-addr") →
// RELAYD_GRPC_ADDR.
func EnvName(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Repeatable is implemented by the value of a flag that may be given more
// than once (--listen, --label): its variable holds a comma-separated list,
// each item set as if the flag were given once for it.
type Repeatable interface {
	flag.Value
	Repeatable()
}

// Parse parses args into fs after taking every flag not given on the
// command line from its environment variable (see EnvName): a flag on the
// command line wins. Each flag's usage names its variable, so -h shows both.
// A bad value in a variable is a UsageError that names the variable.
func Parse(fs *flag.FlagSet, prefix string, args []string) error {
	fs.VisitAll(func(f *flag.Flag) {
		f.Usage += " (env " + EnvName(prefix, f.Name) + ")"
	})
	// The flag package prints the whole usage after any mistake, which
	// buries the one line that matters: print it only for -h, and make the
	// mistake say what was wanted.
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(out)
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
		return err
	}
	if err != nil {
		return UsageError{Err: explainParseError(fs, err)}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		name := EnvName(prefix, f.Name)
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		items := []string{v}
		if _, ok := f.Value.(Repeatable); ok {
			items = items[:0]
			for item := range strings.SplitSeq(v, ",") {
				if item = strings.TrimSpace(item); item != "" {
					items = append(items, item)
				}
			}
		}
		for _, item := range items {
			if serr := fs.Set(f.Name, item); serr != nil {
				err = UsageError{Err: fmt.Errorf("%s=%q (for --%s): %s", name, v, f.Name, explainValueError(f, serr))}
				return
			}
		}
	})
	return err
}

// invalidValue is how the flag package reports a value its flag rejected.
var invalidValue = regexp.MustCompile(`^invalid (?:boolean )?value (".*") for (?:flag )?-([^:]+): (.*)$`)

// explainParseError rewrites the flag package's errors to name flags as
// the help does (--name) and to say what a rejected value should be.
func explainParseError(fs *flag.FlagSet, err error) error {
	m := invalidValue.FindStringSubmatch(err.Error())
	if m == nil {
		msg := err.Error()
		for _, prefix := range []string{"flag provided but not defined: -", "flag needs an argument: -"} {
			if strings.HasPrefix(msg, prefix) {
				msg = prefix + "-" + msg[len(prefix):] // named as -h names it: --name
			}
		}
		return fmt.Errorf("%s (see -h for the flags)", msg)
	}
	f := fs.Lookup(m[2])
	if f == nil {
		return err
	}
	return fmt.Errorf("invalid value %s for --%s: %s", m[1], f.Name, explainValueError(f, errors.New(m[3])))
}

// explainValueError says what f wants when its value was rejected: the
// flag package's own reason for a number or a duration is "parse error".
func explainValueError(f *flag.Flag, err error) string {
	msg := err.Error()
	if msg != "parse error" && !strings.HasPrefix(msg, "time: ") {
		return msg
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return msg
	}
	switch g.Get().(type) {
	case time.Duration:
		return "want a duration with a unit, such as 10s, 500ms or 1m30s"
	case int, int64, uint, uint64:
		return "want a whole number"
	case float64:
		return "want a number"
	case bool:
		return "want true or false"
	}
	return msg
}

// UnknownEnv returns the variables of the environment that start with
// prefix and an underscore but set no flag of fs and are not among extra
// (a variable read elsewhere, such as a token): most likely typos, which
// would otherwise be ignored without a word.
func UnknownEnv(fs *flag.FlagSet, prefix string, extra ...string) []string {
	known := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { known[EnvName(prefix, f.Name)] = true })
	for _, e := range extra {
		known[e] = true
	}
	var unknown []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, prefix+"_") && !known[name] {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	return unknown
}

// Repeated returns the flags of fs that args give more than once and that
// are not Repeatable: each takes one value, and the last replaces the
// others, which a caller should say (a script that adds its own defaults
// before a user's flags relies on it). It reads args as the flag package
// does: up to "--" or the first argument that is not a flag.
func Repeated(fs *flag.FlagSet, args []string) []string {
	seen := map[string]int{}
	var repeated []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			break
		}
		name, dashes := strings.CutPrefix(a, "--")
		if !dashes {
			name = a[1:]
		}
		name, _, hasValue := strings.Cut(name, "=")
		f := fs.Lookup(name)
		if f == nil {
			break // the flag package refuses it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !hasValue && !(ok && b.IsBoolFlag()) {
			i++ // its value is the next argument
		}
		if _, ok := f.Value.(Repeatable); ok {
			continue
		}
		if seen[name]++; seen[name] == 2 {
			repeated = append(repeated, name)
		}
	}
	return repeated
}
