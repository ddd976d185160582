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

// Code generated by protoc-gen-go. DO NOT EDIT.
// versions:
// 	protoc-gen-go v1.36.12
// 	protoc        (unknown)
// source: relay/v1/relay.proto

package relayv1

import (
	protoreflect "google.golang.org/protobuf/reflect/protoreflect"
	protoimpl "google.golang.org/protobuf/runtime/protoimpl"
	durationpb "google.golang.org/protobuf/types/known/durationpb"
	timestamppb "google.golang.org/protobuf/types/known/timestamppb"
	reflect "reflect"
	sync "sync"
	unsafe "unsafe"
)

const (
	// Verify that this generated code is sufficiently up-to-date.
	_ = protoimpl.EnforceVersion(20 - protoimpl.MinVersion)
	// Verify that runtime/protoimpl is sufficiently up-to-date.
	_ = protoimpl.EnforceVersion(protoimpl.MaxVersion - 20)
)

// DrainReason says why a relay sent Drain.
type DrainReason int32

const (
	// DRAIN_REASON_UNSPECIFIED is used when no other reason applies.
	DrainReason_DRAIN_REASON_UNSPECIFIED DrainReason = 0
	// DRAIN_REASON_SHUTDOWN: the relay is stopping (SIGTERM); attach to
	// another relay, or to this address again once a new relay is up.
	DrainReason_DRAIN_REASON_SHUTDOWN DrainReason = 1
	// DRAIN_REASON_ADMIN: an operator drained this host (AdminService.DrainHost);
	// the relay accepts slots again after UndrainHost.
	DrainReason_DRAIN_REASON_ADMIN DrainReason = 2
)

// Enum value maps for DrainReason.
var (
	DrainReason_name = map[int32]string{
		0: "DRAIN_REASON_UNSPECIFIED",
		1: "DRAIN_REASON_SHUTDOWN",
		2: "DRAIN_REASON_ADMIN",
	}
	DrainReason_value = map[string]int32{
		"DRAIN_REASON_UNSPECIFIED": 0,
		"DRAIN_REASON_SHUTDOWN":    1,
		"DRAIN_REASON_ADMIN":       2,
	}
)

func (x DrainReason) Enum() *DrainReason {
	p := new(DrainReason)
	*p = x
	return p
}

func (x DrainReason) String() string {
	return protoimpl.X.EnumStringOf(x.Descriptor(), protoreflect.EnumNumber(x))
}

func (DrainReason) Descriptor() protoreflect.EnumDescriptor {
	return file_relay_v1_relay_proto_enumTypes[0].Descriptor()
}

func (DrainReason) Type() protoreflect.EnumType {
	return &file_relay_v1_relay_proto_enumTypes[0]
}

func (x DrainReason) Number() protoreflect.EnumNumber {
	return protoreflect.EnumNumber(x)
}

// Deprecated: Use DrainReason.Descriptor instead.
func (DrainReason) EnumDescriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{0}
}

// CloseReason says why a session was aborted.
type CloseReason int32

const (
	// CLOSE_REASON_UNSPECIFIED is used when no other reason applies.
	CloseReason_CLOSE_REASON_UNSPECIFIED CloseReason = 0
	// CLOSE_REASON_CLIENT_RESET: the client reset or vanished (sent by the relay).
	CloseReason_CLOSE_REASON_CLIENT_RESET CloseReason = 1
	// CLOSE_REASON_HOST_ABORT: the HP gave up the session (sent by the HP).
	CloseReason_CLOSE_REASON_HOST_ABORT CloseReason = 2
	// CLOSE_REASON_RELAY_SHUTDOWN: the relay is stopping (sent by the relay).
	CloseReason_CLOSE_REASON_RELAY_SHUTDOWN CloseReason = 3
	// CLOSE_REASON_TIMEOUT: a time limit ran out.
	CloseReason_CLOSE_REASON_TIMEOUT CloseReason = 4
	// CLOSE_REASON_PROTOCOL_ERROR: the peer broke the protocol.
	CloseReason_CLOSE_REASON_PROTOCOL_ERROR CloseReason = 5
	// CLOSE_REASON_BACKEND_UNAVAILABLE: the HP could not reach the server it
	// forwards to (sent by the HP).
	CloseReason_CLOSE_REASON_BACKEND_UNAVAILABLE CloseReason = 6
	// CLOSE_REASON_ADMIN: an operator closed the session (AdminService.CloseSession;
	// sent by the relay).
	CloseReason_CLOSE_REASON_ADMIN CloseReason = 7
	// CLOSE_REASON_HOST_LOST: the HP's stream ended without a Close: the
	// agent stopped or crashed, or its connection failed (set by the relay;
	// an HP never sees it).
	CloseReason_CLOSE_REASON_HOST_LOST CloseReason = 8
)

// Enum value maps for CloseReason.
var (
	CloseReason_name = map[int32]string{
		0: "CLOSE_REASON_UNSPECIFIED",
		1: "CLOSE_REASON_CLIENT_RESET",
		2: "CLOSE_REASON_HOST_ABORT",
		3: "CLOSE_REASON_RELAY_SHUTDOWN",
		4: "CLOSE_REASON_TIMEOUT",
		5: "CLOSE_REASON_PROTOCOL_ERROR",
		6: "CLOSE_REASON_BACKEND_UNAVAILABLE",
		7: "CLOSE_REASON_ADMIN",
		8: "CLOSE_REASON_HOST_LOST",
	}
	CloseReason_value = map[string]int32{
		"CLOSE_REASON_UNSPECIFIED":         0,
		"CLOSE_REASON_CLIENT_RESET":        1,
		"CLOSE_REASON_HOST_ABORT":          2,
		"CLOSE_REASON_RELAY_SHUTDOWN":      3,
		"CLOSE_REASON_TIMEOUT":             4,
		"CLOSE_REASON_PROTOCOL_ERROR":      5,
		"CLOSE_REASON_BACKEND_UNAVAILABLE": 6,
		"CLOSE_REASON_ADMIN":               7,
		"CLOSE_REASON_HOST_LOST":           8,
	}
)

func (x CloseReason) Enum() *CloseReason {
	p := new(CloseReason)
	*p = x
	return p
}

func (x CloseReason) String() string {
	return protoimpl.X.EnumStringOf(x.Descriptor(), protoreflect.EnumNumber(x))
}

func (CloseReason) Descriptor() protoreflect.EnumDescriptor {
	return file_relay_v1_relay_proto_enumTypes[1].Descriptor()
}

func (CloseReason) Type() protoreflect.EnumType {
	return &file_relay_v1_relay_proto_enumTypes[1]
}

func (x CloseReason) Number() protoreflect.EnumNumber {
	return protoreflect.EnumNumber(x)
}

// Deprecated: Use CloseReason.Descriptor instead.
func (CloseReason) EnumDescriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{1}
}

// EventKind names the cases of WatchEventsResponse.event, for filtering.
type EventKind int32

const (
	// EVENT_KIND_UNSPECIFIED matches nothing; not used in filters.
	EventKind_EVENT_KIND_UNSPECIFIED EventKind = 0
	// EVENT_KIND_HOST_ATTACHED: WatchEventsResponse.host_attached.
	EventKind_EVENT_KIND_HOST_ATTACHED EventKind = 1
	// EVENT_KIND_HOST_DETACHED: WatchEventsResponse.host_detached.
	EventKind_EVENT_KIND_HOST_DETACHED EventKind = 2
	// EVENT_KIND_SLOT_OPENED: WatchEventsResponse.slot_opened.
	EventKind_EVENT_KIND_SLOT_OPENED EventKind = 3
	// EVENT_KIND_SESSION_OPENED: WatchEventsResponse.session_opened.
	EventKind_EVENT_KIND_SESSION_OPENED EventKind = 4
	// EVENT_KIND_SESSION_HALF_CLOSED: WatchEventsResponse.session_half_closed.
	EventKind_EVENT_KIND_SESSION_HALF_CLOSED EventKind = 5
	// EVENT_KIND_SESSION_CLOSED: WatchEventsResponse.session_closed.
	EventKind_EVENT_KIND_SESSION_CLOSED EventKind = 6
	// EVENT_KIND_CLIENT_REJECTED: WatchEventsResponse.client_rejected.
	EventKind_EVENT_KIND_CLIENT_REJECTED EventKind = 7
)

// Enum value maps for EventKind.
var (
	EventKind_name = map[int32]string{
		0: "EVENT_KIND_UNSPECIFIED",
		1: "EVENT_KIND_HOST_ATTACHED",
		2: "EVENT_KIND_HOST_DETACHED",
		3: "EVENT_KIND_SLOT_OPENED",
		4: "EVENT_KIND_SESSION_OPENED",
		5: "EVENT_KIND_SESSION_HALF_CLOSED",
		6: "EVENT_KIND_SESSION_CLOSED",
		7: "EVENT_KIND_CLIENT_REJECTED",
	}
	EventKind_value = map[string]int32{
		"EVENT_KIND_UNSPECIFIED":         0,
		"EVENT_KIND_HOST_ATTACHED":       1,
		"EVENT_KIND_HOST_DETACHED":       2,
		"EVENT_KIND_SLOT_OPENED":         3,
		"EVENT_KIND_SESSION_OPENED":      4,
		"EVENT_KIND_SESSION_HALF_CLOSED": 5,
		"EVENT_KIND_SESSION_CLOSED":      6,
		"EVENT_KIND_CLIENT_REJECTED":     7,
	}
)

func (x EventKind) Enum() *EventKind {
	p := new(EventKind)
	*p = x
	return p
}

func (x EventKind) String() string {
	return protoimpl.X.EnumStringOf(x.Descriptor(), protoreflect.EnumNumber(x))
}

func (EventKind) Descriptor() protoreflect.EnumDescriptor {
	return file_relay_v1_relay_proto_enumTypes[2].Descriptor()
}

func (EventKind) Type() protoreflect.EnumType {
	return &file_relay_v1_relay_proto_enumTypes[2]
}

func (x EventKind) Number() protoreflect.EnumNumber {
	return protoreflect.EnumNumber(x)
}

// Deprecated: Use EventKind.Descriptor instead.
func (EventKind) EnumDescriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{2}
}

// SessionSide names one side of a session.
type SessionSide int32

const (
	// SESSION_SIDE_UNSPECIFIED is not used.
	SessionSide_SESSION_SIDE_UNSPECIFIED SessionSide = 0
	// SESSION_SIDE_CLIENT: the TCP client.
	SessionSide_SESSION_SIDE_CLIENT SessionSide = 1
	// SESSION_SIDE_HOST: the host process.
	SessionSide_SESSION_SIDE_HOST SessionSide = 2
)

// Enum value maps for SessionSide.
var (
	SessionSide_name = map[int32]string{
		0: "SESSION_SIDE_UNSPECIFIED",
		1: "SESSION_SIDE_CLIENT",
		2: "SESSION_SIDE_HOST",
	}
	SessionSide_value = map[string]int32{
		"SESSION_SIDE_UNSPECIFIED": 0,
		"SESSION_SIDE_CLIENT":      1,
		"SESSION_SIDE_HOST":        2,
	}
)

func (x SessionSide) Enum() *SessionSide {
	p := new(SessionSide)
	*p = x
	return p
}

func (x SessionSide) String() string {
	return protoimpl.X.EnumStringOf(x.Descriptor(), protoreflect.EnumNumber(x))
}

func (SessionSide) Descriptor() protoreflect.EnumDescriptor {
	return file_relay_v1_relay_proto_enumTypes[3].Descriptor()
}

func (SessionSide) Type() protoreflect.EnumType {
	return &file_relay_v1_relay_proto_enumTypes[3]
}

func (x SessionSide) Number() protoreflect.EnumNumber {
	return protoreflect.EnumNumber(x)
}

// Deprecated: Use SessionSide.Descriptor instead.
func (SessionSide) EnumDescriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{3}
}

// RejectReason says why a client was closed without a session.
type RejectReason int32

const (
	// REJECT_REASON_UNSPECIFIED is used when no other reason applies.
	RejectReason_REJECT_REASON_UNSPECIFIED RejectReason = 0
	// REJECT_REASON_NO_SLOT_IN_TIME: no idle slot came within the assign timeout.
	RejectReason_REJECT_REASON_NO_SLOT_IN_TIME RejectReason = 1
	// REJECT_REASON_QUEUE_FULL: max_pending clients were already waiting.
	RejectReason_REJECT_REASON_QUEUE_FULL RejectReason = 2
	// REJECT_REASON_LIMIT: a configured limit refused the client.
	RejectReason_REJECT_REASON_LIMIT RejectReason = 3
	// REJECT_REASON_SHUTDOWN: the relay stopped while the client waited.
	RejectReason_REJECT_REASON_SHUTDOWN RejectReason = 4
)

// Enum value maps for RejectReason.
var (
	RejectReason_name = map[int32]string{
		0: "REJECT_REASON_UNSPECIFIED",
		1: "REJECT_REASON_NO_SLOT_IN_TIME",
		2: "REJECT_REASON_QUEUE_FULL",
		3: "REJECT_REASON_LIMIT",
		4: "REJECT_REASON_SHUTDOWN",
	}
	RejectReason_value = map[string]int32{
		"REJECT_REASON_UNSPECIFIED":     0,
		"REJECT_REASON_NO_SLOT_IN_TIME": 1,
		"REJECT_REASON_QUEUE_FULL":      2,
		"REJECT_REASON_LIMIT":           3,
		"REJECT_REASON_SHUTDOWN":        4,
	}
)

func (x RejectReason) Enum() *RejectReason {
	p := new(RejectReason)
	*p = x
	return p
}

func (x RejectReason) String() string {
	return protoimpl.X.EnumStringOf(x.Descriptor(), protoreflect.EnumNumber(x))
}

func (RejectReason) Descriptor() protoreflect.EnumDescriptor {
	return file_relay_v1_relay_proto_enumTypes[4].Descriptor()
}

func (RejectReason) Type() protoreflect.EnumType {
	return &file_relay_v1_relay_proto_enumTypes[4]
}

func (x RejectReason) Number() protoreflect.EnumNumber {
	return protoreflect.EnumNumber(x)
}

// Deprecated: Use RejectReason.Descriptor instead.
func (RejectReason) EnumDescriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{4}
}

