// The relay wire contract.
//
// A relay (relayd) lets a host process (HP) behind NAT serve ordinary TCP
// clients. The HP dials out to the relay and holds Attach streams; clients
// dial in to the relay's client port; the relay bridges each client into one
// Attach stream, byte for byte, in both directions.
//
// # Protocol flow of one Attach stream (one "slot")
//
// HP -> relay frames are AttachRequest, relay -> HP frames are AttachResponse.
//
//  1. The HP opens HostService.Attach. Credentials, when the relay asks for
//     them, travel in metadata ("authorization: Bearer <token>").
//  2. The HP sends Hello, first and exactly once. The relay answers Welcome.
//     The slot is now idle: it waits for a client. The HP sends nothing while
//     idle; to give the slot up it cancels the RPC (or half-closes it), or,
//     where Welcome.withdraw says the relay takes it, sends Withdraw: unlike
//     the others, Withdraw cannot abort a client that is being assigned to
//     the slot at that moment.
//  3. A client connects; the relay's scheduler picks this slot and sends Open.
//     One stream carries at most one session in its life (but see
//     sequential sessions below).
//  4. Data frames flow both ways, in order, each payload at most
//     Welcome.max_data_bytes long (the relay sends no larger payloads either).
//  5. Either side ends its direction with CloseWrite (TCP FIN semantics): the
//     client's FIN becomes a CloseWrite to the HP, the HP's CloseWrite becomes
//     a FIN to the client once every byte before it has been delivered. The
//     other direction keeps flowing until it is closed too.
//  6. When both directions are closed and every byte delivered, the relay
//     ends the RPC with status OK, and only then. A Close frame from either
//     side aborts the session at once: the relay resets the client connection
//     (after the bytes it already received are delivered); an HP that
//     receives Close should drop the session. A broken stream (RPC cancelled,
//     connection lost) is an abort. When the relay aborts a session (the
//     client reset, shutdown) it sends Close if it can, then ends the RPC
//     with ABORTED. An HP that half-closes the RPC during a session without
//     having sent CloseWrite aborts the session too.
//  7. The HP opens a new Attach stream to replace the slot.
//
// Sequential sessions: an HP that sets Hello.sequential_sessions, on a relay
// that answers with Welcome.sequential_sessions, keeps the stream after a
// clean end instead of step 7. In step 6 the relay then sends SessionEnd in
// place of ending the RPC with OK. After SessionEnd the HP either sends
// Hello again (its fields are ignored: send an empty Hello), which the relay
// answers with Welcome (or Drain) as in step 2, the stream again an idle
// slot with the same slot_id; or it half-closes the RPC, which the relay
// ends with OK. Between its CloseWrite and SessionEnd (or Close) the HP
// sends nothing but, to abort, Close: any frame it sends for a session
// that has ended would otherwise fall into the next one (a Close after
// SessionEnd gives the slot up). The relay may send Drain right after
// SessionEnd, before the HP's Hello, if it or the host is draining. A session that does not end cleanly
// ends the stream as in step 6. Setting up a stream (its HEADERS and
// trailers, a goroutine or two on each side, Hello and Welcome, the
// token check) costs more than a session of a short-lived client.
//
// Slot credits: an HP that sets Hello.slot_credits, on a relay that answers
// with Welcome.slot_credits, makes the stream a credit stream. It carries no
// session: each credit is an idle slot that costs the relay no stream, and
// the HP adds credits with Credit frames. When the scheduler gives a client
// to a credit, the relay sends Offer on the credit stream and holds the
// client untouched (it reads nothing from it); the HP claims the offer with
// a new Attach stream whose Hello sets claim_id. The relay answers Welcome,
// then Open at once, and the session runs as in steps 4 to 7 (with
// sequential sessions, an HP may answer SessionEnd with a Hello that claims
// another offer). An offer still unclaimed when the credit stream ends, or
// not claimed within the relay's claim timeout, goes back to the head of
// the queue with its client untouched, so a client never reaches an HP that
// has gone away or stopped before it claimed; a missed claim timeout also
// ends the credit stream with DEADLINE_EXCEEDED, withdrawing its credits. A
// claim that finds no pending offer (claimed already, timed out, or never
// made) ends with NOT_FOUND; a claim for an offer made to another host
// (another host_id or service) ends with PERMISSION_DENIED. Cancelling,
// half-closing or sending Close on the credit stream withdraws its credits;
// Drain ends it as it ends an idle slot. The relay bounds the credits of one
// host (more in a Credit frame: RESOURCE_EXHAUSTED). The cost is one round
// trip to the HP before a client's first byte moves.
//
// Instead of Open, the relay may send Drain on an idle slot (it is shutting
// down, or an operator drained the host) and end the stream with OK: the HP
// stops opening slots on that relay for Drain.retry_after, lets its open
// sessions finish, and goes on serving through its other relays.
//
// # Errors
//
// Protocol violations end only the offending stream, with these statuses:
//
//   - first frame is not Hello, a frame with no field set: INVALID_ARGUMENT
//   - a second Hello (other than the one answering SessionEnd), Data or
//     CloseWrite before Open or between SessionEnd and the next Hello, Data
//     after the HP's own CloseWrite: FAILED_PRECONDITION
//   - a Data payload longer than Welcome.max_data_bytes: RESOURCE_EXHAUSTED
//   - Hello naming a service this relay does not serve: PERMISSION_DENIED
//   - no Hello within the relay's hello timeout (of the stream's start, or of
//     SessionEnd): DEADLINE_EXCEEDED
//   - the relay is shutting down: a Drain frame, then OK (UNAVAILABLE once
//     its gRPC server stops)
//
// Compatibility: proto3, additive changes only (checked by buf breaking).
// A peer ignores fields it does not know.

