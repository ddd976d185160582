package e2e

import (
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/relayproject/relay/internal/attachconn"
)

// TestAttachLinkFixedWindows: both ends of the Attach link announce fixed
// HTTP/2 windows (attachconn.StreamWindow per stream, ConnWindow per
// connection) instead of grpc-go's default 64 KiB that its estimator grows
// to as much as 16 MiB: what one stalled session can make the other side
// buffer is StreamWindow. Read off the wire as each binary opens the
// connection: relayd's server preface, hostagent's client preface.
func TestAttachLinkFixedWindows(t *testing.T) {
	t.Parallel()
	t.Run("relayd", func(t *testing.T) {
		t.Parallel()
		r := startRelay(t)
		c := dial(t, r.grpcAddr)
		c.SetDeadline(time.Now().Add(ioTimeout))
		if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(c, c)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		checkWindows(t, fr, "relayd")
	})
	t.Run("hostagent", func(t *testing.T) {
		t.Parallel()
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer lis.Close()
		startAgentNoWait(t, lis.Addr().String(), "--idle", "1", "echo")
		lis.(*net.TCPListener).SetDeadline(time.Now().Add(startTimeout))
		c, err := lis.Accept()
		if err != nil {
			t.Fatalf("hostagent did not connect: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(ioTimeout))
		preface := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
			t.Fatalf("client preface: %q, %v", preface, err)
		}
		checkWindows(t, http2.NewFramer(c, c), "hostagent")
	})
}

// checkWindows reads a peer's first frames: SETTINGS with the stream
// window, then the WINDOW_UPDATE that raises the connection's.
func checkWindows(t *testing.T, fr *http2.Framer, who string) {
	t.Helper()
	var streamWindow, connIncrement uint32
	sawSettings := false
	for !sawSettings || connIncrement == 0 {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("%s: reading its preface: %v (settings seen: %v)", who, err, sawSettings)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			sawSettings = true
			streamWindow = 65535 // HTTP/2's default, when not announced
			if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
				streamWindow = v
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				connIncrement = f.Increment
			}
		}
		if sawSettings && streamWindow != attachconn.StreamWindow {
			break // no need to wait for the connection window
		}
	}
	if streamWindow != attachconn.StreamWindow {
		t.Errorf("%s announces a stream window of %d bytes, want %d", who, streamWindow, attachconn.StreamWindow)
	}
	if got, want := 65535+connIncrement, uint32(attachconn.ConnWindow); connIncrement != 0 && got != want {
		t.Errorf("%s raises its connection window to %d bytes, want %d", who, got, want)
	}
}
