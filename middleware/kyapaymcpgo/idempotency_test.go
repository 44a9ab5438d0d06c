package kyapaymcpgo_test

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcpgo"
)

// The two ways a server gates its tools.
var modes = map[string]envOpts{"install": {}, "per-tool": {perTool: true}}

// keyed is _meta with the idempotency key k.
func keyed(k string) map[string]any { return map[string]any{kyapaymcpgo.IdempotencyMetaKey: k} }

// metaOf returns the fields of a result's _meta.
func metaOf(res *mcp.CallToolResult) map[string]any {
	if res.Meta == nil {
		return nil
	}
	return res.Meta.AdditionalFields
}

// withoutReplayed returns the JSON of res without the replayed mark, and
// whether res carried it, true.
func withoutReplayed(t testing.TB, res *mcp.CallToolResult) (string, bool) {
	t.Helper()
	cp := *res
	fields := maps.Clone(metaOf(res))
	mark, ok := fields[kyapaymcpgo.ReplayedMetaKey]
	delete(fields, kyapaymcpgo.ReplayedMetaKey)
	cp.Meta = nil
	if len(fields) > 0 {
		cp.Meta = &mcp.Meta{AdditionalFields: fields}
	}
	return string(mustJSON(t, cp)), ok && mark == true
}

// structuredOf decodes a result's structuredContent as a JSON object.
func structuredOf(t testing.TB, res *mcp.CallToolResult) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(mustJSON(t, res.StructuredContent), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A retry with the same key gets the first result, marked as replayed,
// without running the tool or charging again, wherever the token travels.
func TestIdempotentRetryReplays(t *testing.T) {
	t.Parallel()
	for mode, o := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, o)
			c := e.connect(t)
			for _, tc := range []struct {
				tool string
				args map[string]any
				want string
			}{
				{"quote", map[string]any{"symbol": "ACME"}, "quote ACME for "},
				{"render", map[string]any{}, "rendered, paid 0.01"},
				{"typed", map[string]any{"city": "Oslo"}, "sunny in Oslo"},
			} {
				tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
				args := maps.Clone(tc.args)
				args[kyapaymcpgo.DefaultArgument] = tok
				key := keyed("k-" + tc.tool)
				first := e.call(t, c, tc.tool, call{args: args, extra: key})
				if first.IsError || !strings.Contains(text(first), tc.want) {
					t.Fatalf("%s: first call: %s", tc.tool, mustJSON(t, first))
				}
				want, marked := withoutReplayed(t, first)
				if r, _ := receipt(first); marked || r["amountCharged"] != "0.01" {
					t.Fatalf("%s: first call marked %v, receipt %v", tc.tool, marked, r)
				}
				for name, cl := range map[string]call{
					"the same call":   {args: args, extra: key},
					"token in header": {args: tc.args, header: tok, extra: key},
					"token in _meta":  {args: tc.args, meta: tok, extra: key},
				} {
					got, marked := withoutReplayed(t, e.call(t, c, tc.tool, cl))
					if !marked || got != want {
						t.Errorf("%s: %s: marked %v:\n got %s\nwant %s", tc.tool, name, marked, got, want)
					}
				}
				if n, runs := len(e.Issuer.ChargesFor(kyapaytest.TokenID(tok))), e.rec.count(tc.tool); n != 1 || runs != 1 {
					t.Errorf("%s: %d charges, %d runs; want 1 and 1", tc.tool, n, runs)
				}
			}
		})
	}
}

