package framecodec

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// split cuts b into a BufferSlice of pieces of at most n bytes, as gRPC
// hands over a message received in several HTTP/2 frames.
func split(b []byte, n int) mem.BufferSlice {
	var s mem.BufferSlice
	for len(b) > 0 {
		k := min(n, len(b))
		s = append(s, mem.SliceBuffer(b[:k]))
		b = b[k:]
	}
	return s
}

func reqData(p []byte) *relayv1.AttachRequest {
	return &relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Data{Data: &relayv1.Data{Payload: p}}}
}

func respData(p []byte) *relayv1.AttachResponse {
	return &relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Data{Data: &relayv1.Data{Payload: p}}}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + 7)
	}
	return b
}

// Every message decodes as proto.Unmarshal decodes it, whichever path it
// takes, however the bytes are split, into a fresh or a reused message.
func TestUnmarshalMatchesProto(t *testing.T) {
	t.Parallel()
	withUnknown := reqData([]byte("abc"))
	withUnknown.GetData().ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 1))
	msgs := []proto.Message{
		reqData(nil),
		reqData([]byte{}),
		reqData([]byte("x")),
		reqData(pattern(32*1024 - 256)),
		reqData(pattern(BufferSize)),
		reqData(pattern(BufferSize + 1)), // too large for the pool
		withUnknown,
		respData(pattern(1000)),
		respData(pattern(BufferSize)),
		&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{Service: "s", HostId: "h", Labels: map[string]string{"k": "v"}}}},
		&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_CloseWrite{CloseWrite: &relayv1.CloseWrite{}}},
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Close{Close: &relayv1.Close{Reason: relayv1.CloseReason_CLOSE_REASON_CLIENT_RESET, Detail: "d"}}},
		&relayv1.AttachRequest{},
	}
	msgs = append(msgs, controlFrames()...)
	var c Codec
	for i, m := range msgs {
		wire, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, piece := range []int{1, 3, 16 * 1024, len(wire) + 1} {
			for _, reuse := range []bool{false, true} {
				got := m.ProtoReflect().New().Interface()
				if reuse { // a message left over from an earlier Data frame
					switch g := got.(type) {
					case *relayv1.AttachRequest:
						g.Frame = &relayv1.AttachRequest_Data{Data: &relayv1.Data{Payload: []byte("stale")}}
					case *relayv1.AttachResponse:
						g.Frame = &relayv1.AttachResponse_Data{Data: &relayv1.Data{Payload: []byte("stale")}}
					}
				}
				if piece > 0 && len(wire) == 0 {
					piece = 1
				}
				if err := c.Unmarshal(split(wire, piece), got); err != nil {
					t.Fatalf("message %d, pieces of %d: %v", i, piece, err)
				}
				if !proto.Equal(got, m) {
					t.Fatalf("message %d, pieces of %d, reuse %v: got %v, want %v", i, piece, reuse, got, m)
				}
			}
		}
	}
}