// Code generated by protoc-gen-go-grpc. DO NOT EDIT.
// versions:
// - protoc-gen-go-grpc v1.6.2
// - protoc             (unknown)
// source: relay/v1/relay.proto

package relayv1

import (
	context "context"
	grpc "google.golang.org/grpc"
	codes "google.golang.org/grpc/codes"
	status "google.golang.org/grpc/status"
)

// This is a compile-time assertion to ensure that this generated file
// is compatible with the grpc package it is being compiled against.
// Requires gRPC-Go v1.64.0 or later.
const _ = grpc.SupportPackageIsVersion9

const (
	HostService_Attach_FullMethodName = "/relay.v1.HostService/Attach"
)

// HostServiceClient is the client API for HostService service.
//
// For semantics around ctx use and closing/ending streaming RPCs, please refer to https://pkg.go.dev/google.golang.org/grpc/?tab=doc#ClientConn.NewStream.
//
// HostService is served on the relay's gRPC port (default :8000) to host
// processes and their agents.
type HostServiceClient interface {
	// Attach offers one slot: a stream that carries at most one client session,
	// or several one after another when both sides agree (sequential
	// sessions). See the protocol flow at the top of this file.
	Attach(ctx context.Context, opts ...grpc.CallOption) (grpc.BidiStreamingClient[AttachRequest, AttachResponse], error)
}

type hostServiceClient struct {
	cc grpc.ClientConnInterface
}

func NewHostServiceClient(cc grpc.ClientConnInterface) HostServiceClient {
	return &hostServiceClient{cc}
}

func (c *hostServiceClient) Attach(ctx context.Context, opts ...grpc.CallOption) (grpc.BidiStreamingClient[AttachRequest, AttachResponse], error) {
	cOpts := append([]grpc.CallOption{grpc.StaticMethod()}, opts...)
	stream, err := c.cc.NewStream(ctx, &HostService_ServiceDesc.Streams[0], HostService_Attach_FullMethodName, cOpts...)
	if err != nil {
		return nil, err
	}
	x := &grpc.GenericClientStream[AttachRequest, AttachResponse]{ClientStream: stream}
	return x, nil
}

