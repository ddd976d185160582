package suite

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// TestBrokenHostsFail proves the suite can fail: the test binary, run as a
// host with a deliberate fault, must fail the cases that fault breaks.
func TestBrokenHostsFail(t *testing.T) {
	tests := []struct {
		mode string
		// cases to run; mustFail are the ones the fault must fail.
		cases, mustFail []string
		// reason is a part of the first mustFail case's reason.
		reason string
	}{
		{"corrupt", []string{"attach_welcome", "echo_large"}, []string{"echo_large"}, "corrupted"},
		{"drop", []string{"attach_welcome", "echo_large"}, []string{"echo_large"}, "byte"},
		{"reorder", []string{"attach_welcome", "echo_large"}, []string{"echo_large"}, "reordered"},
		{"ignore_half_close", []string{"attach_welcome", "echo_small", "client_half_close"}, []string{"echo_small", "client_half_close"}, "half-close"},
		{"close_on_half_close", []string{"attach_welcome", "client_half_close"}, []string{"client_half_close"}, "reset"},
		{"no_replenish", []string{"attach_welcome", "replenish_burst"}, []string{"replenish_burst"}, "replenished"},
		{"no_conventions", []string{"attach_welcome", "host_half_close", "host_abort"}, []string{"host_half_close", "host_abort"}, "convention"},
		{"ignore_max_data", []string{"attach_welcome", "max_data_bytes"}, []string{"max_data_bytes"}, "ResourceExhausted"},
		{"no_exit", []string{"attach_welcome", "client_reset"}, []string{ExitCase}, "did not exit"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			report := runSuite(t, Config{
				Command:     []string{os.Args[0]},
				Env:         []string{brokenHostEnv + "=" + tt.mode},
				Cases:       tt.cases,
				CaseTimeout: 6 * time.Second,
				StopTimeout: 2 * time.Second,
			})
			if report.Passed() {
				t.Fatalf("host %q passed the suite", tt.mode)
			}
			if res, ok := report.Result("attach_welcome"); !ok || !res.Pass {
				t.Errorf("attach_welcome: want a pass (the fault is elsewhere), got %+v", res)
			}
			for i, name := range tt.mustFail {
				res, ok := report.Result(name)
				if !ok || res.Pass {
					t.Errorf("%s: want a failure, got %+v", name, res)
					continue
				}
				if i == 0 && !strings.Contains(res.Reason, tt.reason) {
					t.Errorf("%s: reason %q does not mention %q", name, res.Reason, tt.reason)
				}
			}
		})
	}
}

// runBrokenHost is a minimal host speaking relay.v1.HostService directly
// (the same steps as docs/writing-a-host.md), with one fault:
//
//	corrupt              flips a bit of the echo at byte 100000
//	drop                 leaves out byte 100000 of the echo
//	reorder              swaps bytes 100000 and 100001 of the echo
//	ignore_half_close    never sends CloseWrite
//	close_on_half_close  aborts the session on the client's CloseWrite
//	no_replenish         serves one session per initial slot, opens no more
//	no_conventions       a plain echo, ignoring the conformance lines
//	ignore_max_data      answers CONFORMANCE BULK with one oversized Data frame
//	no_exit              keeps running after SIGTERM, as a host that still
//	                     holds a session it never dropped does
//
// It stops on SIGTERM.
func runBrokenHost(mode, addr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	client := relayv1.NewHostServiceClient(cc)
	const pool = 4
	var wg sync.WaitGroup
	for range pool {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				err := brokenSlot(ctx, client, mode)
				if mode == "no_replenish" && err == nil {
					<-ctx.Done() // served its one session: the slot is never replaced
					return
				}
				if err != nil {
					select { // the relay is restarting: retry
					case <-time.After(50 * time.Millisecond):
					case <-ctx.Done():
					}
				}
			}
		}()
	}
	wg.Wait()
	if mode == "no_exit" {
		time.Sleep(time.Hour) // the suite kills it
	}
	return nil
}

// brokenSlot runs one Attach stream: Hello, Welcome, Open, then an echo with
// the mode's fault. It returns nil after a session.
func brokenSlot(ctx context.Context, client relayv1.HostServiceClient, mode string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Attach(ctx)
	if err != nil {
		return err
	}
	send := func(f *relayv1.AttachRequest) error { return stream.Send(f) }
	if err := send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{HostId: "broken-" + mode, AgentVersion: "conformance-test/" + mode}}}); err != nil {
		return err
	}
	resp, err := stream.Recv()
	if err != nil {
		return err
	}
	maxData := int(resp.GetWelcome().GetMaxDataBytes())
	if resp, err = stream.Recv(); err != nil {
		return err
	}
	if resp.GetOpen() == nil {
		return fmt.Errorf("want Open, got %v", resp)
	}
	data := func(p []byte) error {
		return send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Data{Data: &relayv1.Data{Payload: p}}})
	}
	var (
		seen []byte // the first bytes, for the conformance lines
		off  int    // client bytes received so far
	)
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return nil // aborted or ended: the session is over
		}
		switch f := resp.Frame.(type) {
		case *relayv1.AttachResponse_Data:
			p := append([]byte(nil), f.Data.GetPayload()...)
			start := off
			off += len(p)
			if len(seen) < 32 {
				seen = append(seen, p[:min(len(p), 32-len(seen))]...)
			}
			const at = 100000
			if start <= at && at < off {
				switch i := at - start; mode {
				case "corrupt":
					p[i] ^= 0x20
				case "drop":
					p = append(p[:i], p[i+1:]...)
				case "reorder":
					if i+1 < len(p) {
						p[i], p[i+1] = p[i+1], p[i]
					}
				}
			}
			if err := data(p); err != nil {
				return nil
			}
			if mode == "ignore_max_data" && string(seen) == CommandBulk && start == 0 {
				bulk := make([]byte, BulkSize)
				for i := range bulk {
					bulk[i] = byte(i % 251)
				}
				if err := data(bulk); err != nil || len(bulk) <= maxData {
					return nil
				}
			}
		case *relayv1.AttachResponse_CloseWrite:
			switch mode {
			case "ignore_half_close":
				continue
			case "close_on_half_close":
				send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Close{Close: &relayv1.Close{Reason: relayv1.CloseReason_CLOSE_REASON_HOST_ABORT}}})
				return nil
			}
			if err := send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_CloseWrite{CloseWrite: &relayv1.CloseWrite{}}}); err != nil {
				return nil
			}
		case *relayv1.AttachResponse_Close:
			return nil
		}
	}
}
