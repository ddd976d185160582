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
	streams map[*adminStream]struct{} // open streams, ended by a Set that replaces their token
}

// adminStream is an open admin stream: the hash of the token it was opened
// with, and how to end it.
type adminStream struct {
	sum    [sha256.Size]byte
	cancel context.CancelCauseFunc
}

// NewAdminToken returns an AdminToken holding token.
func NewAdminToken(token string) *AdminToken {
	t := &AdminToken{streams: map[*adminStream]struct{}{}}
	t.Set(token)
	return t
}

// Set makes token the one the admin port requires from the next call, and
// ends, before it returns, the streams opened with another one.
func (t *AdminToken) Set(token string) {
	sum := sha256.Sum256([]byte(token))
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sum = &sum
	for s := range t.streams {
		if subtle.ConstantTimeCompare(s.sum[:], sum[:]) != 1 {
			s.cancel(errAdminTokenReplaced)
			delete(t.streams, s)
		}
	}
}

func (t *AdminToken) matches(tok string) bool {
	got := sha256.Sum256([]byte(tok))
	t.mu.Lock()
	defer t.mu.Unlock()
	return subtle.ConstantTimeCompare(got[:], t.sum[:]) == 1
}

// register adds s to the streams a Set may end, unless its token was
// replaced since the stream was let in.
func (t *AdminToken) register(s *adminStream) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if subtle.ConstantTimeCompare(s.sum[:], t.sum[:]) != 1 {
		return false
	}
	t.streams[s] = struct{}{}
	return true
}

func (t *AdminToken) unregister(s *adminStream) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.streams, s)
}

// errAdminTokenReplaced ends a stream whose admin token was replaced.
var errAdminTokenReplaced = status.Error(codes.Unauthenticated, "the admin token was replaced (relayd reloaded --admin-token-file): call again with the new one")

// endOnRotation runs an admin stream's handler in a context that a Set
// replacing the stream's token cancels: a watcher (WatchEvents) opened
// with a revoked token must not go on seeing every host and session. Once
// that happened the stream sends nothing more, and a handler waiting in
// Recv gets the same error at its next message. Such an end returns
// errAdminTokenReplaced.
func endOnRotation(token *AdminToken, srv any, ss grpc.ServerStream, handler grpc.StreamHandler) error {
	tok, _ := grpcauth.AuthFromMD(ss.Context(), "bearer") // checked by the caller
	ctx, cancel := context.WithCancelCause(ss.Context())
	defer cancel(nil)
	s := &adminStream{sum: sha256.Sum256([]byte(tok)), cancel: cancel}
	if !token.register(s) {
		return errAdminTokenReplaced
	}
	defer token.unregister(s)
	err := handler(srv, &rotatingStream{ServerStream: ss, ctx: ctx})
	// The reason replaces what the handler made of it (Canceled, from its
	// context), not an end of its own that came first.
	if context.Cause(ctx) == errAdminTokenReplaced && (status.Code(err) == codes.Canceled || err == errAdminTokenReplaced) {
		return errAdminTokenReplaced
	}
	return err
}

// rotatingStream is an admin stream that endOnRotation may end.
type rotatingStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *rotatingStream) Context() context.Context { return s.ctx }

func (s *rotatingStream) SendMsg(m any) error {
	if context.Cause(s.ctx) == errAdminTokenReplaced {
		return errAdminTokenReplaced
	}
	return s.ServerStream.SendMsg(m)
}

func (s *rotatingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if context.Cause(s.ctx) == errAdminTokenReplaced {
		return errAdminTokenReplaced
	}
	return nil
}

// AdminInterceptors returns the interceptors that require the admin token
// on every RPC but health checks. A stream opened with a token that Set
// replaces ends with Unauthenticated (see endOnRotation).
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
			err := endOnRotation(token, srv, ss, handler)
			if err == errAdminTokenReplaced && onReject != nil {
				onReject(ss.Context(), info.FullMethod, err)
			}
			return err
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

// ReadTokenFile returns the token in a file (comments and blank lines
// skipped), for hostagent --token-file and relayd --admin-token-file. A
// second token is an error: one of them would be ignored without a word
// (an admin who added the next token before removing the old one, say).
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := ""
	for n, line := range strings.Split(strings.TrimPrefix(string(b), ByteOrderMark), "\n") {
		line = strings.TrimSpace(stripComment(line))
		if line == "" {
			continue
		}
		if tok != "" {
			return "", fmt.Errorf("%s: line %d holds a second token; the file holds one", path, n+1)
		}
		if first := strings.Fields(line)[0]; strings.Contains(first, "#") {
			return "", fmt.Errorf("%s: line %d: %v%s", path, n+1, CheckToken(first), hashAdvice(first)) // a comment glued to the token
		}
		if strings.ContainsAny(line, " \t") {
			return "", fmt.Errorf("%s: a token has no white space", path)
		}
		if len(line) < MinTokenLength {
			return "", fmt.Errorf("%s: the token has %d characters; use at least %d", path, len(line), MinTokenLength)
		}
		if err := CheckToken(line); err != nil {
			return "", fmt.Errorf("%s: %v", path, err)
		}
		tok = line
	}
	if tok == "" {
		return "", fmt.Errorf("%s: no token in the file", path)
	}
	return tok, nil
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