// AttachRequest is one frame sent by the HP to the relay.
type AttachRequest struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// frame is exactly one of the HP's frames. A frame with no field set (for
	// example one from a newer HP that this relay does not know) is a protocol
	// error: INVALID_ARGUMENT.
	//
	// Types that are valid to be assigned to Frame:
	//
	//	*AttachRequest_Hello
	//	*AttachRequest_Data
	//	*AttachRequest_CloseWrite
	//	*AttachRequest_Close
	//	*AttachRequest_Credit
	//	*AttachRequest_Withdraw
	Frame         isAttachRequest_Frame `protobuf_oneof:"frame"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *AttachRequest) Reset() {
	*x = AttachRequest{}
	mi := &file_relay_v1_relay_proto_msgTypes[0]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *AttachRequest) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*AttachRequest) ProtoMessage() {}

func (x *AttachRequest) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[0]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use AttachRequest.ProtoReflect.Descriptor instead.
func (*AttachRequest) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{0}
}

func (x *AttachRequest) GetFrame() isAttachRequest_Frame {
	if x != nil {
		return x.Frame
	}
	return nil
}

func (x *AttachRequest) GetHello() *Hello {
	if x != nil {
		if x, ok := x.Frame.(*AttachRequest_Hello); ok {
			return x.Hello
		}
	}
	return nil
}

func (x *AttachRequest) GetData() *Data {
	if x != nil {
		if x, ok := x.Frame.(*AttachRequest_Data); ok {
			return x.Data
		}
	}
	return nil
}

func (x *AttachRequest) GetCloseWrite() *CloseWrite {
	if x != nil {
		if x, ok := x.Frame.(*AttachRequest_CloseWrite); ok {
			return x.CloseWrite
		}
	}
	return nil
}

func (x *AttachRequest) GetClose() *Close {
	if x != nil {
		if x, ok := x.Frame.(*AttachRequest_Close); ok {
			return x.Close
		}
	}
	return nil
}

func (x *AttachRequest) GetCredit() *Credit {
	if x != nil {
		if x, ok := x.Frame.(*AttachRequest_Credit); ok {
			return x.Credit
		}
	}
	return nil
}

func (x *AttachRequest) GetWithdraw() *Withdraw {
	if x != nil {
		if x, ok := x.Frame.(*AttachRequest_Withdraw); ok {
			return x.Withdraw
		}
	}
	return nil
}

type isAttachRequest_Frame interface {
	isAttachRequest_Frame()
}

type AttachRequest_Hello struct {
	// hello is the first frame of every stream, sent once; with sequential
	// sessions also the answer to each SessionEnd that offers the slot again.
	Hello *Hello `protobuf:"bytes,1,opt,name=hello,proto3,oneof"`
}

type AttachRequest_Data struct {
	// data carries bytes for the client; legal only after Open and before
	// the HP's own CloseWrite.
	Data *Data `protobuf:"bytes,2,opt,name=data,proto3,oneof"`
}

type AttachRequest_CloseWrite struct {
	// close_write ends the HP -> client direction; the relay passes a FIN to
	// the client after every earlier byte. Legal once, after Open.
	CloseWrite *CloseWrite `protobuf:"bytes,3,opt,name=close_write,json=closeWrite,proto3,oneof"`
}

type AttachRequest_Close struct {
	// close aborts the session: the client gets the bytes the relay already
	// received, then a reset. Legal at any time; before Open it gives the slot up.
	Close *Close `protobuf:"bytes,4,opt,name=close,proto3,oneof"`
}

type AttachRequest_Credit struct {
	// credit adds idle slots to a credit stream (Hello.slot_credits); legal
	// only there, at any time after Hello.
	Credit *Credit `protobuf:"bytes,5,opt,name=credit,proto3,oneof"`
}

type AttachRequest_Withdraw struct {
	// withdraw gives an idle slot up, unless a client already has it: if
	// the relay has not sent Open, it ends the stream with OK (a client
	// being assigned to the slot goes, untouched, to another); if it has,
	// the Withdraw is void and the session runs as usual (the HP must serve
	// the Open that crossed its Withdraw). Legal only while the slot is
	// idle as the HP sees it (after Welcome, before it has read Open), on a
	// stream whose Welcome set withdraw. A relay that does not know the
	// frame takes it for an empty one (INVALID_ARGUMENT): send it only
	// where Welcome.withdraw is set.
	Withdraw *Withdraw `protobuf:"bytes,6,opt,name=withdraw,proto3,oneof"`
}

func (*AttachRequest_Hello) isAttachRequest_Frame() {}

func (*AttachRequest_Data) isAttachRequest_Frame() {}

func (*AttachRequest_CloseWrite) isAttachRequest_Frame() {}

func (*AttachRequest_Close) isAttachRequest_Frame() {}

func (*AttachRequest_Credit) isAttachRequest_Frame() {}

func (*AttachRequest_Withdraw) isAttachRequest_Frame() {}

// AttachResponse is one frame sent by the relay to the HP.
type AttachResponse struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// frame is exactly one of the relay's frames. An HP should treat a frame
	// with no field set as one from a newer relay and ignore it.
	//
	// Types that are valid to be assigned to Frame:
	//
	//	*AttachResponse_Welcome
	//	*AttachResponse_Open
	//	*AttachResponse_Data
	//	*AttachResponse_CloseWrite
	//	*AttachResponse_Close
	//	*AttachResponse_Drain
	//	*AttachResponse_SessionEnd
	//	*AttachResponse_Offer
	Frame         isAttachResponse_Frame `protobuf_oneof:"frame"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *AttachResponse) Reset() {
	*x = AttachResponse{}
	mi := &file_relay_v1_relay_proto_msgTypes[1]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *AttachResponse) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*AttachResponse) ProtoMessage() {}

func (x *AttachResponse) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[1]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use AttachResponse.ProtoReflect.Descriptor instead.
func (*AttachResponse) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{1}
}

func (x *AttachResponse) GetFrame() isAttachResponse_Frame {
	if x != nil {
		return x.Frame
	}
	return nil
}

func (x *AttachResponse) GetWelcome() *Welcome {
	if x != nil {
		if x, ok := x.Frame.(*AttachResponse_Welcome); ok {
			return x.Welcome
		}
	}
	return nil
}

func (x *AttachResponse) GetOpen() *Open {
	if x != nil {
		if x, ok := x.Frame.(*AttachResponse_Open); ok {
			return x.Open
		}
	}
	return nil
}

func (x *AttachResponse) GetData() *Data {
	if x != nil {
		if x, ok := x.Frame.(*AttachResponse_Data); ok {
			return x.Data
		}
	}
	return nil
}

func (x *AttachResponse) GetCloseWrite() *CloseWrite {
	if x != nil {
		if x, ok := x.Frame.(*AttachResponse_CloseWrite); ok {
			return x.CloseWrite
		}
	}
	return nil
}

func (x *AttachResponse) GetClose() *Close {
	if x != nil {
		if x, ok := x.Frame.(*AttachResponse_Close); ok {
			return x.Close
		}
	}
	return nil
}

func (x *AttachResponse) GetDrain() *Drain {
	if x != nil {
		if x, ok := x.Frame.(*AttachResponse_Drain); ok {
			return x.Drain
		}
	}
	return nil
}

func (x *AttachResponse) GetSessionEnd() *SessionEnd {
	if x != nil {
		if x, ok := x.Frame.(*AttachResponse_SessionEnd); ok {
			return x.SessionEnd
		}
	}
	return nil
}

func (x *AttachResponse) GetOffer() *Offer {
	if x != nil {
		if x, ok := x.Frame.(*AttachResponse_Offer); ok {
			return x.Offer
		}
	}
	return nil
}

type isAttachResponse_Frame interface {
	isAttachResponse_Frame()
}

type AttachResponse_Welcome struct {
	// welcome answers Hello; the slot is idle from then on.
	Welcome *Welcome `protobuf:"bytes,1,opt,name=welcome,proto3,oneof"`
}

type AttachResponse_Open struct {
	// open announces the client assigned to this slot; sent at most once.
	Open *Open `protobuf:"bytes,2,opt,name=open,proto3,oneof"`
}

type AttachResponse_Data struct {
	// data carries bytes from the client, after Open.
	Data *Data `protobuf:"bytes,3,opt,name=data,proto3,oneof"`
}

type AttachResponse_CloseWrite struct {
	// close_write means the client sent FIN: no more data follows in this
	// direction. The HP may still send.
	CloseWrite *CloseWrite `protobuf:"bytes,4,opt,name=close_write,json=closeWrite,proto3,oneof"`
}

type AttachResponse_Close struct {
	// close means the session is aborted (the client reset, the relay is
	// shutting down, ...); the relay ends the stream right after it.
	Close *Close `protobuf:"bytes,5,opt,name=close,proto3,oneof"`
}

type AttachResponse_Drain struct {
	// drain is sent on an idle slot, never during a session: the relay wants
	// no more slots from this HP for now (it is shutting down, or an operator
	// drained the host). The relay ends the stream with OK right after it.
	// The HP should stop opening slots on this relay for Drain.retry_after,
	// keep serving its open sessions (on this relay too: they run to
	// completion), and keep serving through its other relays. A relay that
	// is still draining when the HP comes back answers with Drain again, or
	// refuses the stream with UNAVAILABLE.
	Drain *Drain `protobuf:"bytes,6,opt,name=drain,proto3,oneof"`
}

type AttachResponse_SessionEnd struct {
	// session_end is sent, on a stream whose Hello and Welcome agreed on
	// sequential_sessions, when its session has ended cleanly: both
	// directions closed, every byte delivered. It takes the place of the
	// RPC's OK status. The HP answers with Hello to offer the slot again,
	// or half-closes the RPC to give it up.
	SessionEnd *SessionEnd `protobuf:"bytes,7,opt,name=session_end,json=sessionEnd,proto3,oneof"`
}

type AttachResponse_Offer struct {
	// offer is sent on a credit stream (Hello.slot_credits) when a client is
	// given to one of its credits: the HP claims it with a new Attach stream
	// whose Hello carries offer.claim_id. Each offer uses up one credit.
	Offer *Offer `protobuf:"bytes,8,opt,name=offer,proto3,oneof"`
}

func (*AttachResponse_Welcome) isAttachResponse_Frame() {}

func (*AttachResponse_Open) isAttachResponse_Frame() {}

func (*AttachResponse_Data) isAttachResponse_Frame() {}

func (*AttachResponse_CloseWrite) isAttachResponse_Frame() {}

func (*AttachResponse_Close) isAttachResponse_Frame() {}

func (*AttachResponse_Drain) isAttachResponse_Frame() {}

func (*AttachResponse_SessionEnd) isAttachResponse_Frame() {}

func (*AttachResponse_Offer) isAttachResponse_Frame() {}

// Hello is sent by the HP as the first frame of every Attach stream.
type Hello struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// service names the pool of hosts this slot joins; empty means "default".
	// A client listener of the relay feeds exactly one service. At most 128
	// bytes.
	Service string `protobuf:"bytes,1,opt,name=service,proto3" json:"service,omitempty"`
	// host_id identifies the HP; all slots with the same host_id count as one
	// host for scheduling and status. Empty means the peer address. At most
	// 256 bytes.
	HostId string `protobuf:"bytes,2,opt,name=host_id,json=hostId,proto3" json:"host_id,omitempty"`
	// labels are free-form key/value pairs shown in status output: at most
	// 64, each key 1 to 256 bytes and each value at most 1024, 16 KiB in all.
	Labels map[string]string `protobuf:"bytes,3,rep,name=labels,proto3" json:"labels,omitempty" protobuf_key:"bytes,1,opt,name=key" protobuf_val:"bytes,2,opt,name=value"`
	// agent_version names the HP's software, for status output and logs. At
	// most 128 bytes.
	//
	// The strings of a first Hello (service, host_id, labels, agent_version,
	// agent_instance) must hold no control character (a line break, a tab,
	// NUL, ESC), bidirectional control (U+202E and its kin), line or
	// paragraph separator, zero-width space or byte-order mark: one, or a
	// string over its length, ends the stream with INVALID_ARGUMENT naming
	// the field.
	AgentVersion string `protobuf:"bytes,4,opt,name=agent_version,json=agentVersion,proto3" json:"agent_version,omitempty"`
	// weight is the host's relative capacity for the scheduler (hostagent
	// --weight): a host of weight 2 is given twice the clients of a host of
	// weight 1 under every policy. 0 means 1. Every slot of one host should
	// carry the same weight; the latest Hello wins.
	Weight uint32 `protobuf:"varint,5,opt,name=weight,proto3" json:"weight,omitempty"`
	// sequential_sessions asks for several sessions on this stream, one
	// after another (see SessionEnd). The relay agrees in
	// Welcome.sequential_sessions; a relay that does not know the field
	// ends the stream after its session, as without it.
	SequentialSessions bool `protobuf:"varint,6,opt,name=sequential_sessions,json=sequentialSessions,proto3" json:"sequential_sessions,omitempty"`
	// slot_credits, when not 0, makes this stream a credit stream: it carries
	// no session, and the relay counts this many idle slots for the host,
	// each offered on this stream with Offer (see "Slot credits" above). A
	// relay that does not know the field answers without
	// Welcome.slot_credits and treats the stream as one idle slot.
	SlotCredits uint32 `protobuf:"varint,7,opt,name=slot_credits,json=slotCredits,proto3" json:"slot_credits,omitempty"`
	// claim_id claims the Offer with that id for this stream, which then
	// carries that offer's client (Welcome, then Open at once). The other
	// fields are as in any Hello; service and host_id must be those of the
	// credit stream that got the offer.
	ClaimId string `protobuf:"bytes,8,opt,name=claim_id,json=claimId,proto3" json:"claim_id,omitempty"`
	// agent_instance identifies the agent process among those that share a
	// host_id (random, drawn at its start; the same on all its connections
	// and relays). The relay keeps the backend health that the scheduler
	// uses (see CLOSE_REASON_BACKEND_UNAVAILABLE) per instance; without it,
	// per connection. At most 128 bytes.
	AgentInstance string `protobuf:"bytes,9,opt,name=agent_instance,json=agentInstance,proto3" json:"agent_instance,omitempty"`
	// idle_linger, on a Hello that offers the stream again after
	// SessionEnd, bounds how long the slot waits for a client: if none has
	// it by then, the relay withdraws it, as Withdraw would, and ends the
	// stream with OK. The relay does this itself, so that a host that has
	// stopped (SIGSTOP, a frozen VM) does not keep taking clients on a slot
	// it meant to hold only for a moment. Unset or zero: the slot waits for
	// good. Ignored on a stream's first Hello.
	IdleLinger    *durationpb.Duration `protobuf:"bytes,10,opt,name=idle_linger,json=idleLinger,proto3" json:"idle_linger,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *Hello) Reset() {
	*x = Hello{}
	mi := &file_relay_v1_relay_proto_msgTypes[2]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *Hello) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*Hello) ProtoMessage() {}

func (x *Hello) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[2]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use Hello.ProtoReflect.Descriptor instead.
func (*Hello) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{2}
}

func (x *Hello) GetService() string {
	if x != nil {
		return x.Service
	}
	return ""
}

func (x *Hello) GetHostId() string {
	if x != nil {
		return x.HostId
	}
	return ""
}

func (x *Hello) GetLabels() map[string]string {
	if x != nil {
		return x.Labels
	}
	return nil
}

func (x *Hello) GetAgentVersion() string {
	if x != nil {
		return x.AgentVersion
	}
	return ""
}

func (x *Hello) GetWeight() uint32 {
	if x != nil {
		return x.Weight
	}
	return 0
}

func (x *Hello) GetSequentialSessions() bool {
	if x != nil {
		return x.SequentialSessions
	}
	return false
}

func (x *Hello) GetSlotCredits() uint32 {
	if x != nil {
		return x.SlotCredits
	}
	return 0
}

func (x *Hello) GetClaimId() string {
	if x != nil {
		return x.ClaimId
	}
	return ""
}

func (x *Hello) GetAgentInstance() string {
	if x != nil {
		return x.AgentInstance
	}
	return ""
}

func (x *Hello) GetIdleLinger() *durationpb.Duration {
	if x != nil {
		return x.IdleLinger
	}
	return nil
}

// Welcome is the relay's answer to Hello.
type Welcome struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// relay_id identifies the relay process (stable for its lifetime).
	RelayId string `protobuf:"bytes,1,opt,name=relay_id,json=relayId,proto3" json:"relay_id,omitempty"`
	// slot_id identifies this stream in the relay's logs and status.
	SlotId string `protobuf:"bytes,2,opt,name=slot_id,json=slotId,proto3" json:"slot_id,omitempty"`
	// max_data_bytes is the largest Data payload the relay accepts, and the
	// largest it sends. A larger payload ends the stream with RESOURCE_EXHAUSTED.
	MaxDataBytes uint32 `protobuf:"varint,3,opt,name=max_data_bytes,json=maxDataBytes,proto3" json:"max_data_bytes,omitempty"`
	// sequential_sessions is true when Hello asked for sequential sessions
	// and the relay agrees: a clean end of the session is SessionEnd, not
	// the end of the RPC.
	SequentialSessions bool `protobuf:"varint,4,opt,name=sequential_sessions,json=sequentialSessions,proto3" json:"sequential_sessions,omitempty"`
	// slot_credits, on a credit stream, is the number of credits the relay
	// took from Hello.slot_credits (it may take fewer: see the relay's
	// --max-credits).
	SlotCredits uint32 `protobuf:"varint,5,opt,name=slot_credits,json=slotCredits,proto3" json:"slot_credits,omitempty"`
	// withdraw is true when the relay takes AttachRequest.withdraw on this
	// stream: a slot's, not a credit stream's or a claimed one's.
	Withdraw bool `protobuf:"varint,6,opt,name=withdraw,proto3" json:"withdraw,omitempty"`
	// idle_timeout, when set, is how long the relay lets a session move no
	// byte either way before it ends it (CLOSE_REASON_TIMEOUT). A host may
	// end its own side after a little longer: if its backend stopped reading,
	// the host is stuck writing to it, reads the stream no more, and cannot
	// see the relay's Close behind the data the relay could not send.
	IdleTimeout   *durationpb.Duration `protobuf:"bytes,7,opt,name=idle_timeout,json=idleTimeout,proto3" json:"idle_timeout,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *Welcome) Reset() {
	*x = Welcome{}
	mi := &file_relay_v1_relay_proto_msgTypes[3]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *Welcome) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*Welcome) ProtoMessage() {}