// A Data frame decoded into a reused message, and recycled after use,
// allocates nothing: the steady state of a receive loop.
func TestUnmarshalDataAllocatesNothing(t *testing.T) {
	wire, err := proto.Marshal(reqData(pattern(32*1024 - 256)))
	if err != nil {
		t.Fatal(err)
	}
	data := split(wire, 16*1024)
	var c Codec
	var m relayv1.AttachRequest
	allocs := testing.AllocsPerRun(100, func() {
		if err := c.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		d := m.GetData()
		if !bytes.Equal(d.Payload, wire[len(wire)-len(d.Payload):]) {
			t.Fatal("payload differs")
		}
		Recycle(d.Payload)
		d.Payload = nil
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Data frame, want 0", allocs)
	}
}

// FuzzUnmarshal: on any input the codec agrees with proto.Unmarshal, for
// requests and responses, in one piece or two.
func FuzzUnmarshal(f *testing.F) {
	for _, m := range append([]proto.Message{reqData([]byte("hello")), respData(pattern(300)), reqData(nil)}, controlFrames()...) {
		b, _ := proto.Marshal(m)
		f.Add(b, 2)
	}
	f.Add([]byte{0x12, 0x02, 0x0a, 0x05}, 1)
	f.Fuzz(func(t *testing.T, wire []byte, cut int) {
		for _, newMsg := range []func() proto.Message{
			func() proto.Message { return &relayv1.AttachRequest{} },
			func() proto.Message { return &relayv1.AttachResponse{} },
		} {
			want, got := newMsg(), newMsg()
			wantErr := proto.Unmarshal(wire, want)
			data := mem.BufferSlice{mem.SliceBuffer(wire)}
			if cut > 0 && cut < len(wire) {
				data = mem.BufferSlice{mem.SliceBuffer(wire[:cut]), mem.SliceBuffer(wire[cut:])}
			}
			gotErr := Codec{}.Unmarshal(data, got)
			if (wantErr == nil) != (gotErr == nil) {
				t.Fatalf("proto error %v, codec error %v", wantErr, gotErr)
			}
			if wantErr == nil && !proto.Equal(got, want) {
				t.Fatalf("codec decoded %v, proto %v", got, want)
			}
		}
	})
}

// controlFrames are the frames decoded by hand, as relayd and hostagent
// send them, with empty and extreme values.
func controlFrames() []proto.Message {
	open := &relayv1.Open{SessionId: "c42", ClientAddr: "127.0.0.1:50123", ListenerAddr: "127.0.0.1:8002", Service: "default", OpenedAt: timestamppb.New(time.Date(2026, 11, 26, 6, 0, 0, 123456789, time.UTC))}
	return []proto.Message{
		&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_CloseWrite{CloseWrite: &relayv1.CloseWrite{}}},
		&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Close{Close: &relayv1.Close{}}},
		&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Close{Close: &relayv1.Close{Reason: relayv1.CloseReason_CLOSE_REASON_HOST_ABORT, Detail: "backend refused: dial tcp 127.0.0.1:8080: connect: connection refused"}}},
		&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Close{Close: &relayv1.Close{Reason: -1, Detail: "ü"}}},
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{RelayId: "relay-a", SlotId: "s17", MaxDataBytes: 32512}}},
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{MaxDataBytes: 1<<32 - 1}}},
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{}}},
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Open{Open: open}},
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Open{Open: &relayv1.Open{SessionId: "c1", OpenedAt: &timestamppb.Timestamp{}}}},
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Open{Open: &relayv1.Open{OpenedAt: &timestamppb.Timestamp{Seconds: -62135596800, Nanos: -1}}}},
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Open{Open: &relayv1.Open{}}},
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_CloseWrite{CloseWrite: &relayv1.CloseWrite{}}},
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Close{Close: &relayv1.Close{Reason: relayv1.CloseReason_CLOSE_REASON_CLIENT_RESET, Detail: "client reset"}}},
		// Sequential sessions: the Welcome that agrees, SessionEnd, and the
		// empty Hello that offers the stream again.
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{RelayId: "relay-a", SlotId: "s17", MaxDataBytes: 32512, SequentialSessions: true}}},
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_SessionEnd{SessionEnd: &relayv1.SessionEnd{SessionId: "c42"}}},
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_SessionEnd{SessionEnd: &relayv1.SessionEnd{}}},
		&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{}}},
		// A relay that takes Withdraw, and the frame; a credit stream's
		// Welcome.
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{RelayId: "relay-a", SlotId: "s17", MaxDataBytes: 32512, SequentialSessions: true, Withdraw: true}}},
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{RelayId: "relay-a", SlotId: "s18", MaxDataBytes: 32512, SlotCredits: 10}}},
		// The relay's idle timeout, as relayd sends it (--idle-timeout).
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{RelayId: "relay-a", SlotId: "s19", MaxDataBytes: 32512, SequentialSessions: true, Withdraw: true, IdleTimeout: durationpb.New(time.Hour)}}},
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{IdleTimeout: &durationpb.Duration{Seconds: 1, Nanos: 500}}}},
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{IdleTimeout: &durationpb.Duration{}}}},
		&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Withdraw{Withdraw: &relayv1.Withdraw{}}},
	}
}

