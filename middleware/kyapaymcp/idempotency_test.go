package kyapaymcp_test

import (
	"encoding/json"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcp"
)

// keyMeta is a request _meta with the idempotency key k.
func keyMeta(k string) mcp.Meta { return mcp.Meta{kyapaymcp.IdempotencyMetaKey: k} }

// withoutReplayed returns the JSON of r without the replayed mark, and
// whether r carried it, true.
func withoutReplayed(t testing.TB, r *mcp.CallToolResult) (string, bool) {
	t.Helper()
	cp := *r
	cp.Meta = maps.Clone(r.Meta)
	mark, ok := cp.Meta[kyapaymcp.ReplayedMetaKey]
	delete(cp.Meta, kyapaymcp.ReplayedMetaKey)
	if len(cp.Meta) == 0 {
		cp.Meta = nil
	}
	b, err := json.Marshal(&cp)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), ok && mark == true
}

// A retry with the same key gets the first result, marked as replayed,
// without running the tool or charging again, wherever the token travels.
func TestIdempotentRetryReplays(t *testing.T) {
	for _, inst := range installs {
		t.Run(inst.String(), func(t *testing.T) {
			h := newHarness(t, harnessOpts{install: inst})
			c := h.connect(t, clientOpts{})
			for _, tc := range []struct {
				tool string
				args map[string]any
				want string
			}{
				{"quote", map[string]any{"symbol": "ACME"}, "quote for "},
				{"before", map[string]any{"symbol": "ACME"}, "receipt=true amount=0.01"},
				{"typed", map[string]any{"city": "Oslo"}, "quote for Oslo"},
			} {
				tok := h.seller.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
				args := maps.Clone(tc.args)
				args[kyapaymcp.DefaultArgument] = tok
				first := c.call(t, tc.tool, args, keyMeta("k-"+tc.tool))
				if first.IsError || !strings.Contains(resultText(first)+string(mustMarshal(t, first.StructuredContent)), tc.want) {
					t.Fatalf("%s: first call: %s", tc.tool, mustMarshal(t, first))
				}
				want, marked := withoutReplayed(t, first)
				if marked || receiptOf(t, first)["amountCharged"] != "0.01" {
					t.Fatalf("%s: first call marked %v, receipt %v", tc.tool, marked, receiptOf(t, first))
				}
				// The same call; then the token in the header and the _meta.
				retries := []func() *mcp.CallToolResult{
					func() *mcp.CallToolResult { return c.call(t, tc.tool, args, keyMeta("k-"+tc.tool)) },
					func() *mcp.CallToolResult {
						c.setHeader(tok)
						defer c.setHeader("")
						return c.call(t, tc.tool, tc.args, keyMeta("k-"+tc.tool))
					},
					func() *mcp.CallToolResult {
						m := keyMeta("k-" + tc.tool)
						m[kyapaymcp.DefaultMetaKey] = tok
						return c.call(t, tc.tool, tc.args, m)
					},
				}
				for i, retry := range retries {
					got, marked := withoutReplayed(t, retry())
					if !marked || got != want {
						t.Errorf("%s: retry %d marked %v:\n got %s\nwant %s", tc.tool, i, marked, got, want)
					}
				}
				if n, runs := h.charges(tok), h.rec.calls(tc.tool); n != 1 || runs != 1 {
					t.Errorf("%s: %d charges, %d runs; want 1 and 1", tc.tool, n, runs)
				}
			}
		})
	}
}