func (x *Welcome) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[3]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use Welcome.ProtoReflect.Descriptor instead.
func (*Welcome) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{3}
}

func (x *Welcome) GetRelayId() string {
	if x != nil {
		return x.RelayId
	}
	return ""
}

func (x *Welcome) GetSlotId() string {
	if x != nil {
		return x.SlotId
	}
	return ""
}

func (x *Welcome) GetMaxDataBytes() uint32 {
	if x != nil {
		return x.MaxDataBytes
	}
	return 0
}

func (x *Welcome) GetSequentialSessions() bool {
	if x != nil {
		return x.SequentialSessions
	}
	return false
}

func (x *Welcome) GetSlotCredits() uint32 {
	if x != nil {
		return x.SlotCredits
	}
	return 0
}

func (x *Welcome) GetWithdraw() bool {
	if x != nil {
		return x.Withdraw
	}
	return false
}

func (x *Welcome) GetIdleTimeout() *durationpb.Duration {
	if x != nil {
		return x.IdleTimeout
	}
	return nil
}

// Withdraw gives an idle slot up; see AttachRequest.withdraw.
type Withdraw struct {
	state         protoimpl.MessageState `protogen:"open.v1"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *Withdraw) Reset() {
	*x = Withdraw{}
	mi := &file_relay_v1_relay_proto_msgTypes[4]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *Withdraw) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*Withdraw) ProtoMessage() {}

func (x *Withdraw) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[4]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use Withdraw.ProtoReflect.Descriptor instead.
func (*Withdraw) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{4}
}

// Credit adds idle slots to a credit stream.
type Credit struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// slots is the number of credits added; 0 adds none.
	Slots         uint32 `protobuf:"varint,1,opt,name=slots,proto3" json:"slots,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *Credit) Reset() {
	*x = Credit{}
	mi := &file_relay_v1_relay_proto_msgTypes[5]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *Credit) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*Credit) ProtoMessage() {}

func (x *Credit) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[5]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use Credit.ProtoReflect.Descriptor instead.
func (*Credit) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{5}
}

func (x *Credit) GetSlots() uint32 {
	if x != nil {
		return x.Slots
	}
	return 0
}

// Offer tells the HP, on its credit stream, that a client is waiting for it.
type Offer struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// claim_id names the offer; a new Attach stream claims it with
	// Hello.claim_id.
	ClaimId string `protobuf:"bytes,1,opt,name=claim_id,json=claimId,proto3" json:"claim_id,omitempty"`
	// client_addr is the client's address as the relay saw it, for logs.
	ClientAddr    string `protobuf:"bytes,2,opt,name=client_addr,json=clientAddr,proto3" json:"client_addr,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *Offer) Reset() {
	*x = Offer{}
	mi := &file_relay_v1_relay_proto_msgTypes[6]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *Offer) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*Offer) ProtoMessage() {}

func (x *Offer) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[6]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use Offer.ProtoReflect.Descriptor instead.
func (*Offer) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{6}
}

func (x *Offer) GetClaimId() string {
	if x != nil {
		return x.ClaimId
	}
	return ""
}

func (x *Offer) GetClientAddr() string {
	if x != nil {
		return x.ClientAddr
	}
	return ""
}

// Open is sent by the relay when a client is assigned to this slot.
type Open struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// session_id identifies the session in the relay's logs and status.
	SessionId string `protobuf:"bytes,1,opt,name=session_id,json=sessionId,proto3" json:"session_id,omitempty"`
	// client_addr is the client's address as the relay saw it ("ip:port").
	ClientAddr string `protobuf:"bytes,2,opt,name=client_addr,json=clientAddr,proto3" json:"client_addr,omitempty"`
	// listener_addr is the relay address the client connected to ("ip:port").
	ListenerAddr string `protobuf:"bytes,3,opt,name=listener_addr,json=listenerAddr,proto3" json:"listener_addr,omitempty"`
	// service is the service of the listener the client came in on.
	Service string `protobuf:"bytes,4,opt,name=service,proto3" json:"service,omitempty"`
	// opened_at is when the relay assigned the client to this slot.
	OpenedAt      *timestamppb.Timestamp `protobuf:"bytes,5,opt,name=opened_at,json=openedAt,proto3" json:"opened_at,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *Open) Reset() {
	*x = Open{}
	mi := &file_relay_v1_relay_proto_msgTypes[7]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *Open) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*Open) ProtoMessage() {}

func (x *Open) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[7]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use Open.ProtoReflect.Descriptor instead.
func (*Open) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{7}
}

func (x *Open) GetSessionId() string {
	if x != nil {
		return x.SessionId
	}
	return ""
}

func (x *Open) GetClientAddr() string {
	if x != nil {
		return x.ClientAddr
	}
	return ""
}

func (x *Open) GetListenerAddr() string {
	if x != nil {
		return x.ListenerAddr
	}
	return ""
}

func (x *Open) GetService() string {
	if x != nil {
		return x.Service
	}
	return ""
}

func (x *Open) GetOpenedAt() *timestamppb.Timestamp {
	if x != nil {
		return x.OpenedAt
	}
	return nil
}

// Drain is sent by the relay on an idle slot to tell the HP to stop offering
// slots on this relay for a while and to finish its open sessions. It is
// also the answer to a new stream while the relay drains (possibly before
// the relay has read Hello) or while the host is drained (instead of
// Welcome). The relay ends the stream with OK right after it.
type Drain struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// reason says why the relay drains.
	Reason DrainReason `protobuf:"varint,1,opt,name=reason,proto3,enum=relay.v1.DrainReason" json:"reason,omitempty"`
	// retry_after is how long the HP should wait before it opens a slot on
	// this relay again; unset or zero means the HP's own reconnect backoff.
	RetryAfter *durationpb.Duration `protobuf:"bytes,2,opt,name=retry_after,json=retryAfter,proto3" json:"retry_after,omitempty"`
	// detail is a human-readable explanation, for logs only.
	Detail        string `protobuf:"bytes,3,opt,name=detail,proto3" json:"detail,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *Drain) Reset() {
	*x = Drain{}
	mi := &file_relay_v1_relay_proto_msgTypes[8]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *Drain) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*Drain) ProtoMessage() {}

func (x *Drain) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[8]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use Drain.ProtoReflect.Descriptor instead.
func (*Drain) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{8}
}

func (x *Drain) GetReason() DrainReason {
	if x != nil {
		return x.Reason
	}
	return DrainReason_DRAIN_REASON_UNSPECIFIED
}

func (x *Drain) GetRetryAfter() *durationpb.Duration {
	if x != nil {
		return x.RetryAfter
	}
	return nil
}

func (x *Drain) GetDetail() string {
	if x != nil {
		return x.Detail
	}
	return ""
}

// Data carries bytes of the session, in order. Sent by either side after Open.
type Data struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// payload is non-empty in practice; an empty payload is legal and ignored.
	// At most Welcome.max_data_bytes long.
	Payload       []byte `protobuf:"bytes,1,opt,name=payload,proto3" json:"payload,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *Data) Reset() {
	*x = Data{}
	mi := &file_relay_v1_relay_proto_msgTypes[9]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *Data) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*Data) ProtoMessage() {}

func (x *Data) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[9]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use Data.ProtoReflect.Descriptor instead.
func (*Data) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{9}
}

func (x *Data) GetPayload() []byte {
	if x != nil {
		return x.Payload
	}
	return nil
}

// SessionEnd tells the HP that the stream's session has ended cleanly and
// that the stream can carry another (see Hello.sequential_sessions).
type SessionEnd struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// session_id is the session that ended, as sent in Open.
	SessionId     string `protobuf:"bytes,1,opt,name=session_id,json=sessionId,proto3" json:"session_id,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *SessionEnd) Reset() {
	*x = SessionEnd{}
	mi := &file_relay_v1_relay_proto_msgTypes[10]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *SessionEnd) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*SessionEnd) ProtoMessage() {}

func (x *SessionEnd) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[10]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use SessionEnd.ProtoReflect.Descriptor instead.
func (*SessionEnd) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{10}
}

func (x *SessionEnd) GetSessionId() string {
	if x != nil {
		return x.SessionId
	}
	return ""
}

// CloseWrite ends the sender's direction of the session (TCP FIN). Sent at
// most once by each side, after Open. An empty message so it can grow.
type CloseWrite struct {
	state         protoimpl.MessageState `protogen:"open.v1"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *CloseWrite) Reset() {
	*x = CloseWrite{}
	mi := &file_relay_v1_relay_proto_msgTypes[11]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *CloseWrite) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*CloseWrite) ProtoMessage() {}

func (x *CloseWrite) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[11]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use CloseWrite.ProtoReflect.Descriptor instead.
func (*CloseWrite) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{11}
}

// Close aborts the session. Sent by either side; the relay ends the stream
// after sending or receiving it.
type Close struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// reason says why the session was aborted. An HP's Close with a reason
	// only the relay sets (CLIENT_RESET, RELAY_SHUTDOWN, ADMIN, HOST_LOST) is
	// recorded as HOST_ABORT, with the HP's reason in the detail.
	Reason CloseReason `protobuf:"varint,1,opt,name=reason,proto3,enum=relay.v1.CloseReason" json:"reason,omitempty"`
	// detail is a human-readable explanation, for logs only. The relay keeps
	// the first 512 bytes of an HP's and says how many it cut.
	Detail        string `protobuf:"bytes,2,opt,name=detail,proto3" json:"detail,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *Close) Reset() {
	*x = Close{}
	mi := &file_relay_v1_relay_proto_msgTypes[12]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *Close) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*Close) ProtoMessage() {}

func (x *Close) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[12]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use Close.ProtoReflect.Descriptor instead.
func (*Close) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{12}
}

func (x *Close) GetReason() CloseReason {
	if x != nil {
		return x.Reason
	}
	return CloseReason_CLOSE_REASON_UNSPECIFIED
}

func (x *Close) GetDetail() string {
	if x != nil {
		return x.Detail
	}
	return ""
}

// GetStatusRequest asks for the relay's status.
type GetStatusRequest struct {
	state         protoimpl.MessageState `protogen:"open.v1"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *GetStatusRequest) Reset() {
	*x = GetStatusRequest{}
	mi := &file_relay_v1_relay_proto_msgTypes[13]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *GetStatusRequest) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*GetStatusRequest) ProtoMessage() {}

func (x *GetStatusRequest) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[13]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use GetStatusRequest.ProtoReflect.Descriptor instead.
func (*GetStatusRequest) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{13}
}

// GetStatusResponse is a snapshot of the relay.
type GetStatusResponse struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// relay_id identifies this relay process.
	RelayId string `protobuf:"bytes,1,opt,name=relay_id,json=relayId,proto3" json:"relay_id,omitempty"`
	// version is the relayd version.
	Version string `protobuf:"bytes,2,opt,name=version,proto3" json:"version,omitempty"`
	// uptime is how long the relay has been running.
	Uptime *durationpb.Duration `protobuf:"bytes,3,opt,name=uptime,proto3" json:"uptime,omitempty"`
	// hosts is the number of attached hosts (distinct service and host_id).
	Hosts uint32 `protobuf:"varint,4,opt,name=hosts,proto3" json:"hosts,omitempty"`
	// idle_slots is the number of slots waiting for a client.
	IdleSlots uint32 `protobuf:"varint,5,opt,name=idle_slots,json=idleSlots,proto3" json:"idle_slots,omitempty"`
	// active_sessions is the number of open sessions.
	ActiveSessions uint32 `protobuf:"varint,6,opt,name=active_sessions,json=activeSessions,proto3" json:"active_sessions,omitempty"`
	// sessions_total counts sessions opened since start.
	SessionsTotal uint64 `protobuf:"varint,7,opt,name=sessions_total,json=sessionsTotal,proto3" json:"sessions_total,omitempty"`
	// pending_clients is the number of clients waiting for a slot.
	PendingClients uint32 `protobuf:"varint,8,opt,name=pending_clients,json=pendingClients,proto3" json:"pending_clients,omitempty"`
	// services breaks the numbers down by service, sorted by name.
	Services []*ServiceStatus `protobuf:"bytes,9,rep,name=services,proto3" json:"services,omitempty"`
	// started_at is when the relay started.
	StartedAt *timestamppb.Timestamp `protobuf:"bytes,10,opt,name=started_at,json=startedAt,proto3" json:"started_at,omitempty"`
	// clients_rejected counts clients closed without a session (queue full,
	// no slot in time, a client limit such as --client-rate, shutdown).
	ClientsRejected uint64 `protobuf:"varint,11,opt,name=clients_rejected,json=clientsRejected,proto3" json:"clients_rejected,omitempty"`
	unknownFields   protoimpl.UnknownFields
	sizeCache       protoimpl.SizeCache
}

func (x *GetStatusResponse) Reset() {
	*x = GetStatusResponse{}
	mi := &file_relay_v1_relay_proto_msgTypes[14]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *GetStatusResponse) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*GetStatusResponse) ProtoMessage() {}

func (x *GetStatusResponse) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[14]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use GetStatusResponse.ProtoReflect.Descriptor instead.
func (*GetStatusResponse) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{14}
}

func (x *GetStatusResponse) GetRelayId() string {
	if x != nil {
		return x.RelayId
	}
	return ""
}

func (x *GetStatusResponse) GetVersion() string {
	if x != nil {
		return x.Version
	}
	return ""
}

func (x *GetStatusResponse) GetUptime() *durationpb.Duration {
	if x != nil {
		return x.Uptime
	}
	return nil
}

func (x *GetStatusResponse) GetHosts() uint32 {
	if x != nil {
		return x.Hosts
	}
	return 0
}

func (x *GetStatusResponse) GetIdleSlots() uint32 {
	if x != nil {
		return x.IdleSlots
	}
	return 0
}

func (x *GetStatusResponse) GetActiveSessions() uint32 {
	if x != nil {
		return x.ActiveSessions
	}
	return 0
}

func (x *GetStatusResponse) GetSessionsTotal() uint64 {
	if x != nil {
		return x.SessionsTotal
	}
	return 0
}

func (x *GetStatusResponse) GetPendingClients() uint32 {
	if x != nil {
		return x.PendingClients
	}
	return 0
}

func (x *GetStatusResponse) GetServices() []*ServiceStatus {
	if x != nil {
		return x.Services
	}
	return nil
}

func (x *GetStatusResponse) GetStartedAt() *timestamppb.Timestamp {
	if x != nil {
		return x.StartedAt
	}
	return nil
}

func (x *GetStatusResponse) GetClientsRejected() uint64 {
	if x != nil {
		return x.ClientsRejected
	}
	return 0
}

