package cli

import (
	"flag"
	"fmt"
	"os"
	"strings"
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
	if err := fs.Parse(args); err != nil {
		return err // flag.ErrHelp, or a UsageError made by the caller
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
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
				err = UsageError{Err: fmt.Errorf("%s=%q (for --%s): %v", name, v, f.Name, serr)}
				return
			}
		}
	})
	return err
}
