package relay

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// StatusService returns the relay.v1.StatusService implementation.
func (r *Relay) StatusService() relayv1.StatusServiceServer { return statusService{r: r} }

type statusService struct {
	relayv1.UnimplementedStatusServiceServer
	r *Relay
}

// GetStatus implements relay.v1.StatusService.
func (s statusService) GetStatus(context.Context, *relayv1.GetStatusRequest) (*relayv1.GetStatusResponse, error) {
	r := s.r
	bridge := r.cfg.Bridge.Stats()
	resp := &relayv1.GetStatusResponse{
		RelayId:   r.cfg.RelayID,
		Version:   r.cfg.Version,
		Uptime:    durationpb.New(time.Since(r.started).Round(time.Millisecond)),
		StartedAt: timestamppb.New(r.started),
	}
	per := map[string]*relayv1.ServiceStatus{}
	svc := func(name string) *relayv1.ServiceStatus {
		if per[name] == nil {
			per[name] = &relayv1.ServiceStatus{Service: name}
		}
		return per[name]
	}
	for name := range r.services {
		svc(name)
	}
	r.mu.Lock()
	for k := range r.hosts {
		svc(k.service).Hosts++
	}
	for _, sess := range r.sessions {
		svc(sess.host.key.service).ActiveSessions++
	}
	for name, n := range r.totals {
		svc(name).SessionsTotal = n
	}
	r.mu.Unlock()
	for name, b := range bridge {
		st := svc(name)
		st.IdleSlots = uint32(b.IdleSlots)
		st.PendingClients = uint32(b.Pending)
		st.ListenAddrs = b.ListenAddrs
		resp.ClientsRejected += b.Rejected
	}
	for _, st := range per {
		resp.Hosts += st.Hosts
		resp.IdleSlots += st.IdleSlots
		resp.ActiveSessions += st.ActiveSessions
		resp.SessionsTotal += st.SessionsTotal
		resp.PendingClients += st.PendingClients
		resp.Services = append(resp.Services, st)
	}
	sort.Slice(resp.Services, func(i, j int) bool { return resp.Services[i].Service < resp.Services[j].Service })
	return resp, nil
}

// ListHosts implements relay.v1.StatusService.
func (s statusService) ListHosts(_ context.Context, req *relayv1.ListHostsRequest) (*relayv1.ListHostsResponse, error) {
	r := s.r
	idle := r.cfg.Bridge.IdleByHost()
	r.mu.Lock()
	live := map[*host][2]uint64{} // bytes of open sessions, to and from the host
	for _, sess := range r.sessions {
		st := sess.conn.Stats()
		v := live[sess.host]
		live[sess.host] = [2]uint64{v[0] + uint64(st.BytesWritten), v[1] + uint64(st.BytesRead)}
	}
	resp := &relayv1.ListHostsResponse{}
	for k, h := range r.hosts {
		if req.GetService() != "" && req.GetService() != k.service {
			continue
		}
		// Of its agents (connections), the one failing the longest.
		var fails int32
		var failingUntil *timestamppb.Timestamp
		for id, hh := range r.health {
			if id.host != k {
				continue
			}
			n, until := hh.state()
			fails = max(fails, n)
			if !until.IsZero() && (failingUntil == nil || until.After(failingUntil.AsTime())) {
				failingUntil = timestamppb.New(until)
			}
		}
		resp.Hosts = append(resp.Hosts, &relayv1.Host{
			HostId:              k.id,
			Service:             k.service,
			PeerAddr:            h.peerAddr,
			AttachedAt:          timestamppb.New(h.attachedAt),
			IdleSlots:           uint32(idle[k.service][h.keyStr]),
			ActiveSessions:      uint32(h.active.Load()),
			SessionsTotal:       h.total.Load(),
			BytesToHost:         h.bytesTo.Load() + live[h][0],
			BytesFromHost:       h.bytesFrom.Load() + live[h][1],
			Labels:              h.labels,
			AgentVersion:        h.agentVersion,
			Drained:             r.drainedHosts[k],
			Weight:              uint32(h.weight.Load()),
			IdleCredits:         uint32(max(h.credits.Load(), 0)),
			BackendFailures:     uint32(max(fails, 0)),
			BackendFailingUntil: failingUntil,
		})
	}
	// A drained host whose slots have all gone (they got Drain) stays
	// listed until UndrainHost: an operator checking a drain sees it.
	for k := range r.drainedHosts {
		if _, ok := r.hosts[k]; ok || (req.GetService() != "" && req.GetService() != k.service) {
			continue
		}
		resp.Hosts = append(resp.Hosts, &relayv1.Host{HostId: k.id, Service: k.service, Drained: true})
	}
	r.mu.Unlock()
	sort.Slice(resp.Hosts, func(i, j int) bool {
		a, b := resp.Hosts[i], resp.Hosts[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		return a.HostId < b.HostId
	})
	return resp, nil
}

// ListSessions implements relay.v1.StatusService.
// Pages of ListSessions.
const (
	defaultSessionsPage = 1000
	maxSessionsPage     = 10000
)

func (s statusService) ListSessions(_ context.Context, req *relayv1.ListSessionsRequest) (*relayv1.ListSessionsResponse, error) {
	r := s.r
	// A page token is this run of the relay and the listSeq the page
	// starts after: a token from before a restart would have numbered
	// other sessions, and paged on in silence (QA).
	run := strconv.FormatInt(r.started.UnixNano(), 36)
	var after uint64
	if tok := req.GetPageToken(); tok != "" {
		tokRun, n, ok := strings.Cut(tok, ".")
		v, err := strconv.ParseUint(n, 10, 64)
		if !ok || err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "page_token %q is not a next_page_token of ListSessions", tok)
		}
		if tokRun != run {
			return nil, status.Errorf(codes.InvalidArgument, "page_token %q is from another run of this relay (it restarted since): list again from the first page", tok)
		}
		after = v
	}
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = defaultSessionsPage
	case size > maxSessionsPage:
		size = maxSessionsPage
	}
	r.mu.Lock()
	var page []*session
	for _, sess := range r.sessions {
		k := sess.host.key
		if sess.listSeq <= after || (req.GetService() != "" && req.GetService() != k.service) || (req.GetHostId() != "" && req.GetHostId() != k.id) {
			continue
		}
		page = append(page, sess)
	}
	r.mu.Unlock()
	sort.Slice(page, func(i, j int) bool { return page[i].listSeq < page[j].listSeq })
	resp := &relayv1.ListSessionsResponse{}
	if len(page) > size {
		page = page[:size]
		resp.NextPageToken = run + "." + strconv.FormatUint(page[size-1].listSeq, 10)
	}
	for _, sess := range page {
		k := sess.host.key
		st := sess.conn.Stats()
		resp.Sessions = append(resp.Sessions, &relayv1.Session{
			SessionId:         sess.id,
			Service:           k.service,
			HostId:            k.id,
			ClientAddr:        sess.clientAddr,
			OpenedAt:          timestamppb.New(sess.openedAt),
			BytesToHost:       uint64(st.BytesWritten),
			BytesFromHost:     uint64(st.BytesRead),
			ClientWriteClosed: st.WriteClosed,
			HostWriteClosed:   st.ReadClosed,
			SlotId:            sess.slotID,
		})
	}
	return resp, nil
}