// ServiceStatus is the status of one service.
type ServiceStatus struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// service is the service name.
	Service string `protobuf:"bytes,1,opt,name=service,proto3" json:"service,omitempty"`
	// hosts is the number of attached hosts of this service.
	Hosts uint32 `protobuf:"varint,2,opt,name=hosts,proto3" json:"hosts,omitempty"`
	// idle_slots is the number of idle slots of this service.
	IdleSlots uint32 `protobuf:"varint,3,opt,name=idle_slots,json=idleSlots,proto3" json:"idle_slots,omitempty"`
	// active_sessions is the number of open sessions of this service.
	ActiveSessions uint32 `protobuf:"varint,4,opt,name=active_sessions,json=activeSessions,proto3" json:"active_sessions,omitempty"`
	// sessions_total counts sessions of this service opened since start.
	SessionsTotal uint64 `protobuf:"varint,5,opt,name=sessions_total,json=sessionsTotal,proto3" json:"sessions_total,omitempty"`
	// pending_clients is the number of clients waiting for a slot of this service.
	PendingClients uint32 `protobuf:"varint,6,opt,name=pending_clients,json=pendingClients,proto3" json:"pending_clients,omitempty"`
	// listen_addrs are the client listener addresses feeding this service.
	ListenAddrs   []string `protobuf:"bytes,7,rep,name=listen_addrs,json=listenAddrs,proto3" json:"listen_addrs,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *ServiceStatus) Reset() {
	*x = ServiceStatus{}
	mi := &file_relay_v1_relay_proto_msgTypes[15]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *ServiceStatus) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*ServiceStatus) ProtoMessage() {}

func (x *ServiceStatus) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[15]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use ServiceStatus.ProtoReflect.Descriptor instead.
func (*ServiceStatus) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{15}
}

func (x *ServiceStatus) GetService() string {
	if x != nil {
		return x.Service
	}
	return ""
}

func (x *ServiceStatus) GetHosts() uint32 {
	if x != nil {
		return x.Hosts
	}
	return 0
}

func (x *ServiceStatus) GetIdleSlots() uint32 {
	if x != nil {
		return x.IdleSlots
	}
	return 0
}

func (x *ServiceStatus) GetActiveSessions() uint32 {
	if x != nil {
		return x.ActiveSessions
	}
	return 0
}

func (x *ServiceStatus) GetSessionsTotal() uint64 {
	if x != nil {
		return x.SessionsTotal
	}
	return 0
}

func (x *ServiceStatus) GetPendingClients() uint32 {
	if x != nil {
		return x.PendingClients
	}
	return 0
}

func (x *ServiceStatus) GetListenAddrs() []string {
	if x != nil {
		return x.ListenAddrs
	}
	return nil
}

// ListHostsRequest asks for the attached (and drained) hosts.
type ListHostsRequest struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// service, when set, keeps only hosts of that service.
	Service       string `protobuf:"bytes,1,opt,name=service,proto3" json:"service,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *ListHostsRequest) Reset() {
	*x = ListHostsRequest{}
	mi := &file_relay_v1_relay_proto_msgTypes[16]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *ListHostsRequest) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*ListHostsRequest) ProtoMessage() {}

func (x *ListHostsRequest) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[16]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use ListHostsRequest.ProtoReflect.Descriptor instead.
func (*ListHostsRequest) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{16}
}

func (x *ListHostsRequest) GetService() string {
	if x != nil {
		return x.Service
	}
	return ""
}

// ListHostsResponse lists the attached hosts, and the drained ones with no
// slot left, sorted by service and host_id.
type ListHostsResponse struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// hosts are the attached hosts, and the drained ones with no slot left
	// (GetStatus counts attached hosts only).
	Hosts         []*Host `protobuf:"bytes,1,rep,name=hosts,proto3" json:"hosts,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *ListHostsResponse) Reset() {
	*x = ListHostsResponse{}
	mi := &file_relay_v1_relay_proto_msgTypes[17]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *ListHostsResponse) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*ListHostsResponse) ProtoMessage() {}

func (x *ListHostsResponse) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[17]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use ListHostsResponse.ProtoReflect.Descriptor instead.
func (*ListHostsResponse) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{17}
}

func (x *ListHostsResponse) GetHosts() []*Host {
	if x != nil {
		return x.Hosts
	}
	return nil
}

// Host is one attached host: every slot with the same service and host_id.
type Host struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// host_id is the id from Hello (or the peer address when Hello had none).
	HostId string `protobuf:"bytes,1,opt,name=host_id,json=hostId,proto3" json:"host_id,omitempty"`
	// service is the service from Hello.
	Service string `protobuf:"bytes,2,opt,name=service,proto3" json:"service,omitempty"`
	// peer_addr is the address of the host's most recent Attach stream.
	PeerAddr string `protobuf:"bytes,3,opt,name=peer_addr,json=peerAddr,proto3" json:"peer_addr,omitempty"`
	// attached_at is when the host's first current slot attached.
	AttachedAt *timestamppb.Timestamp `protobuf:"bytes,4,opt,name=attached_at,json=attachedAt,proto3" json:"attached_at,omitempty"`
	// idle_slots is the number of the host's slots waiting for a client.
	IdleSlots uint32 `protobuf:"varint,5,opt,name=idle_slots,json=idleSlots,proto3" json:"idle_slots,omitempty"`
	// active_sessions is the number of the host's open sessions.
	ActiveSessions uint32 `protobuf:"varint,6,opt,name=active_sessions,json=activeSessions,proto3" json:"active_sessions,omitempty"`
	// sessions_total counts the host's sessions since it attached.
	SessionsTotal uint64 `protobuf:"varint,7,opt,name=sessions_total,json=sessionsTotal,proto3" json:"sessions_total,omitempty"`
	// bytes_to_host counts client bytes delivered to the host.
	BytesToHost uint64 `protobuf:"varint,8,opt,name=bytes_to_host,json=bytesToHost,proto3" json:"bytes_to_host,omitempty"`
	// bytes_from_host counts host bytes delivered to clients.
	BytesFromHost uint64 `protobuf:"varint,9,opt,name=bytes_from_host,json=bytesFromHost,proto3" json:"bytes_from_host,omitempty"`
	// labels are the labels from Hello.
	Labels map[string]string `protobuf:"bytes,10,rep,name=labels,proto3" json:"labels,omitempty" protobuf_key:"bytes,1,opt,name=key" protobuf_val:"bytes,2,opt,name=value"`
	// agent_version is the agent_version from Hello.
	AgentVersion string `protobuf:"bytes,11,opt,name=agent_version,json=agentVersion,proto3" json:"agent_version,omitempty"`
	// drained is true while an operator has drained the host (DrainHost):
	// it gets no new sessions. A drained host stays listed until UndrainHost,
	// with no slots once they have all received Drain.
	Drained bool `protobuf:"varint,12,opt,name=drained,proto3" json:"drained,omitempty"`
	// weight is the weight from Hello (at least 1).
	Weight uint32 `protobuf:"varint,20,opt,name=weight,proto3" json:"weight,omitempty"`
	// idle_credits is how many of idle_slots are slot credits
	// (Hello.slot_credits) rather than streams.
	IdleCredits uint32 `protobuf:"varint,21,opt,name=idle_credits,json=idleCredits,proto3" json:"idle_credits,omitempty"`
	// backend_failures counts the backend-failure windows in a row of the
	// host's agent (connection) that has the most: each opens when a session
	// ends with CLOSE_REASON_BACKEND_UNAVAILABLE outside a window (1 s,
	// doubling to 16 s); 0 once a session ends otherwise.
	BackendFailures uint32 `protobuf:"varint,22,opt,name=backend_failures,json=backendFailures,proto3" json:"backend_failures,omitempty"`
	// backend_failing_until, while in the future, is when the latest of its
	// agents' windows ends: until then the scheduler passes that agent's
	// slots over for slots that are not failing, of this host or another.
	BackendFailingUntil *timestamppb.Timestamp `protobuf:"bytes,23,opt,name=backend_failing_until,json=backendFailingUntil,proto3" json:"backend_failing_until,omitempty"`
	unknownFields       protoimpl.UnknownFields
	sizeCache           protoimpl.SizeCache
}

func (x *Host) Reset() {
	*x = Host{}
	mi := &file_relay_v1_relay_proto_msgTypes[18]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *Host) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*Host) ProtoMessage() {}

func (x *Host) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[18]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use Host.ProtoReflect.Descriptor instead.
func (*Host) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{18}
}

func (x *Host) GetHostId() string {
	if x != nil {
		return x.HostId
	}
	return ""
}

func (x *Host) GetService() string {
	if x != nil {
		return x.Service
	}
	return ""
}

func (x *Host) GetPeerAddr() string {
	if x != nil {
		return x.PeerAddr
	}
	return ""
}

func (x *Host) GetAttachedAt() *timestamppb.Timestamp {
	if x != nil {
		return x.AttachedAt
	}
	return nil
}

func (x *Host) GetIdleSlots() uint32 {
	if x != nil {
		return x.IdleSlots
	}
	return 0
}

func (x *Host) GetActiveSessions() uint32 {
	if x != nil {
		return x.ActiveSessions
	}
	return 0
}

func (x *Host) GetSessionsTotal() uint64 {
	if x != nil {
		return x.SessionsTotal
	}
	return 0
}

func (x *Host) GetBytesToHost() uint64 {
	if x != nil {
		return x.BytesToHost
	}
	return 0
}

func (x *Host) GetBytesFromHost() uint64 {
	if x != nil {
		return x.BytesFromHost
	}
	return 0
}

func (x *Host) GetLabels() map[string]string {
	if x != nil {
		return x.Labels
	}
	return nil
}

func (x *Host) GetAgentVersion() string {
	if x != nil {
		return x.AgentVersion
	}
	return ""
}

func (x *Host) GetDrained() bool {
	if x != nil {
		return x.Drained
	}
	return false
}

func (x *Host) GetWeight() uint32 {
	if x != nil {
		return x.Weight
	}
	return 0
}

func (x *Host) GetIdleCredits() uint32 {
	if x != nil {
		return x.IdleCredits
	}
	return 0
}

func (x *Host) GetBackendFailures() uint32 {
	if x != nil {
		return x.BackendFailures
	}
	return 0
}

func (x *Host) GetBackendFailingUntil() *timestamppb.Timestamp {
	if x != nil {
		return x.BackendFailingUntil
	}
	return nil
}

// ListSessionsRequest asks for the open sessions.
type ListSessionsRequest struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// service, when set, keeps only sessions of that service.
	Service string `protobuf:"bytes,1,opt,name=service,proto3" json:"service,omitempty"`
	// host_id, when set, keeps only sessions of that host.
	HostId string `protobuf:"bytes,2,opt,name=host_id,json=hostId,proto3" json:"host_id,omitempty"`
	// page_size is the most sessions one response lists: 0 means 1000, and
	// more than 10000 is taken as 10000 (a relay may hold far more sessions
	// than fit in one gRPC message).
	PageSize uint32 `protobuf:"varint,3,opt,name=page_size,json=pageSize,proto3" json:"page_size,omitempty"`
	// page_token is a previous response's next_page_token: the page after
	// it, with the same filters. Sessions opened since are on later pages;
	// sessions ended since are left out. A token from before the relay
	// restarted is INVALID_ARGUMENT: list again from the first page.
	PageToken     string `protobuf:"bytes,4,opt,name=page_token,json=pageToken,proto3" json:"page_token,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *ListSessionsRequest) Reset() {
	*x = ListSessionsRequest{}
	mi := &file_relay_v1_relay_proto_msgTypes[19]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *ListSessionsRequest) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*ListSessionsRequest) ProtoMessage() {}

func (x *ListSessionsRequest) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[19]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use ListSessionsRequest.ProtoReflect.Descriptor instead.
func (*ListSessionsRequest) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{19}
}

func (x *ListSessionsRequest) GetService() string {
	if x != nil {
		return x.Service
	}
	return ""
}

func (x *ListSessionsRequest) GetHostId() string {
	if x != nil {
		return x.HostId
	}
	return ""
}

func (x *ListSessionsRequest) GetPageSize() uint32 {
	if x != nil {
		return x.PageSize
	}
	return 0
}

func (x *ListSessionsRequest) GetPageToken() string {
	if x != nil {
		return x.PageToken
	}
	return ""
}

// ListSessionsResponse lists the open sessions, oldest first.
type ListSessionsResponse struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// sessions are the open sessions.
	Sessions []*Session `protobuf:"bytes,1,rep,name=sessions,proto3" json:"sessions,omitempty"`
	// next_page_token, when set, asks for the next page (page_token);
	// empty on the last page.
	NextPageToken string `protobuf:"bytes,2,opt,name=next_page_token,json=nextPageToken,proto3" json:"next_page_token,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *ListSessionsResponse) Reset() {
	*x = ListSessionsResponse{}
	mi := &file_relay_v1_relay_proto_msgTypes[20]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *ListSessionsResponse) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*ListSessionsResponse) ProtoMessage() {}

func (x *ListSessionsResponse) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[20]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use ListSessionsResponse.ProtoReflect.Descriptor instead.
func (*ListSessionsResponse) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{20}
}

func (x *ListSessionsResponse) GetSessions() []*Session {
	if x != nil {
		return x.Sessions
	}
	return nil
}

func (x *ListSessionsResponse) GetNextPageToken() string {
	if x != nil {
		return x.NextPageToken
	}
	return ""
}

// Session is one open client session.
type Session struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// session_id is the id sent in Open.
	SessionId string `protobuf:"bytes,1,opt,name=session_id,json=sessionId,proto3" json:"session_id,omitempty"`
	// service is the service of the client's listener.
	Service string `protobuf:"bytes,2,opt,name=service,proto3" json:"service,omitempty"`
	// host_id is the host serving the session.
	HostId string `protobuf:"bytes,3,opt,name=host_id,json=hostId,proto3" json:"host_id,omitempty"`
	// client_addr is the client's address.
	ClientAddr string `protobuf:"bytes,4,opt,name=client_addr,json=clientAddr,proto3" json:"client_addr,omitempty"`
	// opened_at is when the session was opened.
	OpenedAt *timestamppb.Timestamp `protobuf:"bytes,5,opt,name=opened_at,json=openedAt,proto3" json:"opened_at,omitempty"`
	// bytes_to_host counts client bytes delivered to the host so far.
	BytesToHost uint64 `protobuf:"varint,6,opt,name=bytes_to_host,json=bytesToHost,proto3" json:"bytes_to_host,omitempty"`
	// bytes_from_host counts host bytes delivered to the client so far.
	BytesFromHost uint64 `protobuf:"varint,7,opt,name=bytes_from_host,json=bytesFromHost,proto3" json:"bytes_from_host,omitempty"`
	// client_write_closed is true once the client sent FIN (half-closed).
	ClientWriteClosed bool `protobuf:"varint,8,opt,name=client_write_closed,json=clientWriteClosed,proto3" json:"client_write_closed,omitempty"`
	// host_write_closed is true once the host sent CloseWrite (half-closed).
	HostWriteClosed bool `protobuf:"varint,9,opt,name=host_write_closed,json=hostWriteClosed,proto3" json:"host_write_closed,omitempty"`
	// slot_id is the slot (Attach stream) carrying the session.
	SlotId        string `protobuf:"bytes,10,opt,name=slot_id,json=slotId,proto3" json:"slot_id,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *Session) Reset() {
	*x = Session{}
	mi := &file_relay_v1_relay_proto_msgTypes[21]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *Session) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*Session) ProtoMessage() {}

func (x *Session) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[21]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use Session.ProtoReflect.Descriptor instead.
func (*Session) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{21}
}

func (x *Session) GetSessionId() string {
	if x != nil {
		return x.SessionId
	}
	return ""
}

func (x *Session) GetService() string {
	if x != nil {
		return x.Service
	}
	return ""
}

func (x *Session) GetHostId() string {
	if x != nil {
		return x.HostId
	}
	return ""
}

func (x *Session) GetClientAddr() string {
	if x != nil {
		return x.ClientAddr
	}
	return ""
}

func (x *Session) GetOpenedAt() *timestamppb.Timestamp {
	if x != nil {
		return x.OpenedAt
	}
	return nil
}

func (x *Session) GetBytesToHost() uint64 {
	if x != nil {
		return x.BytesToHost
	}
	return 0
}

func (x *Session) GetBytesFromHost() uint64 {
	if x != nil {
		return x.BytesFromHost
	}
	return 0
}

func (x *Session) GetClientWriteClosed() bool {
	if x != nil {
		return x.ClientWriteClosed
	}
	return false
}

func (x *Session) GetHostWriteClosed() bool {
	if x != nil {
		return x.HostWriteClosed
	}
	return false
}

