package main

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/relayproject/relay/relayd/relay"
)

// boundedHealth is a port's health service with a bound on its Watch
// streams. Health needs no token, and each Watch holds a goroutine and
// about 15 KB until its caller leaves: without a bound, anyone reaching
// the port could make relayd hold memory at will (40,000 watchers on four
// connections took 600 MB). Check, what load balancers call, is unbounded.
type boundedHealth struct {
	*health.Server
	watchers chan struct{} // one token per open Watch; nil: no bound
	r        *relay.Relay
}

func newBoundedHealth(max int, r *relay.Relay) boundedHealth {
	h := boundedHealth{Server: health.NewServer(), r: r}
	if max > 0 {
		h.watchers = make(chan struct{}, max)
	}
	return h
}

// Watch implements grpc.health.v1.Health, within the bound.
func (h boundedHealth) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	if h.watchers != nil {
		select {
		case h.watchers <- struct{}{}:
			defer func() { <-h.watchers }()
		default:
			h.r.LimitHit(relay.LimitHealthWatchers, "peer_addr", peerAddr(stream.Context()), "max", cap(h.watchers))
			return status.Errorf(codes.ResourceExhausted, "this port already has %d health watchers (relayd --max-health-watchers): call Health/Check instead", cap(h.watchers))
		}
	}
	return h.Server.Watch(req, stream)
}
