package mcpgate_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/mcpgate"
)

// Idempotency reads the key from _meta only for paid tools, refuses keys
// that are not valid, and fingerprints the tool and its arguments in a
// canonical form without the token argument.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, mcpgate.Config{})
	quote := g.Tool("quote")
	for _, tc := range []struct {
		name    string
		meta    map[string]any
		key     string
		invalid bool
	}{
		{name: "no _meta"},
		{name: "absent", meta: map[string]any{"other": "k"}},
		{name: "null", meta: map[string]any{mcpgate.IdempotencyMetaKey: nil}},
		{name: "bare", meta: map[string]any{mcpgate.IdempotencyMetaKey: "a1-B2_c3"}, key: "a1-B2_c3"},
		{name: "trimmed", meta: map[string]any{mcpgate.IdempotencyMetaKey: " k1\t"}, key: "k1"},
		{name: "quoted", meta: map[string]any{mcpgate.IdempotencyMetaKey: `"a \"b\""`}, key: `a "b"`},
		{name: "longest", meta: map[string]any{mcpgate.IdempotencyMetaKey: strings.Repeat("k", 255)}, key: strings.Repeat("k", 255)},
		{name: "too long", meta: map[string]any{mcpgate.IdempotencyMetaKey: strings.Repeat("k", 256)}, invalid: true},
		{name: "empty", meta: map[string]any{mcpgate.IdempotencyMetaKey: ""}, invalid: true},
		{name: "space", meta: map[string]any{mcpgate.IdempotencyMetaKey: "a b"}, invalid: true},
		{name: "non-ASCII", meta: map[string]any{mcpgate.IdempotencyMetaKey: "clé"}, invalid: true},
		{name: "number", meta: map[string]any{mcpgate.IdempotencyMetaKey: 7.0}, invalid: true},
		{name: "object", meta: map[string]any{mcpgate.IdempotencyMetaKey: map[string]any{"k": "v"}}, invalid: true},
	} {
		key, fp, err := quote.Idempotency(tc.meta, json.RawMessage(`{"a":1}`))
		var ie *middleware.IdempotencyError
		switch {
		case tc.invalid:
			if !errors.As(err, &ie) || ie.Code != middleware.CodeIdempotencyKeyInvalid || key != "" {
				t.Errorf("%s: key %q, error %v; want idempotency_key_invalid", tc.name, key, err)
			}
		case err != nil || key != tc.key:
			t.Errorf("%s: key %q, error %v; want %q", tc.name, key, err, tc.key)
		case key == "" && fp != [32]byte{}:
			t.Errorf("%s: a fingerprint without a key", tc.name)
		case key != "" && fp != middleware.Fingerprint("tools/call", "quote", []byte(`{"a":1}`)):
			t.Errorf("%s: fingerprint of another call", tc.name)
		}
	}
	// A tool without a price ignores the key, even an invalid one.
	for _, v := range []any{"k1", 7.0} {
		if key, _, err := g.Tool("whoami").Idempotency(map[string]any{mcpgate.IdempotencyMetaKey: v}, nil); key != "" || err != nil {
			t.Errorf("identity tool, key %v: %q, %v", v, key, err)
		}
	}
	var nilTool *mcpgate.Tool
	if key, _, err := nilTool.Idempotency(map[string]any{mcpgate.IdempotencyMetaKey: "k"}, nil); key != "" || err != nil {
		t.Errorf("nil tool: %q, %v", key, err)
	}
}