// Every control frame as proto.Marshal encodes it takes the hand-written
// path, not the reflection one.
func TestControlFramesDecodedByHand(t *testing.T) {
	t.Parallel()
	for _, m := range controlFrames() {
		wire, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var ok bool
		switch m := m.(type) {
		case *relayv1.AttachRequest:
			var got relayv1.AttachRequest
			ok = controlRequest(split(wire, 7), &got)
			ok = ok && proto.Equal(&got, m)
		case *relayv1.AttachResponse:
			var got relayv1.AttachResponse
			ok = controlResponse(split(wire, 7), &got)
			ok = ok && proto.Equal(&got, m)
		}
		if !ok {
			t.Errorf("%v: not decoded by hand, or decoded wrong", m)
		}
	}
	// And what it must leave to proto: unknown fields, repeats, Hello.
	for _, wire := range [][]byte{
		{0x22, 0x02, 0x18, 0x01},             // Close with a field 3
		{0x22, 0x04, 0x08, 0x01, 0x08, 0x02}, // Close with its reason twice
		{0x22, 0x03, 0x12, 0x01, 0xff},       // Close detail not UTF-8
		{0x22, 0x02, 0x10, 0x01},             // Close detail as a varint
		{0x0a, 0x02, 0x0a, 0x00},             // Hello
	} {
		if controlRequest(split(wire, 7), &relayv1.AttachRequest{}) {
			t.Errorf("% x decoded by hand, want proto", wire)
		}
	}
}

// Decoding a control frame allocates only what it returns: the oneof
// wrapper, the message, its strings; no scratch buffer.
func TestControlFrameAllocations(t *testing.T) {
	for _, tt := range []struct {
		m    proto.Message
		want float64
	}{
		{&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_CloseWrite{CloseWrite: &relayv1.CloseWrite{}}}, 2},
		{&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Close{Close: &relayv1.Close{Reason: 1, Detail: "client reset"}}}, 3},
		{&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{RelayId: "r", SlotId: "s1", MaxDataBytes: 100}}}, 4},
	} {
		wire, err := proto.Marshal(tt.m)
		if err != nil {
			t.Fatal(err)
		}
		data := mem.BufferSlice{mem.SliceBuffer(wire)}
		got := tt.m.ProtoReflect().New().Interface()
		allocs := testing.AllocsPerRun(100, func() {
			if err := (Codec{}).Unmarshal(data, got); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > tt.want {
			t.Errorf("%v: %v allocations, want at most %v", tt.m, allocs, tt.want)
		}
	}
}

// encodedFrames are frames relayd and hostagent send, with empty and
// extreme values, for the encoder's tests.
func encodedFrames() []proto.Message {
	withUnknown := respData([]byte("abc"))
	withUnknown.GetData().ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 1))
	hello := func(h *relayv1.Hello) proto.Message {
		return &relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: h}}
	}
	return append([]proto.Message{
		reqData(nil), reqData([]byte{}), reqData([]byte("x")),
		reqData(pattern(100)), reqData(pattern(32*1024 - 256)), reqData(pattern(BufferSize + 1)),
		respData(nil), respData(pattern(1000)), respData(pattern(32*1024 - 256)),
		withUnknown,
		hello(&relayv1.Hello{}),
		hello(&relayv1.Hello{Service: "default", HostId: "web-1", AgentVersion: "hostagent/1.0", Weight: 3}),
		hello(&relayv1.Hello{Service: "s", Labels: map[string]string{"zone": "eu", "a": "", "": "empty key", "rack": "r7"}, Weight: 1<<32 - 1}),
		hello(&relayv1.Hello{Service: "default", HostId: "web-1", SequentialSessions: true}),
		hello(&relayv1.Hello{Service: "default", HostId: "web-1", AgentVersion: "v", SequentialSessions: true, AgentInstance: "9f86d081884c7d65"}),
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Drain{Drain: &relayv1.Drain{Reason: relayv1.DrainReason_DRAIN_REASON_ADMIN, Detail: "d"}}},
		&relayv1.AttachRequest{}, &relayv1.AttachResponse{},
		// A nil oneof wrapper is an unset field to proto.
		&relayv1.AttachRequest{Frame: (*relayv1.AttachRequest_Data)(nil)},
		&relayv1.AttachRequest{Frame: (*relayv1.AttachRequest_Hello)(nil)},
		&relayv1.AttachRequest{Frame: (*relayv1.AttachRequest_CloseWrite)(nil)},
		&relayv1.AttachRequest{Frame: (*relayv1.AttachRequest_Close)(nil)},
		&relayv1.AttachResponse{Frame: (*relayv1.AttachResponse_Welcome)(nil)},
		&relayv1.AttachResponse{Frame: (*relayv1.AttachResponse_Open)(nil)},
		&relayv1.AttachResponse{Frame: (*relayv1.AttachResponse_Data)(nil)},
		&relayv1.AttachResponse{Frame: (*relayv1.AttachResponse_CloseWrite)(nil)},
		&relayv1.AttachResponse{Frame: (*relayv1.AttachResponse_Close)(nil)},
		&relayv1.AttachResponse{Frame: (*relayv1.AttachResponse_SessionEnd)(nil)},
	}, controlFrames()...)
}

