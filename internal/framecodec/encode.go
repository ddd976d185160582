package framecodec

import (
	"slices"
	"unicode/utf8"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// The frames of a session (Hello, Welcome, Open, Data, CloseWrite, Close,
// SessionEnd) are encoded by hand, into the bytes proto.Marshal gives with
// Deterministic set (fields in number order, proto3 zero values left out,
// map entries sorted by key). The generic encoder sizes and walks a
// message by reflection: with the matching decoding, ≈ 5 % of each
// binary's CPU per session, and on a new goroutine a stack grown twice
// over. A frame with unknown fields or a string that is not UTF-8 (which
// proto refuses to encode), or of another kind (Drain), goes to proto.

// encodeRequest encodes an agent's frame; ok is false for one left to
// proto.
func encodeRequest(m *relayv1.AttachRequest) (mem.BufferSlice, bool) {
	if hasUnknown(m) {
		return nil, false
	}
	switch f := m.Frame.(type) {
	case *relayv1.AttachRequest_Data:
		if f == nil || f.Data == nil || hasUnknown(f.Data) {
			return nil, false
		}
		return encodeData(2, f.Data.Payload), true
	case *relayv1.AttachRequest_Hello:
		if f == nil {
			return nil, false
		}
		h := f.Hello
		// A credit stream's Hello and a claim are one per stream at most:
		// proto encodes them.
		if h == nil || hasUnknown(h) || h.SlotCredits != 0 || h.ClaimId != "" || !utf8s(h.Service, h.HostId, h.AgentVersion, h.AgentInstance) || !onlyHelloFields(h) {
			return nil, false
		}
		for k, v := range h.Labels {
			if !utf8s(k, v) {
				return nil, false
			}
		}
		size := len(h.Service) + len(h.HostId) + len(h.AgentVersion) + len(h.AgentInstance)
		keys := make([]string, 0, len(h.Labels))
		for k, v := range h.Labels {
			keys = append(keys, k)
			size += len(k) + len(v) + 16
		}
		slices.Sort(keys)
		b := start(size)
		b = appendString(b, 1, h.Service)
		b = appendString(b, 2, h.HostId)
		for _, k := range keys {
			// A map entry has both its key and its value, even empty.
			v := h.Labels[k]
			b = protowire.AppendTag(b, 3, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(protowire.SizeTag(1)+protowire.SizeBytes(len(k))+protowire.SizeTag(2)+protowire.SizeBytes(len(v))))
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendString(b, k)
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendString(b, v)
		}
		b = appendString(b, 4, h.AgentVersion)
		b = appendVarint(b, 5, uint64(h.Weight))
		b = appendVarint(b, 6, boolVarint(h.SequentialSessions))
		b = appendString(b, 9, h.AgentInstance)
		return finish(b, 1), true
	case *relayv1.AttachRequest_CloseWrite:
		if f == nil || f.CloseWrite == nil || hasUnknown(f.CloseWrite) {
			return nil, false
		}
		return finish(start(0), 3), true
	case *relayv1.AttachRequest_Close:
		if f == nil {
			return nil, false
		}
		return encodeClose(f.Close, 4)
	case *relayv1.AttachRequest_Withdraw:
		if f == nil || f.Withdraw == nil || hasUnknown(f.Withdraw) {
			return nil, false
		}
		return finish(start(0), 6), true
	}
	return nil, false
}

// encodeResponse encodes a relay's frame; ok is false for one left to
// proto.
func encodeResponse(m *relayv1.AttachResponse) (mem.BufferSlice, bool) {
	if hasUnknown(m) {
		return nil, false
	}
	switch f := m.Frame.(type) {
	case *relayv1.AttachResponse_Data:
		if f == nil || f.Data == nil || hasUnknown(f.Data) {
			return nil, false
		}
		return encodeData(3, f.Data.Payload), true
	case *relayv1.AttachResponse_Welcome:
		if f == nil {
			return nil, false
		}
		w := f.Welcome
		if w == nil || hasUnknown(w) || (w.IdleTimeout != nil && hasUnknown(w.IdleTimeout)) || !utf8s(w.RelayId, w.SlotId) {
			return nil, false
		}
		b := start(len(w.RelayId) + len(w.SlotId))
		b = appendString(b, 1, w.RelayId)
		b = appendString(b, 2, w.SlotId)
		b = appendVarint(b, 3, uint64(w.MaxDataBytes))
		b = appendVarint(b, 4, boolVarint(w.SequentialSessions))
		b = appendVarint(b, 5, uint64(w.SlotCredits))
		b = appendVarint(b, 6, boolVarint(w.Withdraw))
		if d := w.IdleTimeout; d != nil {
			var ds [2 * (1 + 10)]byte
			db := appendVarint(ds[:0], 1, uint64(d.Seconds))
			db = appendVarint(db, 2, uint64(int64(d.Nanos)))
			b = protowire.AppendTag(b, 7, protowire.BytesType)
			b = protowire.AppendBytes(b, db)
		}
		return finish(b, 1), true
	case *relayv1.AttachResponse_Open:
		if f == nil {
			return nil, false
		}
		o := f.Open
		if o == nil || hasUnknown(o) || (o.OpenedAt != nil && hasUnknown(o.OpenedAt)) ||
			!utf8s(o.SessionId, o.ClientAddr, o.ListenerAddr, o.Service) {
			return nil, false
		}
		b := start(len(o.SessionId) + len(o.ClientAddr) + len(o.ListenerAddr) + len(o.Service))
		b = appendString(b, 1, o.SessionId)
		b = appendString(b, 2, o.ClientAddr)
		b = appendString(b, 3, o.ListenerAddr)
		b = appendString(b, 4, o.Service)
		if t := o.OpenedAt; t != nil {
			var ts [2 * (1 + 10)]byte
			tb := appendVarint(ts[:0], 1, uint64(t.Seconds))
			tb = appendVarint(tb, 2, uint64(int64(t.Nanos)))
			b = protowire.AppendTag(b, 5, protowire.BytesType)
			b = protowire.AppendBytes(b, tb)
		}
		return finish(b, 2), true
	case *relayv1.AttachResponse_CloseWrite:
		if f == nil || f.CloseWrite == nil || hasUnknown(f.CloseWrite) {
			return nil, false
		}
		return finish(start(0), 4), true
	case *relayv1.AttachResponse_Close:
		if f == nil {
			return nil, false
		}
		return encodeClose(f.Close, 5)
	case *relayv1.AttachResponse_SessionEnd:
		if f == nil {
			return nil, false
		}
		e := f.SessionEnd
		if e == nil || hasUnknown(e) || !utf8.ValidString(e.SessionId) {
			return nil, false
		}
		return finish(appendString(start(len(e.SessionId)), 1, e.SessionId), 7), true
	}
	return nil, false
}

// encodeClose encodes a Close frame in field num.
func encodeClose(c *relayv1.Close, num protowire.Number) (mem.BufferSlice, bool) {
	if c == nil || hasUnknown(c) || !utf8.ValidString(c.Detail) {
		return nil, false
	}
	b := start(len(c.Detail))
	b = appendVarint(b, 1, uint64(int64(c.Reason)))
	b = appendString(b, 2, c.Detail)
	return finish(b, num), true
}

// boolVarint is a bool field's varint: appendVarint leaves out false, as
// proto3 does.
func boolVarint(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

func hasUnknown(m proto.Message) bool { return len(m.ProtoReflect().GetUnknown()) > 0 }

func utf8s(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// appendString appends a string field, left out when empty as proto3 does.
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendVarint appends a varint field, left out when zero.
func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// A frame is one message in a oneof field: start returns a buffer for the
// inner message, of about strings bytes of text, after room for the
// field's tag and length, which finish writes in front of it once the
// length is known. One allocation, no copy.
const headroom = 1 + 5 // a one-byte tag, a varint length below 4 GiB

func start(strings int) []byte {
	return make([]byte, headroom, headroom+strings+48)
}

func finish(b []byte, num protowire.Number) mem.BufferSlice {
	var hdr [headroom]byte
	h := protowire.AppendTag(hdr[:0], num, protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(len(b)-headroom))
	at := headroom - len(h)
	copy(b[at:], h)
	return mem.BufferSlice{mem.SliceBuffer(b[at:])}
}

// encodeData encodes a Data frame in field num: a large one into a buffer
// of grpc's pool (as its proto codec does), which grpc frees once written.
func encodeData(num protowire.Number, payload []byte) mem.BufferSlice {
	inner := 0
	if len(payload) > 0 {
		inner = protowire.SizeTag(1) + protowire.SizeBytes(len(payload))
	}
	size := protowire.SizeTag(num) + protowire.SizeBytes(inner)
	if mem.IsBelowBufferPoolingThreshold(size) {
		return mem.BufferSlice{mem.SliceBuffer(appendData(make([]byte, 0, size), num, inner, payload))}
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	*buf = appendData((*buf)[:0], num, inner, payload)
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}
}

func appendData(b []byte, num protowire.Number, inner int, payload []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(inner))
	if len(payload) > 0 {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, payload)
	}
	return b
}

// helloFields are the Hello fields the hand encoder writes (and the two it
// leaves to proto). A field added to Hello later is not among them: such a
// Hello goes to proto, rather than losing the field on the wire.
var helloFields = [...]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true, 9: true}

// onlyHelloFields reports whether every field set in h is one the hand
// encoder knows.
func onlyHelloFields(h *relayv1.Hello) bool {
	ok := true
	h.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		n := int(fd.Number())
		ok = n < len(helloFields) && helloFields[n]
		return ok
	})
	return ok
}
