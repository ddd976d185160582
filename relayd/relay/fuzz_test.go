package relay_test

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/relayproject/relay/clientbridge"
	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/framecodec"
	"github.com/relayproject/relay/relayd/relay"
)

// Fuzz input: pairs of bytes (op, arg), at most fuzzMaxOps of them.
const (
	opHello      = iota // Hello; arg odd: service "" (means default); arg&2: sequential sessions; arg&4: a credit stream of arg>>3 + 1 credits
	opData              // Data of arg bytes (fuzzMaxData is below 255)
	opCloseWrite        // CloseWrite
	opClose             // Close{reason: arg % 8}
	opEmpty             // a frame with no field set
	opClient            // a client event: see clientOp
	opCloseSend         // the host half-closes the RPC; nothing more is sent
	opNext              // end the session cleanly (both sides close), await SessionEnd, offer the slot again
	opCredit            // Credit{slots: arg % 8}
	opCount
)

const (
	fuzzMaxOps  = 64
	fuzzMaxData = 100
)

// FuzzAttachFrames feeds a host's frame sequence, interleaved with client
// events, to a relay and checks that the stream always ends, with one of the
// documented statuses, and that nothing of the session is left running.
func FuzzAttachFrames(f *testing.F) {
	for _, seed := range [][]byte{
		{},
		{opHello, 0},
		{opHello, 0, opClient, 0, opData, 5, opCloseWrite, 0, opClient, 2},               // a clean session
		{opHello, 1, opClient, 0, opClient, 1, opData, 50, opClient, 2, opCloseWrite, 0}, // client first
		{opHello, 0, opClient, 0, opData, fuzzMaxData + 1},                               // oversized
		{opHello, 0, opClient, 0, opCloseWrite, 0, opData, 1},                            // data after CloseWrite
		{opHello, 0, opClient, 0, opCloseWrite, 0, opClose, 2},                           // close after CloseWrite
		{opHello, 0, opClient, 0, opClient, 3},                                           // client reset
		{opHello, 0, opClient, 0, opCloseSend, 0},                                        // half-closed RPC in a session
		{opHello, 0, opHello, 0},                                                         // second Hello
		{opData, 1},                                                                      // Data first
		{opEmpty, 0},                                                                     // empty first
		{opHello, 0, opData, 3},                                                          // Data before Open
		{opHello, 0, opClose, 0, opClient, 0},                                            // slot given up
		{opHello, 0, opCloseSend, 0},                                                     // slot given up by half-close
		{opHello, 0, opClient, 0, opEmpty, 0},                                            // empty in session
		{opHello, 0, opClient, 0, opClient, 2, opData, 9, opClose, 7, opData, 1, opCloseWrite, 0}, // frames after Close
		{opHello, 2, opClient, 0, opData, 5, opNext, 0, opClient, 1, opData, 3, opNext, 0},        // sequential sessions
		{opHello, 2, opClient, 0, opNext, 0, opData, 4},                                           // Data between sessions
		{opHello, 2, opClient, 0, opCloseWrite, 0, opHello, 2},                                    // Hello before SessionEnd
		{opHello, 0, opClient, 0, opNext, 0, opClient, 0},                                         // not sequential: the stream ends
		{opHello, 4, opClient, 0, opCredit, 2, opClient, 1},                                       // a credit stream: the client is offered, never claimed
		{opHello, 4 | 8<<3, opCredit, 7},                                                          // credits beyond MaxCredits
		{opHello, 4, opData, 1},                                                                   // Data on a credit stream
		{opHello, 0, opCredit, 1},                                                                 // Credit on a slot
		{opHello, 4, opClient, 0, opClose, 1},                                                     // credits given up with an offer pending
	} {
		f.Add(seed)
	}
	fz := newFuzzServer(f)
	// One stream first: the connection's goroutines, client and server
	// side, belong to the target, not to the first input's leak check.
	fz.run(f, []byte{opHello, 0, opClient, 0, opData, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		ignore := goleak.IgnoreCurrent()
		fz.run(t, in)
		if err := goleak.Find(ignore); err != nil {
			t.Fatalf("goroutines left after the stream ended: %v", err)
		}
	})
}

// fuzzServer is one gRPC server and client connection for the whole fuzz
// target; each input gets its own Bridge and Relay behind them, so nothing
// one input leaves can reach the next.
type fuzzServer struct {
	cur   atomic.Pointer[relay.Relay]
	host  relayv1.HostServiceClient
	ended chan error // the Attach handler's return, one input at a time
}

type switchHost struct {
	relayv1.UnimplementedHostServiceServer
	fz *fuzzServer
}

func (s switchHost) Attach(st relayv1.HostService_AttachServer) error {
	err := s.fz.cur.Load().Attach(st)
	s.fz.ended <- err
	return err
}

func newFuzzServer(tb testing.TB) *fuzzServer {
	fz := &fuzzServer{ended: make(chan error, 1)}
	srv := grpc.NewServer(grpc.WaitForHandlers(true), grpc.ForceServerCodecV2(framecodec.Codec{}))
	relayv1.RegisterHostServiceServer(srv, switchHost{fz: fz})
	bl := bufconn.Listen(1 << 20)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(bl) }()
	cc, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return bl.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	fz.host = relayv1.NewHostServiceClient(cc)
	tb.Cleanup(func() {
		cc.Close()
		srv.Stop()
		<-done
	})
	return fz
}

// allowedEnd are the statuses a host can cause with frames alone.
var allowedEnd = map[codes.Code]bool{codes.OK: true, codes.Aborted: true, codes.InvalidArgument: true, codes.FailedPrecondition: true, codes.ResourceExhausted: true}

