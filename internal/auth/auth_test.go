package auth

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	tokA = "aaaaaaaaaaaaaaaa-web"
	tokB = "bbbbbbbbbbbbbbbb-any"
)

func TestParse(t *testing.T) {
	toks, err := Parse(strings.NewReader("# tokens\n\n" + tokA + " services=web,api hosts=web-1 # a comment\n" + tokB + "\n  \n"))
	if err != nil {
		t.Fatal(err)
	}
	if toks.Len() != 2 {
		t.Fatalf("Len = %d, want 2", toks.Len())
	}
	a := toks.Lookup(tokA)
	if a == nil || strings.Join(a.Services, ",") != "web,api" || strings.Join(a.Hosts, ",") != "web-1" {
		t.Fatalf("grant of A = %+v", a)
	}
	if b := toks.Lookup(tokB); b == nil || b.Services != nil || b.Hosts != nil {
		t.Fatalf("grant of B = %+v, want any service and host", b)
	}
	for _, bad := range []string{"", tokA + "x", "aaaaaaaaaaaaaaa", "nope"} {
		if g := toks.Lookup(bad); g != nil {
			t.Errorf("Lookup(%q) = %+v, want nil", bad, g)
		}
	}
	if err := a.Allow("web", "web-1"); err != nil {
		t.Errorf("Allow(web, web-1) = %v", err)
	}
	for _, c := range [][2]string{{"db", "web-1"}, {"web", "web-2"}} {
		err := a.Allow(c[0], c[1])
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("Allow(%s, %s) = %v, want PermissionDenied", c[0], c[1], err)
		}
		if strings.Contains(err.Error(), tokA) {
			t.Errorf("the error %q names the token", err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"short", "line 1: token has 5 characters"},
		{"\n" + tokA + " services=", "line 2: services: empty item"},
		{tokA + " services=a,,b", "empty item"},
		{tokA + " services=a,*", `"*" must stand alone`},
		{tokA + " color=red", `unknown key "color"`},
		{tokA + " web", `want services=LIST or hosts=LIST`},
		{tokA + " hosts=a hosts=b", "hosts given twice"},
		{tokA + " services=a services=b", "services given twice"},
		{tokA + "\n" + tokA, "line 2: the same token as line 1"},
		{"services=aaaaaaaaaaaaaaaaaaa", "must start with the token"},
		{"anytökenBBBBBBBBBBBBBBBBBBBBBBB", "line 1: the token has a character that is not printable ASCII at byte 5"},
		{"# ok\n" + "\ufeff" + tokA, "line 2: the token has a character that is not printable ASCII at byte 1"},
	} {
		_, err := Parse(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), tokA) {
			t.Errorf("Parse(%q) error %q names the token", tt.in, err)
		}
	}
	// A byte-order mark at the start of the file is not part of the token.
	if toks, err := Parse(strings.NewReader("\ufeff" + tokA + "\r\n")); err != nil || toks.Lookup(tokA) == nil {
		t.Errorf("a file starting with a byte-order mark: %v, want its token", err)
	}
	if toks, err := Parse(strings.NewReader(tokA + " services=* hosts=*")); err != nil || toks.Lookup(tokA).Services != nil {
		t.Errorf(`"*" should mean any: %v`, err)
	}
}

