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
		{"東京\u3000本社", 64, true},  // an ideographic space
		{"rack\u00a03", 64, true}, // a no-break space
		{"👩\u200d💻", 64, true},    // a joiner
		{"esc\x1b[31m", 64, false},
		{"c1\u0085", 64, false}, // a C1 control: next line
	} {
		if err := Text(tc.s, tc.max); (err == nil) != tc.ok {
			t.Errorf("Text(%q, %d) = %v, want ok %v", tc.s, tc.max, err, tc.ok)
		}
	}
}