// The same key with other arguments is refused without running or
// charging; a key that is not valid too, before the token is looked at.
// Identity and free tools ignore the key.
func TestIdempotencyKeyReusedOrInvalid(t *testing.T) {
	t.Parallel()
	for mode, o := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, o)
			c := e.connect(t)
			tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
			if r := e.call(t, c, "quote", call{args: map[string]any{"symbol": "A", kyapaymcpgo.DefaultArgument: tok}, extra: keyed("k1")}); r.IsError {
				t.Fatalf("first call: %s", text(r))
			}
			r := e.call(t, c, "quote", call{args: map[string]any{"symbol": "B", kyapaymcpgo.DefaultArgument: tok}, extra: keyed("k1")})
			if d := structuredOf(t, r); !r.IsError || d["error"] != string(middleware.CodeIdempotencyKeyReused) || d["retryAfterSeconds"] != nil ||
				text(r) != d["message"] || !strings.Contains(text(r), "other arguments") {
				t.Errorf("other arguments: %s", mustJSON(t, r))
			}
			for name, meta := range map[string]map[string]any{
				"number": {kyapaymcpgo.IdempotencyMetaKey: 42},
				"space":  keyed("a b"),
				"long":   keyed(strings.Repeat("k", 256)),
			} {
				for _, tk := range []string{tok, ""} {
					args := map[string]any{"symbol": "A"}
					if tk != "" {
						args[kyapaymcpgo.DefaultArgument] = tk
					}
					r := e.call(t, c, "quote", call{args: args, extra: meta})
					if d := structuredOf(t, r); !r.IsError || d["error"] != string(middleware.CodeIdempotencyKeyInvalid) ||
						!strings.Contains(text(r), `_meta["xyz.skyfire/idempotency-key"]`) {
						t.Errorf("%s key, token %v: %s", name, tk != "", mustJSON(t, r))
					}
				}
			}
			if n, runs := e.Issuer.ChargeCount(), e.rec.count("quote"); n != 1 || runs != 1 {
				t.Errorf("%d charges, %d runs; want 1 and 1", n, runs)
			}
			kya := e.Issuer.Mint(kyapay.TypeKYA, kyapaytest.Email("a@b.c"))
			for i := 0; i < 2; i++ {
				r := e.call(t, c, "whoami", call{args: map[string]any{kyapaymcpgo.DefaultArgument: kya}, extra: map[string]any{kyapaymcpgo.IdempotencyMetaKey: 42}})
				if r.IsError || text(r) != "a@b.c" || metaOf(r)[kyapaymcpgo.ReplayedMetaKey] != nil {
					t.Errorf("whoami: %s", mustJSON(t, r))
				}
				if r := e.call(t, c, "echo", call{args: map[string]any{"text": "hi"}, extra: keyed("k1")}); r.IsError || metaOf(r)[kyapaymcpgo.ReplayedMetaKey] != nil {
					t.Errorf("echo: %s", mustJSON(t, r))
				}
			}
			if e.rec.count("whoami") != 2 || e.rec.count("echo") != 2 {
				t.Errorf("whoami ran %d times, echo %d; want 2 each", e.rec.count("whoami"), e.rec.count("echo"))
			}
		})
	}
}

// A duplicate while the first call runs is told to retry later, and runs
// nothing; the first call completes and is charged once; a later retry
// gets its result.
func TestIdempotencyConflictWhileRunning(t *testing.T) {
	t.Parallel()
	for mode, o := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, o)
			entered, release := make(chan struct{}), make(chan struct{})
			var runs atomic.Int32
			e.rec.setHook(func(name string) {
				if name == "quote" && runs.Add(1) == 1 {
					close(entered)
					<-release
				}
			})
			c := e.connect(t)
			tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
			cl := call{args: map[string]any{"symbol": "A", kyapaymcpgo.DefaultArgument: tok}, extra: keyed("k1")}
			done := make(chan *mcp.CallToolResult, 1)
			go func() {
				res, err := e.callErr(c, "quote", cl)
				if err != nil {
					t.Errorf("first call: %v", err)
				}
				done <- res
			}()
			<-entered
			r := e.call(t, c, "quote", cl)
			d := structuredOf(t, r)
			if !r.IsError || d["error"] != string(middleware.CodeIdempotencyConflict) || d["retryAfterSeconds"] != 1.0 ||
				!strings.Contains(text(r), "do not pay again") {
				t.Errorf("duplicate in flight: %s", mustJSON(t, r))
			}
			if e.Issuer.ChargeCount() != 0 {
				t.Error("charged before the first call completed")
			}
			close(release)
			first := <-done
			if first == nil || first.IsError {
				t.Fatalf("first call: %v", first)
			}
			want, _ := withoutReplayed(t, first)
			got, marked := withoutReplayed(t, e.call(t, c, "quote", cl))
			if !marked || got != want {
				t.Errorf("retry after completion marked %v:\n got %s\nwant %s", marked, got, want)
			}
			if n, runs := e.Issuer.ChargeCount(), e.rec.count("quote"); n != 1 || runs != 1 {
				t.Errorf("%d charges, %d runs; want 1 and 1", n, runs)
			}
		})
	}
}