// The same key with other arguments is refused without running or
// charging; a key that is not valid too, before the token is looked at.
func TestIdempotencyKeyReusedOrInvalid(t *testing.T) {
	for _, inst := range installs {
		t.Run(inst.String(), func(t *testing.T) {
			h := newHarness(t, harnessOpts{install: inst})
			c := h.connect(t, clientOpts{})
			tok := h.seller.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
			if r := c.call(t, "quote", map[string]any{"symbol": "A", kyapaymcp.DefaultArgument: tok}, keyMeta("k1")); r.IsError {
				t.Fatalf("first call: %s", resultText(r))
			}
			r := c.call(t, "quote", map[string]any{"symbol": "B", kyapaymcp.DefaultArgument: tok}, keyMeta("k1"))
			if d := structured(t, r); !r.IsError || d["error"] != string(middleware.CodeIdempotencyKeyReused) || d["retryAfterSeconds"] != nil ||
				resultText(r) != d["message"] || !strings.Contains(resultText(r), "other arguments") {
				t.Errorf("other arguments: %s", mustMarshal(t, r))
			}
			for name, meta := range map[string]mcp.Meta{
				"number": {kyapaymcp.IdempotencyMetaKey: 42},
				"space":  keyMeta("a b"),
				"long":   keyMeta(strings.Repeat("k", 256)),
			} {
				for _, tk := range []string{tok, ""} {
					args := map[string]any{"symbol": "A"}
					if tk != "" {
						args[kyapaymcp.DefaultArgument] = tk
					}
					r := c.call(t, "quote", args, meta)
					if d := structured(t, r); !r.IsError || d["error"] != string(middleware.CodeIdempotencyKeyInvalid) ||
						!strings.Contains(resultText(r), `_meta["xyz.skyfire/idempotency-key"]`) {
						t.Errorf("%s key, token %v: %s", name, tk != "", mustMarshal(t, r))
					}
				}
			}
			if n, runs := h.charges(tok), h.rec.calls("quote"); n != 1 || runs != 1 {
				t.Errorf("%d charges, %d runs; want 1 and 1", n, runs)
			}
			// Identity and free tools ignore the key, even one not valid.
			kya := h.seller.Issuer.Mint(kyapay.TypeKYA, kyapaytest.Human(map[string]any{"email": "a@b.c"}))
			for i := 0; i < 2; i++ {
				if r := c.call(t, "whoami", map[string]any{kyapaymcp.DefaultArgument: kya}, mcp.Meta{kyapaymcp.IdempotencyMetaKey: 42}); r.IsError || resultText(r) != "a@b.c" || r.Meta[kyapaymcp.ReplayedMetaKey] != nil {
					t.Errorf("whoami: %s", mustMarshal(t, r))
				}
				if r := c.call(t, "echo", map[string]any{"x": 1}, keyMeta("k1")); r.IsError || r.Meta[kyapaymcp.ReplayedMetaKey] != nil {
					t.Errorf("echo: %s", mustMarshal(t, r))
				}
			}
			if h.rec.calls("whoami") != 2 || h.rec.calls("echo") != 2 {
				t.Errorf("whoami ran %d times, echo %d; want 2 each", h.rec.calls("whoami"), h.rec.calls("echo"))
			}
		})
	}
}

// A duplicate while the first call runs is told to retry later, and runs
// nothing; the first call completes and is charged once; a later retry
// gets its result.
func TestIdempotencyConflictWhileRunning(t *testing.T) {
	for _, inst := range installs {
		t.Run(inst.String(), func(t *testing.T) {
			h := newHarness(t, harnessOpts{install: inst})
			entered, release := make(chan struct{}), make(chan struct{})
			var runs atomic.Int32
			h.rec.setHook(func(name string) {
				if name == "quote" && runs.Add(1) == 1 {
					close(entered)
					<-release
				}
			})
			c := h.connect(t, clientOpts{})
			tok := h.seller.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
			args := map[string]any{"symbol": "A", kyapaymcp.DefaultArgument: tok}
			done := make(chan *mcp.CallToolResult, 1)
			go func() {
				res, err := c.CallTool(t.Context(), &mcp.CallToolParams{Name: "quote", Arguments: args, Meta: keyMeta("k1")})
				if err != nil {
					t.Errorf("first call: %v", err)
				}
				done <- res
			}()
			<-entered
			r := c.call(t, "quote", args, keyMeta("k1"))
			d := structured(t, r)
			if !r.IsError || d["error"] != string(middleware.CodeIdempotencyConflict) || d["retryAfterSeconds"] != 1.0 ||
				!strings.Contains(resultText(r), "do not pay again") {
				t.Errorf("duplicate in flight: %s", mustMarshal(t, r))
			}
			if h.charges(tok) != 0 {
				t.Error("charged before the first call completed")
			}
			close(release)
			first := <-done
			if first == nil || first.IsError || receiptOf(t, first) == nil {
				t.Fatalf("first call: %v", first)
			}
			want, _ := withoutReplayed(t, first)
			got, marked := withoutReplayed(t, c.call(t, "quote", args, keyMeta("k1")))
			if !marked || got != want {
				t.Errorf("retry after completion marked %v:\n got %s\nwant %s", marked, got, want)
			}
			if n, runs := h.charges(tok), h.rec.calls("quote"); n != 1 || runs != 1 {
				t.Errorf("%d charges, %d runs; want 1 and 1", n, runs)
			}
		})
	}
}

