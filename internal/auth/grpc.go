package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
	"sync"

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
	mu      sync.Mutex
	sum     *[sha256.Size]byte
	changed chan struct{} // closed, and replaced, by Set
}

// NewAdminToken returns an AdminToken holding token.
func NewAdminToken(token string) *AdminToken {
	t := &AdminToken{}
	t.Set(token)
	return t
}

// Set makes token the one the admin port requires from the next call, and
// ends the streams opened with another one.
func (t *AdminToken) Set(token string) {
	sum := sha256.Sum256([]byte(token))
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sum = &sum
	if t.changed != nil {
		close(t.changed)
	}
	t.changed = make(chan struct{})
}

// current returns the token's hash and a channel that Set closes when it
// replaces it.
func (t *AdminToken) current() (*[sha256.Size]byte, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sum, t.changed
}

func (t *AdminToken) matches(tok string) bool {
	got := sha256.Sum256([]byte(tok))
	want, _ := t.current()
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// errAdminTokenReplaced is the cause of a stream's end when the admin token
// it was opened with is replaced.
var errAdminTokenReplaced = status.Error(codes.Unauthenticated, "the admin token was replaced (relayd reloaded --admin-token-file): call again with the new one")

// endOnRotation runs an admin stream's handler in a context that ends when
// the admin token is replaced by one other than the stream's: a watcher
// (WatchEvents) opened with a revoked token must not go on seeing every
// host and session. The handler's own error gives way to the reason.
func endOnRotation(token *AdminToken, srv any, ss grpc.ServerStream, handler grpc.StreamHandler) error {
	tok, _ := grpcauth.AuthFromMD(ss.Context(), "bearer") // checked by the caller
	opened := sha256.Sum256([]byte(tok))
	ctx, cancel := context.WithCancelCause(ss.Context())
	defer cancel(nil)
	handlerDone := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			sum, changed := token.current()
			if subtle.ConstantTimeCompare(opened[:], sum[:]) != 1 {
				cancel(errAdminTokenReplaced)
				return
			}
			select {
			case <-changed:
			case <-handlerDone:
				return
			}
		}
	})
	err := handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
	close(handlerDone)
	watch.Wait()
	if context.Cause(ctx) == errAdminTokenReplaced {
		return errAdminTokenReplaced
	}
	return err
}

// contextStream is a server stream with a context of its own.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

// AdminInterceptors returns the interceptors that require the admin token
// on every RPC but health checks. A stream opened with a token that Set
// replaces ends with Unauthenticated, once its handler watches its context.
func AdminInterceptors(token *AdminToken, onReject Rejected) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	fn := func(ctx context.Context) (context.Context, error) {
		tok, err := grpcauth.AuthFromMD(ctx, "bearer")
		if err == nil {
			if token.matches(tok) {
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
	checked := grpcauth.StreamServerInterceptor(fn)
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return checked(srv, ss, info, func(srv any, ss grpc.ServerStream) error {
			return endOnRotation(token, srv, ss, handler)
		})
	}
	return selectedPair(grpcauth.UnaryServerInterceptor(fn), stream)
}

func selected(fn grpcauth.AuthFunc) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	return selectedPair(grpcauth.UnaryServerInterceptor(fn), grpcauth.StreamServerInterceptor(onShortGoroutine(fn)))
}

// selectedPair applies the interceptors to every method but the unprotected.
func selectedPair(unary grpc.UnaryServerInterceptor, stream grpc.StreamServerInterceptor) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	match := selector.MatchFunc(func(_ context.Context, m interceptors.CallMeta) bool { return !unprotected(m.Service) })
	return selector.UnaryServerInterceptor(unary, match), selector.StreamServerInterceptor(stream, match)
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