// This type alias is provided for backwards compatibility with existing code that references the prior non-generic stream type by name.
type HostService_AttachClient = grpc.BidiStreamingClient[AttachRequest, AttachResponse]

// HostServiceServer is the server API for HostService service.
// All implementations must embed UnimplementedHostServiceServer
// for forward compatibility.
//
// HostService is served on the relay's gRPC port (default :8000) to host
// processes and their agents.
type HostServiceServer interface {
	// Attach offers one slot: a stream that carries at most one client session,
	// or several one after another when both sides agree (sequential
	// sessions). See the protocol flow at the top of this file.
	Attach(grpc.BidiStreamingServer[AttachRequest, AttachResponse]) error
	mustEmbedUnimplementedHostServiceServer()
}

// UnimplementedHostServiceServer must be embedded to have
// forward compatible implementations.
//
// NOTE: this should be embedded by value instead of pointer to avoid a nil
// pointer dereference when methods are called.
type UnimplementedHostServiceServer struct{}

func (UnimplementedHostServiceServer) Attach(grpc.BidiStreamingServer[AttachRequest, AttachResponse]) error {
	return status.Error(codes.Unimplemented, "method Attach not implemented")
}
func (UnimplementedHostServiceServer) mustEmbedUnimplementedHostServiceServer() {}
func (UnimplementedHostServiceServer) testEmbeddedByValue()                     {}

// UnsafeHostServiceServer may be embedded to opt out of forward compatibility for this service.
// Use of this interface is not recommended, as added methods to HostServiceServer will
// result in compilation errors.
type UnsafeHostServiceServer interface {
	mustEmbedUnimplementedHostServiceServer()
}

func RegisterHostServiceServer(s grpc.ServiceRegistrar, srv HostServiceServer) {
	// If the following call panics, it indicates UnimplementedHostServiceServer was
	// embedded by pointer and is nil.  This will cause panics if an
	// unimplemented method is ever invoked, so we test this at initialization
	// time to prevent it from happening at runtime later due to I/O.
	if t, ok := srv.(interface{ testEmbeddedByValue() }); ok {
		t.testEmbeddedByValue()
	}
	s.RegisterService(&HostService_ServiceDesc, srv)
}

func _HostService_Attach_Handler(srv interface{}, stream grpc.ServerStream) error {
	return srv.(HostServiceServer).Attach(&grpc.GenericServerStream[AttachRequest, AttachResponse]{ServerStream: stream})
}

// This type alias is provided for backwards compatibility with existing code that references the prior non-generic stream type by name.
type HostService_AttachServer = grpc.BidiStreamingServer[AttachRequest, AttachResponse]

// HostService_ServiceDesc is the grpc.ServiceDesc for HostService service.
// It's only intended for direct use with grpc.RegisterService,
// and not to be introspected or modified (even as a copy)
var HostService_ServiceDesc = grpc.ServiceDesc{
	ServiceName: "relay.v1.HostService",
	HandlerType: (*HostServiceServer)(nil),
	Methods:     []grpc.MethodDesc{},
	Streams: []grpc.StreamDesc{
		{
			StreamName:    "Attach",
			Handler:       _HostService_Attach_Handler,
			ServerStreams: true,
			ClientStreams: true,
		},
	},
	Metadata: "relay/v1/relay.proto",
}

const (
	StatusService_GetStatus_FullMethodName    = "/relay.v1.StatusService/GetStatus"
	StatusService_ListHosts_FullMethodName    = "/relay.v1.StatusService/ListHosts"
	StatusService_ListSessions_FullMethodName = "/relay.v1.StatusService/ListSessions"
	StatusService_WatchEvents_FullMethodName  = "/relay.v1.StatusService/WatchEvents"
)

