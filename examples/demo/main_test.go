package main

import (
	"strings"
	"testing"
)

// TestDemo runs the README's demo end to end: every step must behave as
// printed, and the ledger must hold exactly the three charges.
func TestDemo(t *testing.T) {
	var out strings.Builder
	if err := run(&out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"402 Payment Required", `"isError":true`, `"remainingBalance":"0"`, "ledger at the fake issuer: 3 charges"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}
