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
		{"bidi\u202e", 64, false},
		{"isolate\u2066", 64, false},
		{"line\u2028sep", 64, false},
		{"web1\u200b", 64, false},
		{"\ufeffbom", 64, false},
		{"zwnj\u200c", 64, true}, // needed by Persian and others
	} {
		if err := Text(tc.s, tc.max); (err == nil) != tc.ok {
			t.Errorf("Text(%q, %d) = %v, want ok %v", tc.s, tc.max, err, tc.ok)
		}
	}
}

func TestLabelsInAll(t *testing.T) {
	big := map[string]string{}
	for i := range 20 { // each within its own limits; 20 KB in all
		big[strings.Repeat("k", 10)+string(rune('a'+i))] = strings.Repeat("v", 1000)
	}
	if err := Labels(big); err == nil || !strings.Contains(err.Error(), "in all") {
		t.Errorf("Labels(20 × 1 KB) = %v, want the total refused", err)
	}
}