// TestTokensWithHashAndEquals: a '#' glued to a token is refused, in a
// token file and in an agent's token file, saying how a comment is
// written: older versions cut the token there (a token holding a '#' was
// its prefix, which authenticated alone, a review), so either reading
// would differ between versions (QA: a relay and an agent upgraded apart
// disagreed on the token). An '=' in a token is fine (base64 padding,
// which was refused as "a key=value"), and a '#' glued to a grant still
// starts a comment there, as it always did.
func TestTokensWithHashAndEquals(t *testing.T) {
	const padded = "q83vEjRWeJq83vEjRWeJqw=="
	toks, err := Parse(strings.NewReader("#" + tokA + "\n" + padded + "\t# base64\n" + tokB + " services=web#prod-only\n"))
	if err != nil {
		t.Fatal(err)
	}
	if toks.Len() != 2 || toks.Lookup(padded) == nil || strings.Join(toks.Lookup(tokB).Services, ",") != "web" {
		t.Fatalf("%d tokens, %q found %v, grant of B %+v; want 2, the padded one, and B for web", toks.Len(), padded, toks.Lookup(padded) != nil, toks.Lookup(tokB))
	}
	for _, in := range []string{tokA + "#prod\n", "# ok\n0123456789abcdef#Zq9!kP2w services=web\n"} {
		if _, err := Parse(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), "'#'") || !strings.Contains(err.Error(), "white space before") {
			t.Errorf("Parse(%q) = %v, want the '#' refused, saying how a comment is written", in, err)
		}
	}
	dir := t.TempDir()
	for i, in := range []string{tokA + "#ops\n", tokA + "#web agent\n"} {
		p := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(p, []byte(in), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadTokenFile(p); err == nil || !strings.Contains(err.Error(), "'#'") {
			t.Errorf("ReadTokenFile(%q) = %q, %v; want the '#' refused", in, got, err)
		}
	}
	if err := CheckToken(tokA + "#x"); err == nil {
		t.Error("CheckToken accepts a '#' ($HOSTAGENT_TOKEN, which no file cuts)")
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "tok")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got, err := ReadTokenFile(write("# admin\n\n  " + tokA + "  \n")); err != nil || got != tokA {
		t.Errorf("ReadTokenFile = %q, %v", got, err)
	}
	// A byte-order mark (Notepad's UTF-8) and CRLF line ends are not the token.
	if got, err := ReadTokenFile(write("\ufeff" + tokA + "\r\n")); err != nil || got != tokA {
		t.Errorf("ReadTokenFile with a byte-order mark = %q, %v", got, err)
	}
	for _, bad := range []struct{ in, want string }{
		{"", "no token"},
		{"# only a comment\n", "no token"},
		{"short\n", "16"},
		{tokA + " extra\n", "white space"},
		{tokA + "\n" + tokB + "\n", "line 2 holds a second token"},
		{"anytökenBBBBBBBBBBBBBBBBBBBBBBB\n", "not printable ASCII at byte 5 (0xc3"},
		{"\ufeff\ufeff" + tokA, "not printable ASCII at byte 1"},
	} {
		_, err := ReadTokenFile(write(bad.in))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ReadTokenFile(%q) = %v, want an error containing %q", bad.in, err, bad.want)
		}
	}
	if _, err := ReadTokenFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file should be an error")
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f fakeStream) Context() context.Context { return f.ctx }

func TestHostInterceptors(t *testing.T) {
	toks, err := Parse(strings.NewReader(tokA + " services=web\n"))
	if err != nil {
		t.Fatal(err)
	}
	store := NewStore(toks)
	var rejected []error
	_, stream := HostInterceptors(store, func(_ context.Context, _ string, err error) { rejected = append(rejected, err) })
	call := func(service string, md ...string) (*Grant, error) {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(md...))
		var got *Grant
		err := stream(nil, fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: "/" + service + "/M"}, func(_ any, ss grpc.ServerStream) error {
			got = GrantFrom(ss.Context())
			return nil
		})
		return got, err
	}
	if g, err := call("relay.v1.HostService", "authorization", "Bearer "+tokA); err != nil || g == nil || g.Services[0] != "web" {
		t.Errorf("good token: grant %+v, %v", g, err)
	}
	for _, md := range [][]string{nil, {"authorization", "Bearer " + tokB}, {"authorization", "Basic " + tokA}} {
		if _, err := call("relay.v1.HostService", md...); status.Code(err) != codes.Unauthenticated {
			t.Errorf("metadata %q: %v, want Unauthenticated", md, err)
		} else if strings.Contains(err.Error(), tokB) {
			t.Errorf("error %q names the token", err)
		}
	}
	if len(rejected) != 3 {
		t.Errorf("%d rejections reported, want 3", len(rejected))
	}
	if g, err := call("grpc.health.v1.Health"); err != nil || g != nil {
		t.Errorf("health check without a token: %+v, %v; want it open", g, err)
	}
	// A reload swaps the tokens for new streams.
	toks2, _ := Parse(strings.NewReader(tokB))
	store.Set(toks2)
	if _, err := call("relay.v1.HostService", "authorization", "Bearer "+tokA); status.Code(err) != codes.Unauthenticated {
		t.Errorf("old token after reload: %v, want Unauthenticated", err)
	}
	if _, err := call("relay.v1.HostService", "authorization", "bearer "+tokB); err != nil {
		t.Errorf("new token after reload: %v", err)
	}
}

