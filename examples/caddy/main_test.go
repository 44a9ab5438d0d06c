package main

import (
	"bytes"
	"strings"
	"testing"
)

// The demo runs end to end and every step answers as expected.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if code := run(&out); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	for _, want := range []string{"$ curl http://", "[HTTP 402]", `"buyer":"agent-007"`, "4 charges: 0.01, 0.01, 0.05, 0.05 USD", "Every step behaved as expected."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
