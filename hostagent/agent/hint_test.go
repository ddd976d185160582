package agent

import (
	"strings"
	"testing"
)

// The hint for a relay that ends connections as they open names the TLS
// flags, and stays off a connection that was up and broke.
func TestUnreachableHint(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  string
		want string // in the hint; "" for no hint
	}{
		{`rpc error: code = Unavailable desc = connection error: desc = "error reading server preface: EOF"`, "--tls-ca"},
		{`rpc error: code = Unavailable desc = write tcp 127.0.0.1:1->127.0.0.1:2: write: broken pipe`, "--tls-cert"},
		// What a relay with --tls-client-ca usually answers (TLS 1.3): the
		// alert arrives where the server preface should.
		{`rpc error: code = Unavailable desc = connection error: desc = "error reading server preface: remote error: tls: certificate required"`, "--tls-cert"},
		{`rpc error: code = Unavailable desc = connection error: desc = "error reading server preface: remote error: tls: unknown certificate authority"`, "--tls-cert"},
		// A plaintext relay, and a port that is not relayd's gRPC port.
		{`rpc error: code = Unavailable desc = connection error: desc = "transport: authentication handshake failed: tls: first record does not look like a TLS handshake"`, "relayd runs without --tls-cert"},
		{`rpc error: code = Unavailable desc = connection error: desc = "error reading server preface: http2: failed reading the frame payload: http2: frame too large, note that the frame header looked like an HTTP/1.1 header"`, "not in gRPC"},
		{`rpc error: code = Unavailable desc = connection error: desc = "error reading server preface: http2: frame too large"`, "--grpc-addr"},
		// An unknown CA, and a client port (it accepts and says nothing).
		{`rpc error: code = Unavailable desc = connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`, "give --tls-ca"},
		// An expired certificate (or a wrong clock), and one for other names:
		// --tls-ca is given, and right.
		{`rpc error: code = Unavailable desc = connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time 2026-11-27T15:30:00Z is after 2026-11-26T15:30:00Z"`, "renew relayd's --tls-cert"},
		{`rpc error: code = Unavailable desc = connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time 2026-11-27T15:30:00Z is before 2026-11-28T15:30:00Z"`, "clock"},
		{`rpc error: code = Unavailable desc = connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate is valid for relay.example.com, not 127.0.0.1"`, "--tls-server-name"},
		{`rpc error: code = Unavailable desc = connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: cannot validate certificate for 10.0.0.5 because it doesn't contain any IP SANs"`, "names no IP address"},
		{`rpc error: code = Unavailable desc = connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate is not valid for any names, but wanted to match relay.example.com"`, "--tls-server-name"},
		// The relay refused this agent's expired client certificate.
		{`rpc error: code = Unavailable desc = connection error: desc = "error reading server preface: remote error: tls: expired certificate"`, "this agent's --tls-cert has expired"},
		{`rpc error: code = Unavailable desc = connection error: desc = "error reading server preface: read tcp 127.0.0.1:1->127.0.0.1:2: use of closed network connection"`, "client port"},
		{`rpc error: code = Unavailable desc = error reading from server: read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer`, ""},
		{`rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:2: connect: connection refused"`, ""},
	} {
		got := unreachableHint(tt.err)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("unreachableHint(%s) = %q, want one with %q", tt.err, got, tt.want)
		}
	}
}