// The fingerprint is the same for the same call however it is written,
// and differs for another tool or other arguments.
func TestIdempotencyFingerprint(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, mcpgate.Config{})
	meta := map[string]any{mcpgate.IdempotencyMetaKey: "k"}
	fp := func(tl *mcpgate.Tool, args any) [32]byte {
		t.Helper()
		_, f, err := tl.Idempotency(meta, args)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return f
	}
	quote, render := g.Tool("quote"), g.Tool("render")
	base := fp(quote, json.RawMessage(`{"a":1,"b":["x",{"d":null,"c":true}]}`))
	for name, args := range map[string]any{
		"spaced":        json.RawMessage(" {\n\"b\" : [ \"x\" , { \"c\" : true , \"d\" : null } ] , \"a\" : 1 }\t"),
		"token arg":     json.RawMessage(`{"skyfire-pay-id":"eyT","a":1,"b":["x",{"c":true,"d":null}]}`),
		"escaped":       json.RawMessage(`{"\u0061":1,"b":["\u0078",{"c":true,"d":null}]}`),
		"decoded map":   map[string]any{"a": 1, "b": []any{"x", map[string]any{"c": true, "d": nil}}},
		"byte slice":    []byte(`{"a":1,"b":["x",{"c":true,"d":null}]}`),
		"escaped token": json.RawMessage(`{"skyfire\u002dpay-id":null,"a":1,"b":["x",{"c":true,"d":null}]}`),
	} {
		if fp(quote, args) != base {
			t.Errorf("%s: another fingerprint", name)
		}
	}
	for name, args := range map[string]any{
		"other value":  json.RawMessage(`{"a":2,"b":["x",{"c":true,"d":null}]}`),
		"number text":  json.RawMessage(`{"a":1.0,"b":["x",{"c":true,"d":null}]}`),
		"array order":  json.RawMessage(`{"a":1,"b":[{"c":true,"d":null},"x"]}`),
		"extra member": json.RawMessage(`{"a":1,"b":["x",{"c":true,"d":null}],"e":0}`),
		"no members":   json.RawMessage(`{}`),
	} {
		if fp(quote, args) == base {
			t.Errorf("%s: the same fingerprint", name)
		}
	}
	if fp(render, json.RawMessage(`{"a":1,"b":["x",{"d":null,"c":true}]}`)) == base {
		t.Error("another tool has the same fingerprint")
	}
	// Absent, null and empty arguments are one call.
	empty := fp(quote, json.RawMessage(`{}`))
	for name, args := range map[string]any{"nil": nil, "empty": json.RawMessage(``), "null": json.RawMessage(` null `),
		"nil map": map[string]any(nil), "token only": json.RawMessage(`{"skyfire-pay-id":"eyT"}`)} {
		if fp(quote, args) != empty {
			t.Errorf("%s: not the fingerprint of {}", name)
		}
	}
	for name, args := range map[string]any{"array": json.RawMessage(`[1]`), "string": json.RawMessage(`"a"`),
		"broken": json.RawMessage(`{"a":`), "trailing": json.RawMessage(`{} {}`), "func": func() {}, "slice": []int{1}} {
		if _, _, err := quote.Idempotency(meta, args); !errors.Is(err, mcpgate.ErrArgumentsNotObject) {
			t.Errorf("%s: error %v", name, err)
		}
	}
}

