// Package names checks the ids and labels a Hello carries: relayd refuses
// a Hello with others (INVALID_ARGUMENT), and hostagent checks its flags
// against the same rules, so that a mistake is a usage error at start
// rather than a stream refused at each retry.
//
// A host id and labels are stored per host for as long as it is attached,
// shown by ListHosts and written into log lines, and any Hello up to the
// relay's message limit (--max-data-bytes, 4 MiB at most) could carry
// them; a proto string must be valid UTF-8, or the frame carrying it does
// not marshal.
package names

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Limits on what a Hello carries.
const (
	MaxHostID     = 256 // bytes; a DNS name is at most 253
	MaxLabels     = 64
	MaxLabelKey   = 256  // bytes
	MaxLabelValue = 1024 // bytes
	// MaxLabelBytes bounds the keys and values of all labels together, so
	// that a Hello fits relayd's default frame limit (--max-data-bytes
	// plus 1 KiB, 33,536 bytes) with room to spare: 64 labels at their
	// own limits would not (a review).
	MaxLabelBytes = 16 << 10
	MaxService    = 128 // bytes; relayd's --listen takes no longer name
	// MaxAgentVersion bounds agent_version and agent_instance.
	MaxAgentVersion = 128 // bytes
)

// Text checks that s is at most max bytes of UTF-8 with no control
// character (a line break, a tab, NUL, ESC: what would split or forge a
// log line), no bidirectional control (U+202E and its kin reorder what a
// terminal shows), no line or paragraph separator, and no zero-width space
// or byte-order mark ("web1" and "web1\u200b" would look alike). Any other
// text is free: spaces of every script, joiners, emoji (a review: refusing
// what unicode.IsPrint refuses broke labels such as "東京\u3000本社").
func Text(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%d bytes, want at most %d", len(s), max)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%q: a control character (%U)", s, r)
		}
		if unicode.Is(unicode.Bidi_Control, r) || unicode.In(r, unicode.Zl, unicode.Zp) || r == '\u200b' || r == '\ufeff' {
			return fmt.Errorf("%q: an invisible or reordering character (%U)", s, r)
		}
	}
	return nil
}

// HostID checks a Hello's host_id; empty is allowed (the relay then uses
// the host's address).
func HostID(id string) error {
	if err := Text(id, MaxHostID); err != nil {
		return fmt.Errorf("host id: %w", err)
	}
	return nil
}

// Labels checks a Hello's labels.
func Labels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return fmt.Errorf("%d labels, want at most %d", len(labels), MaxLabels)
	}
	total := 0
	for k, v := range labels {
		total += len(k) + len(v)
	}
	if total > MaxLabelBytes {
		return fmt.Errorf("labels of %d bytes in all (keys and values), want at most %d", total, MaxLabelBytes)
	}
	for k, v := range labels {
		if k == "" {
			return errors.New("label with an empty key")
		}
		if err := Text(k, MaxLabelKey); err != nil {
			return fmt.Errorf("label key: %w", err)
		}
		if err := Text(v, MaxLabelValue); err != nil {
			return fmt.Errorf("label %q: value: %w", k, err)
		}
	}
	return nil
}