func (x *Session) GetSlotId() string {
	if x != nil {
		return x.SlotId
	}
	return ""
}

// WatchEventsRequest opens an event feed. Every filter that is set must
// match; an empty request receives every event.
type WatchEventsRequest struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// service, when set, keeps only events of that service (client_rejected,
	// session and host events, slot_opened). A service the relay does not
	// serve is INVALID_ARGUMENT.
	Service string `protobuf:"bytes,1,opt,name=service,proto3" json:"service,omitempty"`
	// host_id, when set, keeps only events of that host; client_rejected
	// events have no host and are then left out.
	HostId string `protobuf:"bytes,2,opt,name=host_id,json=hostId,proto3" json:"host_id,omitempty"`
	// kinds, when not empty, keeps only events of these kinds.
	Kinds         []EventKind `protobuf:"varint,3,rep,packed,name=kinds,proto3,enum=relay.v1.EventKind" json:"kinds,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *WatchEventsRequest) Reset() {
	*x = WatchEventsRequest{}
	mi := &file_relay_v1_relay_proto_msgTypes[22]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *WatchEventsRequest) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*WatchEventsRequest) ProtoMessage() {}

func (x *WatchEventsRequest) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[22]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use WatchEventsRequest.ProtoReflect.Descriptor instead.
func (*WatchEventsRequest) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{22}
}

func (x *WatchEventsRequest) GetService() string {
	if x != nil {
		return x.Service
	}
	return ""
}

func (x *WatchEventsRequest) GetHostId() string {
	if x != nil {
		return x.HostId
	}
	return ""
}

func (x *WatchEventsRequest) GetKinds() []EventKind {
	if x != nil {
		return x.Kinds
	}
	return nil
}

// WatchEventsResponse is one event, sent by the relay to a watcher in the
// order the relay saw the events.
type WatchEventsResponse struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// time is when the event happened.
	Time *timestamppb.Timestamp `protobuf:"bytes,1,opt,name=time,proto3" json:"time,omitempty"`
	// dropped counts the events this watcher missed just before this one,
	// because its buffer was full (it read too slowly). Zero normally. Once
	// the watcher has caught up, a response with no event carries the count
	// of those it missed since the last event, so that it never waits for
	// the next event (or is lost at the relay's shutdown).
	Dropped uint64 `protobuf:"varint,2,opt,name=dropped,proto3" json:"dropped,omitempty"`
	// event is exactly one event. A watcher should skip an event with no
	// field set: it is a kind from a newer relay.
	//
	// Types that are valid to be assigned to Event:
	//
	//	*WatchEventsResponse_HostAttached
	//	*WatchEventsResponse_HostDetached
	//	*WatchEventsResponse_SlotOpened
	//	*WatchEventsResponse_SessionOpened
	//	*WatchEventsResponse_SessionHalfClosed
	//	*WatchEventsResponse_SessionClosed
	//	*WatchEventsResponse_ClientRejected
	Event         isWatchEventsResponse_Event `protobuf_oneof:"event"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *WatchEventsResponse) Reset() {
	*x = WatchEventsResponse{}
	mi := &file_relay_v1_relay_proto_msgTypes[23]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *WatchEventsResponse) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*WatchEventsResponse) ProtoMessage() {}

func (x *WatchEventsResponse) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[23]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use WatchEventsResponse.ProtoReflect.Descriptor instead.
func (*WatchEventsResponse) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{23}
}

func (x *WatchEventsResponse) GetTime() *timestamppb.Timestamp {
	if x != nil {
		return x.Time
	}
	return nil
}

func (x *WatchEventsResponse) GetDropped() uint64 {
	if x != nil {
		return x.Dropped
	}
	return 0
}

func (x *WatchEventsResponse) GetEvent() isWatchEventsResponse_Event {
	if x != nil {
		return x.Event
	}
	return nil
}

func (x *WatchEventsResponse) GetHostAttached() *HostAttached {
	if x != nil {
		if x, ok := x.Event.(*WatchEventsResponse_HostAttached); ok {
			return x.HostAttached
		}
	}
	return nil
}

func (x *WatchEventsResponse) GetHostDetached() *HostDetached {
	if x != nil {
		if x, ok := x.Event.(*WatchEventsResponse_HostDetached); ok {
			return x.HostDetached
		}
	}
	return nil
}

func (x *WatchEventsResponse) GetSlotOpened() *SlotOpened {
	if x != nil {
		if x, ok := x.Event.(*WatchEventsResponse_SlotOpened); ok {
			return x.SlotOpened
		}
	}
	return nil
}

func (x *WatchEventsResponse) GetSessionOpened() *SessionOpened {
	if x != nil {
		if x, ok := x.Event.(*WatchEventsResponse_SessionOpened); ok {
			return x.SessionOpened
		}
	}
	return nil
}

func (x *WatchEventsResponse) GetSessionHalfClosed() *SessionHalfClosed {
	if x != nil {
		if x, ok := x.Event.(*WatchEventsResponse_SessionHalfClosed); ok {
			return x.SessionHalfClosed
		}
	}
	return nil
}

func (x *WatchEventsResponse) GetSessionClosed() *SessionClosed {
	if x != nil {
		if x, ok := x.Event.(*WatchEventsResponse_SessionClosed); ok {
			return x.SessionClosed
		}
	}
	return nil
}

func (x *WatchEventsResponse) GetClientRejected() *ClientRejected {
	if x != nil {
		if x, ok := x.Event.(*WatchEventsResponse_ClientRejected); ok {
			return x.ClientRejected
		}
	}
	return nil
}

type isWatchEventsResponse_Event interface {
	isWatchEventsResponse_Event()
}

type WatchEventsResponse_HostAttached struct {
	// host_attached: the first slot of a host (service, host_id) attached.
	HostAttached *HostAttached `protobuf:"bytes,10,opt,name=host_attached,json=hostAttached,proto3,oneof"`
}

type WatchEventsResponse_HostDetached struct {
	// host_detached: the last slot of a host ended.
	HostDetached *HostDetached `protobuf:"bytes,11,opt,name=host_detached,json=hostDetached,proto3,oneof"`
}

type WatchEventsResponse_SlotOpened struct {
	// slot_opened: an Attach stream said Hello and became an idle slot.
	SlotOpened *SlotOpened `protobuf:"bytes,12,opt,name=slot_opened,json=slotOpened,proto3,oneof"`
}

type WatchEventsResponse_SessionOpened struct {
	// session_opened: a client was assigned to a slot and Open was sent.
	SessionOpened *SessionOpened `protobuf:"bytes,13,opt,name=session_opened,json=sessionOpened,proto3,oneof"`
}

type WatchEventsResponse_SessionHalfClosed struct {
	// session_half_closed: one side of a session ended its direction.
	SessionHalfClosed *SessionHalfClosed `protobuf:"bytes,14,opt,name=session_half_closed,json=sessionHalfClosed,proto3,oneof"`
}

type WatchEventsResponse_SessionClosed struct {
	// session_closed: a session ended, cleanly or not.
	SessionClosed *SessionClosed `protobuf:"bytes,15,opt,name=session_closed,json=sessionClosed,proto3,oneof"`
}

type WatchEventsResponse_ClientRejected struct {
	// client_rejected: a client was closed without a session.
	ClientRejected *ClientRejected `protobuf:"bytes,16,opt,name=client_rejected,json=clientRejected,proto3,oneof"`
}

func (*WatchEventsResponse_HostAttached) isWatchEventsResponse_Event() {}

func (*WatchEventsResponse_HostDetached) isWatchEventsResponse_Event() {}

func (*WatchEventsResponse_SlotOpened) isWatchEventsResponse_Event() {}

func (*WatchEventsResponse_SessionOpened) isWatchEventsResponse_Event() {}

func (*WatchEventsResponse_SessionHalfClosed) isWatchEventsResponse_Event() {}

func (*WatchEventsResponse_SessionClosed) isWatchEventsResponse_Event() {}

func (*WatchEventsResponse_ClientRejected) isWatchEventsResponse_Event() {}

// HostAttached is sent when a host's first current slot attaches.
type HostAttached struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// host_id is the host's id (from Hello, or the peer address).
	HostId string `protobuf:"bytes,1,opt,name=host_id,json=hostId,proto3" json:"host_id,omitempty"`
	// service is the host's service.
	Service string `protobuf:"bytes,2,opt,name=service,proto3" json:"service,omitempty"`
	// peer_addr is the address of the Attach stream.
	PeerAddr string `protobuf:"bytes,3,opt,name=peer_addr,json=peerAddr,proto3" json:"peer_addr,omitempty"`
	// agent_version is Hello.agent_version.
	AgentVersion  string `protobuf:"bytes,4,opt,name=agent_version,json=agentVersion,proto3" json:"agent_version,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *HostAttached) Reset() {
	*x = HostAttached{}
	mi := &file_relay_v1_relay_proto_msgTypes[24]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *HostAttached) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*HostAttached) ProtoMessage() {}

func (x *HostAttached) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[24]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use HostAttached.ProtoReflect.Descriptor instead.
func (*HostAttached) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{24}
}

func (x *HostAttached) GetHostId() string {
	if x != nil {
		return x.HostId
	}
	return ""
}

func (x *HostAttached) GetService() string {
	if x != nil {
		return x.Service
	}
	return ""
}

func (x *HostAttached) GetPeerAddr() string {
	if x != nil {
		return x.PeerAddr
	}
	return ""
}

func (x *HostAttached) GetAgentVersion() string {
	if x != nil {
		return x.AgentVersion
	}
	return ""
}

// HostDetached is sent when a host's last slot ends.
type HostDetached struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// host_id is the host's id.
	HostId string `protobuf:"bytes,1,opt,name=host_id,json=hostId,proto3" json:"host_id,omitempty"`
	// service is the host's service.
	Service string `protobuf:"bytes,2,opt,name=service,proto3" json:"service,omitempty"`
	// reason says how the last slot ended (for instance "slot given up",
	// "relay shutting down", "drained", or the stream's error).
	Reason        string `protobuf:"bytes,3,opt,name=reason,proto3" json:"reason,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *HostDetached) Reset() {
	*x = HostDetached{}
	mi := &file_relay_v1_relay_proto_msgTypes[25]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *HostDetached) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*HostDetached) ProtoMessage() {}

func (x *HostDetached) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[25]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use HostDetached.ProtoReflect.Descriptor instead.
func (*HostDetached) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{25}
}

func (x *HostDetached) GetHostId() string {
	if x != nil {
		return x.HostId
	}
	return ""
}

func (x *HostDetached) GetService() string {
	if x != nil {
		return x.Service
	}
	return ""
}

func (x *HostDetached) GetReason() string {
	if x != nil {
		return x.Reason
	}
	return ""
}

// SlotOpened is sent when an Attach stream has said Hello and is idle; with
// sequential sessions again, with the same slot_id, each time the stream is
// offered again after a session.
type SlotOpened struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// slot_id is the id sent in Welcome.
	SlotId string `protobuf:"bytes,1,opt,name=slot_id,json=slotId,proto3" json:"slot_id,omitempty"`
	// host_id is the host offering the slot.
	HostId string `protobuf:"bytes,2,opt,name=host_id,json=hostId,proto3" json:"host_id,omitempty"`
	// service is the slot's service.
	Service       string `protobuf:"bytes,3,opt,name=service,proto3" json:"service,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *SlotOpened) Reset() {
	*x = SlotOpened{}
	mi := &file_relay_v1_relay_proto_msgTypes[26]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *SlotOpened) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*SlotOpened) ProtoMessage() {}

func (x *SlotOpened) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[26]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use SlotOpened.ProtoReflect.Descriptor instead.
func (*SlotOpened) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{26}
}

func (x *SlotOpened) GetSlotId() string {
	if x != nil {
		return x.SlotId
	}
	return ""
}

func (x *SlotOpened) GetHostId() string {
	if x != nil {
		return x.HostId
	}
	return ""
}

func (x *SlotOpened) GetService() string {
	if x != nil {
		return x.Service
	}
	return ""
}

// SessionOpened is sent when a client is assigned to a slot.
type SessionOpened struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// session_id is the id sent in Open.
	SessionId string `protobuf:"bytes,1,opt,name=session_id,json=sessionId,proto3" json:"session_id,omitempty"`
	// client_addr is the client's address.
	ClientAddr string `protobuf:"bytes,2,opt,name=client_addr,json=clientAddr,proto3" json:"client_addr,omitempty"`
	// host_id is the host serving the session.
	HostId string `protobuf:"bytes,3,opt,name=host_id,json=hostId,proto3" json:"host_id,omitempty"`
	// service is the service of the client's listener.
	Service string `protobuf:"bytes,4,opt,name=service,proto3" json:"service,omitempty"`
	// slot_id is the slot carrying the session.
	SlotId string `protobuf:"bytes,5,opt,name=slot_id,json=slotId,proto3" json:"slot_id,omitempty"`
	// assign_wait is how long the client waited for a slot since it was accepted.
	AssignWait    *durationpb.Duration `protobuf:"bytes,6,opt,name=assign_wait,json=assignWait,proto3" json:"assign_wait,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *SessionOpened) Reset() {
	*x = SessionOpened{}
	mi := &file_relay_v1_relay_proto_msgTypes[27]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *SessionOpened) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*SessionOpened) ProtoMessage() {}

func (x *SessionOpened) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[27]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use SessionOpened.ProtoReflect.Descriptor instead.
func (*SessionOpened) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{27}
}

func (x *SessionOpened) GetSessionId() string {
	if x != nil {
		return x.SessionId
	}
	return ""
}

func (x *SessionOpened) GetClientAddr() string {
	if x != nil {
		return x.ClientAddr
	}
	return ""
}

func (x *SessionOpened) GetHostId() string {
	if x != nil {
		return x.HostId
	}
	return ""
}

func (x *SessionOpened) GetService() string {
	if x != nil {
		return x.Service
	}
	return ""
}

func (x *SessionOpened) GetSlotId() string {
	if x != nil {
		return x.SlotId
	}
	return ""
}

func (x *SessionOpened) GetAssignWait() *durationpb.Duration {
	if x != nil {
		return x.AssignWait
	}
	return nil
}

// SessionHalfClosed is sent when one side ends its direction (a FIN from the
// client, a CloseWrite from the host) while the other may still send.
type SessionHalfClosed struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// session_id is the session.
	SessionId string `protobuf:"bytes,1,opt,name=session_id,json=sessionId,proto3" json:"session_id,omitempty"`
	// side is the side that stopped sending.
	Side SessionSide `protobuf:"varint,2,opt,name=side,proto3,enum=relay.v1.SessionSide" json:"side,omitempty"`
	// host_id is the host serving the session.
	HostId string `protobuf:"bytes,3,opt,name=host_id,json=hostId,proto3" json:"host_id,omitempty"`
	// service is the session's service.
	Service       string `protobuf:"bytes,4,opt,name=service,proto3" json:"service,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *SessionHalfClosed) Reset() {
	*x = SessionHalfClosed{}
	mi := &file_relay_v1_relay_proto_msgTypes[28]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *SessionHalfClosed) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*SessionHalfClosed) ProtoMessage() {}

func (x *SessionHalfClosed) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[28]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use SessionHalfClosed.ProtoReflect.Descriptor instead.
func (*SessionHalfClosed) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{28}
}

func (x *SessionHalfClosed) GetSessionId() string {
	if x != nil {
		return x.SessionId
	}
	return ""
}

func (x *SessionHalfClosed) GetSide() SessionSide {
	if x != nil {
		return x.Side
	}
	return SessionSide_SESSION_SIDE_UNSPECIFIED
}

func (x *SessionHalfClosed) GetHostId() string {
	if x != nil {
		return x.HostId
	}
	return ""
}

func (x *SessionHalfClosed) GetService() string {
	if x != nil {
		return x.Service
	}
	return ""
}

// SessionClosed is sent once per session, when it ends.
type SessionClosed struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// session_id is the session.
	SessionId string `protobuf:"bytes,1,opt,name=session_id,json=sessionId,proto3" json:"session_id,omitempty"`
	// host_id is the host that served it.
	HostId string `protobuf:"bytes,2,opt,name=host_id,json=hostId,proto3" json:"host_id,omitempty"`
	// service is the session's service.
	Service string `protobuf:"bytes,3,opt,name=service,proto3" json:"service,omitempty"`
	// reason is CLOSE_REASON_UNSPECIFIED for a clean end (both directions
	// closed, every byte delivered), otherwise why it was aborted.
	Reason CloseReason `protobuf:"varint,4,opt,name=reason,proto3,enum=relay.v1.CloseReason" json:"reason,omitempty"`
	// clean is true when both directions closed and every byte was delivered.
	Clean bool `protobuf:"varint,5,opt,name=clean,proto3" json:"clean,omitempty"`
	// detail explains an abort, for humans.
	Detail string `protobuf:"bytes,6,opt,name=detail,proto3" json:"detail,omitempty"`
	// bytes_to_host counts client bytes delivered to the host.
	BytesToHost uint64 `protobuf:"varint,7,opt,name=bytes_to_host,json=bytesToHost,proto3" json:"bytes_to_host,omitempty"`
	// bytes_from_host counts host bytes delivered to the client.
	BytesFromHost uint64 `protobuf:"varint,8,opt,name=bytes_from_host,json=bytesFromHost,proto3" json:"bytes_from_host,omitempty"`
	// duration is how long the session was open.
	Duration *durationpb.Duration `protobuf:"bytes,9,opt,name=duration,proto3" json:"duration,omitempty"`
	// client_addr is the client's address.
	ClientAddr    string `protobuf:"bytes,10,opt,name=client_addr,json=clientAddr,proto3" json:"client_addr,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *SessionClosed) Reset() {
	*x = SessionClosed{}
	mi := &file_relay_v1_relay_proto_msgTypes[29]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *SessionClosed) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*SessionClosed) ProtoMessage() {}

