package main

import (
	"strings"
	"testing"
	"time"
)

// TestReportWarnsOfDirectRTTSpread: when direct's round trip changes mode
// between passes (one CPU or two), the report says so, since every RTT
// ratio moves with it; when it does not, the report stays quiet.
func TestReportWarnsOfDirectRTTSpread(t *testing.T) {
	for _, tc := range []struct {
		direct []float64
		warn   bool
	}{
		{[]float64{46, 15, 60}, true},
		{[]float64{16, 17, 20}, false},
	} {
		r := &runner{
			cfg:     runConfig{reps: 3, links: []string{"plaintext"}},
			started: time.Now(),
			paths:   []*path{{name: "direct"}, {name: "relay"}},
			figs: map[string]*figure{figP50: {samples: map[string][]float64{
				"direct": tc.direct, "relay": {157, 152, 160},
			}}},
		}
		var out strings.Builder
		r.report(&out, "test")
		got := strings.Contains(out.String(), "Direct RTT p50 ranged")
		if got != tc.warn {
			t.Errorf("direct p50 samples %v: warning printed %v, want %v\n%s", tc.direct, got, tc.warn, out.String())
		}
		if tc.warn && !strings.Contains(out.String(), "ranged 15–60 µs") {
			t.Errorf("warning without the range:\n%s", out.String())
		}
	}
}
