package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/relayproject/relay/internal/shallow"
)

// Rejected is told about every refused token (never the token itself), so
// the caller can count and log it.
type Rejected func(ctx context.Context, fullMethod string, err error)

// unprotected reports whether a method is open to anyone: health checks
// (load balancers probe them) and nothing else.
func unprotected(service string) bool { return service == "grpc.health.v1.Health" }

// HostInterceptors returns the interceptors that require a token from the
// store on every RPC but health checks, and put its grant in the context.
func HostInterceptors(s *Store, onReject Rejected) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	fn := func(ctx context.Context) (context.Context, error) {
		tok, err := grpcauth.AuthFromMD(ctx, "bearer")
		if err != nil {
			err = status.Error(codes.Unauthenticated, "no bearer token: give hostagent --token-file or HOSTAGENT_TOKEN (other callers: metadata 'authorization: bearer TOKEN', e.g. grpcurl -H)")
		} else if g := s.Tokens().Lookup(tok); g != nil {
			return WithGrant(ctx, g), nil
		} else {
			err = status.Errorf(codes.Unauthenticated, "token %s is not in this relay's --auth-tokens file", Fingerprint(tok))
		}
		if onReject != nil {
			m, _ := grpc.Method(ctx)
			onReject(ctx, m, err)
		}
		return nil, err
	}
	return selected(fn)
}

// CurrentGrant returns the grant that the token of the stream or call in
// ctx has in the store's tokens now, which may have changed (SIGHUP) since
// the interceptor let it in: a stream that lives long is checked again with
// it before it takes more work. While the tokens are the ones the stream's
// grant came from, that grant is the answer, with no hashing: a stream of
// sequential sessions asks once per session.
func (s *Store) CurrentGrant(ctx context.Context) (*Grant, error) {
	cur := s.Tokens()
	slot, _ := ctx.Value(grantKey{}).(*grantSlot)
	if slot != nil {
		if g := slot.g.Load(); g != nil && g.from == cur {
			return g, nil
		}
	}
	tok, err := grpcauth.AuthFromMD(ctx, "bearer")
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "no bearer token")
	}
	g := cur.Lookup(tok)
	if g == nil {
		return nil, status.Errorf(codes.Unauthenticated, "token %s is no longer in this relay's --auth-tokens file", Fingerprint(tok))
	}
	if slot != nil {
		slot.g.Store(g)
	}
	return g, nil
}

// AdminToken is the admin port's bearer token; Set replaces it while the
// port serves (SIGHUP). Only its hash is kept.
type AdminToken struct {
	sum atomic.Pointer[[sha256.Size]byte]
}

// NewAdminToken returns an AdminToken holding token.
func NewAdminToken(token string) *AdminToken {
	t := &AdminToken{}
	t.Set(token)
	return t
}

// Set makes token the one the admin port requires from the next call.
func (t *AdminToken) Set(token string) {
	sum := sha256.Sum256([]byte(token))
	t.sum.Store(&sum)
}

// AdminInterceptors returns the interceptors that require the admin token
// on every RPC but health checks.
func AdminInterceptors(token *AdminToken, onReject Rejected) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	fn := func(ctx context.Context) (context.Context, error) {
		tok, err := grpcauth.AuthFromMD(ctx, "bearer")
		if err == nil {
			got, want := sha256.Sum256([]byte(tok)), token.sum.Load()
			if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
				return ctx, nil
			}
			err = status.Error(codes.Unauthenticated, "wrong admin token")
		} else {
			err = status.Error(codes.Unauthenticated, "the admin port needs a bearer token (grpcurl -H 'authorization: bearer TOKEN')")
		}
		if onReject != nil {
			m, _ := grpc.Method(ctx)
			onReject(ctx, m, err)
		}
		return nil, err
	}
	return selected(fn)
}

func selected(fn grpcauth.AuthFunc) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	match := selector.MatchFunc(func(_ context.Context, m interceptors.CallMeta) bool { return !unprotected(m.Service) })
	return selector.UnaryServerInterceptor(grpcauth.UnaryServerInterceptor(fn), match),
		selector.StreamServerInterceptor(grpcauth.StreamServerInterceptor(onShortGoroutine(fn)), match)
}

// onShortGoroutine runs fn through shallow.Run: the token check (metadata, hashing)
// would grow an Attach handler's stack from 4 to 8 KiB, for the stream's
// whole life.
func onShortGoroutine(fn grpcauth.AuthFunc) grpcauth.AuthFunc {
	return func(ctx context.Context) (context.Context, error) {
		var out context.Context
		var err error
		shallow.Run(func() { out, err = fn(ctx) })
		return out, err
	}
}

// ReadTokenFile returns the first token in a file (comments and blank lines
// skipped), for hostagent --token-file and relayd --admin-token-file.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return "", fmt.Errorf("%s: a token has no white space", path)
		}
		if len(line) < MinTokenLength {
			return "", fmt.Errorf("%s: the token has %d characters; use at least %d", path, len(line), MinTokenLength)
		}
		return line, nil
	}
	return "", fmt.Errorf("%s: no token in the file", path)
}

// Bearer is the agent's side: per-RPC credentials sending a token.
type Bearer struct{ Token string }

var _ credentials.PerRPCCredentials = Bearer{}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b Bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.Token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials. The
// agent decides itself when plaintext is allowed (loopback, --insecure).
func (b Bearer) RequireTransportSecurity() bool { return false }