func (x *SessionClosed) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[29]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use SessionClosed.ProtoReflect.Descriptor instead.
func (*SessionClosed) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{29}
}

func (x *SessionClosed) GetSessionId() string {
	if x != nil {
		return x.SessionId
	}
	return ""
}

func (x *SessionClosed) GetHostId() string {
	if x != nil {
		return x.HostId
	}
	return ""
}

func (x *SessionClosed) GetService() string {
	if x != nil {
		return x.Service
	}
	return ""
}

func (x *SessionClosed) GetReason() CloseReason {
	if x != nil {
		return x.Reason
	}
	return CloseReason_CLOSE_REASON_UNSPECIFIED
}

func (x *SessionClosed) GetClean() bool {
	if x != nil {
		return x.Clean
	}
	return false
}

func (x *SessionClosed) GetDetail() string {
	if x != nil {
		return x.Detail
	}
	return ""
}

func (x *SessionClosed) GetBytesToHost() uint64 {
	if x != nil {
		return x.BytesToHost
	}
	return 0
}

func (x *SessionClosed) GetBytesFromHost() uint64 {
	if x != nil {
		return x.BytesFromHost
	}
	return 0
}

func (x *SessionClosed) GetDuration() *durationpb.Duration {
	if x != nil {
		return x.Duration
	}
	return nil
}

func (x *SessionClosed) GetClientAddr() string {
	if x != nil {
		return x.ClientAddr
	}
	return ""
}

// ClientRejected is sent when a client is closed without a session.
type ClientRejected struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// client_addr is the client's address.
	ClientAddr string `protobuf:"bytes,1,opt,name=client_addr,json=clientAddr,proto3" json:"client_addr,omitempty"`
	// service is the service of the client's listener.
	Service string `protobuf:"bytes,2,opt,name=service,proto3" json:"service,omitempty"`
	// reason says why.
	Reason        RejectReason `protobuf:"varint,3,opt,name=reason,proto3,enum=relay.v1.RejectReason" json:"reason,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *ClientRejected) Reset() {
	*x = ClientRejected{}
	mi := &file_relay_v1_relay_proto_msgTypes[30]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *ClientRejected) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*ClientRejected) ProtoMessage() {}

func (x *ClientRejected) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[30]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use ClientRejected.ProtoReflect.Descriptor instead.
func (*ClientRejected) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{30}
}

func (x *ClientRejected) GetClientAddr() string {
	if x != nil {
		return x.ClientAddr
	}
	return ""
}

func (x *ClientRejected) GetService() string {
	if x != nil {
		return x.Service
	}
	return ""
}

func (x *ClientRejected) GetReason() RejectReason {
	if x != nil {
		return x.Reason
	}
	return RejectReason_REJECT_REASON_UNSPECIFIED
}

// CloseSessionRequest names the session to abort.
type CloseSessionRequest struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// session_id is the id from Open, ListSessions or the event feed.
	SessionId string `protobuf:"bytes,1,opt,name=session_id,json=sessionId,proto3" json:"session_id,omitempty"`
	// detail is sent to the host in Close.detail and logged; at most 512
	// bytes (INVALID_ARGUMENT beyond).
	Detail        string `protobuf:"bytes,2,opt,name=detail,proto3" json:"detail,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *CloseSessionRequest) Reset() {
	*x = CloseSessionRequest{}
	mi := &file_relay_v1_relay_proto_msgTypes[31]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *CloseSessionRequest) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*CloseSessionRequest) ProtoMessage() {}

func (x *CloseSessionRequest) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[31]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use CloseSessionRequest.ProtoReflect.Descriptor instead.
func (*CloseSessionRequest) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{31}
}

func (x *CloseSessionRequest) GetSessionId() string {
	if x != nil {
		return x.SessionId
	}
	return ""
}

func (x *CloseSessionRequest) GetDetail() string {
	if x != nil {
		return x.Detail
	}
	return ""
}

// CloseSessionResponse answers CloseSession.
type CloseSessionResponse struct {
	state         protoimpl.MessageState `protogen:"open.v1"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *CloseSessionResponse) Reset() {
	*x = CloseSessionResponse{}
	mi := &file_relay_v1_relay_proto_msgTypes[32]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *CloseSessionResponse) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*CloseSessionResponse) ProtoMessage() {}

func (x *CloseSessionResponse) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[32]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use CloseSessionResponse.ProtoReflect.Descriptor instead.
func (*CloseSessionResponse) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{32}
}

// DrainHostRequest names the host to drain.
type DrainHostRequest struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// host_id is the host's id (as in ListHosts).
	HostId string `protobuf:"bytes,1,opt,name=host_id,json=hostId,proto3" json:"host_id,omitempty"`
	// service, when set, drains the host only in that service; empty means
	// every service where host_id is attached.
	Service       string `protobuf:"bytes,2,opt,name=service,proto3" json:"service,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *DrainHostRequest) Reset() {
	*x = DrainHostRequest{}
	mi := &file_relay_v1_relay_proto_msgTypes[33]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *DrainHostRequest) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*DrainHostRequest) ProtoMessage() {}

func (x *DrainHostRequest) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[33]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use DrainHostRequest.ProtoReflect.Descriptor instead.
func (*DrainHostRequest) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{33}
}

func (x *DrainHostRequest) GetHostId() string {
	if x != nil {
		return x.HostId
	}
	return ""
}

func (x *DrainHostRequest) GetService() string {
	if x != nil {
		return x.Service
	}
	return ""
}

// DrainHostResponse answers DrainHost.
type DrainHostResponse struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// idle_slots_drained counts the idle slots that were sent Drain.
	IdleSlotsDrained uint32 `protobuf:"varint,1,opt,name=idle_slots_drained,json=idleSlotsDrained,proto3" json:"idle_slots_drained,omitempty"`
	// active_sessions counts the host's open sessions, which go on.
	ActiveSessions uint32 `protobuf:"varint,2,opt,name=active_sessions,json=activeSessions,proto3" json:"active_sessions,omitempty"`
	unknownFields  protoimpl.UnknownFields
	sizeCache      protoimpl.SizeCache
}

func (x *DrainHostResponse) Reset() {
	*x = DrainHostResponse{}
	mi := &file_relay_v1_relay_proto_msgTypes[34]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *DrainHostResponse) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*DrainHostResponse) ProtoMessage() {}

func (x *DrainHostResponse) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[34]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use DrainHostResponse.ProtoReflect.Descriptor instead.
func (*DrainHostResponse) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{34}
}

func (x *DrainHostResponse) GetIdleSlotsDrained() uint32 {
	if x != nil {
		return x.IdleSlotsDrained
	}
	return 0
}

func (x *DrainHostResponse) GetActiveSessions() uint32 {
	if x != nil {
		return x.ActiveSessions
	}
	return 0
}

// UndrainHostRequest names the host to undrain.
type UndrainHostRequest struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// host_id is the host's id.
	HostId string `protobuf:"bytes,1,opt,name=host_id,json=hostId,proto3" json:"host_id,omitempty"`
	// service, when set, undrains only that service; empty means every one.
	Service       string `protobuf:"bytes,2,opt,name=service,proto3" json:"service,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *UndrainHostRequest) Reset() {
	*x = UndrainHostRequest{}
	mi := &file_relay_v1_relay_proto_msgTypes[35]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *UndrainHostRequest) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*UndrainHostRequest) ProtoMessage() {}

func (x *UndrainHostRequest) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[35]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use UndrainHostRequest.ProtoReflect.Descriptor instead.
func (*UndrainHostRequest) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{35}
}

func (x *UndrainHostRequest) GetHostId() string {
	if x != nil {
		return x.HostId
	}
	return ""
}

func (x *UndrainHostRequest) GetService() string {
	if x != nil {
		return x.Service
	}
	return ""
}

// UndrainHostResponse answers UndrainHost.
type UndrainHostResponse struct {
	state         protoimpl.MessageState `protogen:"open.v1"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *UndrainHostResponse) Reset() {
	*x = UndrainHostResponse{}
	mi := &file_relay_v1_relay_proto_msgTypes[36]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *UndrainHostResponse) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*UndrainHostResponse) ProtoMessage() {}