// Every frame is encoded into exactly the bytes of proto.Marshal (with
// Deterministic, for Hello's labels), and decodes back to an equal frame.
func TestMarshalMatchesProto(t *testing.T) {
	t.Parallel()
	for _, m := range encodedFrames() {
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Codec{}.Marshal(m)
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		if !bytes.Equal(got.Materialize(), want) {
			t.Errorf("%v:\n encoded % x\n proto   % x", m, got.Materialize(), want)
		}
		got.Free()
	}
}

// The frames of a session skip proto's reflection: each is encoded by
// hand, in an allocation or two.
func TestSessionFramesEncodedByHand(t *testing.T) {
	for _, m := range encodedFrames() {
		// By hand: every frame set, but Drain and a frame with unknown fields.
		r := m.ProtoReflect()
		fd := r.WhichOneof(r.Descriptor().Oneofs().ByName("frame"))
		want := fd != nil && fd.Name() != "drain" && len(r.Get(fd).Message().GetUnknown()) == 0
		var got bool
		switch m := m.(type) {
		case *relayv1.AttachRequest:
			_, got = encodeRequest(m)
		case *relayv1.AttachResponse:
			_, got = encodeResponse(m)
		}
		if got != want {
			t.Errorf("%v: encoded by hand %v, want %v", m, got, want)
		}
	}
	open := controlFrames()[7].(*relayv1.AttachResponse)
	if open.GetOpen() == nil {
		t.Fatal("controlFrames()[7] is not an Open frame")
	}
	if n := testing.AllocsPerRun(100, func() { b, _ := encodeResponse(open); b.Free() }); n > 3 {
		t.Errorf("encoding Open: %v allocations, want at most 3", n)
	}
	data := respData(pattern(32*1024 - 256))
	if n := testing.AllocsPerRun(100, func() { b, _ := encodeResponse(data); b.Free() }); n > 2 {
		t.Errorf("encoding a 32 KiB Data frame: %v allocations, want at most 2 (its buffer is pooled)", n)
	}
}

// A string proto refuses (not UTF-8) is refused the same way: the frame
// goes to proto, which returns its error, as before hand encoding.
func TestMarshalInvalidUTF8LikeProto(t *testing.T) {
	t.Parallel()
	bad := "\xff"
	for _, m := range []proto.Message{
		&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{HostId: bad}}},
		&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{Labels: map[string]string{"k": bad}}}},
		&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Close{Close: &relayv1.Close{Detail: bad}}},
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{SlotId: bad}}},
		&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Open{Open: &relayv1.Open{ClientAddr: bad}}},
	} {
		if _, err := proto.Marshal(m); err == nil {
			t.Fatalf("%v: proto encodes it", m)
		}
		if _, err := (Codec{}).Marshal(m); err == nil {
			t.Errorf("%v: encoded, but proto refuses it", m)
		}
	}
}