// StatusServiceClient is the client API for StatusService service.
//
// For semantics around ctx use and closing/ending streaming RPCs, please refer to https://pkg.go.dev/google.golang.org/grpc/?tab=doc#ClientConn.NewStream.
//
// StatusService is served on the relay's admin port (default 127.0.0.1:8001)
// for operators and tools such as grpcurl.
type StatusServiceClient interface {
	// GetStatus reports the relay's counters, in total and per service.
	GetStatus(ctx context.Context, in *GetStatusRequest, opts ...grpc.CallOption) (*GetStatusResponse, error)
	// ListHosts reports every attached host, and every host an operator
	// drained (until UndrainHost), even with no slot left.
	ListHosts(ctx context.Context, in *ListHostsRequest, opts ...grpc.CallOption) (*ListHostsResponse, error)
	// ListSessions reports every open session.
	ListSessions(ctx context.Context, in *ListSessionsRequest, opts ...grpc.CallOption) (*ListSessionsResponse, error)
	// WatchEvents streams the relay's events as they happen, from the moment
	// of the call (no history), until the caller cancels or the relay stops.
	// A watcher that reads slower than events come never slows the relay: it
	// has a bounded buffer, and the events that did not fit are counted in
	// the next response's dropped field. A relay holds a bounded number of
	// watchers (relayd --max-watchers); one more ends with
	// RESOURCE_EXHAUSTED.
	WatchEvents(ctx context.Context, in *WatchEventsRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[WatchEventsResponse], error)
}

type statusServiceClient struct {
	cc grpc.ClientConnInterface
}

func NewStatusServiceClient(cc grpc.ClientConnInterface) StatusServiceClient {
	return &statusServiceClient{cc}
}