func (x *UndrainHostResponse) ProtoReflect() protoreflect.Message {
	mi := &file_relay_v1_relay_proto_msgTypes[36]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use UndrainHostResponse.ProtoReflect.Descriptor instead.
func (*UndrainHostResponse) Descriptor() ([]byte, []int) {
	return file_relay_v1_relay_proto_rawDescGZIP(), []int{36}
}

var File_relay_v1_relay_proto protoreflect.FileDescriptor

const file_relay_v1_relay_proto_rawDesc = "" +
	"\n" +
	"\x14relay/v1/relay.proto\x12\brelay.v1\x1a\x1egoogle/protobuf/duration.proto\x1a\x1fgoogle/protobuf/timestamp.proto\"\xa7\x02\n" +
	"\rAttachRequest\x12'\n" +
	"\x05hello\x18\x01 \x01(\v2\x0f.relay.v1.HelloH\x00R\x05hello\x12$\n" +
	"\x04data\x18\x02 \x01(\v2\x0e.relay.v1.DataH\x00R\x04data\x127\n" +
	"\vclose_write\x18\x03 \x01(\v2\x14.relay.v1.CloseWriteH\x00R\n" +
	"closeWrite\x12'\n" +
	"\x05close\x18\x04 \x01(\v2\x0f.relay.v1.CloseH\x00R\x05close\x12*\n" +
	"\x06credit\x18\x05 \x01(\v2\x10.relay.v1.CreditH\x00R\x06credit\x120\n" +
	"\bwithdraw\x18\x06 \x01(\v2\x12.relay.v1.WithdrawH\x00R\bwithdrawB\a\n" +
	"\x05frame\"\x81\x03\n" +
	"\x0eAttachResponse\x12-\n" +
	"\awelcome\x18\x01 \x01(\v2\x11.relay.v1.WelcomeH\x00R\awelcome\x12$\n" +
	"\x04open\x18\x02 \x01(\v2\x0e.relay.v1.OpenH\x00R\x04open\x12$\n" +
	"\x04data\x18\x03 \x01(\v2\x0e.relay.v1.DataH\x00R\x04data\x127\n" +
	"\vclose_write\x18\x04 \x01(\v2\x14.relay.v1.CloseWriteH\x00R\n" +
	"closeWrite\x12'\n" +
	"\x05close\x18\x05 \x01(\v2\x0f.relay.v1.CloseH\x00R\x05close\x12'\n" +
	"\x05drain\x18\x06 \x01(\v2\x0f.relay.v1.DrainH\x00R\x05drain\x127\n" +
	"\vsession_end\x18\a \x01(\v2\x14.relay.v1.SessionEndH\x00R\n" +
	"sessionEnd\x12'\n" +
	"\x05offer\x18\b \x01(\v2\x0f.relay.v1.OfferH\x00R\x05offerB\a\n" +
	"\x05frame\"\xb9\x03\n" +
	"\x05Hello\x12\x18\n" +
	"\aservice\x18\x01 \x01(\tR\aservice\x12\x17\n" +
	"\ahost_id\x18\x02 \x01(\tR\x06hostId\x123\n" +
	"\x06labels\x18\x03 \x03(\v2\x1b.relay.v1.Hello.LabelsEntryR\x06labels\x12#\n" +
	"\ragent_version\x18\x04 \x01(\tR\fagentVersion\x12\x16\n" +
	"\x06weight\x18\x05 \x01(\rR\x06weight\x12/\n" +
	"\x13sequential_sessions\x18\x06 \x01(\bR\x12sequentialSessions\x12!\n" +
	"\fslot_credits\x18\a \x01(\rR\vslotCredits\x12\x19\n" +
	"\bclaim_id\x18\b \x01(\tR\aclaimId\x12%\n" +
	"\x0eagent_instance\x18\t \x01(\tR\ragentInstance\x12:\n" +
	"\vidle_linger\x18\n" +
	" \x01(\v2\x19.google.protobuf.DurationR\n" +
	"idleLinger\x1a9\n" +
	"\vLabelsEntry\x12\x10\n" +
	"\x03key\x18\x01 \x01(\tR\x03key\x12\x14\n" +
	"\x05value\x18\x02 \x01(\tR\x05value:\x028\x01\"\x91\x02\n" +
	"\aWelcome\x12\x19\n" +
	"\brelay_id\x18\x01 \x01(\tR\arelayId\x12\x17\n" +
	"\aslot_id\x18\x02 \x01(\tR\x06slotId\x12$\n" +
	"\x0emax_data_bytes\x18\x03 \x01(\rR\fmaxDataBytes\x12/\n" +
	"\x13sequential_sessions\x18\x04 \x01(\bR\x12sequentialSessions\x12!\n" +
	"\fslot_credits\x18\x05 \x01(\rR\vslotCredits\x12\x1a\n" +
	"\bwithdraw\x18\x06 \x01(\bR\bwithdraw\x12<\n" +
	"\fidle_timeout\x18\a \x01(\v2\x19.google.protobuf.DurationR\vidleTimeout\"\n" +
	"\n" +
	"\bWithdraw\"\x1e\n" +
	"\x06Credit\x12\x14\n" +
	"\x05slots\x18\x01 \x01(\rR\x05slots\"C\n" +
	"\x05Offer\x12\x19\n" +
	"\bclaim_id\x18\x01 \x01(\tR\aclaimId\x12\x1f\n" +
	"\vclient_addr\x18\x02 \x01(\tR\n" +
	"clientAddr\"\xbe\x01\n" +
	"\x04Open\x12\x1d\n" +
	"\n" +
	"session_id\x18\x01 \x01(\tR\tsessionId\x12\x1f\n" +
	"\vclient_addr\x18\x02 \x01(\tR\n" +
	"clientAddr\x12#\n" +
	"\rlistener_addr\x18\x03 \x01(\tR\flistenerAddr\x12\x18\n" +
	"\aservice\x18\x04 \x01(\tR\aservice\x127\n" +
	"\topened_at\x18\x05 \x01(\v2\x1a.google.protobuf.TimestampR\bopenedAt\"\x8a\x01\n" +
	"\x05Drain\x12-\n" +
	"\x06reason\x18\x01 \x01(\x0e2\x15.relay.v1.DrainReasonR\x06reason\x12:\n" +
	"\vretry_after\x18\x02 \x01(\v2\x19.google.protobuf.DurationR\n" +
	"retryAfter\x12\x16\n" +
	"\x06detail\x18\x03 \x01(\tR\x06detail\" \n" +
	"\x04Data\x12\x18\n" +
	"\apayload\x18\x01 \x01(\fR\apayload\"+\n" +
	"\n" +
	"SessionEnd\x12\x1d\n" +
	"\n" +
	"session_id\x18\x01 \x01(\tR\tsessionId\"\f\n" +
	"\n" +
	"CloseWrite\"N\n" +
	"\x05Close\x12-\n" +
	"\x06reason\x18\x01 \x01(\x0e2\x15.relay.v1.CloseReasonR\x06reason\x12\x16\n" +
	"\x06detail\x18\x02 \x01(\tR\x06detail\"\x12\n" +
	"\x10GetStatusRequest\"\xc4\x03\n" +
	"\x11GetStatusResponse\x12\x19\n" +
	"\brelay_id\x18\x01 \x01(\tR\arelayId\x12\x18\n" +
	"\aversion\x18\x02 \x01(\tR\aversion\x121\n" +
	"\x06uptime\x18\x03 \x01(\v2\x19.google.protobuf.DurationR\x06uptime\x12\x14\n" +
	"\x05hosts\x18\x04 \x01(\rR\x05hosts\x12\x1d\n" +
	"\n" +
	"idle_slots\x18\x05 \x01(\rR\tidleSlots\x12'\n" +
	"\x0factive_sessions\x18\x06 \x01(\rR\x0eactiveSessions\x12%\n" +
	"\x0esessions_total\x18\a \x01(\x04R\rsessionsTotal\x12'\n" +
	"\x0fpending_clients\x18\b \x01(\rR\x0ependingClients\x123\n" +
	"\bservices\x18\t \x03(\v2\x17.relay.v1.ServiceStatusR\bservices\x129\n" +
	"\n" +
	"started_at\x18\n" +
	" \x01(\v2\x1a.google.protobuf.TimestampR\tstartedAt\x12)\n" +
	"\x10clients_rejected\x18\v \x01(\x04R\x0fclientsRejected\"\xfa\x01\n" +
	"\rServiceStatus\x12\x18\n" +
	"\aservice\x18\x01 \x01(\tR\aservice\x12\x14\n" +
	"\x05hosts\x18\x02 \x01(\rR\x05hosts\x12\x1d\n" +
	"\n" +
	"idle_slots\x18\x03 \x01(\rR\tidleSlots\x12'\n" +
	"\x0factive_sessions\x18\x04 \x01(\rR\x0eactiveSessions\x12%\n" +
	"\x0esessions_total\x18\x05 \x01(\x04R\rsessionsTotal\x12'\n" +
	"\x0fpending_clients\x18\x06 \x01(\rR\x0ependingClients\x12!\n" +
	"\flisten_addrs\x18\a \x03(\tR\vlistenAddrs\",\n" +
	"\x10ListHostsRequest\x12\x18\n" +
	"\aservice\x18\x01 \x01(\tR\aservice\"9\n" +
	"\x11ListHostsResponse\x12$\n" +
	"\x05hosts\x18\x01 \x03(\v2\x0e.relay.v1.HostR\x05hosts\"\xb2\x05\n" +
	"\x04Host\x12\x17\n" +
	"\ahost_id\x18\x01 \x01(\tR\x06hostId\x12\x18\n" +
	"\aservice\x18\x02 \x01(\tR\aservice\x12\x1b\n" +
	"\tpeer_addr\x18\x03 \x01(\tR\bpeerAddr\x12;\n" +
	"\vattached_at\x18\x04 \x01(\v2\x1a.google.protobuf.TimestampR\n" +
	"attachedAt\x12\x1d\n" +
	"\n" +
	"idle_slots\x18\x05 \x01(\rR\tidleSlots\x12'\n" +
	"\x0factive_sessions\x18\x06 \x01(\rR\x0eactiveSessions\x12%\n" +
	"\x0esessions_total\x18\a \x01(\x04R\rsessionsTotal\x12\"\n" +
	"\rbytes_to_host\x18\b \x01(\x04R\vbytesToHost\x12&\n" +
	"\x0fbytes_from_host\x18\t \x01(\x04R\rbytesFromHost\x122\n" +
	"\x06labels\x18\n" +
	" \x03(\v2\x1a.relay.v1.Host.LabelsEntryR\x06labels\x12#\n" +
	"\ragent_version\x18\v \x01(\tR\fagentVersion\x12\x18\n" +
	"\adrained\x18\f \x01(\bR\adrained\x12\x16\n" +
	"\x06weight\x18\x14 \x01(\rR\x06weight\x12!\n" +
	"\fidle_credits\x18\x15 \x01(\rR\vidleCredits\x12)\n" +
	"\x10backend_failures\x18\x16 \x01(\rR\x0fbackendFailures\x12N\n" +
	"\x15backend_failing_until\x18\x17 \x01(\v2\x1a.google.protobuf.TimestampR\x13backendFailingUntil\x1a9\n" +
	"\vLabelsEntry\x12\x10\n" +
	"\x03key\x18\x01 \x01(\tR\x03key\x12\x14\n" +
	"\x05value\x18\x02 \x01(\tR\x05value:\x028\x01\"\x84\x01\n" +
	"\x13ListSessionsRequest\x12\x18\n" +
	"\aservice\x18\x01 \x01(\tR\aservice\x12\x17\n" +
	"\ahost_id\x18\x02 \x01(\tR\x06hostId\x12\x1b\n" +
	"\tpage_size\x18\x03 \x01(\rR\bpageSize\x12\x1d\n" +
	"\n" +
	"page_token\x18\x04 \x01(\tR\tpageToken\"m\n" +
	"\x14ListSessionsResponse\x12-\n" +
	"\bsessions\x18\x01 \x03(\v2\x11.relay.v1.SessionR\bsessions\x12&\n" +
	"\x0fnext_page_token\x18\x02 \x01(\tR\rnextPageToken\"\xf6\x02\n" +
	"\aSession\x12\x1d\n" +
	"\n" +
	"session_id\x18\x01 \x01(\tR\tsessionId\x12\x18\n" +
	"\aservice\x18\x02 \x01(\tR\aservice\x12\x17\n" +
	"\ahost_id\x18\x03 \x01(\tR\x06hostId\x12\x1f\n" +
	"\vclient_addr\x18\x04 \x01(\tR\n" +
	"clientAddr\x127\n" +
	"\topened_at\x18\x05 \x01(\v2\x1a.google.protobuf.TimestampR\bopenedAt\x12\"\n" +
	"\rbytes_to_host\x18\x06 \x01(\x04R\vbytesToHost\x12&\n" +
	"\x0fbytes_from_host\x18\a \x01(\x04R\rbytesFromHost\x12.\n" +
	"\x13client_write_closed\x18\b \x01(\bR\x11clientWriteClosed\x12*\n" +
	"\x11host_write_closed\x18\t \x01(\bR\x0fhostWriteClosed\x12\x17\n" +
	"\aslot_id\x18\n" +
	" \x01(\tR\x06slotId\"r\n" +
	"\x12WatchEventsRequest\x12\x18\n" +
	"\aservice\x18\x01 \x01(\tR\aservice\x12\x17\n" +
	"\ahost_id\x18\x02 \x01(\tR\x06hostId\x12)\n" +
	"\x05kinds\x18\x03 \x03(\x0e2\x13.relay.v1.EventKindR\x05kinds\"\xb7\x04\n" +
	"\x13WatchEventsResponse\x12.\n" +
	"\x04time\x18\x01 \x01(\v2\x1a.google.protobuf.TimestampR\x04time\x12\x18\n" +
	"\adropped\x18\x02 \x01(\x04R\adropped\x12=\n" +
	"\rhost_attached\x18\n" +
	" \x01(\v2\x16.relay.v1.HostAttachedH\x00R\fhostAttached\x12=\n" +
	"\rhost_detached\x18\v \x01(\v2\x16.relay.v1.HostDetachedH\x00R\fhostDetached\x127\n" +
	"\vslot_opened\x18\f \x01(\v2\x14.relay.v1.SlotOpenedH\x00R\n" +
	"slotOpened\x12@\n" +
	"\x0esession_opened\x18\r \x01(\v2\x17.relay.v1.SessionOpenedH\x00R\rsessionOpened\x12M\n" +
	"\x13session_half_closed\x18\x0e \x01(\v2\x1b.relay.v1.SessionHalfClosedH\x00R\x11sessionHalfClosed\x12@\n" +
	"\x0esession_closed\x18\x0f \x01(\v2\x17.relay.v1.SessionClosedH\x00R\rsessionClosed\x12C\n" +
	"\x0fclient_rejected\x18\x10 \x01(\v2\x18.relay.v1.ClientRejectedH\x00R\x0eclientRejectedB\a\n" +
	"\x05event\"\x83\x01\n" +
	"\fHostAttached\x12\x17\n" +
	"\ahost_id\x18\x01 \x01(\tR\x06hostId\x12\x18\n" +
	"\aservice\x18\x02 \x01(\tR\aservice\x12\x1b\n" +
	"\tpeer_addr\x18\x03 \x01(\tR\bpeerAddr\x12#\n" +
	"\ragent_version\x18\x04 \x01(\tR\fagentVersion\"Y\n" +
	"\fHostDetached\x12\x17\n" +
	"\ahost_id\x18\x01 \x01(\tR\x06hostId\x12\x18\n" +
	"\aservice\x18\x02 \x01(\tR\aservice\x12\x16\n" +
	"\x06reason\x18\x03 \x01(\tR\x06reason\"X\n" +
	"\n" +
	"SlotOpened\x12\x17\n" +
	"\aslot_id\x18\x01 \x01(\tR\x06slotId\x12\x17\n" +
	"\ahost_id\x18\x02 \x01(\tR\x06hostId\x12\x18\n" +
	"\aservice\x18\x03 \x01(\tR\aservice\"\xd7\x01\n" +
	"\rSessionOpened\x12\x1d\n" +
	"\n" +
	"session_id\x18\x01 \x01(\tR\tsessionId\x12\x1f\n" +
	"\vclient_addr\x18\x02 \x01(\tR\n" +
	"clientAddr\x12\x17\n" +
	"\ahost_id\x18\x03 \x01(\tR\x06hostId\x12\x18\n" +
	"\aservice\x18\x04 \x01(\tR\aservice\x12\x17\n" +
	"\aslot_id\x18\x05 \x01(\tR\x06slotId\x12:\n" +
	"\vassign_wait\x18\x06 \x01(\v2\x19.google.protobuf.DurationR\n" +
	"assignWait\"\x90\x01\n" +
	"\x11SessionHalfClosed\x12\x1d\n" +
	"\n" +
	"session_id\x18\x01 \x01(\tR\tsessionId\x12)\n" +
	"\x04side\x18\x02 \x01(\x0e2\x15.relay.v1.SessionSideR\x04side\x12\x17\n" +
	"\ahost_id\x18\x03 \x01(\tR\x06hostId\x12\x18\n" +
	"\aservice\x18\x04 \x01(\tR\aservice\"\xe2\x02\n" +
	"\rSessionClosed\x12\x1d\n" +
	"\n" +
	"session_id\x18\x01 \x01(\tR\tsessionId\x12\x17\n" +
	"\ahost_id\x18\x02 \x01(\tR\x06hostId\x12\x18\n" +
	"\aservice\x18\x03 \x01(\tR\aservice\x12-\n" +
	"\x06reason\x18\x04 \x01(\x0e2\x15.relay.v1.CloseReasonR\x06reason\x12\x14\n" +
	"\x05clean\x18\x05 \x01(\bR\x05clean\x12\x16\n" +
	"\x06detail\x18\x06 \x01(\tR\x06detail\x12\"\n" +
	"\rbytes_to_host\x18\a \x01(\x04R\vbytesToHost\x12&\n" +
	"\x0fbytes_from_host\x18\b \x01(\x04R\rbytesFromHost\x125\n" +
	"\bduration\x18\t \x01(\v2\x19.google.protobuf.DurationR\bduration\x12\x1f\n" +
	"\vclient_addr\x18\n" +
	" \x01(\tR\n" +
	"clientAddr\"{\n" +
	"\x0eClientRejected\x12\x1f\n" +
	"\vclient_addr\x18\x01 \x01(\tR\n" +
	"clientAddr\x12\x18\n" +
	"\aservice\x18\x02 \x01(\tR\aservice\x12.\n" +
	"\x06reason\x18\x03 \x01(\x0e2\x16.relay.v1.RejectReasonR\x06reason\"L\n" +
	"\x13CloseSessionRequest\x12\x1d\n" +
	"\n" +
	"session_id\x18\x01 \x01(\tR\tsessionId\x12\x16\n" +
	"\x06detail\x18\x02 \x01(\tR\x06detail\"\x16\n" +
	"\x14CloseSessionResponse\"E\n" +
	"\x10DrainHostRequest\x12\x17\n" +
	"\ahost_id\x18\x01 \x01(\tR\x06hostId\x12\x18\n" +
	"\aservice\x18\x02 \x01(\tR\aservice\"j\n" +
	"\x11DrainHostResponse\x12,\n" +
	"\x12idle_slots_drained\x18\x01 \x01(\rR\x10idleSlotsDrained\x12'\n" +
	"\x0factive_sessions\x18\x02 \x01(\rR\x0eactiveSessions\"G\n" +
	"\x12UndrainHostRequest\x12\x17\n" +
	"\ahost_id\x18\x01 \x01(\tR\x06hostId\x12\x18\n" +
	"\aservice\x18\x02 \x01(\tR\aservice\"\x15\n" +
	"\x13UndrainHostResponse*^\n" +
	"\vDrainReason\x12\x1c\n" +
	"\x18DRAIN_REASON_UNSPECIFIED\x10\x00\x12\x19\n" +
	"\x15DRAIN_REASON_SHUTDOWN\x10\x01\x12\x16\n" +
	"\x12DRAIN_REASON_ADMIN\x10\x02*\x9d\x02\n" +
	"\vCloseReason\x12\x1c\n" +
	"\x18CLOSE_REASON_UNSPECIFIED\x10\x00\x12\x1d\n" +
	"\x19CLOSE_REASON_CLIENT_RESET\x10\x01\x12\x1b\n" +
	"\x17CLOSE_REASON_HOST_ABORT\x10\x02\x12\x1f\n" +
	"\x1bCLOSE_REASON_RELAY_SHUTDOWN\x10\x03\x12\x18\n" +
	"\x14CLOSE_REASON_TIMEOUT\x10\x04\x12\x1f\n" +
	"\x1bCLOSE_REASON_PROTOCOL_ERROR\x10\x05\x12$\n" +
	" CLOSE_REASON_BACKEND_UNAVAILABLE\x10\x06\x12\x16\n" +
	"\x12CLOSE_REASON_ADMIN\x10\a\x12\x1a\n" +
	"\x16CLOSE_REASON_HOST_LOST\x10\b*\x81\x02\n" +
	"\tEventKind\x12\x1a\n" +
	"\x16EVENT_KIND_UNSPECIFIED\x10\x00\x12\x1c\n" +
	"\x18EVENT_KIND_HOST_ATTACHED\x10\x01\x12\x1c\n" +
	"\x18EVENT_KIND_HOST_DETACHED\x10\x02\x12\x1a\n" +
	"\x16EVENT_KIND_SLOT_OPENED\x10\x03\x12\x1d\n" +
	"\x19EVENT_KIND_SESSION_OPENED\x10\x04\x12\"\n" +
	"\x1eEVENT_KIND_SESSION_HALF_CLOSED\x10\x05\x12\x1d\n" +
	"\x19EVENT_KIND_SESSION_CLOSED\x10\x06\x12\x1e\n" +
	"\x1aEVENT_KIND_CLIENT_REJECTED\x10\a*[\n" +
	"\vSessionSide\x12\x1c\n" +
	"\x18SESSION_SIDE_UNSPECIFIED\x10\x00\x12\x17\n" +
	"\x13SESSION_SIDE_CLIENT\x10\x01\x12\x15\n" +
	"\x11SESSION_SIDE_HOST\x10\x02*\xa3\x01\n" +
	"\fRejectReason\x12\x1d\n" +
	"\x19REJECT_REASON_UNSPECIFIED\x10\x00\x12!\n" +
	"\x1dREJECT_REASON_NO_SLOT_IN_TIME\x10\x01\x12\x1c\n" +
	"\x18REJECT_REASON_QUEUE_FULL\x10\x02\x12\x17\n" +
	"\x13REJECT_REASON_LIMIT\x10\x03\x12\x1a\n" +
	"\x16REJECT_REASON_SHUTDOWN\x10\x042N\n" +
	"\vHostService\x12?\n" +
	"\x06Attach\x12\x17.relay.v1.AttachRequest\x1a\x18.relay.v1.AttachResponse(\x010\x012\xb8\x02\n" +
	"\rStatusService\x12D\n" +
	"\tGetStatus\x12\x1a.relay.v1.GetStatusRequest\x1a\x1b.relay.v1.GetStatusResponse\x12D\n" +
	"\tListHosts\x12\x1a.relay.v1.ListHostsRequest\x1a\x1b.relay.v1.ListHostsResponse\x12M\n" +
	"\fListSessions\x12\x1d.relay.v1.ListSessionsRequest\x1a\x1e.relay.v1.ListSessionsResponse\x12L\n" +
	"\vWatchEvents\x12\x1c.relay.v1.WatchEventsRequest\x1a\x1d.relay.v1.WatchEventsResponse0\x012\xef\x01\n" +
	"\fAdminService\x12M\n" +
	"\fCloseSession\x12\x1d.relay.v1.CloseSessionRequest\x1a\x1e.relay.v1.CloseSessionResponse\x12D\n" +
	"\tDrainHost\x12\x1a.relay.v1.DrainHostRequest\x1a\x1b.relay.v1.DrainHostResponse\x12J\n" +
	"\vUndrainHost\x12\x1c.relay.v1.UndrainHostRequest\x1a\x1d.relay.v1.UndrainHostResponseB\x8f\x01\n" +
	"\fcom.relay.v1B\n" +
	"RelayProtoP\x01Z2github.com/relayproject/relay/gen/relay/v1;relayv1\xa2\x02\x03RXX\xaa\x02\bRelay.V1\xca\x02\bRelay\\V1\xe2\x02\x14Relay\\V1\\GPBMetadata\xea\x02\tRelay::V1b\x06proto3"

var (
	file_relay_v1_relay_proto_rawDescOnce sync.Once
	file_relay_v1_relay_proto_rawDescData []byte
)

func file_relay_v1_relay_proto_rawDescGZIP() []byte {
	file_relay_v1_relay_proto_rawDescOnce.Do(func() {
		file_relay_v1_relay_proto_rawDescData = protoimpl.X.CompressGZIP(unsafe.Slice(unsafe.StringData(file_relay_v1_relay_proto_rawDesc), len(file_relay_v1_relay_proto_rawDesc)))
	})
	return file_relay_v1_relay_proto_rawDescData
}

var file_relay_v1_relay_proto_enumTypes = make([]protoimpl.EnumInfo, 5)
var file_relay_v1_relay_proto_msgTypes = make([]protoimpl.MessageInfo, 39)
var file_relay_v1_relay_proto_goTypes = []any{
	(DrainReason)(0),              // 0: relay.v1.DrainReason
	(CloseReason)(0),              // 1: relay.v1.CloseReason
	(EventKind)(0),                // 2: relay.v1.EventKind
	(SessionSide)(0),              // 3: relay.v1.SessionSide
	(RejectReason)(0),             // 4: relay.v1.RejectReason
	(*AttachRequest)(nil),         // 5: relay.v1.AttachRequest
	(*AttachResponse)(nil),        // 6: relay.v1.AttachResponse
	(*Hello)(nil),                 // 7: relay.v1.Hello
	(*Welcome)(nil),               // 8: relay.v1.Welcome
	(*Withdraw)(nil),              // 9: relay.v1.Withdraw
	(*Credit)(nil),                // 10: relay.v1.Credit
	(*Offer)(nil),                 // 11: relay.v1.Offer
	(*Open)(nil),                  // 12: relay.v1.Open
	(*Drain)(nil),                 // 13: relay.v1.Drain
	(*Data)(nil),                  // 14: relay.v1.Data
	(*SessionEnd)(nil),            // 15: relay.v1.SessionEnd
	(*CloseWrite)(nil),            // 16: relay.v1.CloseWrite
	(*Close)(nil),                 // 17: relay.v1.Close
	(*GetStatusRequest)(nil),      // 18: relay.v1.GetStatusRequest
	(*GetStatusResponse)(nil),     // 19: relay.v1.GetStatusResponse
	(*ServiceStatus)(nil),         // 20: relay.v1.ServiceStatus
	(*ListHostsRequest)(nil),      // 21: relay.v1.ListHostsRequest
	(*ListHostsResponse)(nil),     // 22: relay.v1.ListHostsResponse
	(*Host)(nil),                  // 23: relay.v1.Host
	(*ListSessionsRequest)(nil),   // 24: relay.v1.ListSessionsRequest
	(*ListSessionsResponse)(nil),  // 25: relay.v1.ListSessionsResponse
	(*Session)(nil),               // 26: relay.v1.Session
	(*WatchEventsRequest)(nil),    // 27: relay.v1.WatchEventsRequest
	(*WatchEventsResponse)(nil),   // 28: relay.v1.WatchEventsResponse
	(*HostAttached)(nil),          // 29: relay.v1.HostAttached
	(*HostDetached)(nil),          // 30: relay.v1.HostDetached
	(*SlotOpened)(nil),            // 31: relay.v1.SlotOpened
	(*SessionOpened)(nil),         // 32: relay.v1.SessionOpened
	(*SessionHalfClosed)(nil),     // 33: relay.v1.SessionHalfClosed
	(*SessionClosed)(nil),         // 34: relay.v1.SessionClosed
	(*ClientRejected)(nil),        // 35: relay.v1.ClientRejected
	(*CloseSessionRequest)(nil),   // 36: relay.v1.CloseSessionRequest
	(*CloseSessionResponse)(nil),  // 37: relay.v1.CloseSessionResponse
	(*DrainHostRequest)(nil),      // 38: relay.v1.DrainHostRequest
	(*DrainHostResponse)(nil),     // 39: relay.v1.DrainHostResponse
	(*UndrainHostRequest)(nil),    // 40: relay.v1.UndrainHostRequest
	(*UndrainHostResponse)(nil),   // 41: relay.v1.UndrainHostResponse
	nil,                           // 42: relay.v1.Hello.LabelsEntry
	nil,                           // 43: relay.v1.Host.LabelsEntry
	(*durationpb.Duration)(nil),   // 44: google.protobuf.Duration
	(*timestamppb.Timestamp)(nil), // 45: google.protobuf.Timestamp
}
var file_relay_v1_relay_proto_depIdxs = []int32{
	7,  // 0: relay.v1.AttachRequest.hello:type_name -> relay.v1.Hello
	14, // 1: relay.v1.AttachRequest.data:type_name -> relay.v1.Data
	16, // 2: relay.v1.AttachRequest.close_write:type_name -> relay.v1.CloseWrite
	17, // 3: relay.v1.AttachRequest.close:type_name -> relay.v1.Close
	10, // 4: relay.v1.AttachRequest.credit:type_name -> relay.v1.Credit
	9,  // 5: relay.v1.AttachRequest.withdraw:type_name -> relay.v1.Withdraw
	8,  // 6: relay.v1.AttachResponse.welcome:type_name -> relay.v1.Welcome
	12, // 7: relay.v1.AttachResponse.open:type_name -> relay.v1.Open
	14, // 8: relay.v1.AttachResponse.data:type_name -> relay.v1.Data
	16, // 9: relay.v1.AttachResponse.close_write:type_name -> relay.v1.CloseWrite
	17, // 10: relay.v1.AttachResponse.close:type_name -> relay.v1.Close
	13, // 11: relay.v1.AttachResponse.drain:type_name -> relay.v1.Drain
	15, // 12: relay.v1.AttachResponse.session_end:type_name -> relay.v1.SessionEnd
	11, // 13: relay.v1.AttachResponse.offer:type_name -> relay.v1.Offer
	42, // 14: relay.v1.Hello.labels:type_name -> relay.v1.Hello.LabelsEntry
	44, // 15: relay.v1.Hello.idle_linger:type_name -> google.protobuf.Duration
	44, // 16: relay.v1.Welcome.idle_timeout:type_name -> google.protobuf.Duration
	45, // 17: relay.v1.Open.opened_at:type_name -> google.protobuf.Timestamp
	0,  // 18: relay.v1.Drain.reason:type_name -> relay.v1.DrainReason
	44, // 19: relay.v1.Drain.retry_after:type_name -> google.protobuf.Duration
	1,  // 20: relay.v1.Close.reason:type_name -> relay.v1.CloseReason
	44, // 21: relay.v1.GetStatusResponse.uptime:type_name -> google.protobuf.Duration
	20, // 22: relay.v1.GetStatusResponse.services:type_name -> relay.v1.ServiceStatus
	45, // 23: relay.v1.GetStatusResponse.started_at:type_name -> google.protobuf.Timestamp
	23, // 24: relay.v1.ListHostsResponse.hosts:type_name -> relay.v1.Host
	45, // 25: relay.v1.Host.attached_at:type_name -> google.protobuf.Timestamp
	43, // 26: relay.v1.Host.labels:type_name -> relay.v1.Host.LabelsEntry
	45, // 27: relay.v1.Host.backend_failing_until:type_name -> google.protobuf.Timestamp
	26, // 28: relay.v1.ListSessionsResponse.sessions:type_name -> relay.v1.Session
	45, // 29: relay.v1.Session.opened_at:type_name -> google.protobuf.Timestamp
	2,  // 30: relay.v1.WatchEventsRequest.kinds:type_name -> relay.v1.EventKind
	45, // 31: relay.v1.WatchEventsResponse.time:type_name -> google.protobuf.Timestamp
	29, // 32: relay.v1.WatchEventsResponse.host_attached:type_name -> relay.v1.HostAttached
	30, // 33: relay.v1.WatchEventsResponse.host_detached:type_name -> relay.v1.HostDetached
	31, // 34: relay.v1.WatchEventsResponse.slot_opened:type_name -> relay.v1.SlotOpened
	32, // 35: relay.v1.WatchEventsResponse.session_opened:type_name -> relay.v1.SessionOpened
	33, // 36: relay.v1.WatchEventsResponse.session_half_closed:type_name -> relay.v1.SessionHalfClosed
	34, // 37: relay.v1.WatchEventsResponse.session_closed:type_name -> relay.v1.SessionClosed
	35, // 38: relay.v1.WatchEventsResponse.client_rejected:type_name -> relay.v1.ClientRejected
	44, // 39: relay.v1.SessionOpened.assign_wait:type_name -> google.protobuf.Duration
	3,  // 40: relay.v1.SessionHalfClosed.side:type_name -> relay.v1.SessionSide
	1,  // 41: relay.v1.SessionClosed.reason:type_name -> relay.v1.CloseReason
	44, // 42: relay.v1.SessionClosed.duration:type_name -> google.protobuf.Duration
	4,  // 43: relay.v1.ClientRejected.reason:type_name -> relay.v1.RejectReason
	5,  // 44: relay.v1.HostService.Attach:input_type -> relay.v1.AttachRequest
	18, // 45: relay.v1.StatusService.GetStatus:input_type -> relay.v1.GetStatusRequest
	21, // 46: relay.v1.StatusService.ListHosts:input_type -> relay.v1.ListHostsRequest
	24, // 47: relay.v1.StatusService.ListSessions:input_type -> relay.v1.ListSessionsRequest
	27, // 48: relay.v1.StatusService.WatchEvents:input_type -> relay.v1.WatchEventsRequest
	36, // 49: relay.v1.AdminService.CloseSession:input_type -> relay.v1.CloseSessionRequest
	38, // 50: relay.v1.AdminService.DrainHost:input_type -> relay.v1.DrainHostRequest
	40, // 51: relay.v1.AdminService.UndrainHost:input_type -> relay.v1.UndrainHostRequest
	6,  // 52: relay.v1.HostService.Attach:output_type -> relay.v1.AttachResponse
	19, // 53: relay.v1.StatusService.GetStatus:output_type -> relay.v1.GetStatusResponse
	22, // 54: relay.v1.StatusService.ListHosts:output_type -> relay.v1.ListHostsResponse
	25, // 55: relay.v1.StatusService.ListSessions:output_type -> relay.v1.ListSessionsResponse
	28, // 56: relay.v1.StatusService.WatchEvents:output_type -> relay.v1.WatchEventsResponse
	37, // 57: relay.v1.AdminService.CloseSession:output_type -> relay.v1.CloseSessionResponse
	39, // 58: relay.v1.AdminService.DrainHost:output_type -> relay.v1.DrainHostResponse
	41, // 59: relay.v1.AdminService.UndrainHost:output_type -> relay.v1.UndrainHostResponse
	52, // [52:60] is the sub-list for method output_type
	44, // [44:52] is the sub-list for method input_type
	44, // [44:44] is the sub-list for extension type_name
	44, // [44:44] is the sub-list for extension extendee
	0,  // [0:44] is the sub-list for field type_name
}

func init() { file_relay_v1_relay_proto_init() }
func file_relay_v1_relay_proto_init() {
	if File_relay_v1_relay_proto != nil {
		return
	}
	file_relay_v1_relay_proto_msgTypes[0].OneofWrappers = []any{
		(*AttachRequest_Hello)(nil),
		(*AttachRequest_Data)(nil),
		(*AttachRequest_CloseWrite)(nil),
		(*AttachRequest_Close)(nil),
		(*AttachRequest_Credit)(nil),
		(*AttachRequest_Withdraw)(nil),
	}
	file_relay_v1_relay_proto_msgTypes[1].OneofWrappers = []any{
		(*AttachResponse_Welcome)(nil),
		(*AttachResponse_Open)(nil),
		(*AttachResponse_Data)(nil),
		(*AttachResponse_CloseWrite)(nil),
		(*AttachResponse_Close)(nil),
		(*AttachResponse_Drain)(nil),
		(*AttachResponse_SessionEnd)(nil),
		(*AttachResponse_Offer)(nil),
	}
	file_relay_v1_relay_proto_msgTypes[23].OneofWrappers = []any{
		(*WatchEventsResponse_HostAttached)(nil),
		(*WatchEventsResponse_HostDetached)(nil),
		(*WatchEventsResponse_SlotOpened)(nil),
		(*WatchEventsResponse_SessionOpened)(nil),
		(*WatchEventsResponse_SessionHalfClosed)(nil),
		(*WatchEventsResponse_SessionClosed)(nil),
		(*WatchEventsResponse_ClientRejected)(nil),
	}
	type x struct{}
	out := protoimpl.TypeBuilder{
		File: protoimpl.DescBuilder{
			GoPackagePath: reflect.TypeOf(x{}).PkgPath(),
			RawDescriptor: unsafe.Slice(unsafe.StringData(file_relay_v1_relay_proto_rawDesc), len(file_relay_v1_relay_proto_rawDesc)),
			NumEnums:      5,
			NumMessages:   39,
			NumExtensions: 0,
			NumServices:   3,
		},
		GoTypes:           file_relay_v1_relay_proto_goTypes,
		DependencyIndexes: file_relay_v1_relay_proto_depIdxs,
		EnumInfos:         file_relay_v1_relay_proto_enumTypes,
		MessageInfos:      file_relay_v1_relay_proto_msgTypes,
	}.Build()
	File_relay_v1_relay_proto = out.File
	file_relay_v1_relay_proto_goTypes = nil
	file_relay_v1_relay_proto_depIdxs = nil
}