func TestAdminInterceptors(t *testing.T) {
	token := NewAdminToken(tokA)
	unary, _ := AdminInterceptors(token, nil)
	call := func(method string, md ...string) error {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(md...))
		_, err := unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) { return nil, nil })
		return err
	}
	if err := call("/relay.v1.StatusService/GetStatus", "authorization", "Bearer "+tokA); err != nil {
		t.Errorf("right token: %v", err)
	}
	for _, md := range [][]string{nil, {"authorization", "Bearer " + tokB}} {
		if err := call("/relay.v1.StatusService/GetStatus", md...); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%q: %v, want Unauthenticated", md, err)
		}
	}
	if err := call("/grpc.health.v1.Health/Check"); err != nil {
		t.Errorf("health without a token: %v", err)
	}
	// Set (a reload) takes the new token from the next call, and the old
	// one no longer.
	token.Set(tokB)
	if err := call("/relay.v1.StatusService/GetStatus", "authorization", "Bearer "+tokB); err != nil {
		t.Errorf("new token after Set: %v", err)
	}
	if err := call("/relay.v1.StatusService/GetStatus", "authorization", "Bearer "+tokA); status.Code(err) != codes.Unauthenticated {
		t.Errorf("old token after Set: %v, want Unauthenticated", err)
	}
}

// recvStream is a server stream whose RecvMsg returns when told to, and
// whose SendMsg succeeds.
type recvStream struct {
	fakeStream
	recv chan error
}

func (s recvStream) RecvMsg(any) error { return <-s.recv }
func (s recvStream) SendMsg(any) error { return nil }

// TestAdminStreamEndsOnRotation: a stream opened with the admin token is
// ended, by the time Set returns, when a reload replaces the token, and not
// when the reload keeps it. Its handler's context ends, it can send
// nothing more, a message it receives gives the same error, and the stream
// ends with Unauthenticated, which the relay logs as a refusal.
func TestAdminStreamEndsOnRotation(t *testing.T) {
	token := NewAdminToken(tokA)
	var refused []string
	_, stream := AdminInterceptors(token, func(_ context.Context, method string, err error) {
		refused = append(refused, method+": "+status.Convert(err).Message())
	})
	type opened struct {
		ss    grpc.ServerStream
		recv  chan error // lets the handler's RecvMsg return
		ended chan error
	}
	// open starts a stream whose handler runs handle, and returns it once
	// the handler runs.
	open := func(tok string, handle func(grpc.ServerStream) error) opened {
		o := opened{ended: make(chan error, 1)}
		started := make(chan grpc.ServerStream, 1)
		ctx := metadata.NewIncomingContext(t.Context(), metadata.Pairs("authorization", "Bearer "+tok))
		rs := recvStream{fakeStream{ctx: ctx}, make(chan error, 1)}
		o.recv = rs.recv
		go func() {
			o.ended <- stream(nil, rs, &grpc.StreamServerInfo{FullMethod: "/relay.v1.StatusService/WatchEvents", IsServerStream: true},
				func(_ any, ss grpc.ServerStream) error {
					started <- ss
					return handle(ss)
				})
		}()
		select {
		case o.ss = <-started:
		case err := <-o.ended:
			// A handler that returns at once makes both ready; started
			// was sent first, so it tells whether the handler ran.
			select {
			case o.ss = <-started:
				o.ended <- err // for waitEnd
			default:
				t.Fatalf("stream refused: %v", err)
			}
		}
		return o
	}
	waitEnd := func(o opened) error {
		select {
		case err := <-o.ended:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("stream still open 10 s after its end")
			return nil
		}
	}
	watchCtx := func(ss grpc.ServerStream) error {
		<-ss.Context().Done()
		return status.FromContextError(ss.Context().Err()).Err()
	}
	replaced := func(err error) bool {
		return status.Code(err) == codes.Unauthenticated && strings.Contains(err.Error(), "admin token was replaced")
	}

	a := open(tokA, watchCtx)
	token.Set(tokA) // a reload that keeps the token
	if err := a.ss.Context().Err(); err != nil {
		t.Fatalf("a reload that kept the token ended the stream: %v", err)
	}
	token.Set(tokB)
	if a.ss.Context().Err() == nil {
		t.Fatal("the stream's context is not done once Set replaced its token")
	}
	if err := a.ss.SendMsg(nil); !replaced(err) {
		t.Errorf("SendMsg after the token was replaced: %v, want Unauthenticated", err)
	}
	if err := waitEnd(a); !replaced(err) {
		t.Errorf("stream opened with the replaced token ended with %v, want Unauthenticated naming the reload", err)
	}
	if len(refused) != 1 {
		t.Errorf("refusals reported: %q, want the ended stream's", refused)
	}

	// A handler waiting in Recv (grpc-go's reflection) gets the error with
	// the next message.
	b := open(tokB, func(ss grpc.ServerStream) error { return ss.RecvMsg(nil) })
	token.Set(tokA)
	b.recv <- nil
	if err := waitEnd(b); !replaced(err) {
		t.Errorf("Recv after the token was replaced: %v, want Unauthenticated", err)
	}

	// A handler's own end stands, even if a reload comes before the
	// stream is done with.
	c := open(tokA, func(grpc.ServerStream) error {
		token.Set(tokB)
		return status.Error(codes.InvalidArgument, "bad request")
	})
	if err := waitEnd(c); status.Code(err) != codes.InvalidArgument {
		t.Errorf("handler's own error: %v, want InvalidArgument", err)
	}
}