// A call that was not charged is not stored: a refused call (no token), a
// failed tool, a Go error. A retry under the same key runs and is charged
// normally.
func TestIdempotencyUnchargedNotStored(t *testing.T) {
	t.Parallel()
	for mode, o := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, o)
			c := e.connect(t)
			tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
			r := e.call(t, c, "quote", call{args: map[string]any{"symbol": "A"}, extra: keyed("k1")})
			if d := detail(t, r); !r.IsError || d.Error != kyapay.CodeTokenMissing {
				t.Fatalf("without a token: %s", mustJSON(t, r))
			}
			r = e.call(t, c, "quote", call{args: map[string]any{"symbol": "A", kyapaymcpgo.DefaultArgument: tok}, extra: keyed("k1")})
			if rc, ok := receipt(r); r.IsError || metaOf(r)[kyapaymcpgo.ReplayedMetaKey] != nil || !ok || rc["amountCharged"] != "0.01" {
				t.Errorf("retry with the token: %s", mustJSON(t, r))
			}
			if n, runs := e.Issuer.ChargeCount(), e.rec.count("quote"); n != 1 || runs != 1 {
				t.Errorf("%d charges, %d runs; want 1 and 1", n, runs)
			}
			for i := 0; i < 2; i++ {
				r := e.call(t, c, "fail", call{args: map[string]any{kyapaymcpgo.DefaultArgument: tok}, extra: keyed("k2")})
				if !r.IsError || metaOf(r)[kyapaymcpgo.ReplayedMetaKey] != nil || text(r) != "upstream failed" {
					t.Errorf("fail %d: %s", i, mustJSON(t, r))
				}
				if _, err := e.callErr(c, "boom", call{args: map[string]any{kyapaymcpgo.DefaultArgument: tok}, extra: keyed("k3")}); err == nil {
					t.Errorf("boom %d: no error", i)
				}
			}
			if e.rec.count("fail") != 2 || e.rec.count("boom") != 2 || e.Issuer.ChargeCount() != 1 {
				t.Errorf("fail ran %d times, boom %d, %d charges; want 2, 2, 1", e.rec.count("fail"), e.rec.count("boom"), e.Issuer.ChargeCount())
			}
		})
	}
}

// Without a key nothing changes: each call is a new purchase. The tool
// sees the key, which is not secret, and never the token.
func TestNoIdempotencyKeyEachCallPays(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.connect(t)
	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
	for i := 0; i < 2; i++ {
		r := e.call(t, c, "quote", call{args: map[string]any{"symbol": "A", kyapaymcpgo.DefaultArgument: tok}, extra: map[string]any{"trace": "t"}})
		if _, ok := receipt(r); r.IsError || metaOf(r)[kyapaymcpgo.ReplayedMetaKey] != nil || !ok {
			t.Errorf("call %d: %s", i, mustJSON(t, r))
		}
	}
	if n, runs := e.Issuer.ChargeCount(), e.rec.count("quote"); n != 2 || runs != 2 {
		t.Errorf("%d charges, %d runs; want 2 and 2", n, runs)
	}
	e.call(t, c, "quote", call{args: map[string]any{kyapaymcpgo.DefaultArgument: tok}, extra: keyed("k9")})
	e.rec.mu.Lock()
	last := e.rec.metas[len(e.rec.metas)-1]
	e.rec.mu.Unlock()
	if last[kyapaymcpgo.IdempotencyMetaKey] != "k9" {
		t.Errorf("the tool's _meta: %v", last)
	}
	if l := e.rec.leaks(); len(l) != 0 {
		t.Errorf("the handler saw the token in %v", l)
	}
}

// A charge whose outcome was unknown is found made when the agent retries
// under the same key: the result kept with it is delivered, with the
// receipt, and the tool does not run again.
func TestIdempotencyUnknownChargeFoundMade(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{mw: []func(*middleware.Config){func(c *middleware.Config) {
		c.ChargeTimeout = time.Second // ends the held charge; long enough for the listing that resolves it
	}}})
	c := e.connect(t)
	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
	cl := call{args: map[string]any{"symbol": "A", kyapaymcpgo.DefaultArgument: tok}, extra: keyed("k1")}
	e.Issuer.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, TimeoutAfterCharge: true, Times: 1})
	r := e.call(t, c, "quote", cl)
	if d := detail(t, r); !r.IsError || d.Error != kyapay.CodeChargeUnknown {
		t.Fatalf("first call: %s", mustJSON(t, r))
	}
	r = e.call(t, c, "quote", cl)
	if r.IsError || metaOf(r)[kyapaymcpgo.ReplayedMetaKey] != true || !strings.HasPrefix(text(r), "quote A for ") {
		t.Errorf("retry: %s", mustJSON(t, r))
	}
	if rc, _ := receipt(r); rc["amountCharged"] != "0.01" {
		t.Errorf("retry receipt: %v", rc)
	}
	if n, runs := e.Issuer.ChargeCount(), e.rec.count("quote"); n != 1 || runs != 1 {
		t.Errorf("%d charges, %d runs; want 1 and 1", n, runs)
	}
}