func (c *statusServiceClient) GetStatus(ctx context.Context, in *GetStatusRequest, opts ...grpc.CallOption) (*GetStatusResponse, error) {
	cOpts := append([]grpc.CallOption{grpc.StaticMethod()}, opts...)
	out := new(GetStatusResponse)
	err := c.cc.Invoke(ctx, StatusService_GetStatus_FullMethodName, in, out, cOpts...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (c *statusServiceClient) ListHosts(ctx context.Context, in *ListHostsRequest, opts ...grpc.CallOption) (*ListHostsResponse, error) {
	cOpts := append([]grpc.CallOption{grpc.StaticMethod()}, opts...)
	out := new(ListHostsResponse)
	err := c.cc.Invoke(ctx, StatusService_ListHosts_FullMethodName, in, out, cOpts...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (c *statusServiceClient) ListSessions(ctx context.Context, in *ListSessionsRequest, opts ...grpc.CallOption) (*ListSessionsResponse, error) {
	cOpts := append([]grpc.CallOption{grpc.StaticMethod()}, opts...)
	out := new(ListSessionsResponse)
	err := c.cc.Invoke(ctx, StatusService_ListSessions_FullMethodName, in, out, cOpts...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (c *statusServiceClient) WatchEvents(ctx context.Context, in *WatchEventsRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[WatchEventsResponse], error) {
	cOpts := append([]grpc.CallOption{grpc.StaticMethod()}, opts...)
	stream, err := c.cc.NewStream(ctx, &StatusService_ServiceDesc.Streams[0], StatusService_WatchEvents_FullMethodName, cOpts...)
	if err != nil {
		return nil, err
	}
	x := &grpc.GenericClientStream[WatchEventsRequest, WatchEventsResponse]{ClientStream: stream}
	if err := x.ClientStream.SendMsg(in); err != nil {
		return nil, err
	}
	if err := x.ClientStream.CloseSend(); err != nil {
		return nil, err
	}
	return x, nil
}

// This type alias is provided for backwards compatibility with existing code that references the prior non-generic stream type by name.
type StatusService_WatchEventsClient = grpc.ServerStreamingClient[WatchEventsResponse]

// StatusServiceServer is the server API for StatusService service.
// All implementations must embed UnimplementedStatusServiceServer
// for forward compatibility.
//
// StatusService is served on the relay's admin port (default 127.0.0.1:8001)
// for operators and tools such as grpcurl.
type StatusServiceServer interface {
	// GetStatus reports the relay's counters, in total and per service.
	GetStatus(context.Context, *GetStatusRequest) (*GetStatusResponse, error)
	// ListHosts reports every attached host, and every host an operator
	// drained (until UndrainHost), even with no slot left.
	ListHosts(context.Context, *ListHostsRequest) (*ListHostsResponse, error)
	// ListSessions reports every open session.
	ListSessions(context.Context, *ListSessionsRequest) (*ListSessionsResponse, error)
	// WatchEvents streams the relay's events as they happen, from the moment
	// of the call (no history), until the caller cancels or the relay stops.
	// A watcher that reads slower than events come never slows the relay: it
	// has a bounded buffer, and the events that did not fit are counted in
	// the next response's dropped field. A relay holds a bounded number of
	// watchers (relayd --max-watchers); one more ends with
	// RESOURCE_EXHAUSTED.
	WatchEvents(*WatchEventsRequest, grpc.ServerStreamingServer[WatchEventsResponse]) error
	mustEmbedUnimplementedStatusServiceServer()
}

// UnimplementedStatusServiceServer must be embedded to have
// forward compatible implementations.
//
// NOTE: this should be embedded by value instead of pointer to avoid a nil
// pointer dereference when methods are called.
type UnimplementedStatusServiceServer struct{}

func (UnimplementedStatusServiceServer) GetStatus(context.Context, *GetStatusRequest) (*GetStatusResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method GetStatus not implemented")
}
func (UnimplementedStatusServiceServer) ListHosts(context.Context, *ListHostsRequest) (*ListHostsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method ListHosts not implemented")
}
func (UnimplementedStatusServiceServer) ListSessions(context.Context, *ListSessionsRequest) (*ListSessionsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method ListSessions not implemented")
}
func (UnimplementedStatusServiceServer) WatchEvents(*WatchEventsRequest, grpc.ServerStreamingServer[WatchEventsResponse]) error {
	return status.Error(codes.Unimplemented, "method WatchEvents not implemented")
}
func (UnimplementedStatusServiceServer) mustEmbedUnimplementedStatusServiceServer() {}
func (UnimplementedStatusServiceServer) testEmbeddedByValue()                       {}

// UnsafeStatusServiceServer may be embedded to opt out of forward compatibility for this service.
// Use of this interface is not recommended, as added methods to StatusServiceServer will
// result in compilation errors.
type UnsafeStatusServiceServer interface {
	mustEmbedUnimplementedStatusServiceServer()
}

func RegisterStatusServiceServer(s grpc.ServiceRegistrar, srv StatusServiceServer) {
	// If the following call panics, it indicates UnimplementedStatusServiceServer was
	// embedded by pointer and is nil.  This will cause panics if an
	// unimplemented method is ever invoked, so we test this at initialization
	// time to prevent it from happening at runtime later due to I/O.
	if t, ok := srv.(interface{ testEmbeddedByValue() }); ok {
		t.testEmbeddedByValue()
	}
	s.RegisterService(&StatusService_ServiceDesc, srv)
}

func _StatusService_GetStatus_Handler(srv interface{}, ctx context.Context, dec func(interface{}) error, interceptor grpc.UnaryServerInterceptor) (interface{}, error) {
	in := new(GetStatusRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(StatusServiceServer).GetStatus(ctx, in)
	}
	info := &grpc.UnaryServerInfo{
		Server:     srv,
		FullMethod: StatusService_GetStatus_FullMethodName,
	}
	handler := func(ctx context.Context, req interface{}) (interface{}, error) {
		return srv.(StatusServiceServer).GetStatus(ctx, req.(*GetStatusRequest))
	}
	return interceptor(ctx, in, info, handler)
}

func _StatusService_ListHosts_Handler(srv interface{}, ctx context.Context, dec func(interface{}) error, interceptor grpc.UnaryServerInterceptor) (interface{}, error) {
	in := new(ListHostsRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(StatusServiceServer).ListHosts(ctx, in)
	}
	info := &grpc.UnaryServerInfo{
		Server:     srv,
		FullMethod: StatusService_ListHosts_FullMethodName,
	}
	handler := func(ctx context.Context, req interface{}) (interface{}, error) {
		return srv.(StatusServiceServer).ListHosts(ctx, req.(*ListHostsRequest))
	}
	return interceptor(ctx, in, info, handler)
}

func _StatusService_ListSessions_Handler(srv interface{}, ctx context.Context, dec func(interface{}) error, interceptor grpc.UnaryServerInterceptor) (interface{}, error) {
	in := new(ListSessionsRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(StatusServiceServer).ListSessions(ctx, in)
	}
	info := &grpc.UnaryServerInfo{
		Server:     srv,
		FullMethod: StatusService_ListSessions_FullMethodName,
	}
	handler := func(ctx context.Context, req interface{}) (interface{}, error) {
		return srv.(StatusServiceServer).ListSessions(ctx, req.(*ListSessionsRequest))
	}
	return interceptor(ctx, in, info, handler)
}

func _StatusService_WatchEvents_Handler(srv interface{}, stream grpc.ServerStream) error {
	m := new(WatchEventsRequest)
	if err := stream.RecvMsg(m); err != nil {
		return err
	}
	return srv.(StatusServiceServer).WatchEvents(m, &grpc.GenericServerStream[WatchEventsRequest, WatchEventsResponse]{ServerStream: stream})
}

// This type alias is provided for backwards compatibility with existing code that references the prior non-generic stream type by name.
type StatusService_WatchEventsServer = grpc.ServerStreamingServer[WatchEventsResponse]

// StatusService_ServiceDesc is the grpc.ServiceDesc for StatusService service.
// It's only intended for direct use with grpc.RegisterService,
// and not to be introspected or modified (even as a copy)
var StatusService_ServiceDesc = grpc.ServiceDesc{
	ServiceName: "relay.v1.StatusService",
	HandlerType: (*StatusServiceServer)(nil),
	Methods: []grpc.MethodDesc{
		{
			MethodName: "GetStatus",
			Handler:    _StatusService_GetStatus_Handler,
		},
		{
			MethodName: "ListHosts",
			Handler:    _StatusService_ListHosts_Handler,
		},
		{
			MethodName: "ListSessions",
			Handler:    _StatusService_ListSessions_Handler,
		},
	},
	Streams: []grpc.StreamDesc{
		{
			StreamName:    "WatchEvents",
			Handler:       _StatusService_WatchEvents_Handler,
			ServerStreams: true,
		},
	},
	Metadata: "relay/v1/relay.proto",
}

const (
	AdminService_CloseSession_FullMethodName = "/relay.v1.AdminService/CloseSession"
	AdminService_DrainHost_FullMethodName    = "/relay.v1.AdminService/DrainHost"
	AdminService_UndrainHost_FullMethodName  = "/relay.v1.AdminService/UndrainHost"
)

// AdminServiceClient is the client API for AdminService service.
//
// For semantics around ctx use and closing/ending streaming RPCs, please refer to https://pkg.go.dev/google.golang.org/grpc/?tab=doc#ClientConn.NewStream.
//
// AdminService is served on the relay's admin port (default 127.0.0.1:8001)
// next to StatusService: the operator's actions.
type AdminServiceClient interface {
	// CloseSession aborts an open session: the client gets the bytes the
	// relay already received, then a reset; the host gets
	// Close{CLOSE_REASON_ADMIN}. NOT_FOUND for an unknown session_id.
	CloseSession(ctx context.Context, in *CloseSessionRequest, opts ...grpc.CallOption) (*CloseSessionResponse, error)
	// DrainHost stops giving new sessions to a host: its idle slots receive
	// Drain{DRAIN_REASON_ADMIN} and end, and new slots it opens get Drain too;
	// its open sessions go on to their end. Draining a drained host again
	// succeeds. NOT_FOUND for a host_id that is neither attached nor drained.
	DrainHost(ctx context.Context, in *DrainHostRequest, opts ...grpc.CallOption) (*DrainHostResponse, error)
	// UndrainHost undoes DrainHost: the host's next slots are offered to
	// clients again. Undraining an attached host that is not drained
	// succeeds. NOT_FOUND for a host_id that is neither attached nor drained.
	UndrainHost(ctx context.Context, in *UndrainHostRequest, opts ...grpc.CallOption) (*UndrainHostResponse, error)
}

type adminServiceClient struct {
	cc grpc.ClientConnInterface
}

func NewAdminServiceClient(cc grpc.ClientConnInterface) AdminServiceClient {
	return &adminServiceClient{cc}
}

func (c *adminServiceClient) CloseSession(ctx context.Context, in *CloseSessionRequest, opts ...grpc.CallOption) (*CloseSessionResponse, error) {
	cOpts := append([]grpc.CallOption{grpc.StaticMethod()}, opts...)
	out := new(CloseSessionResponse)
	err := c.cc.Invoke(ctx, AdminService_CloseSession_FullMethodName, in, out, cOpts...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (c *adminServiceClient) DrainHost(ctx context.Context, in *DrainHostRequest, opts ...grpc.CallOption) (*DrainHostResponse, error) {
	cOpts := append([]grpc.CallOption{grpc.StaticMethod()}, opts...)
	out := new(DrainHostResponse)
	err := c.cc.Invoke(ctx, AdminService_DrainHost_FullMethodName, in, out, cOpts...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (c *adminServiceClient) UndrainHost(ctx context.Context, in *UndrainHostRequest, opts ...grpc.CallOption) (*UndrainHostResponse, error) {
	cOpts := append([]grpc.CallOption{grpc.StaticMethod()}, opts...)
	out := new(UndrainHostResponse)
	err := c.cc.Invoke(ctx, AdminService_UndrainHost_FullMethodName, in, out, cOpts...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AdminServiceServer is the server API for AdminService service.
// All implementations must embed UnimplementedAdminServiceServer
// for forward compatibility.
//
// AdminService is served on the relay's admin port (default 127.0.0.1:8001)
// next to StatusService: the operator's actions.
type AdminServiceServer interface {
	// CloseSession aborts an open session: the client gets the bytes the
	// relay already received, then a reset; the host gets
	// Close{CLOSE_REASON_ADMIN}. NOT_FOUND for an unknown session_id.
	CloseSession(context.Context, *CloseSessionRequest) (*CloseSessionResponse, error)
	// DrainHost stops giving new sessions to a host: its idle slots receive
	// Drain{DRAIN_REASON_ADMIN} and end, and new slots it opens get Drain too;
	// its open sessions go on to their end. Draining a drained host again
	// succeeds. NOT_FOUND for a host_id that is neither attached nor drained.
	DrainHost(context.Context, *DrainHostRequest) (*DrainHostResponse, error)
	// UndrainHost undoes DrainHost: the host's next slots are offered to
	// clients again. Undraining an attached host that is not drained
	// succeeds. NOT_FOUND for a host_id that is neither attached nor drained.
	UndrainHost(context.Context, *UndrainHostRequest) (*UndrainHostResponse, error)
	mustEmbedUnimplementedAdminServiceServer()
}

// UnimplementedAdminServiceServer must be embedded to have
// forward compatible implementations.
//
// NOTE: this should be embedded by value instead of pointer to avoid a nil
// pointer dereference when methods are called.
type UnimplementedAdminServiceServer struct{}

func (UnimplementedAdminServiceServer) CloseSession(context.Context, *CloseSessionRequest) (*CloseSessionResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method CloseSession not implemented")
}
func (UnimplementedAdminServiceServer) DrainHost(context.Context, *DrainHostRequest) (*DrainHostResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method DrainHost not implemented")
}
func (UnimplementedAdminServiceServer) UndrainHost(context.Context, *UndrainHostRequest) (*UndrainHostResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method UndrainHost not implemented")
}
func (UnimplementedAdminServiceServer) mustEmbedUnimplementedAdminServiceServer() {}
func (UnimplementedAdminServiceServer) testEmbeddedByValue()                      {}

// UnsafeAdminServiceServer may be embedded to opt out of forward compatibility for this service.
// Use of this interface is not recommended, as added methods to AdminServiceServer will
// result in compilation errors.
type UnsafeAdminServiceServer interface {
	mustEmbedUnimplementedAdminServiceServer()
}

func RegisterAdminServiceServer(s grpc.ServiceRegistrar, srv AdminServiceServer) {
	// If the following call panics, it indicates UnimplementedAdminServiceServer was
	// embedded by pointer and is nil.  This will cause panics if an
	// unimplemented method is ever invoked, so we test this at initialization
	// time to prevent it from happening at runtime later due to I/O.
	if t, ok := srv.(interface{ testEmbeddedByValue() }); ok {
		t.testEmbeddedByValue()
	}
	s.RegisterService(&AdminService_ServiceDesc, srv)
}

func _AdminService_CloseSession_Handler(srv interface{}, ctx context.Context, dec func(interface{}) error, interceptor grpc.UnaryServerInterceptor) (interface{}, error) {
	in := new(CloseSessionRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(AdminServiceServer).CloseSession(ctx, in)
	}
	info := &grpc.UnaryServerInfo{
		Server:     srv,
		FullMethod: AdminService_CloseSession_FullMethodName,
	}
	handler := func(ctx context.Context, req interface{}) (interface{}, error) {
		return srv.(AdminServiceServer).CloseSession(ctx, req.(*CloseSessionRequest))
	}
	return interceptor(ctx, in, info, handler)
}

func _AdminService_DrainHost_Handler(srv interface{}, ctx context.Context, dec func(interface{}) error, interceptor grpc.UnaryServerInterceptor) (interface{}, error) {
	in := new(DrainHostRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(AdminServiceServer).DrainHost(ctx, in)
	}
	info := &grpc.UnaryServerInfo{
		Server:     srv,
		FullMethod: AdminService_DrainHost_FullMethodName,
	}
	handler := func(ctx context.Context, req interface{}) (interface{}, error) {
		return srv.(AdminServiceServer).DrainHost(ctx, req.(*DrainHostRequest))
	}
	return interceptor(ctx, in, info, handler)
}

func _AdminService_UndrainHost_Handler(srv interface{}, ctx context.Context, dec func(interface{}) error, interceptor grpc.UnaryServerInterceptor) (interface{}, error) {
	in := new(UndrainHostRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(AdminServiceServer).UndrainHost(ctx, in)
	}
	info := &grpc.UnaryServerInfo{
		Server:     srv,
		FullMethod: AdminService_UndrainHost_FullMethodName,
	}
	handler := func(ctx context.Context, req interface{}) (interface{}, error) {
		return srv.(AdminServiceServer).UndrainHost(ctx, req.(*UndrainHostRequest))
	}
	return interceptor(ctx, in, info, handler)
}

// AdminService_ServiceDesc is the grpc.ServiceDesc for AdminService service.
// It's only intended for direct use with grpc.RegisterService,
// and not to be introspected or modified (even as a copy)
var AdminService_ServiceDesc = grpc.ServiceDesc{
	ServiceName: "relay.v1.AdminService",
	HandlerType: (*AdminServiceServer)(nil),
	Methods: []grpc.MethodDesc{
		{
			MethodName: "CloseSession",
			Handler:    _AdminService_CloseSession_Handler,
		},
		{
			MethodName: "DrainHost",
			Handler:    _AdminService_DrainHost_Handler,
		},
		{
			MethodName: "UndrainHost",
			Handler:    _AdminService_UndrainHost_Handler,
		},
	},
	Streams:  []grpc.StreamDesc{},
	Metadata: "relay/v1/relay.proto",
}
