package names

import (
	"strings"
	"testing"
)

func TestText(t *testing.T) {
	for _, tc := range []struct {
		s   string
		max int
		ok  bool
	}{
		{"", 8, true},
		{"zone eu, rack 3", 64, true},
		{strings.Repeat("é", 4), 8, true}, // 8 bytes: at the limit
		{strings.Repeat("é", 4) + "x", 8, false},
		{"a\xffb", 8, false},
		{"tab\there", 64, false},
		{"line\nbreak", 64, false},
		{"nul\x00", 8, false},
		{"bidi\u202e", 64, false}, // a format character, shown as nothing
	} {
		if err := Text(tc.s, tc.max); (err == nil) != tc.ok {
			t.Errorf("Text(%q, %d) = %v, want ok %v", tc.s, tc.max, err, tc.ok)
		}
	}
}
