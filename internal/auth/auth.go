// Package auth authenticates host agents and operators with bearer tokens.
//
// relayd reads a token file (--auth-tokens): one token per line, optionally
// restricted to some services and host ids. A token is checked in constant
// time against every entry (its SHA-256, so every comparison has the same
// length), and only a short fingerprint of it ever reaches a log line or an
// error. The grant a token carries travels in the stream's context, and the
// Attach handler checks the Hello against it.
//
// Token file syntax:
//
//	# comment
//	TOKEN                                # any service, any host id
//	TOKEN services=web,db hosts=web-1,web-2
//
// A token is at least 16 characters of printable ASCII but '#'; services
// and hosts are comma lists, "*" meaning any. A comment starts with '#' at
// the start of a line or after white space, or anywhere in the grants
// ("services=web#prod" grants web); a '#' glued to a token is an error,
// as older versions took it for a comment's start.
package auth

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MinTokenLength is the shortest token a token file may hold: shorter ones
// can be guessed.
const MinTokenLength = 16

// CheckToken says what is wrong with a token no gRPC header can carry: an
// agent's would be refused by its own gRPC library at every attempt, and a
// relay's could never be presented. Letters, digits and ASCII punctuation
// are fine. Errors name the position, never the token.
func CheckToken(tok string) error {
	for i := 0; i < len(tok); i++ {
		switch c := tok[i]; {
		case c <= ' ' || c == 0x7f:
			return fmt.Errorf("the token has white space or a control character at byte %d (0x%02x): a token is one word of letters, digits and ASCII punctuation (e.g. openssl rand -hex 16)", i+1, c)
		case c > '~':
			return fmt.Errorf("the token has a character that is not printable ASCII at byte %d (0x%02x; an editor's byte-order mark or a non-ASCII letter?): a token is sent in a gRPC header, which carries letters, digits and ASCII punctuation only (e.g. openssl rand -hex 16)", i+1, c)
		case c == '#':
			// Token files before 2026-11-28 cut a token at a '#' as a
			// comment's start, silently: "TOKEN#prod" was TOKEN, and a
			// token holding a '#' was its prefix. Either reading would
			// now differ between versions (a relay and an agent upgraded
			// apart would disagree on the token, QA), so neither is taken.
			return fmt.Errorf("the token has a '#' at byte %d: a token cannot hold one, as '#' starts a comment in token files", i+1)
		}
	}
	return nil
}

// ByteOrderMark is what some editors put at the start of a UTF-8 file;
// token files and $HOSTAGENT_TOKEN drop it.
const ByteOrderMark = "\ufeff"

// Grant is what one token allows.
type Grant struct {
	// ID is a fingerprint of the token (the first hex digits of its
	// SHA-256), safe to log; never the token.
	ID string
	// Services and Hosts the token may attach as; nil means any.
	Services, Hosts []string

	// from is the token file the grant was parsed from: while it is the
	// store's current one, the grant is current too (see Store.CurrentGrant).
	from *Tokens
}

// Allow reports whether the grant lets a host attach as hostID for
// service, as a PermissionDenied status if not.
func (g *Grant) Allow(service, hostID string) error {
	if g.Services != nil && !slices.Contains(g.Services, service) {
		return status.Errorf(codes.PermissionDenied, "token %s may not serve service %q (it may serve: %s)", g.ID, service, strings.Join(g.Services, ", "))
	}
	if g.Hosts != nil && !slices.Contains(g.Hosts, hostID) {
		return status.Errorf(codes.PermissionDenied, "token %s may not attach as host id %q (it may attach as: %s)", g.ID, hostID, strings.Join(g.Hosts, ", "))
	}
	return nil
}

type entry struct {
	sum   [sha256.Size]byte
	grant *Grant
}

// Tokens is a parsed token file.
type Tokens struct{ entries []entry }

// Len returns the number of tokens.
func (t *Tokens) Len() int { return len(t.entries) }

// Fingerprint returns the id under which a token appears in logs.
func Fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:4])
}

