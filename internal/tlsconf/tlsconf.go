// Package tlsconf builds the TLS configurations of relayd and hostagent
// from PEM files, and picks up new files without a restart.
//
// Certificates are checked for change at handshake time (at most once a
// second: a stat of each file) and on an explicit Reload (SIGHUP), so a
// renewed certificate is used from the next connection on, established
// connections and their sessions are untouched, and no goroutine watches
// the files. A half-written renewal (a certificate without its key yet)
// fails to load, is reported, and the previous certificate stays in use.
package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// checkInterval bounds how often a handshake stats the files: a flood of
// handshakes costs no more than one stat per file per interval.
var checkInterval = time.Second

// Files are the PEM files of one side. CertFile and KeyFile go together;
// CAFile is the CA bundle that verifies the peer (for relayd: client
// certificates, which makes it mTLS; for hostagent: the relay's
// certificate, the system roots when empty).
type Files struct {
	CertFile, KeyFile, CAFile string
}

type loaded struct {
	cert *tls.Certificate
	pool *x509.CertPool
	// stamps of the files the above were loaded from
	stamps []stamp
}

type stamp struct {
	size int64
	mod  time.Time
}

// Source holds the current certificate and CA pool, reloading them when
// their files change.
type Source struct {
	files Files
	// OnReload, if set, is told of every reload attempt's outcome.
	onReload func(err error, cert *x509.Certificate)

	mu        sync.Mutex
	cur       *loaded
	lastCheck time.Time

	// loaded is told of each load after the first (WatchExpiry).
	loaded chan struct{}
}

// NewSource loads files; an error here is a startup error.
func NewSource(files Files, onReload func(err error, leaf *x509.Certificate)) (*Source, error) {
	if (files.CertFile == "") != (files.KeyFile == "") {
		return nil, errors.New("a certificate and its key go together: give both or neither")
	}
	s := &Source{files: files, onReload: onReload, loaded: make(chan struct{}, 1)}
	l, err := s.load()
	if err != nil {
		return nil, err
	}
	s.cur = l
	s.lastCheck = time.Now()
	return s, nil
}

func (s *Source) paths() []string {
	var p []string
	for _, f := range []string{s.files.CertFile, s.files.KeyFile, s.files.CAFile} {
		if f != "" {
			p = append(p, f)
		}
	}
	return p
}

func (s *Source) stamps() ([]stamp, error) {
	var st []stamp
	for _, p := range s.paths() {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		st = append(st, stamp{fi.Size(), fi.ModTime()})
	}
	return st, nil
}

func (s *Source) load() (*loaded, error) {
	st, err := s.stamps()
	if err != nil {
		return nil, err
	}
	l := &loaded{stamps: st}
	if s.files.CertFile != "" {
		c, err := tls.LoadX509KeyPair(s.files.CertFile, s.files.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load certificate %s and key %s: %w", s.files.CertFile, s.files.KeyFile, err)
		}
		l.cert = &c
	}
	if s.files.CAFile != "" {
		pem, err := os.ReadFile(s.files.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate in the file", s.files.CAFile)
		}
		l.pool = pool
	}
	return l, nil
}

// Leaf returns the certificate in use, parsed; nil without one.
func (s *Source) Leaf() *x509.Certificate {
	if l := s.current(); l.cert != nil {
		return l.cert.Leaf
	}
	return nil
}

// Reload reads the files again now (SIGHUP). On error the previous
// certificate stays in use.
func (s *Source) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked()
}

func (s *Source) reloadLocked() error {
	s.lastCheck = time.Now()
	l, err := s.load()
	if err == nil {
		s.cur = l
		select {
		case s.loaded <- struct{}{}:
		default:
		}
	}
	if s.onReload != nil {
		var leaf *x509.Certificate
		if l != nil && l.cert != nil {
			leaf = l.cert.Leaf
		}
		s.onReload(err, leaf)
	}
	return err
}

// current returns what to use for a handshake, reloading first if a file
// changed since the last load.
func (s *Source) current() *loaded {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.lastCheck) >= checkInterval {
		s.lastCheck = time.Now()
		if st, err := s.stamps(); err == nil && !sameStamps(st, s.cur.stamps) {
			s.reloadLocked() //nolint:errcheck // reported through onReload; the old one stays
			// A failed load keeps the old stamps, so the next check
			// retries (the renewal may have been half-written).
		}
	}
	return s.cur
}

func sameStamps(a, b []stamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].size != b[i].size || !a[i].mod.Equal(b[i].mod) {
			return false
		}
	}
	return true
}

// ServerConfig returns relayd's TLS configuration: the current
// certificate, and, when a CA file was given, client certificates
// required and verified against it (mTLS).
func (s *Source) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			l := s.current()
			c := &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*l.cert},
				NextProtos:   []string{"h2"},
			}
			if l.pool != nil {
				c.ClientAuth = tls.RequireAndVerifyClientCert
				c.ClientCAs = l.pool
			}
			return c, nil
		},
	}
}

// ClientConfig returns hostagent's TLS configuration: the relay verified
// against the CA file (or the system roots), under serverName when given,
// and the client certificate, if any, for mTLS.
func (s *Source) ClientConfig(serverName string) *tls.Config {
	// Under mu: the agent makes a configuration for each new relay address
	// while handshakes of its other links may reload s.cur.
	s.mu.Lock()
	pool := s.cur.pool
	s.mu.Unlock()
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: serverName,
		RootCAs:    pool, // fixed for this configuration: the CA bundle as loaded now
	}
	if s.files.CertFile != "" {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.current().cert, nil
		}
	}
	return c
}

// IsLoopback reports whether a relay address (HOST:PORT) names this
// machine: localhost or a loopback IP. A DNS name is not resolved here:
// what it points to can change.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	// Not *.localhost: Go's resolver does not pin those to loopback, and
	// DNS or /etc/hosts could send a token in plaintext anywhere.
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ExpiryWarning is how long before its expiry WatchExpiry reports a
// certificate as expiring soon, at most: a third of its life for
// short-lived ones (an ACME client renews with a third left, so by then
// the renewal has failed).
const ExpiryWarning = 7 * 24 * time.Hour

// WatchExpiry calls report once when the certificate in use comes within
// ExpiryWarning (or a third of its life) of its expiry, and once more
// when it has expired; a certificate loaded later is watched from then
// on. It returns when ctx is done, at once without a certificate. One
// WatchExpiry per Source.
func (s *Source) WatchExpiry(ctx context.Context, report func(leaf *x509.Certificate, expired bool)) {
	var warned, expired *x509.Certificate
	for {
		leaf := s.Leaf()
		if leaf == nil {
			return
		}
		soon := min(ExpiryWarning, leaf.NotAfter.Sub(leaf.NotBefore)/3)
		now := time.Now()
		var next time.Time
		switch {
		case !now.Before(leaf.NotAfter):
			if expired != leaf {
				report(leaf, true)
				expired = leaf
			}
		case !now.Before(leaf.NotAfter.Add(-soon)):
			if warned != leaf {
				report(leaf, false)
				warned = leaf
			}
			next = leaf.NotAfter
		default:
			next = leaf.NotAfter.Add(-soon)
		}
		// Looked at again at least hourly: the wall clock may jump (a
		// suspended VM, a clock set right by NTP), and a timer does not.
		wait := time.Hour
		if !next.IsZero() {
			wait = min(wait, time.Until(next))
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.loaded:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}