// A call that was not charged is not stored: a refused call (no token), a
// failed tool, a Go error. A retry under the same key runs and is charged
// normally.
func TestIdempotencyUnchargedNotStored(t *testing.T) {
	for _, inst := range installs {
		t.Run(inst.String(), func(t *testing.T) {
			h := newHarness(t, harnessOpts{install: inst})
			c := h.connect(t, clientOpts{})
			tok := h.seller.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
			r := c.call(t, "quote", map[string]any{"symbol": "A"}, keyMeta("k1"))
			if d := structured(t, r); !r.IsError || d["error"] != string(kyapay.CodeTokenMissing) {
				t.Fatalf("without a token: %s", mustMarshal(t, r))
			}
			r = c.call(t, "quote", map[string]any{"symbol": "A", kyapaymcp.DefaultArgument: tok}, keyMeta("k1"))
			if r.IsError || r.Meta[kyapaymcp.ReplayedMetaKey] != nil || receiptOf(t, r) == nil {
				t.Errorf("retry with the token: %s", mustMarshal(t, r))
			}
			if n, runs := h.charges(tok), h.rec.calls("quote"); n != 1 || runs != 1 {
				t.Errorf("%d charges, %d runs; want 1 and 1", n, runs)
			}
			for i := 0; i < 2; i++ {
				r := c.call(t, "fail", map[string]any{kyapaymcp.DefaultArgument: tok}, keyMeta("k2"))
				if !r.IsError || r.Meta[kyapaymcp.ReplayedMetaKey] != nil || resultText(r) != "upstream unavailable" {
					t.Errorf("fail %d: %s", i, mustMarshal(t, r))
				}
				if _, err := c.CallTool(t.Context(), &mcp.CallToolParams{Name: "crash", Arguments: map[string]any{kyapaymcp.DefaultArgument: tok}, Meta: keyMeta("k3")}); err == nil {
					t.Errorf("crash %d: no error", i)
				}
			}
			if h.rec.calls("fail") != 2 || h.rec.calls("crash") != 2 || h.charges(tok) != 1 {
				t.Errorf("fail ran %d times, crash %d, %d charges; want 2, 2, 1", h.rec.calls("fail"), h.rec.calls("crash"), h.charges(tok))
			}
		})
	}
}

// Without a key nothing changes: each call is a new purchase.
func TestNoIdempotencyKeyEachCallPays(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.connect(t, clientOpts{})
	tok := h.seller.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
	for i := 0; i < 2; i++ {
		r := c.call(t, "quote", map[string]any{"symbol": "A", kyapaymcp.DefaultArgument: tok}, mcp.Meta{"trace": "t"})
		if r.IsError || r.Meta[kyapaymcp.ReplayedMetaKey] != nil || receiptOf(t, r) == nil {
			t.Errorf("call %d: %s", i, mustMarshal(t, r))
		}
	}
	if n, runs := h.charges(tok), h.rec.calls("quote"); n != 2 || runs != 2 {
		t.Errorf("%d charges, %d runs; want 2 and 2", n, runs)
	}
	// The tool sees the key, which is not secret, and never the token.
	c.call(t, "quote", map[string]any{kyapaymcp.DefaultArgument: tok}, keyMeta("k9"))
	if m := h.rec.lastMeta("quote"); m[kyapaymcp.IdempotencyMetaKey] != "k9" {
		t.Errorf("the tool's _meta: %v", m)
	}
}

// A charge whose outcome was unknown is found made when the agent retries
// under the same key: the result kept with it is delivered, with the
// receipt, and the tool does not run again.
func TestIdempotencyUnknownChargeFoundMade(t *testing.T) {
	h := newHarness(t, harnessOpts{mwOpts: []func(*middleware.Config){func(c *middleware.Config) {
		c.ChargeTimeout = time.Second // ends the held charge; long enough for the listing that resolves it
	}}})
	c := h.connect(t, clientOpts{})
	tok := h.seller.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
	args := map[string]any{"symbol": "A", kyapaymcp.DefaultArgument: tok}
	h.seller.Issuer.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, TimeoutAfterCharge: true, Times: 1})
	r := c.call(t, "quote", args, keyMeta("k1"))
	if d := structured(t, r); !r.IsError || d["error"] != string(kyapay.CodeChargeUnknown) {
		t.Fatalf("first call: %s", mustMarshal(t, r))
	}
	r = c.call(t, "quote", args, keyMeta("k1"))
	if r.IsError || r.Meta[kyapaymcp.ReplayedMetaKey] != true || !strings.HasPrefix(resultText(r), "quote for ") {
		t.Errorf("retry: %s", mustMarshal(t, r))
	}
	if rc := receiptOf(t, r); rc["amountCharged"] != "0.01" {
		t.Errorf("retry receipt: %v", rc)
	}
	if n, runs := h.charges(tok), h.rec.calls("quote"); n != 1 || runs != 1 {
		t.Errorf("%d charges, %d runs; want 1 and 1", n, runs)
	}
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
