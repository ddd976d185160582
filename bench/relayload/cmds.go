package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

func cmdBulk(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bulk", stderr)
	target := fs.String("target", "", "loopback `address` of an echo service (required)")
	conns := fs.Int("conns", 1, "concurrent connections")
	mib := fs.Int("mib", 256, "MiB each connection sends (and reads back)")
	limit := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkTarget(*target); err != nil {
		return err
	}
	if *conns < 1 || *conns > 10000 || *mib < 1 || *mib > 1<<20 {
		return usageError{fmt.Errorf("--conns must be in [1, 10000] and --mib in [1, 1048576]")}
	}
	r, err := runBulk(ctx, *target, *conns, int64(*mib)<<20, *limit)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "bulk %d conns: %d bytes each way in %v: %.0f MB/s (payload, one way; every byte verified)\n",
		r.Conns, r.Bytes, r.Elapsed.Round(time.Millisecond), r.MBps())
	return nil
}

func cmdRTT(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rtt", stderr)
	target := fs.String("target", "", "loopback `address` of an echo service (required)")
	count := fs.Int("count", 5000, "measured round trips")
	warmup := fs.Int("warmup", 200, "round trips before measuring")
	size := fs.Int("size", 64, "bytes per round trip")
	limit := fs.Duration("timeout", time.Minute, "give up after this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkTarget(*target); err != nil {
		return err
	}
	if *count < 1 || *count > 10_000_000 || *warmup < 0 || *size < 1 || *size > 1<<20 {
		return usageError{fmt.Errorf("--count in [1, 1e7], --warmup ≥ 0, --size in [1, 1048576]")}
	}
	r, err := runRTT(ctx, *target, *count, *warmup, *size, *limit)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rtt %d × %d bytes: p50 %.0f µs, p99 %.0f µs\n", r.Count, *size, us(r.P50), us(r.P99))
	return nil
}

func cmdRate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rate", stderr)
	target := fs.String("target", "", "loopback `address` of an echo service (required)")
	workers := fs.Int("workers", 4, "concurrent clients")
	count := fs.Int("count", 20000, "stop after this many sessions")
	duration := fs.Duration("duration", 3*time.Second, "stop after this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkTarget(*target); err != nil {
		return err
	}
	if *workers < 1 || *workers > 256 || *count < 1 || *duration <= 0 || *duration > 10*time.Minute {
		return usageError{fmt.Errorf("--workers in [1, 256], --count ≥ 1, --duration in (0, 10m]")}
	}
	r, err := runRate(ctx, *target, *workers, *count, *duration)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rate: %d sessions in %v: %.0f sessions/s\n", r.Sessions, r.Elapsed.Round(time.Millisecond), r.PerSecond())
	return nil
}

func cmdHold(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("hold", stderr)
	target := fs.String("target", "", "loopback `address` of an echo service (required)")
	conns := fs.Int("conns", 1000, "connections to open and hold")
	workers := fs.Int("workers", 8, "concurrent dialers")
	hold := fs.Duration("for", 0, "hold this long after the last connection is verified (0: report and close)")
	pidList := fs.String("pids", "", "comma-separated `PIDs` whose VmRSS is reported before and after")
	limit := fs.Duration("timeout", 2*time.Minute, "give up opening after this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkTarget(*target); err != nil {
		return err
	}
	if *conns < 1 || *conns > 100000 || *workers < 1 || *workers > 256 || *hold < 0 || *hold > time.Hour {
		return usageError{fmt.Errorf("--conns in [1, 100000], --workers in [1, 256], --for in [0, 1h]")}
	}
	var pids []int
	for s := range strings.SplitSeq(*pidList, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		pid, err := strconv.Atoi(s)
		if err != nil {
			return usageError{fmt.Errorf("--pids: %v", err)}
		}
		pids = append(pids, pid)
	}
	before, err := sumRSS(pids)
	if err != nil {
		return err
	}
	t0 := time.Now()
	h, err := runHold(ctx, *target, *conns, *workers, *limit)
	if err != nil {
		return err
	}
	defer h.Close()
	fmt.Fprintf(stdout, "hold: %d connections open and verified in %v\n", *conns, time.Since(t0).Round(time.Millisecond))
	if len(pids) > 0 {
		after, err := sumRSS(pids)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "hold: RSS of %v: %d → %d KiB, %.1f KiB per connection\n", pids, before, after, float64(after-before)/float64(*conns))
	}
	if *hold > 0 {
		t := time.NewTimer(*hold)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return nil
}

func checkTarget(target string) error {
	if target == "" {
		return usageError{fmt.Errorf("--target is required")}
	}
	return checkLoopback(target)
}

// sumRSS returns the total VmRSS of pids, in KiB.
func sumRSS(pids []int) (int64, error) {
	var total int64
	for _, pid := range pids {
		kib, err := rssKiB(pid)
		if err != nil {
			return 0, err
		}
		total += kib
	}
	return total, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
