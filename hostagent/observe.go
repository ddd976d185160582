package main

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/relayproject/relay/hostagent/agent"
	"github.com/relayproject/relay/internal/metricshttp"
)

// agentMetrics are hostagent's Prometheus metrics. The agent's own counts
// are read from agent.Stats at scrape time; only backend dial errors are
// counted here, once per failed dial. Kept apart from run so that run stays
// about flags and the session loop.
type agentMetrics struct {
	dialErrors prometheus.Counter
	backendUp  func() bool // forward: the backend answered the last dial; nil in echo mode
}

func newAgentMetrics() *agentMetrics {
	return &agentMetrics{dialErrors: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hostagent_backend_dial_errors_total",
		Help: "forward: connections to the local server that failed; each aborted its session.",
	})}
}

// relayCollector gives each relay address its own series (the relay
// label): the summed gauges cannot tell which of several relays is down
// (QA: with one of two relays unreachable for good, the idle slots only
// dropped, as under load). The label's values are the agent's relay
// addresses: --relay entries, or the addresses their names resolve to.
type relayCollector struct{ l *agent.Listener }

var (
	relayUpDesc = prometheus.NewDesc("hostagent_relay_up",
		"1 if this relay address welcomed the agent and nothing failed there since, or only its slot cap refuses more, or (with no slot to try there yet, or lost and not tried again) a connection to it is up; 0 while attempts there fail (unreachable, TLS, tokens, a refused Hello), while it drains the agent, and for an address not reached.", []string{"relay"}, nil)
	relayIdleDesc = prometheus.NewDesc("hostagent_relay_idle_slots",
		"Slots (or credits) attached to this relay address and waiting for a client.", []string{"relay"}, nil)
	relayActiveDesc = prometheus.NewDesc("hostagent_relay_active_sessions",
		"Sessions open now through this relay address.", []string{"relay"}, nil)
	relayFailuresDesc = prometheus.NewDesc("hostagent_relay_failures",
		"Attempts on this relay address that failed in a row since its last welcome (0 once it welcomes a slot again); refusals at its slot cap are not counted (hostagent_relay_capped).", []string{"relay"}, nil)
	relayCappedDesc = prometheus.NewDesc("hostagent_relay_capped",
		"1 if this relay address's slot cap (relayd --max-slots-per-host or --max-slots-per-conn) holds the agent's slots below what it would open now.", []string{"relay"}, nil)
)

func (relayCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- relayUpDesc
	ch <- relayIdleDesc
	ch <- relayActiveDesc
	ch <- relayFailuresDesc
	ch <- relayCappedDesc
}

func (c relayCollector) Collect(ch chan<- prometheus.Metric) {
	one := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, r := range c.l.Relays() {
		ch <- prometheus.MustNewConstMetric(relayUpDesc, prometheus.GaugeValue, one(r.Up), r.Addr)
		ch <- prometheus.MustNewConstMetric(relayCappedDesc, prometheus.GaugeValue, one(r.Capped), r.Addr)
		ch <- prometheus.MustNewConstMetric(relayIdleDesc, prometheus.GaugeValue, float64(r.IdleSlots), r.Addr)
		ch <- prometheus.MustNewConstMetric(relayActiveDesc, prometheus.GaugeValue, float64(r.ActiveSessions), r.Addr)
		ch <- prometheus.MustNewConstMetric(relayFailuresDesc, prometheus.GaugeValue, float64(r.Failures), r.Addr)
	}
}

// serve registers the metrics of l and serves /metrics on addr; it returns
// nil when addr is empty (metrics off).
func (m *agentMetrics) serve(addr string, l *agent.Listener) (*metricshttp.Server, error) {
	if addr == "" {
		return nil, nil
	}
	reg := prometheus.NewRegistry()
	gauge := func(name, help string, f func(agent.Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(l.Stats()) })
	}
	counter := func(name, help string, f func(agent.Stats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(l.Stats()) })
	}
	all := []prometheus.Collector{
		m.dialErrors,
		gauge("hostagent_idle_slots", "Slots attached to a relay and waiting for a client, over all relays.",
			func(s agent.Stats) float64 { return float64(s.IdleSlots) }),
		gauge("hostagent_active_sessions", "Sessions open now.",
			func(s agent.Stats) float64 { return float64(s.ActiveSessions) }),
		counter("hostagent_sessions_total", "Sessions opened since start.",
			func(s agent.Stats) float64 { return float64(s.SessionsTotal) }),
		counter("hostagent_reconnects_total", "Times a relay failed and the agent backed off before trying it again.",
			func(s agent.Stats) float64 { return float64(s.Reconnects) }),
		counter("hostagent_streams_opened_total", "Attach streams opened since start; with sequential sessions a stream carries several sessions, one after another.",
			func(s agent.Stats) float64 { return float64(s.StreamsOpened) }),
		gauge("hostagent_relays_capped", "Relays whose slot cap (relayd --max-slots-per-host or --max-slots-per-conn) holds this agent's slots below what it would open now; it asks past the cap once per backoff.",
			func(s agent.Stats) float64 { return float64(s.CappedRelays) }),
		counter("hostagent_drains_total", "Times a relay drained this agent (Drain) and it paused offering slots there; a drain that lasts (an operator's DrainHost, answered again at each retry) counts once.",
			func(s agent.Stats) float64 { return float64(s.Drains) }),
		relayCollector{l},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	if m.backendUp != nil {
		all = append(all, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hostagent_backend_up",
			Help: "forward: 0 if the last dial of the local server (a session's, or a probe's in an outage) failed, else 1; while 0 the agent offers no slots (see --backend-probe-interval).",
		}, func() float64 {
			if m.backendUp() {
				return 1
			}
			return 0
		}))
	}
	for _, c := range all {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	s, err := metricshttp.Listen(addr, reg)
	if err != nil && strings.Contains(err.Error(), "address already in use") {
		err = fmt.Errorf("%w (see --metrics-addr)", err)
	}
	return s, err
}
