package relay

import (
	"cmp"
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// AdminService returns the relay.v1.AdminService implementation: the
// operator's actions, served on the admin port next to StatusService.
func (r *Relay) AdminService() relayv1.AdminServiceServer { return adminService{r: r} }

type adminService struct {
	relayv1.UnimplementedAdminServiceServer
	r *Relay
}

var errAdminClose = errors.New("closed by an operator")

// maxCloseDetail bounds CloseSessionRequest.detail: a Close frame must stay
// within the 1 KiB the frame limit allows beyond a Data payload.
const maxCloseDetail = 512

// CloseSession implements relay.v1.AdminService.
func (s adminService) CloseSession(_ context.Context, req *relayv1.CloseSessionRequest) (*relayv1.CloseSessionResponse, error) {
	if req.GetSessionId() == "" {
		return nil, status.Error(codes.InvalidArgument, "session_id is required")
	}
	if n := len(req.GetDetail()); n > maxCloseDetail {
		// It goes to the host in the Close frame, and into a log line.
		return nil, status.Errorf(codes.InvalidArgument, "detail is %d bytes; at most %d", n, maxCloseDetail)
	}
	r := s.r
	r.mu.Lock()
	sess := r.sessions[req.GetSessionId()]
	r.mu.Unlock()
	cause := errAdminClose
	if d := req.GetDetail(); d != "" {
		cause = errors.New("closed by an operator: " + d)
	}
	if sess == nil || !sess.abort(relayv1.CloseReason_CLOSE_REASON_ADMIN, cause) {
		return nil, status.Errorf(codes.NotFound, "no open session %q", req.GetSessionId())
	}
	r.log.Info("session closed by an operator", "session_id", sess.id, "host_id", sess.host.key.id, "service", sess.host.key.service)
	return &relayv1.CloseSessionResponse{}, nil
}

// DrainHost implements relay.v1.AdminService.
func (s adminService) DrainHost(_ context.Context, req *relayv1.DrainHostRequest) (*relayv1.DrainHostResponse, error) {
	if req.GetHostId() == "" {
		return nil, status.Error(codes.InvalidArgument, "host_id is required")
	}
	r := s.r
	idle := r.cfg.Bridge.IdleByHost()
	resp := &relayv1.DrainHostResponse{}
	found := false
	r.mu.Lock()
	for k, h := range r.hosts {
		if k.id != req.GetHostId() || (req.GetService() != "" && req.GetService() != k.service) {
			continue
		}
		found = true
		resp.IdleSlotsDrained += uint32(idle[k.service][h.keyStr])
		resp.ActiveSessions += uint32(h.active.Load())
		if !r.drainedHosts[k] {
			r.drainedHosts[k] = true
			h.wakeSlots(idleDrained) // its idle slots send Drain and end
		}
	}
	// A drained host whose slots have all ended is no longer attached, but
	// it is still drained: draining it again is not an error.
	for k := range r.drainedHosts {
		if k.id == req.GetHostId() && (req.GetService() == "" || req.GetService() == k.service) {
			found = true
		}
	}
	r.mu.Unlock()
	if !found {
		return nil, status.Errorf(codes.NotFound, "no attached host %q%s", req.GetHostId(), inService(req.GetService()))
	}
	r.log.Info("host drained by an operator", "host_id", req.GetHostId(), "service", cmp.Or(req.GetService(), "(all)"),
		"idle_slots", resp.IdleSlotsDrained, "active_sessions", resp.ActiveSessions)
	return resp, nil
}

// UndrainHost implements relay.v1.AdminService.
func (s adminService) UndrainHost(_ context.Context, req *relayv1.UndrainHostRequest) (*relayv1.UndrainHostResponse, error) {
	if req.GetHostId() == "" {
		return nil, status.Error(codes.InvalidArgument, "host_id is required")
	}
	r := s.r
	found := false
	r.mu.Lock()
	for k := range r.drainedHosts {
		if k.id != req.GetHostId() || (req.GetService() != "" && req.GetService() != k.service) {
			continue
		}
		found = true
		delete(r.drainedHosts, k) // slots opened from now on are offered again
	}
	// An attached host that is not drained is what UndrainHost asks for:
	// undraining it again is not an error, as draining twice is not.
	for k := range r.hosts {
		if k.id == req.GetHostId() && (req.GetService() == "" || req.GetService() == k.service) {
			found = true
		}
	}
	r.mu.Unlock()
	if !found {
		return nil, status.Errorf(codes.NotFound, "no attached or drained host %q%s", req.GetHostId(), inService(req.GetService()))
	}
	r.log.Info("host undrained by an operator", "host_id", req.GetHostId(), "service", cmp.Or(req.GetService(), "(all)"))
	return &relayv1.UndrainHostResponse{}, nil
}

func inService(service string) string {
	if service == "" {
		return ""
	}
	return " in service " + `"` + service + `"`
}