// A task tool is idempotent too: the retry's task gets the stored result.
func TestIdempotentTaskReplays(t *testing.T) {
	t.Parallel()
	var ran atomic.Int32
	e := newEnv(t, envOpts{
		server: []server.ServerOption{server.WithTaskCapabilities(true, true, true)},
		extraTools: func(s *server.MCPServer, g *kyapaymcpgo.Gate) {
			s.AddTaskTools(g.MustTaskTool(mcp.NewTool("long", mcp.WithTaskSupport(mcp.TaskSupportRequired)), reqPay,
				func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CreateTaskResult, error) {
					n := ran.Add(1)
					return &mcp.CreateTaskResult{Content: []mcp.Content{mcp.NewTextContent("report " + string(rune('0'+n)))}}, nil
				}))
		},
	})
	c := e.connect(t, client.WithLegacyProtocolOnly())
	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
	args := map[string]any{kyapaymcpgo.DefaultArgument: tok}
	first := callTaskMeta(t, c, "long", args, keyed("k1"))
	if first.IsError || taskText(first) != "report 1" {
		t.Fatalf("first task: %+v", first)
	}
	again := callTaskMeta(t, c, "long", args, keyed("k1"))
	if again.IsError || taskText(again) != "report 1" || again.Meta == nil || again.Meta.AdditionalFields[kyapaymcpgo.ReplayedMetaKey] != true {
		t.Errorf("retried task: %s", mustJSON(t, again))
	}
	if r, _ := again.Meta.AdditionalFields[kyapaymcpgo.ReceiptMetaKey].(map[string]any); r["amountCharged"] != "0.01" {
		t.Errorf("retried task receipt: %v", again.Meta.AdditionalFields)
	}
	if ran.Load() != 1 || e.Issuer.ChargeCount() != 1 {
		t.Errorf("%d runs, %d charges; want 1 and 1", ran.Load(), e.Issuer.ChargeCount())
	}
}

// callTaskMeta is callTask with a request _meta.
func callTaskMeta(t *testing.T, c *client.Client, name string, args, meta map[string]any) *mcp.TaskResultResult {
	t.Helper()
	ctx := context.Background()
	resp, err := c.GetTransport().SendRequest(ctx, transport.JSONRPCRequest{
		JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(1000 + taskID.Add(1)), Method: string(mcp.MethodToolsCall),
		Params: map[string]any{"name": name, "arguments": args, "task": map[string]any{}, "_meta": meta},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Error != nil {
		t.Fatalf("tools/call as a task: %+v", resp.Error)
	}
	var created mcp.CreateTaskResult
	if err := json.Unmarshal(resp.Result, &created); err != nil || created.Task.TaskId == "" {
		t.Fatalf("tools/call as a task: %s (%v)", resp.Result, err)
	}
	res, err := c.TaskResult(ctx, mcp.TaskResultRequest{Params: mcp.TaskResultParams{TaskId: created.Task.TaskId}})
	if err != nil {
		t.Fatalf("tasks/result: %v", err)
	}
	return res
}

// Calls that ask for input over several rounds: a charge-after call is
// stored with its final round and replayed; a ChargeBefore call that a
// legacy client resolves inside one request pays in its first round,
// whose result asks for input and is not stored, so a retry runs the tool
// again without charging.
func TestIdempotentMultiRound(t *testing.T) {
	t.Parallel()
	for _, era := range []string{"legacy", "modern"} {
		t.Run(era, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{})
			opts := []client.ClientOption{client.WithElicitationHandler(&elicitYes{})}
			if era == "legacy" {
				opts = append(opts, client.WithLegacyProtocolOnly())
			}
			c := e.connect(t, opts...)
			tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
			cl := call{args: map[string]any{kyapaymcpgo.DefaultArgument: tok}, extra: keyed("k1")}
			first := e.call(t, c, "confirm", cl)
			if first.IsError || text(first) != "confirmed" {
				t.Fatalf("first: %s", mustJSON(t, first))
			}
			want, _ := withoutReplayed(t, first)
			got, marked := withoutReplayed(t, e.call(t, c, "confirm", cl))
			if !marked || got != want {
				t.Errorf("retry marked %v:\n got %s\nwant %s", marked, got, want)
			}
			if n, rounds := e.Issuer.ChargeCount(), e.rec.count("confirm"); n != 1 || rounds != 2 {
				t.Errorf("%d charges, %d rounds; want 1 and 2", n, rounds)
			}
		})
	}
	t.Run("charge before, legacy", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOpts{})
		c := e.connect(t, client.WithElicitationHandler(&elicitYes{}), client.WithLegacyProtocolOnly())
		cl := call{args: map[string]any{"ask": "yes", kyapaymcpgo.DefaultArgument: e.Issuer.Mint(kyapay.TypePay)}, extra: keyed("k1")}
		for i := 0; i < 2; i++ {
			res := e.call(t, c, "render", cl)
			if r, _ := receipt(res); res.IsError || text(res) != "rendered, paid 0.01" || r["amountCharged"] != "0.01" {
				t.Errorf("call %d: %s", i, mustJSON(t, res))
			}
		}
		if n, rounds := e.Issuer.ChargeCount(), e.rec.count("render"); n != 1 || rounds != 4 {
			t.Errorf("%d charges, %d rounds; want 1 and 4", n, rounds)
		}
	})
}
