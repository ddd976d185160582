package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/relayproject/relay/internal/auth"
	"github.com/relayproject/relay/internal/cli"
	"github.com/relayproject/relay/internal/tlsconf"
)

// tokenEnv holds the host token when --token-file is not given.
const tokenEnv = "HOSTAGENT_TOKEN"

// securityOptions are the flags of the link to the relays.
type securityOptions struct {
	tlsCA, tlsCert, tlsKey, tlsServerName string
	insecure                              bool
	tokenFile                             string
}

func (s *securityOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&s.tlsCA, "tls-ca", "", "PEM `file` of CAs that sign the relay's certificate (default: the system's roots)")
	fs.StringVar(&s.tlsCert, "tls-cert", "", "PEM `file` with this agent's client certificate, for relays that require mTLS; re-read when it changes")
	fs.StringVar(&s.tlsKey, "tls-key", "", "PEM `file` with the private key of --tls-cert")
	fs.StringVar(&s.tlsServerName, "tls-server-name", "", "`name` the relay's certificate must carry (default: the host of --relay)")
	fs.BoolVar(&s.insecure, "insecure", false, "plaintext to every relay, even one not on loopback (without TLS flags, plaintext is used only for loopback relays)")
	fs.StringVar(&s.tokenFile, "token-file", "", "`file` holding the bearer token the relays check (default: $"+tokenEnv+")")
}

func (s *securityOptions) tlsWanted() bool {
	return s.tlsCA != "" || s.tlsCert != "" || s.tlsKey != "" || s.tlsServerName != ""
}

func (s *securityOptions) validate() error {
	if (s.tlsCert == "") != (s.tlsKey == "") {
		return cli.UsageError{Err: errors.New("--tls-cert and --tls-key go together: give both or neither")}
	}
	if s.insecure && s.tlsWanted() {
		return cli.UsageError{Err: errors.New("--insecure turns TLS off: it cannot go with --tls-ca, --tls-cert, --tls-key or --tls-server-name")}
	}
	return nil
}

// dialOptions returns the per-relay dial options: TLS when any TLS flag is
// given or the relay is not on loopback (unless --insecure), and the token
// on every call when one is configured; and reload, which re-reads the
// certificate files and --token-file (SIGHUP). A new token goes out on the
// next stream a slot opens; streams open already keep the one they opened
// with, as the relay checks a token only when a stream opens.
//
// watchCert says, until its ctx is done, when the client certificate
// (--tls-cert) is about to expire and when it has: relays that require one
// then refuse the agent, and say only "bad certificate".
func (s *securityOptions) dialOptions(log *slog.Logger) (dialFor func(relay string) []grpc.DialOption, reload func(), watchCert func(context.Context), err error) {
	var src *tlsconf.Source
	if !s.insecure {
		var err error
		src, err = tlsconf.NewSource(tlsconf.Files{CertFile: s.tlsCert, KeyFile: s.tlsKey, CAFile: s.tlsCA}, func(err error, leaf *x509.Certificate) {
			if err != nil {
				log.Error("client certificate reload failed; the previous one stays in use", "err", err)
				return
			}
			if leaf != nil {
				log.Info("client certificate loaded", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
			}
		})
		if err != nil {
			return nil, nil, nil, cli.UsageError{Err: fmt.Errorf("--tls-ca/--tls-cert/--tls-key: %v", err)}
		}
	}
	token, err := s.token()
	if err != nil {
		return nil, nil, nil, err
	}
	if s.insecure && token != "" && log != nil {
		log.Warn("--insecure with a token: relays not on loopback receive the token in clear text")
	}
	bearer := &reloadableBearer{}
	bearer.token.Store(&token)
	reload = func() {
		if src != nil {
			src.Reload() //nolint:errcheck // reported by the source's callback
		}
		if s.tokenFile == "" {
			return
		}
		switch tok, err := auth.ReadTokenFile(s.tokenFile); {
		case err != nil:
			log.Error("token file reload failed; the previous token stays in use", "err", err)
		case tok != *bearer.token.Load():
			bearer.token.Store(&tok)
			log.Info("token loaded", "file", s.tokenFile)
		default:
			log.Info("token unchanged", "file", s.tokenFile)
		}
	}
	watchCert = func(ctx context.Context) {
		if src == nil {
			return
		}
		src.WatchExpiry(ctx, func(leaf *x509.Certificate, expired bool) {
			if expired {
				log.Error("client certificate expired: relays that require one (relayd --tls-client-ca) refuse this agent now; renew --tls-cert and SIGHUP hostagent",
					"subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
				return
			}
			log.Warn("client certificate expires soon: renew --tls-cert and SIGHUP hostagent", "subject", leaf.Subject.String(),
				"not_after", leaf.NotAfter, "expires_in", time.Until(leaf.NotAfter).Round(time.Second))
		})
	}
	return func(relay string) []grpc.DialOption {
		var opts []grpc.DialOption
		if s.linkDescription(relay) != "plaintext" {
			opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(src.ClientConfig(s.tlsServerName))))
		} else {
			opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
		}
		if token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(bearer))
		}
		return opts
	}, reload, watchCert, nil
}

// reloadableBearer is auth.Bearer with a token that --token-file's reload
// replaces.
type reloadableBearer struct{ token atomic.Pointer[string] }

func (b *reloadableBearer) GetRequestMetadata(ctx context.Context, uri ...string) (map[string]string, error) {
	return auth.Bearer{Token: *b.token.Load()}.GetRequestMetadata(ctx, uri...)
}

// RequireTransportSecurity: as auth.Bearer, the agent decides.
func (b *reloadableBearer) RequireTransportSecurity() bool { return false }

func (s *securityOptions) token() (string, error) {
	if s.tokenFile != "" {
		tok, err := auth.ReadTokenFile(s.tokenFile)
		if err != nil {
			return "", cli.UsageError{Err: fmt.Errorf("--token-file: %v", err)}
		}
		return tok, nil
	}
	tok := strings.TrimSpace(strings.TrimPrefix(os.Getenv(tokenEnv), auth.ByteOrderMark))
	if tok != "" && len(tok) < auth.MinTokenLength {
		return "", cli.UsageError{Err: fmt.Errorf("$%s has %d characters; a token has at least %d", tokenEnv, len(tok), auth.MinTokenLength)}
	}
	if err := auth.CheckToken(tok); err != nil {
		return "", cli.UsageError{Err: fmt.Errorf("$%s: %v", tokenEnv, err)}
	}
	return tok, nil
}

// linkDescription says, for the start log line, how each relay is reached.
func (s *securityOptions) linkDescription(relay string) string {
	switch {
	case s.insecure || (!s.tlsWanted() && tlsconf.IsLoopback(relay)):
		return "plaintext"
	case s.tlsCert != "":
		return "mtls"
	default:
		return "tls"
	}
}
