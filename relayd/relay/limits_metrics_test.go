package relay_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/relayd/relay"
)

// TestLimitHitsMetric: a limit hit shows in relay_limit_hits_total, with
// every limit present (at zero) before it is hit.
func TestLimitHitsMetric(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{MaxSlotsPerHost: 1})
	reg := prometheus.NewRegistry()
	if err := tr.r.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	const want0 = `
# HELP relay_limit_hits_total Times a safety limit refused or ended something, by limit (clients over a limit are also in relay_clients_rejected_total).
# TYPE relay_limit_hits_total counter
relay_limit_hits_total{limit="accept_error"} 0
relay_limit_hits_total{limit="claim_timeout"} 0
relay_limit_hits_total{limit="hello_timeout"} 0
relay_limit_hits_total{limit="max_agent_conns"} 0
relay_limit_hits_total{limit="max_agent_conns_per_ip"} 0
relay_limit_hits_total{limit="max_clients"} 0
relay_limit_hits_total{limit="max_clients_per_ip"} 0
relay_limit_hits_total{limit="max_credits"} 0
relay_limit_hits_total{limit="max_health_watchers"} 0
relay_limit_hits_total{limit="max_slots_per_conn"} 0
relay_limit_hits_total{limit="max_slots_per_host"} %d
relay_limit_hits_total{limit="max_watchers"} 0
relay_limit_hits_total{limit="queue_full"} 0
relay_limit_hits_total{limit="rate_limited"} 0
relay_limit_hits_total{limit="idle_timeout"} 0
`
	check := func(n string) {
		t.Helper()
		if err := testutil.GatherAndCompare(reg, strings.NewReader(strings.Replace(want0, "%d", n, 1)), "relay_limit_hits_total"); err != nil {
			t.Error(err)
		}
	}
	check("0")
	first := tr.attach(t)
	first.hello(helloFrame("default", "h").GetHello())
	second := tr.attach(t)
	second.send(helloFrame("default", "h"))
	second.expectEnd(codes.ResourceExhausted)
	check("1")
}

// TestNewStreamWhileDrainingGetsDrain: a stream opened while the relay
// drains is told Drain (go elsewhere for a while) and ends OK, rather than
// failing with UNAVAILABLE, which agents count as a relay failure.
func TestNewStreamWhileDrainingGetsDrain(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{})
	if !tr.r.Drain(context.Background()) {
		t.Fatal("Drain with no session did not finish")
	}
	h := tr.attach(t)
	h.send(helloFrame("default", "late"))
	if d := h.recv().GetDrain(); d == nil || d.GetReason() != relayv1.DrainReason_DRAIN_REASON_SHUTDOWN || d.GetRetryAfter().AsDuration() <= 0 {
		t.Fatalf("answer = %v, want Drain{SHUTDOWN, retry_after > 0}", d)
	}
	h.expectEnd(codes.OK)
}

// TestSeriesAtZeroFromStart: every outcome of relay_sessions_total and
// every reason of relay_clients_rejected_total is there, at 0, before the
// first session or rejection: a rate() alert has no data for a series
// until it exists, and missed the first (QA).
func TestSeriesAtZeroFromStart(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{})
	reg := prometheus.NewRegistry()
	if err := tr.r.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetCounter().GetValue() == 0 {
				series[mf.GetName()]++
			}
		}
	}
	// Each close reason but UNSPECIFIED, and clean; 6 reasons a client is
	// turned away; 2 directions.
	for name, want := range map[string]int{"relay_sessions_total": len(relayv1.CloseReason_name), "relay_clients_rejected_total": 6, "relay_relayed_bytes_total": 2} {
		if series[name] != want {
			t.Errorf("%s: %d series at 0 before any session, want %d", name, series[name], want)
		}
	}
}
