package kyapaycaddy

import (
	"net/http"
	"slices"
	"testing"
)

func TestStripClientHeaders(t *testing.T) {
	h := http.Header{
		"Kyapay-Subject": {"x"},
		"kyapay-email":   {"x"}, // not canonical: set by code, not parsed
		"Kyapay_Charged": {"x"},
		"Kyapay.Price":   {"x"},
		"KYAPAY-X":       {"x"},
		"Skyfire-Pay-Id": {"token"}, // the canonical token header stays for the gate
		"Skyfire_Pay_Id": {"token2"},
		"skyfire.pay.id": {"token3"},
		"Kyapay":         {"kept: not in the namespace"},
		"Kyapayx-Y":      {"kept"},
		"Accept":         {"kept"},
	}
	stripClientHeaders(h, "Skyfire-Pay-Id", normHeader("skyfire-pay-id"))
	var got []string
	for k := range h {
		got = append(got, k)
	}
	slices.Sort(got)
	want := []string{"Accept", "Kyapay", "Kyapayx-Y", "Skyfire-Pay-Id"}
	if !slices.Equal(got, want) {
		t.Errorf("kept %q; want %q", got, want)
	}
}

func TestValidValue(t *testing.T) {
	for v, want := range map[string]bool{
		"agent-1": true, "a\tb": true, "Zoë": true,
		"a\r\nX-Evil: 1": false, "a\x00": false, "a\x7f": false,
	} {
		if got := validValue(v); got != want {
			t.Errorf("validValue(%q) = %v; want %v", v, got, want)
		}
	}
}

func TestIsStream(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/event-stream":                true,
		"Text/Event-Stream; charset=utf-8": true,
		" text/event-stream ;;":            true,
		"text/event-streams":               false,
		"application/json":                 false,
		"":                                 false,
	} {
		if got := isStream(http.Header{"Content-Type": {ct}}); got != want {
			t.Errorf("isStream(%q) = %v; want %v", ct, got, want)
		}
	}
}
