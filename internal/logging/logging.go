// Package logging builds the slog.Logger that relayd and hostagent share,
// from their --log-level and --log-format flags.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// New returns a logger writing to w. level is debug, info, warn or error;
// format is text or json.
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}

// Every runs a log call at most once a second, with the count of the calls
// it skipped since: for lines a peer can cause at will (a refused agent
// retrying with ten slots, a scan). The zero value is ready.
type Every struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

// Do calls log unless it was called less than a second ago.
func (e *Every) Do(log func(skipped int)) {
	e.mu.Lock()
	now := time.Now()
	if now.Sub(e.last) < time.Second {
		e.skipped++
		e.mu.Unlock()
		return
	}
	skipped := e.skipped
	e.last, e.skipped = now, 0
	e.mu.Unlock()
	log(skipped)
}