func (fz *fuzzServer) run(t testing.TB, in []byte) {
	bridge := clientbridge.New(clientbridge.Config{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); bridge.Serve(lis, "default") }()
	// Offers are never claimed here; the claim timeout must not end a
	// credit stream while an input runs.
	r, err := relay.New(relay.Config{Bridge: bridge, MaxDataBytes: fuzzMaxData, MaxCredits: 8, ClaimTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	fz.cur.Store(r)

	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	stream, err := fz.host.Attach(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// One receiver drains the relay's frames, so flow control never stalls
	// it; it keeps the few the driver waits for (each answers an op).
	frames := make(chan *relayv1.AttachResponse, 4*fuzzMaxOps)
	var recvErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(frames)
		for {
			resp, err := stream.Recv()
			if err != nil {
				recvErr = err
				return
			}
			if resp.GetWelcome() == nil && resp.GetOpen() == nil && resp.GetSessionEnd() == nil && resp.GetOffer() == nil {
				continue
			}
			select {
			case frames <- resp:
			default: // not awaited: more than the ops could ask for
			}
		}
	}()
	var (
		sendOK     = true // the stream takes frames
		helloSent  bool   // a Hello went out (perhaps not first)
		welcomed   bool   // Welcome arrived
		streamDone bool   // the receiver saw the end
		client     net.Conn
		clientDone bool // the client was reset or is gone
	)
	// await waits for the next frame of the given kind, or the stream's end.
	await := func(want func(*relayv1.AttachResponse) bool) bool {
		for resp := range frames {
			if want(resp) {
				return true
			}
		}
		streamDone = true
		return false
	}
	send := func(req *relayv1.AttachRequest) {
		if sendOK && stream.Send(req) != nil {
			sendOK = false
		}
	}
	if len(in) > 2*fuzzMaxOps {
		in = in[:2*fuzzMaxOps]
	}
	for i := 0; i+1 < len(in); i += 2 {
		op, arg := in[i]%opCount, in[i+1]
		switch op {
		case opHello:
			svc := "default"
			if arg%2 == 1 {
				svc = ""
			}
			helloSent = true
			credits := uint32(0)
			if arg&4 != 0 {
				credits = uint32(arg>>3) + 1
			}
			send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{Service: svc, HostId: "fuzz", SequentialSessions: arg&2 != 0, SlotCredits: credits}}})
		case opCredit:
			send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Credit{Credit: &relayv1.Credit{Slots: uint32(arg % 8)}}})
		case opData:
			send(dataFrame(make([]byte, arg)))
		case opCloseWrite:
			send(closeWriteFrame())
		case opClose:
			send(closeFrame(relayv1.CloseReason(arg % 8)))
		case opEmpty:
			send(&relayv1.AttachRequest{})
		case opCloseSend:
			if sendOK {
				stream.CloseSend()
				sendOK = false
			}
		case opNext:
			if client == nil || streamDone {
				break
			}
			if !clientDone {
				client.(*net.TCPConn).CloseWrite()
			}
			send(closeWriteFrame())
			// SessionEnd, or the stream's end (a session that did not end
			// cleanly, a stream without sequential sessions).
			if !await(func(r *relayv1.AttachResponse) bool { return r.GetSessionEnd() != nil }) {
				break
			}
			client.Close()
			client, clientDone, welcomed = nil, false, false
			send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{}}})
		case opClient:
			switch {
			case client == nil && helloSent && !streamDone:
				// Connect once the slot is idle (Welcome), and wait for Open.
				if !welcomed && !await(func(r *relayv1.AttachResponse) bool { return r.GetWelcome() != nil }) {
					break
				}
				welcomed = true
				c, err := net.Dial("tcp", lis.Addr().String())
				if err != nil {
					// Reset already: the relay sent Open as the host's last
					// frames (a Close, say) were on their way.
					t.Logf("dial: %v", err)
					break
				}
				client = c
				// Open, or on a credit stream an Offer: the client then
				// waits, untouched, until the stream ends and hands it back.
				await(func(r *relayv1.AttachResponse) bool { return r.GetOpen() != nil || r.GetOffer() != nil })
			case client != nil && !clientDone:
				switch arg % 4 {
				case 0, 1:
					client.Write(make([]byte, arg))
				case 2:
					client.(*net.TCPConn).CloseWrite()
				case 3:
					client.(*net.TCPConn).SetLinger(0)
					client.Close()
					clientDone = true
				}
			}
		}
	}
	// End the host's side and the client's, then the stream must end by itself.
	if sendOK {
		stream.CloseSend()
	}
	if client != nil && !clientDone {
		client.(*net.TCPConn).SetLinger(0)
		client.Close()
	}
	for range frames {
	}
	wg.Wait()
	code := status.Code(recvErr)
	if recvErr == io.EOF {
		code = codes.OK
	}
	if !allowedEnd[code] {
		t.Errorf("host saw the stream end with %v (%v), want one of OK, Aborted, InvalidArgument, FailedPrecondition, ResourceExhausted", code, recvErr)
	}
	if hErr := <-fz.ended; !allowedEnd[status.Code(hErr)] {
		t.Errorf("Attach returned %v", hErr)
	}
	if n := r.ActiveSessions(); n != 0 {
		t.Errorf("%d sessions open after the stream ended", n)
	}
	r.Shutdown()
	bridge.Close()
	<-served
	r.Close()
	if client != nil && !clientDone {
		client.Close()
	}
}
