package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/relayproject/relay/internal/tlsconf/tlstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve accepts TLS connections with cfg and answers each with one byte
// after the handshake; it returns the address.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { lis.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					c.Write([]byte{1})
				}
			}()
		}
	}()
	return lis.Addr().String()
}

// dial handshakes and returns the server certificate's common name.
func dial(addr string, cfg *tls.Config) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// With TLS 1.3 a refused client certificate shows on the first read.
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return "", err
	}
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func TestServerAndClient(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "test")
	cert, key := ca.Issue(t, dir, "relay", "127.0.0.1", "relay.example")
	acert, akey := ca.Issue(t, dir, "agent")

	srv, err := NewSource(Files{CertFile: cert, KeyFile: key, CAFile: ca.File}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv.ServerConfig())

	agent, err := NewSource(Files{CertFile: acert, KeyFile: akey, CAFile: ca.File}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cn, err := dial(addr, agent.ClientConfig("")); err != nil || cn != "relay" {
		t.Fatalf("mTLS: %q, %v", cn, err)
	}
	if cn, err := dial(addr, agent.ClientConfig("relay.example")); err != nil || cn != "relay" {
		t.Fatalf("with a server name: %q, %v", cn, err)
	}
	if _, err := dial(addr, agent.ClientConfig("other.example")); err == nil {
		t.Error("a wrong server name was accepted")
	}
	noCert, err := NewSource(Files{CAFile: ca.File}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(addr, noCert.ClientConfig("")); err == nil {
		t.Error("a client without a certificate got through mTLS")
	}
	other := tlstest.NewCA(t, dir, "other")
	strangerCert, strangerKey := other.Issue(t, dir, "stranger")
	stranger, _ := NewSource(Files{CertFile: strangerCert, KeyFile: strangerKey, CAFile: ca.File}, nil)
	if _, err := dial(addr, stranger.ClientConfig("")); err == nil {
		t.Error("a client certificate from another CA got through mTLS")
	}
	wrongCA, _ := NewSource(Files{CAFile: other.File}, nil)
	if _, err := dial(addr, wrongCA.ClientConfig("")); err == nil {
		t.Error("the agent accepted a relay certificate its CA did not sign")
	}
}

func TestReloadOnChange(t *testing.T) {
	old := checkInterval
	checkInterval = 0 // every handshake looks at the files
	t.Cleanup(func() { checkInterval = old })

	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "test")
	cert, key := ca.Issue(t, dir, "relay", "127.0.0.1")
	var mu sync.Mutex
	var reloads []string
	srv, err := NewSource(Files{CertFile: cert, KeyFile: key}, func(err error, leaf *x509.Certificate) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			reloads = append(reloads, "error")
		} else {
			reloads = append(reloads, leaf.Subject.CommonName)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv.ServerConfig())
	agent, _ := NewSource(Files{CAFile: ca.File}, nil)
	// A TLS client that stays connected across the renewal.
	held, err := tls.Dial("tcp", addr, agent.ClientConfig(""))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := held.Handshake(); err != nil {
		t.Fatal(err)
	}

	// Renewal under the same file names (written with a rename, as
	// certificate tools do): the next handshake uses the new certificate.
	renewedCert, renewedKey := ca.Issue(t, t.TempDir(), "relay-renewed", "127.0.0.1")
	for _, f := range [][2]string{{renewedCert, cert}, {renewedKey, key}} {
		if err := os.Rename(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if cn, err := dial(addr, agent.ClientConfig("")); err != nil || cn != "relay-renewed" {
		t.Fatalf("after renewal: %q, %v; want relay-renewed", cn, err)
	}
	// The connection made before the renewal still works.
	held.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(held, make([]byte, 1)); err != nil {
		t.Errorf("a connection from before the renewal: %v", err)
	}

	// A half-written renewal: the old certificate stays in use, the error
	// is reported, and the next good write is picked up.
	if err := os.WriteFile(key, []byte("-----BEGIN EC PRIVATE KEY-----\ngarbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cn, err := dial(addr, agent.ClientConfig("")); err != nil || cn != "relay-renewed" {
		t.Fatalf("after a broken key: %q, %v; want the previous certificate", cn, err)
	}
	if err := srv.Reload(); err == nil || !strings.Contains(err.Error(), "load certificate") {
		t.Errorf("Reload with a broken key = %v", err)
	}
	third, thirdKey := ca.Issue(t, t.TempDir(), "relay-third", "127.0.0.1")
	os.Rename(third, cert)
	os.Rename(thirdKey, key)
	if cn, err := dial(addr, agent.ClientConfig("")); err != nil || cn != "relay-third" {
		t.Fatalf("after fixing the key: %q, %v", cn, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(reloads, ","); got != "relay-renewed,error,error,relay-third" {
		t.Errorf("reloads reported: %s", got)
	}
}

func TestNewSourceErrors(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "test")
	cert, key := ca.Issue(t, dir, "relay")
	junk := dir + "/junk.pem"
	os.WriteFile(junk, []byte("not pem"), 0o600)
	for _, f := range []Files{
		{CertFile: cert},
		{KeyFile: key},
		{CertFile: cert, KeyFile: dir + "/missing.pem"},
		{CertFile: cert, KeyFile: junk},
		{CAFile: junk},
		{CAFile: dir + "/missing.pem"},
	} {
		if _, err := NewSource(f, nil); err == nil {
			t.Errorf("NewSource(%+v) succeeded", f)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"localhost:8000": true, "127.0.0.1:8000": true, "127.9.9.9:1": true, "[::1]:8000": true,
		"LOCALHOST:1": true, "relay.localhost:8000": false,
		"relay.example:8000": false, "10.0.0.1:8000": false, ":8000": false, "0.0.0.0:8000": false, "[::]:8000": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestClientConfigWhileReloading: the agent builds a client configuration
// for each new relay address (a DNS name's addresses change at run time)
// while handshakes of other links reload its client certificate; the two
// must not race (go test -race).
func TestClientConfigWhileReloading(t *testing.T) {
	old := checkInterval
	checkInterval = 0 // every handshake looks at the files
	t.Cleanup(func() { checkInterval = old })

	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "test")
	cert, key := ca.Issue(t, dir, "agent")
	src, err := NewSource(Files{CertFile: cert, KeyFile: key, CAFile: ca.File}, nil)
	if err != nil {
		t.Fatal(err)
	}
	getCert := src.ClientConfig("").GetClientCertificate
	var wg sync.WaitGroup
	wg.Go(func() {
		mod := time.Now()
		for range 50 {
			mod = mod.Add(time.Second) // the file changed: the next handshake reloads
			if err := os.Chtimes(cert, mod, mod); err != nil {
				t.Error(err)
				return
			}
			if _, err := getCert(nil); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 50 {
		if c := src.ClientConfig(""); c.RootCAs == nil {
			t.Fatal("no CA pool in the client configuration")
		}
	}
	wg.Wait()
}