// FuzzMarshal: frames built from any values encode into proto's bytes.
func FuzzMarshal(f *testing.F) {
	f.Add("c42", "127.0.0.1:50123", int64(1764136800), int32(123456789), uint32(32512), int32(2), []byte("payload"))
	f.Add("", "", int64(-1), int32(-1), uint32(0), int32(-7), []byte{})
	f.Fuzz(func(t *testing.T, s1, s2 string, secs int64, nanos int32, n uint32, reason int32, payload []byte) {
		for _, m := range []proto.Message{
			&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Open{Open: &relayv1.Open{SessionId: s1, ClientAddr: s2, ListenerAddr: s1, Service: s2, OpenedAt: &timestamppb.Timestamp{Seconds: secs, Nanos: nanos}}}},
			&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{RelayId: s1, SlotId: s2, MaxDataBytes: n}}},
			&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Close{Close: &relayv1.Close{Reason: relayv1.CloseReason(reason), Detail: s1}}},
			&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Close{Close: &relayv1.Close{Reason: relayv1.CloseReason(reason), Detail: s2}}},
			&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{Service: s1, HostId: s2, Labels: map[string]string{s1: s2, s2: s1}, AgentVersion: s1, Weight: n}}},
			reqData(payload), respData(payload),
		} {
			want, wantErr := proto.MarshalOptions{Deterministic: true}.Marshal(m)
			got, gotErr := Codec{}.Marshal(m)
			if (wantErr == nil) != (gotErr == nil) {
				t.Fatalf("%v: proto error %v, codec error %v", m, wantErr, gotErr)
			}
			if wantErr == nil && !bytes.Equal(got.Materialize(), want) {
				t.Fatalf("%v:\n encoded % x\n proto   % x", m, got.Materialize(), want)
			}
		}
	})
}

// BenchmarkMarshal compares the hand encoding with grpc-go's proto codec
// for the frames of a session.
func BenchmarkMarshal(b *testing.B) {
	frames := map[string]proto.Message{
		"Open":      controlFrames()[7],
		"Hello":     &relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{Service: "default", HostId: "web-1", AgentVersion: "hostagent/1.0", Labels: map[string]string{"zone": "eu"}}}},
		"Data32KiB": respData(pattern(32*1024 - 256)),
	}
	for _, name := range []string{"Open", "Hello", "Data32KiB"} {
		m := frames[name]
		for _, codec := range []struct {
			name string
			c    interface {
				Marshal(any) (mem.BufferSlice, error)
			}
		}{{"hand", Codec{}}, {"proto", base()}} {
			b.Run(name+"/"+codec.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					d, err := codec.c.Marshal(m)
					if err != nil {
						b.Fatal(err)
					}
					d.Free()
				}
			})
		}
	}
}

// TestHelloEveryFieldSurvives: a Hello with every field of its descriptor
// set (bar the two that a first Hello cannot carry with the others) comes
// back whole. The hand encoder dropped a field it did not know
// (agent_instance), and the relay never saw it.
func TestHelloEveryFieldSurvives(t *testing.T) {
	t.Parallel()
	h := &relayv1.Hello{}
	r := h.ProtoReflect()
	fields := r.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.Name() == "slot_credits" || fd.Name() == "claim_id":
			continue // proto encodes those Hellos; TestMarshalMatchesProto covers them
		case fd.IsMap():
			r.Mutable(fd).Map().Set(protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfString("v"))
		case fd.Kind() == protoreflect.StringKind:
			r.Set(fd, protoreflect.ValueOfString("x-"+string(fd.Name())))
		case fd.Kind() == protoreflect.BoolKind:
			r.Set(fd, protoreflect.ValueOfBool(true))
		case fd.Kind() == protoreflect.Uint32Kind:
			r.Set(fd, protoreflect.ValueOfUint32(7))
		case fd.Kind() == protoreflect.MessageKind && fd.Message().FullName() == "google.protobuf.Duration":
			r.Set(fd, protoreflect.ValueOfMessage(durationpb.New(1500*time.Millisecond).ProtoReflect()))
		default:
			t.Fatalf("Hello field %s of kind %v: teach this test to set it", fd.Name(), fd.Kind())
		}
	}
	m := &relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: h}}
	enc, err := Codec{}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back relayv1.AttachRequest
	if err := proto.Unmarshal(enc.Materialize(), &back); err != nil {
		t.Fatal(err)
	}
	enc.Free()
	if !proto.Equal(&back, m) {
		t.Errorf("Hello after encoding:\n%v\nwant\n%v", &back, m)
	}
}
