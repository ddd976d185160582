// Package framecodec is the gRPC codec both sides use on Attach streams. It
// encodes a session's frames by hand into the bytes of grpc-go's proto
// codec (see encode.go), and decodes a received Data frame's
// payload into a pooled buffer instead of a fresh allocation: the steady
// data path allocates nothing per frame. The other frames of a session are
// decoded by hand too (see control.go). Every other message, and any frame
// not in the plain encoding (unknown fields, a payload too large for the
// pool), is decoded by the proto codec.
//
// Ownership: a pooled payload belongs to the receive loop that received it,
// and goes back with Recycle once consumed. attachconn's Deliver consumes a
// payload before it returns, so a receive loop recycles right after it.
// To reuse the Data message too, a receive loop passes the same message to
// every RecvMsg without resetting it: this codec resets what it decodes.
package framecodec

import (
	"sync"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the proto codec this one defers to
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// BufferSize is the capacity of a pooled payload buffer: a Data payload of
// up to this many bytes (the default frame of 32 KiB − 256 fits) needs no
// allocation.
const BufferSize = 32 * 1024

// Name is the codec's name: "proto", the wire format is the same, so peers
// without this codec interoperate.
const Name = "proto"

var pool = sync.Pool{New: func() any { return new([BufferSize]byte) }}

// Codec implements encoding.CodecV2. Use it with grpc.ForceServerCodecV2 on
// the relay's server and grpc.ForceCodecV2 on the agent's Attach calls.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

func base() encoding.CodecV2 { return encoding.GetCodecV2(Name) }

// Name returns "proto".
func (Codec) Name() string { return Name }

// Marshal encodes v into the bytes the proto codec gives (into pooled
// buffers when large); see encode.go.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *relayv1.AttachRequest:
		if b, ok := encodeRequest(m); ok {
			return b, nil
		}
	case *relayv1.AttachResponse:
		if b, ok := encodeResponse(m); ok {
			return b, nil
		}
	}
	return base().Marshal(v)
}

// Unmarshal decodes data into v; see the package doc for Data frames.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *relayv1.AttachRequest:
		if p, ok := dataPayload(data, 2); ok {
			d := reuseRequestData(m)
			d.Payload = p
			return nil
		}
		if controlRequest(data, m) {
			return nil
		}
	case *relayv1.AttachResponse:
		if p, ok := dataPayload(data, 3); ok {
			d := reuseResponseData(m)
			d.Payload = p
			return nil
		}
		if controlResponse(data, m) {
			return nil
		}
	}
	return base().Unmarshal(data, v)
}

// reuseRequestData resets m to a Data frame, keeping its Data message and
// oneof wrapper if it already was one.
func reuseRequestData(m *relayv1.AttachRequest) *relayv1.Data {
	f, ok := m.Frame.(*relayv1.AttachRequest_Data)
	if !ok || f.Data == nil {
		f = &relayv1.AttachRequest_Data{Data: &relayv1.Data{}}
	}
	d := f.Data
	d.Reset()
	m.Reset()
	m.Frame = f
	return d
}

func reuseResponseData(m *relayv1.AttachResponse) *relayv1.Data {
	f, ok := m.Frame.(*relayv1.AttachResponse_Data)
	if !ok || f.Data == nil {
		f = &relayv1.AttachResponse_Data{Data: &relayv1.Data{}}
	}
	d := f.Data
	d.Reset()
	m.Reset()
	m.Frame = f
	return d
}

// Recycle gives a payload decoded by Unmarshal back to the pool; payloads
// of any other capacity are left to the garbage collector. The caller must
// not use p, or any slice of it, afterwards.
func Recycle(p []byte) {
	if cap(p) != BufferSize {
		return
	}
	pool.Put((*[BufferSize]byte)(p[:BufferSize]))
}

// dataPayload recognizes the plain encoding of a message whose only field
// is a Data frame in field number field, holding only a payload, and copies
// the payload into a pooled buffer. ok is false for anything else.
func dataPayload(data mem.BufferSlice, field protowire.Number) (payload []byte, ok bool) {
	total := data.Len()
	var hdr [2 * (1 + 10)]byte // two one-byte tags, two varint lengths of at most 10 bytes
	h0 := peek(data, hdr[:min(total, len(hdr))])
	h := h0
	// Outer: tag(field, bytes) len(Data); inner: tag(1, bytes) len(payload).
	num, typ, n := protowire.ConsumeTag(h)
	if n < 0 || num != field || typ != protowire.BytesType {
		return nil, false
	}
	h = h[n:]
	outer, n := protowire.ConsumeVarint(h)
	if n < 0 {
		return nil, false
	}
	h = h[n:]
	start := len(h0) - len(h) // offset of the Data message
	if outer != uint64(total-start) {
		return nil, false
	}
	if outer == 0 {
		return []byte{}, true // an empty Data frame
	}
	num, typ, n = protowire.ConsumeTag(h)
	if n < 0 || num != 1 || typ != protowire.BytesType {
		return nil, false
	}
	h = h[n:]
	size, n := protowire.ConsumeVarint(h)
	if n < 0 {
		return nil, false
	}
	h = h[n:]
	off := len(h0) - len(h) // offset of the payload
	if size != uint64(total-off) || size > BufferSize {
		return nil, false
	}
	buf := pool.Get().(*[BufferSize]byte)
	payload = buf[:size]
	copyFrom(data, off, payload)
	return payload, true
}

// peek copies the first len(dst) bytes of data into dst.
func peek(data mem.BufferSlice, dst []byte) []byte {
	copyFrom(data, 0, dst)
	return dst
}

// copyFrom copies len(dst) bytes of data, from offset off, into dst.
func copyFrom(data mem.BufferSlice, off int, dst []byte) {
	for _, b := range data {
		if len(dst) == 0 {
			return
		}
		d := b.ReadOnlyData()
		if off >= len(d) {
			off -= len(d)
			continue
		}
		n := copy(dst, d[off:])
		dst = dst[n:]
		off = 0
	}
}
