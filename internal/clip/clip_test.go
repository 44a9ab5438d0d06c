package clip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPrefix(t *testing.T) {
	for _, tc := range []struct {
		s    string
		max  int
		want string
		cut  bool
	}{
		{"short", 10, "short", false},
		{"exactly", 7, "exactly", false},
		{"abcdef", 3, "abc", true},
		{"aé", 2, "a", true}, // é is two bytes: never split it
		{"€€", 4, "€", true},
		{"", 0, "", false},
	} {
		got, cut := Prefix(tc.s, tc.max)
		if got != tc.want || cut != tc.cut || !utf8.ValidString(got) {
			t.Errorf("Prefix(%q, %d) = %q, %v; want %q, %v", tc.s, tc.max, got, cut, tc.want, tc.cut)
		}
	}
}

func TestMarked(t *testing.T) {
	if got := Marked("ok", 64); got != "ok" {
		t.Errorf("Marked(short) = %q", got)
	}
	long := strings.Repeat("a", 10_000)
	if got, want := Marked(long, 64), strings.Repeat("a", 64)+"…(10000 bytes)"; got != want {
		t.Errorf("Marked(long) = %q; want %q", got, want)
	}
}