func TestBearer(t *testing.T) {
	md, err := Bearer{Token: tokA}.GetRequestMetadata(context.Background())
	if err != nil || md["authorization"] != "Bearer "+tokA {
		t.Errorf("metadata = %v, %v", md, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(tokA + " services=web,api hosts=web-1 # c\n" + tokB + "\n")
	f.Add("# only\n\n")
	f.Add(tokA + " services=*")
	f.Add("x=y")
	f.Fuzz(func(t *testing.T, in string) {
		toks, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		// Every token the file holds is found, with a grant that allows
		// what the file says.
		for line := range strings.SplitSeq(in, "\n") {
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = line[:i]
			}
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			g := toks.Lookup(f[0])
			if g == nil {
				t.Fatalf("token on line %q not found", line)
			}
			if g.ID != Fingerprint(f[0]) {
				t.Fatalf("grant id %s, want %s", g.ID, Fingerprint(f[0]))
			}
		}
	})
}

func TestCurrentGrant(t *testing.T) {
	parse := func(s string) *Tokens {
		t.Helper()
		toks, err := Parse(strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		return toks
	}
	first := parse(tokA + " services=web\n" + tokB + "\n")
	store := NewStore(first)
	md := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tokA))
	ctx := WithGrant(md, first.Lookup(tokA))

	// Unchanged tokens: the stream's own grant, without looking the token
	// up (a context without the token's metadata would fail that).
	if g, err := store.CurrentGrant(WithGrant(context.Background(), first.Lookup(tokA))); err != nil || g.Services[0] != "web" {
		t.Fatalf("unchanged tokens: %+v, %v", g, err)
	}
	// A reload that keeps the token with a new grant: the new grant, and
	// from then on without a lookup again.
	store.Set(parse(tokA + " services=web,api\n"))
	g, err := store.CurrentGrant(ctx)
	if err != nil || len(g.Services) != 2 {
		t.Fatalf("after a reload: %+v, %v; want services web,api", g, err)
	}
	if GrantFrom(ctx) != g {
		t.Errorf("the stream still carries its old grant after the reload")
	}
	// A reload that drops it: refused, naming the token's fingerprint only.
	store.Set(parse(tokB + "\n"))
	if _, err := store.CurrentGrant(ctx); status.Code(err) != codes.Unauthenticated || strings.Contains(err.Error(), tokA) {
		t.Errorf("removed token: %v; want Unauthenticated without the token", err)
	}
	if _, err := store.CurrentGrant(context.Background()); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token at all: %v; want Unauthenticated", err)
	}
}

// BenchmarkCurrentGrant is the check a stream of sequential sessions makes
// before each session, with 1000 tokens in the file.
func BenchmarkCurrentGrant(b *testing.B) {
	var file strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&file, "%032x\n", i)
	}
	toks, err := Parse(strings.NewReader(file.String()))
	if err != nil {
		b.Fatal(err)
	}
	store := NewStore(toks)
	tok := fmt.Sprintf("%032x", 999)
	ctx := WithGrant(metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok)), toks.Lookup(tok))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := store.CurrentGrant(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