// ErrorResult describes idempotency errors in their own shape, with a
// retry delay for a conflict, and every other error as a refusal.
func TestErrorResult(t *testing.T) {
	t.Parallel()
	g, s := newGate(t, mcpgate.Config{})
	quote := g.Tool("quote")
	tok := s.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
	keyed := func(args string) middleware.Input {
		key, fp, err := quote.Idempotency(map[string]any{mcpgate.IdempotencyMetaKey: "k1"}, json.RawMessage(args))
		if err != nil {
			t.Fatal(err)
		}
		return middleware.Input{Token: tok, IdempotencyKey: key, Fingerprint: fp}
	}
	first, err := g.Authorize(t.Context(), quote, keyed(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	_, conflict := g.Authorize(t.Context(), quote, keyed(`{"n":1}`))
	first.Abandon()
	if err := mcpgate.Finish(t.Context(), &first, nil); err != nil {
		t.Fatal(err)
	}
	first, err = g.Authorize(t.Context(), quote, keyed(`{"n":1}`))
	if err != nil {
		t.Fatalf("the key was not released: %v", err)
	}
	if _, err := first.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := mcpgate.Finish(t.Context(), &first, map[string]any{"content": []any{}}); err != nil {
		t.Fatal(err)
	}
	_, reused := g.Authorize(t.Context(), quote, keyed(`{"n":2}`))
	_, _, invalid := quote.Idempotency(map[string]any{mcpgate.IdempotencyMetaKey: "a b"}, nil)

	for _, tc := range []struct {
		err  error
		want string
	}{
		{conflict, `{"error":"idempotency_conflict","message":"ERROR: A call with this idempotency key is still in progress, or its payment is being reconciled. Retry in 1 s with the same key; do not pay again.","retryAfterSeconds":1}`},
		{reused, `{"error":"idempotency_key_reused","message":"ERROR: This idempotency key was used for a call of this tool with other arguments. Use a new key for a new call."}`},
		{invalid, `{"error":"idempotency_key_invalid","message":"ERROR: The idempotency key in _meta[\"xyz.skyfire/idempotency-key\"] is invalid: send a string of 1 to 255 visible ASCII characters."}`},
	} {
		text, sc := g.ErrorResult(tc.err)
		if got := mustJSON(sc); got != tc.want {
			t.Errorf("%v:\n got %s\nwant %s", tc.err, got, tc.want)
		}
		if d, ok := sc.(*mcpgate.IdempotencyDetail); !ok || text != d.Message {
			t.Errorf("%v: text %q for %#v", tc.err, text, sc)
		}
	}
	if n := len(s.Issuer.ChargesFor(kyapaytest.TokenID(tok))); n != 1 {
		t.Errorf("%d charges, want 1", n)
	}
	// Any other error is a refusal.
	text, sc := g.ErrorResult(kyapay.ErrTokenMissing)
	if d, ok := sc.(middleware.RefusalDetail); !ok || d.Error != kyapay.CodeTokenMissing || text != d.Message || d.Argument != mcpgate.DefaultArgument {
		t.Errorf("refusal: %q %#v", text, sc)
	}
}

// A call whose result was stored is replayed: the stored bytes, no charge,
// and ReplayMeta marks it and adds the receipt it lacks.
func TestReplay(t *testing.T) {
	t.Parallel()
	g, s := newGate(t, mcpgate.Config{})
	quote := g.Tool("quote")
	tok := s.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
	key, fp, err := quote.Idempotency(map[string]any{mcpgate.IdempotencyMetaKey: "k1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := middleware.Input{Token: tok, IdempotencyKey: key, Fingerprint: fp}
	grant, err := g.Authorize(t.Context(), quote, in)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := grant.Replay(); ok {
		t.Fatal("the first call is a replay")
	}
	rc, err := grant.Commit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	result := map[string]any{"content": []any{map[string]any{"type": "text", "text": "q"}}, "_meta": mcpgate.ReceiptMeta(map[string]any{"trace": "t1"}, rc)}
	if err := mcpgate.Finish(t.Context(), &grant, result); err != nil {
		t.Fatal(err)
	}
	again, err := g.Authorize(t.Context(), quote, in)
	if err != nil {
		t.Fatal(err)
	}
	stored, ok := again.Replay()
	if !ok || string(stored) != mustJSON(result) {
		t.Fatalf("replay %v: %s, want %s", ok, stored, mustJSON(result))
	}
	if n := len(s.Issuer.ChargesFor(kyapaytest.TokenID(tok))); n != 1 {
		t.Errorf("%d charges, want 1", n)
	}

	var decoded struct {
		Meta map[string]any `json:"_meta"`
	}
	if err := json.Unmarshal(stored, &decoded); err != nil {
		t.Fatal(err)
	}
	orig := maps.Clone(decoded.Meta)
	meta := mcpgate.ReplayMeta(decoded.Meta, &again)
	if !maps.EqualFunc(decoded.Meta, orig, func(a, b any) bool { return mustJSON(a) == mustJSON(b) }) {
		t.Error("ReplayMeta changed its argument")
	}
	if got := mustJSON(meta); got != `{"trace":"t1","xyz.skyfire/receipt":{"amountCharged":"0.01","remainingBalance":"0.99"},"xyz.skyfire/replayed":true}` {
		t.Errorf("replayed _meta %s", got)
	}
	// A stored result without a receipt gets the earlier charge's.
	if got := mustJSON(mcpgate.ReplayMeta(nil, &again)); got != `{"xyz.skyfire/receipt":{"amountCharged":"0.01"},"xyz.skyfire/replayed":true}` {
		t.Errorf("replayed _meta without a receipt: %s", got)
	}
	if got := mustJSON(mcpgate.ReplayMeta(nil, nil)); got != `{"xyz.skyfire/replayed":true}` {
		t.Errorf("without a grant: %s", got)
	}
}

// FuzzIdempotencyArguments: arguments are a JSON object (or empty, or
// null) exactly when they fingerprint; the fingerprint ignores white
// space, member order and the token argument; it never panics.
func FuzzIdempotencyArguments(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"b":[1,2,{"c":"\u00e9"}],"a":null}`, `{"skyfire-pay-id":"t","x":1e400}`,
		`null`, ``, ` `, `[]`, `"s"`, `{"a":1}x`, `{"a":"\ud800"}`, `{"a":1,"a":2}`, `{"<":"&"}`} {
		f.Add([]byte(s))
	}
	g, _ := newGate(f, mcpgate.Config{})
	quote := g.Tool("quote")
	meta := map[string]any{mcpgate.IdempotencyMetaKey: "k"}
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, fp, err := quote.Idempotency(meta, json.RawMessage(raw))
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		isObj := json.Valid(raw) && dec.Decode(&v) == nil
		obj, isMap := v.(map[string]any)
		isObj = isObj && (isMap || v == nil) || strings.Trim(string(raw), " \t\r\n") == ""
		if err != nil {
			if isObj || !errors.Is(err, mcpgate.ErrArgumentsNotObject) {
				t.Fatalf("%q: %v", raw, err)
			}
			return
		}
		if !isObj {
			t.Fatalf("fingerprinted %q", raw)
		}
		// Decoded, with a token member added, and encoded again (members
		// sorted, compact, numbers as written): the same call.
		with := maps.Clone(obj)
		if with == nil {
			with = map[string]any{}
		}
		with[mcpgate.DefaultArgument] = "eyT"
		_, fp2, err := quote.Idempotency(meta, with)
		if err != nil {
			t.Fatalf("%q re-encoded: %v", raw, err)
		}
		if fp2 != fp {
			t.Fatalf("%q: re-encoded call has another fingerprint", raw)
		}
	})
}
