package framecodec

import (
	"unicode/utf8"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// The control frames every session exchanges (Welcome, Open, CloseWrite,
// Close, SessionEnd, the empty Hello that offers a stream again, and
// Withdraw) are decoded by hand when they are in the plain encoding: each
// field once, in field order, no unknown field. The generic decoder finds
// oneof and message types by reflection, which was ≈ 8 % of relayd's and
// hostagent's CPU per session and grew long-lived receive loops' stacks.
// Anything else (a first Hello, Drain, an unusual encoding) goes to proto. Nothing
// decoded keeps a reference to data: strings are copied.

// maxControl bounds the control frames decoded here: a larger one goes to
// proto. Addresses, ids and details are far shorter.
const maxControl = 512

// field is one field of a plain encoding: its varint, or its bytes.
type field struct {
	set bool // present on the wire
	typ protowire.Type
	v   uint64
	b   []byte
}

// fields splits a plain encoding into fields 1..len(out); ok is false for
// an unknown, repeated or out-of-order field, a group, or a fixed-width
// type. An absent field reads as its zero value, as proto3 leaves out.
func fields(b []byte, out []field) bool {
	last := protowire.Number(0)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num <= last || int(num) > len(out) {
			return false
		}
		last = num
		b = b[n:]
		f := &out[num-1]
		f.set, f.typ = true, typ
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			return false
		}
		if n < 0 {
			return false
		}
		b = b[n:]
	}
	return true
}

// str reads a string field; ok is false for a wrong wire type (proto keeps
// such a field as unknown) or invalid UTF-8 (which proto rejects: let it
// say so).
func (f field) str() (string, bool) {
	if !f.set {
		return "", true
	}
	if f.typ != protowire.BytesType || !utf8.Valid(f.b) {
		return "", false
	}
	return string(f.b), true
}

// num reads a varint field.
func (f field) num() (uint64, bool) {
	return f.v, !f.set || f.typ == protowire.VarintType
}

// frame returns the oneof field of a control frame: its number and its
// message's bytes, which alias data. ok is false unless data is exactly one
// such field.
func frame(data mem.BufferSlice) (num protowire.Number, msg []byte, ok bool) {
	total := data.Len()
	if total == 0 || total > maxControl {
		return 0, nil, false
	}
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData() // the usual case: no copy
	} else {
		b = data.Materialize()
	}
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || typ != protowire.BytesType {
		return 0, nil, false
	}
	msg, m := protowire.ConsumeBytes(b[n:])
	if m < 0 || n+m != total {
		return 0, nil, false
	}
	return num, msg, true
}

// controlRequest decodes an empty Hello, CloseWrite, Close and Withdraw
// frames from a host.
func controlRequest(data mem.BufferSlice, m *relayv1.AttachRequest) bool {
	num, msg, ok := frame(data)
	if !ok {
		return false
	}
	switch num {
	case 1:
		// Only the empty Hello that offers a stream again after its session
		// (Hello.sequential_sessions); a first Hello, with its labels, goes
		// to proto.
		if len(msg) != 0 {
			return false
		}
		m.Reset()
		m.Frame = &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{}}
		return true
	case 3:
		if len(msg) != 0 {
			return false
		}
		m.Reset()
		m.Frame = &relayv1.AttachRequest_CloseWrite{CloseWrite: &relayv1.CloseWrite{}}
		return true
	case 4:
		c, ok := closeFrame(msg)
		if !ok {
			return false
		}
		m.Reset()
		m.Frame = &relayv1.AttachRequest_Close{Close: c}
		return true
	case 6:
		if len(msg) != 0 {
			return false
		}
		m.Reset()
		m.Frame = &relayv1.AttachRequest_Withdraw{Withdraw: &relayv1.Withdraw{}}
		return true
	}
	return false
}

// controlResponse decodes Welcome, Open, CloseWrite, Close and SessionEnd
// frames from a relay.
func controlResponse(data mem.BufferSlice, m *relayv1.AttachResponse) bool {
	num, msg, ok := frame(data)
	if !ok {
		return false
	}
	switch num {
	case 1:
		var f [7]field
		if !fields(msg, f[:]) {
			return false
		}
		relayID, ok1 := f[0].str()
		slotID, ok2 := f[1].str()
		maxData, ok3 := f[2].num()
		sequential, ok4 := f[3].num()
		credits, ok5 := f[4].num()
		withdraw, ok6 := f[5].num()
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
			return false
		}
		w := &relayv1.Welcome{
			RelayId: relayID, SlotId: slotID, MaxDataBytes: uint32(maxData), SequentialSessions: sequential != 0,
			SlotCredits: uint32(credits), Withdraw: withdraw != 0,
		}
		if f[6].set {
			var d [2]field
			if f[6].typ != protowire.BytesType || !fields(f[6].b, d[:]) {
				return false
			}
			secs, ok1 := d[0].num()
			nanos, ok2 := d[1].num()
			if !ok1 || !ok2 {
				return false
			}
			w.IdleTimeout = &durationpb.Duration{Seconds: int64(secs), Nanos: int32(nanos)}
		}
		m.Reset()
		m.Frame = &relayv1.AttachResponse_Welcome{Welcome: w}
		return true
	case 2:
		o, ok := openFrame(msg)
		if !ok {
			return false
		}
		m.Reset()
		m.Frame = &relayv1.AttachResponse_Open{Open: o}
		return true
	case 4:
		if len(msg) != 0 {
			return false
		}
		m.Reset()
		m.Frame = &relayv1.AttachResponse_CloseWrite{CloseWrite: &relayv1.CloseWrite{}}
		return true
	case 5:
		c, ok := closeFrame(msg)
		if !ok {
			return false
		}
		m.Reset()
		m.Frame = &relayv1.AttachResponse_Close{Close: c}
		return true
	case 7:
		var f [1]field
		if !fields(msg, f[:]) {
			return false
		}
		id, ok := f[0].str()
		if !ok {
			return false
		}
		m.Reset()
		m.Frame = &relayv1.AttachResponse_SessionEnd{SessionEnd: &relayv1.SessionEnd{SessionId: id}}
		return true
	}
	return false
}

func closeFrame(msg []byte) (*relayv1.Close, bool) {
	var f [2]field
	if !fields(msg, f[:]) {
		return nil, false
	}
	reason, ok1 := f[0].num()
	detail, ok2 := f[1].str()
	if !ok1 || !ok2 {
		return nil, false
	}
	return &relayv1.Close{Reason: relayv1.CloseReason(int32(reason)), Detail: detail}, true
}

func openFrame(msg []byte) (*relayv1.Open, bool) {
	var f [5]field
	if !fields(msg, f[:]) {
		return nil, false
	}
	var o relayv1.Open
	var ok [4]bool
	o.SessionId, ok[0] = f[0].str()
	o.ClientAddr, ok[1] = f[1].str()
	o.ListenerAddr, ok[2] = f[2].str()
	o.Service, ok[3] = f[3].str()
	if ok != [4]bool{true, true, true, true} {
		return nil, false
	}
	if f[4].set {
		var t [2]field
		if f[4].typ != protowire.BytesType || !fields(f[4].b, t[:]) {
			return nil, false
		}
		secs, ok1 := t[0].num()
		nanos, ok2 := t[1].num()
		if !ok1 || !ok2 {
			return nil, false
		}
		o.OpenedAt = &timestamppb.Timestamp{Seconds: int64(secs), Nanos: int32(nanos)}
	}
	return &o, true
}