// Parse reads a token file. Errors name the line, never the token.
func Parse(r io.Reader) (*Tokens, error) {
	t := &Tokens{}
	seen := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, ByteOrderMark)
		}
		fields := strings.Fields(stripComment(line))
		if len(fields) == 0 {
			continue
		}
		tok := fields[0]
		// In the grants, a '#' starts a comment wherever it is, as it
		// always did: "services=web#prod" grants web.
		grants := fields[1:]
		for i, f := range grants {
			if j := strings.IndexByte(f, '#'); j >= 0 {
				grants = grants[:i]
				if f = f[:j]; f != "" {
					grants = append(grants, f)
				}
				break
			}
		}
		if len(tok) < MinTokenLength {
			return nil, fmt.Errorf("line %d: token has %d characters; use at least %d (e.g. openssl rand -hex 16)", n, len(tok), MinTokenLength)
		}
		if strings.HasPrefix(tok, "services=") || strings.HasPrefix(tok, "hosts=") {
			return nil, fmt.Errorf("line %d: the line must start with the token, got a key=value", n)
		}
		if err := CheckToken(tok); err != nil {
			return nil, fmt.Errorf("line %d: %v%s", n, err, hashAdvice(tok))
		}
		sum := sha256.Sum256([]byte(tok))
		if prev, dup := seen[sum]; dup {
			return nil, fmt.Errorf("line %d: the same token as line %d", n, prev)
		}
		seen[sum] = n
		g := &Grant{ID: hex.EncodeToString(sum[:4]), from: t}
		for _, f := range grants {
			key, val, ok := strings.Cut(f, "=")
			if !ok {
				return nil, fmt.Errorf("line %d: %q: want services=LIST or hosts=LIST", n, f)
			}
			list, err := parseList(val)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %v", n, key, err)
			}
			switch key {
			case "services":
				if g.Services != nil {
					return nil, fmt.Errorf("line %d: services given twice", n)
				}
				g.Services = list
			case "hosts":
				if g.Hosts != nil {
					return nil, fmt.Errorf("line %d: hosts given twice", n)
				}
				g.Hosts = list
			default:
				return nil, fmt.Errorf("line %d: unknown key %q (want services= or hosts=)", n, key)
			}
		}
		t.entries = append(t.entries, entry{sum: sum, grant: g})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return t, nil
}

// hashAdvice is what a token file's token with a '#' most likely is: a
// comment glued to it.
func hashAdvice(tok string) string {
	if strings.Contains(tok, "#") {
		return ` (a comment after a token needs white space before its '#': "TOKEN  # note")`
	}
	return ""
}

// stripComment cuts a comment off a line of a token file: a '#' at its
// start or after white space. A '#' glued to a token is left for
// CheckToken to refuse: cut there, as before 2026-11-28, a password
// manager's token was silently shortened to its prefix, which then
// authenticated on its own (a review).
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}

// parseList parses a comma list; "*" alone means any (nil).
func parseList(s string) ([]string, error) {
	if s == "*" {
		return nil, nil
	}
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item == "" {
			return nil, fmt.Errorf("empty item in %q", s)
		}
		if item == "*" {
			return nil, fmt.Errorf(`"*" must stand alone`)
		}
		out = append(out, item)
	}
	return out, nil
}

// ParseFile reads the token file at path.
func ParseFile(path string) (*Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Lookup returns the grant of token, or nil. It compares against every
// entry, so its time does not depend on which entry (if any) matches.
func (t *Tokens) Lookup(token string) *Grant {
	sum := sha256.Sum256([]byte(token))
	var found *Grant
	for i := range t.entries {
		if subtle.ConstantTimeCompare(sum[:], t.entries[i].sum[:]) == 1 {
			found = t.entries[i].grant
		}
	}
	return found
}

// Store holds the current tokens; Set swaps them (on reload) without
// disturbing streams already authenticated.
type Store struct{ cur atomic.Pointer[Tokens] }

// NewStore returns a Store holding t.
func NewStore(t *Tokens) *Store {
	s := &Store{}
	s.cur.Store(t)
	return s
}

// Set replaces the tokens.
func (s *Store) Set(t *Tokens) { s.cur.Store(t) }

// Tokens returns the current tokens.
func (s *Store) Tokens() *Tokens { return s.cur.Load() }

type grantKey struct{}

// grantSlot holds a stream's grant; Store.CurrentGrant replaces it with
// the one its token has after a reload, so that it looks the token up once
// per reload rather than once per session.
type grantSlot struct{ g atomic.Pointer[Grant] }

// WithGrant returns ctx carrying g.
func WithGrant(ctx context.Context, g *Grant) context.Context {
	slot := &grantSlot{}
	slot.g.Store(g)
	return context.WithValue(ctx, grantKey{}, slot)
}

// GrantFrom returns the grant in ctx, or nil when the stream was not
// authenticated (no token file configured).
func GrantFrom(ctx context.Context) *Grant {
	if slot, _ := ctx.Value(grantKey{}).(*grantSlot); slot != nil {
		return slot.g.Load()
	}
	return nil
}
