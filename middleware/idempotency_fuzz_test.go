package middleware

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

func FuzzParseIdempotencyKey(f *testing.F) {
	for _, s := range []string{`"abc"`, `abc`, `"a\"b\\c"`, `""`, `"`, ` "x" `, `"a b"`, "a\x00", `"\q"`, strings.Repeat("k", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		k, err := ParseIdempotencyKey(v)
		if err != nil {
			return
		}
		if !validKey(k) {
			t.Fatalf("ParseIdempotencyKey(%q) = %q, which the gate refuses", v, k)
		}
		for i := 0; i < len(k); i++ {
			if k[i] < ' ' || k[i] >= 0x7f {
				t.Fatalf("key %q has a byte outside printable ASCII", k)
			}
		}
		// A bare key round-trips through its quoted spelling.
		q := `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(k) + `"`
		if k2, err := ParseIdempotencyKey(q); err != nil || k2 != k {
			t.Fatalf("quoted %q = %q, %v; want %q", q, k2, err, k)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	h := http.Header{"Content-Type": {"text/plain"}, "X-A": {"1", "2"}}
	f.Add(encodeResponse(200, h, []byte("body"), 1<<20))
	f.Add(encodeResponse(404, nil, nil, 1<<20))
	f.Add([]byte("KR1\x00\xc8\x01\x01A\x01B\x00"))
	f.Add([]byte("KR1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		status, h, body, err := decodeResponse(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to something that decodes the same.
		again := encodeResponse(status, h, body, len(b)+64)
		if again == nil {
			t.Fatalf("decoded response does not re-encode")
		}
		s2, h2, b2, err := decodeResponse(again)
		if err != nil || s2 != status || !bytes.Equal(b2, body) || len(h2) != len(h) {
			t.Fatalf("round trip: %d %v %q %v; want %d %v %q", s2, h2, b2, err, status, h, body)
		}
		for k, vs := range h {
			if strings.ContainsAny(k, ":\r\n ") || len(h2[k]) != len(vs) {
				t.Fatalf("header %q %q", k, vs)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("header value %q", v)
				}
			}
		}
	})
}
