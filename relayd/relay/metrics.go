package relay

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relayproject/relay/clientbridge"
	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// metrics are the relay's Prometheus counters and histograms. They are
// updated once per session, per rejected client or per assignment, never
// per byte: bytes are added when a session ends. The gauges (sessions
// active, idle slots, hosts, pending clients) are read from the relay's own
// state at scrape time, so the hot path pays nothing for them.
//
// A nil *metrics does nothing, for relays built without a registry.
type metrics struct {
	sessions   *prometheus.CounterVec   // service, outcome
	assignWait *prometheus.HistogramVec // service
	duration   *prometheus.HistogramVec // service
	bytes      *prometheus.CounterVec   // service, direction
	rejects    *prometheus.CounterVec   // service, reason
}

// RegisterMetrics registers the relay's metrics with reg. Call it once,
// before the relay serves.
func (r *Relay) RegisterMetrics(reg prometheus.Registerer) error {
	m := &metrics{
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_sessions_total",
			Help: "Sessions ended, by service and outcome (clean, or the abort reason).",
		}, []string{"service", "outcome"}),
		assignWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "relay_assign_wait_seconds",
			Help:    "How long a client waited, from accept to its session's Open.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"service"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "relay_session_duration_seconds",
			Help:    "How long sessions were open.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12), // 1ms .. ~70min
		}, []string{"service"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_relayed_bytes_total",
			Help: "Bytes delivered by ended sessions, by direction (to_host: from clients; from_host: to clients).",
		}, []string{"service", "direction"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_clients_rejected_total",
			Help: "Clients closed without a session, by reason.",
		}, []string{"service", "reason"}),
	}
	// Every series a service can have, at zero from the start: a rate()
	// or increase() alert has no data for a series until it exists, so
	// the first rejection or abort would go unseen (QA).
	for service := range r.services {
		m.sessions.WithLabelValues(service, "clean")
		for n := range relayv1.CloseReason_name {
			if n != int32(relayv1.CloseReason_CLOSE_REASON_UNSPECIFIED) {
				m.sessions.WithLabelValues(service, enumLabel(relayv1.CloseReason(n).String(), "CLOSE_REASON_"))
			}
		}
		m.bytes.WithLabelValues(service, "to_host")
		m.bytes.WithLabelValues(service, "from_host")
		for _, reason := range []string{clientbridge.RejectQueueFull, clientbridge.RejectTimeout, clientbridge.RejectShutdown,
			clientbridge.RejectMaxClients, clientbridge.RejectMaxClientsPerIP, clientbridge.RejectRateLimited} {
			m.rejects.WithLabelValues(service, reason)
		}
	}
	for _, c := range []prometheus.Collector{m.sessions, m.assignWait, m.duration, m.bytes, m.rejects, gauges{r}} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	r.metrics = m
	return nil
}

func (m *metrics) sessionOpened(service string, wait time.Duration) {
	if m == nil {
		return
	}
	m.assignWait.WithLabelValues(service).Observe(wait.Seconds())
}

func (m *metrics) sessionClosed(service string, ev *relayv1.SessionClosed) {
	if m == nil {
		return
	}
	m.sessions.WithLabelValues(service, outcome(ev)).Inc()
	m.duration.WithLabelValues(service).Observe(ev.GetDuration().AsDuration().Seconds())
	m.bytes.WithLabelValues(service, "to_host").Add(float64(ev.GetBytesToHost()))
	m.bytes.WithLabelValues(service, "from_host").Add(float64(ev.GetBytesFromHost()))
}

// rejected counts a client closed without a session; reason is the
// bridge's (queue_full, no_slot_in_time, shutdown, max_clients,
// max_clients_per_ip, rate_limited), finer than the event's enum.
func (m *metrics) rejected(service, reason string) {
	if m == nil {
		return
	}
	m.rejects.WithLabelValues(service, reason).Inc()
}

// outcome is "clean", or the close reason in lower case ("client_reset").
func outcome(ev *relayv1.SessionClosed) string {
	if ev.GetClean() {
		return "clean"
	}
	r := ev.GetReason()
	if _, known := relayv1.CloseReason_name[int32(r)]; !known {
		// A host chooses Close.reason: one label per number it sends
		// would let it grow the series without bound.
		return "unknown"
	}
	return enumLabel(r.String(), "CLOSE_REASON_")
}

func enumLabel(name, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(name, prefix))
}

// gauges reads the relay's state at scrape time.
type gauges struct{ r *Relay }

var (
	descActive  = prometheus.NewDesc("relay_sessions_active", "Open sessions, by service.", []string{"service"}, nil)
	descIdle    = prometheus.NewDesc("relay_idle_slots", "Idle slots waiting for a client, by service.", []string{"service"}, nil)
	descHosts   = prometheus.NewDesc("relay_hosts_attached", "Attached hosts, by service.", []string{"service"}, nil)
	descPending = prometheus.NewDesc("relay_pending_clients", "Clients waiting for a slot, by service.", []string{"service"}, nil)
	descLimits  = prometheus.NewDesc("relay_limit_hits_total", "Times a safety limit refused or ended something, by limit (clients over a limit are also in relay_clients_rejected_total).", []string{"limit"}, nil)
	descWatch   = prometheus.NewDesc("relay_watchers", "WatchEvents streams open now (at most --max-watchers).", nil, nil)
	descDropped = prometheus.NewDesc("relay_watch_events_dropped_total", "Events not sent to a WatchEvents stream that lagged more than --watch-buffer behind, summed over the streams.", nil, nil)
)

func (gauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- descActive
	ch <- descIdle
	ch <- descHosts
	ch <- descPending
	ch <- descLimits
	ch <- descWatch
	ch <- descDropped
}

func (g gauges) Collect(ch chan<- prometheus.Metric) {
	st, _ := statusService{r: g.r}.GetStatus(context.Background(), &relayv1.GetStatusRequest{})
	for _, s := range st.GetServices() {
		ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(s.GetActiveSessions()), s.GetService())
		ch <- prometheus.MustNewConstMetric(descIdle, prometheus.GaugeValue, float64(s.GetIdleSlots()), s.GetService())
		ch <- prometheus.MustNewConstMetric(descHosts, prometheus.GaugeValue, float64(s.GetHosts()), s.GetService())
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(s.GetPendingClients()), s.GetService())
	}
	for name, n := range g.r.limitHitsAll() {
		ch <- prometheus.MustNewConstMetric(descLimits, prometheus.CounterValue, float64(n), name)
	}
	ch <- prometheus.MustNewConstMetric(descWatch, prometheus.GaugeValue, float64(g.r.events.n.Load()))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(g.r.events.droppedTotal.Load()))
}
