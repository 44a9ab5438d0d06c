package kyapaymcpgo_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcpgo"
)

// The requirements of the test tools.
var (
	reqPay    = kyapaymcpgo.Requirement{Requirement: middleware.Pay(middleware.FixedPrice("0.01"))}
	reqBefore = kyapaymcpgo.Requirement{Requirement: middleware.Pay(middleware.FixedPrice("0.01")), ChargeBefore: true}
	reqWhoami = kyapaymcpgo.Requirement{Requirement: middleware.Identity("email")}
)

// tools are the requirements of the test server's gated tools.
func tools() map[string]kyapaymcpgo.Requirement {
	return map[string]kyapaymcpgo.Requirement{
		"quote":   reqPay,
		"whoami":  reqWhoami,
		"fail":    reqPay,
		"boom":    reqPay,
		"typed":   reqPay,
		"confirm": reqPay,
		"render":  reqBefore,
	}
}

// recorder remembers what the handlers saw.
type recorder struct {
	mu    sync.Mutex
	calls map[string]int
	// args are the argument names each call saw, meta whether it saw a
	// token in _meta, raw whether RawArguments held the token argument.
	args []string
	seen []string
	// metas are the _meta fields each call saw.
	metas []map[string]any
	// hook, when set, runs in every call after it was recorded.
	hook func(name string)
}

// setHook makes every later call run hook.
func (r *recorder) setHook(hook func(name string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hook = hook
}

func (r *recorder) saw(req mcp.CallToolRequest) {
	r.mu.Lock()
	hook := r.hook
	defer func() {
		r.mu.Unlock()
		if hook != nil {
			hook(req.Params.Name)
		}
	}()
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	r.calls[req.Params.Name]++
	if req.Params.Meta != nil {
		r.metas = append(r.metas, req.Params.Meta.AdditionalFields)
	} else {
		r.metas = append(r.metas, nil)
	}
	var names []string
	for k := range req.GetArguments() {
		names = append(names, k)
	}
	sort.Strings(names)
	r.args = append(r.args, strings.Join(names, ","))
	if strings.Contains(string(req.Params.RawArguments), kyapaymcpgo.DefaultArgument) {
		r.seen = append(r.seen, "raw")
	}
	if req.Params.Meta != nil {
		for k := range req.Params.Meta.AdditionalFields {
			if strings.HasPrefix(k, "xyz.skyfire/") && k != kyapaymcpgo.IdempotencyMetaKey || k == kyapay.HeaderName {
				r.seen = append(r.seen, "meta:"+k)
			}
		}
	}
}

func (r *recorder) count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[name]
}

// leaks returns the token places a handler saw.
func (r *recorder) leaks() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, a := range r.args {
		if strings.Contains(a, kyapaymcpgo.DefaultArgument) {
			out = append(out, "arg")
		}
	}
	return append(out, r.seen...)
}

// Strict is the typed tool's input; its inferred schema has
// additionalProperties false.
type Strict struct {
	City string `json:"city"`
}

// addTools registers the test tools on s. g, when set, registers each
// gated tool through the gate's per-tool form with its requirement in
// reqs.
func addTools(t testing.TB, s *server.MCPServer, rec *recorder, g *kyapaymcpgo.Gate, reqs map[string]kyapaymcpgo.Requirement) {
	add := func(tl mcp.Tool, h server.ToolHandlerFunc) {
		h0 := h
		h = func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			rec.saw(req)
			return h0(ctx, req)
		}
		if g != nil && tl.Name != "echo" {
			st, err := g.Tool(tl, reqs[tl.Name], h)
			if err != nil {
				t.Fatal(err)
			}
			s.AddTools(st)
			return
		}
		s.AddTool(tl, h)
	}
	add(mcp.NewTool("quote", mcp.WithDescription("A price quote."), mcp.WithString("symbol")),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			c, _ := kyapay.FromContext(ctx)
			return mcp.NewToolResultText("quote " + req.GetString("symbol", "?") + " for " + c.Subject), nil
		})
	add(mcp.NewTool("whoami"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		c, _ := kyapay.FromContext(ctx)
		email, _ := c.Human.Field("email")
		return mcp.NewToolResultText(email), nil
	})
	add(mcp.NewTool("echo", mcp.WithString("text")), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText(req.GetString("text", "")), nil
	})
	add(mcp.NewTool("fail"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultError("upstream failed"), nil
	})
	add(mcp.NewTool("boom"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return nil, errors.New("boom")
	})
	add(mcp.NewTool("typed", mcp.WithInputSchema[Strict]()), mcp.NewStructuredToolHandler(
		func(ctx context.Context, req mcp.CallToolRequest, in Strict) (map[string]string, error) {
			return map[string]string{"weather": "sunny in " + in.City}, nil
		}))
	add(mcp.NewTool("confirm"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		if server.ElicitationResponse(req.Params.InputResponses, "ok") == nil {
			return server.NewInputRequestBuilder("round-1").
				Elicit("ok", mcp.ElicitationParams{Message: "Proceed?", RequestedSchema: map[string]any{"type": "object"}}).
				ToolResult(), nil
		}
		return mcp.NewToolResultText("confirmed"), nil
	})
	add(mcp.NewTool("render"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		rc, ok := middleware.ReceiptFromContext(ctx)
		if !ok {
			return mcp.NewToolResultError("no receipt before the handler"), nil
		}
		if server.ElicitationResponse(req.Params.InputResponses, "ok") == nil && req.GetString("ask", "") == "yes" {
			return server.NewInputRequestBuilder("").
				Elicit("ok", mcp.ElicitationParams{Message: "Proceed?", RequestedSchema: map[string]any{"type": "object"}}).
				ToolResult(), nil
		}
		return mcp.NewToolResultText("rendered, paid " + rc.AmountCharged.String()), nil
	})
}

// env is a seller with an mcp-go server behind real streamable HTTP.
type env struct {
	*sellertest.Seller
	gate *kyapaymcpgo.Gate
	mcp  *server.MCPServer
	rec  *recorder
	url  string
}

type envOpts struct {
	cfg        func(*kyapaymcpgo.Config)
	mw         []func(*middleware.Config)
	server     []server.ServerOption
	http       []server.StreamableHTTPOption
	noInstall  bool
	perTool    bool
	extraTools func(*server.MCPServer, *kyapaymcpgo.Gate)
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	seller := sellertest.New(t, o.mw...)
	// Gated tools are listed in Config.Tools, or registered with their
	// requirement through the per-tool form.
	cfg := kyapaymcpgo.Config{Tools: tools()}
	if o.perTool {
		cfg.Tools = map[string]kyapaymcpgo.Requirement{}
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	g, err := kyapaymcpgo.New(seller.Middleware, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := server.NewMCPServer("test", "1.0.0", append([]server.ServerOption{server.WithToolCapabilities(true)}, o.server...)...)
	rec := &recorder{}
	var wrap *kyapaymcpgo.Gate
	if o.perTool {
		wrap = g
	}
	addTools(t, s, rec, wrap, tools())
	if o.extraTools != nil {
		o.extraTools(s, g)
	}
	if !o.noInstall {
		g.Install(s)
	}
	quiet := server.WithStreamableHTTPLogger(slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(server.NewStreamableHTTPServer(s, append([]server.StreamableHTTPOption{quiet}, o.http...)...))
	t.Cleanup(srv.Close)
	return &env{Seller: seller, gate: g, mcp: s, rec: rec, url: srv.URL + "/mcp"}
}

// elicitYes accepts every elicitation.
type elicitYes struct{ n atomic.Int32 }

func (e *elicitYes) Elicit(context.Context, mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	e.n.Add(1)
	return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: mcp.ElicitationResponseActionAccept, Content: map[string]any{}}}, nil
}

// connect starts an mcp-go client on e's server and initializes it.
func (e *env) connect(t testing.TB, opts ...client.ClientOption) *client.Client {
	t.Helper()
	tr, err := transport.NewStreamableHTTP(e.url)
	if err != nil {
		t.Fatal(err)
	}
	c := client.NewClient(tr, opts...)
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Initialize(ctx, mcp.InitializeRequest{Params: mcp.InitializeParams{
		ProtocolVersion: mcp.LATEST_PROTOCOL_VERSION,
		ClientInfo:      mcp.Implementation{Name: "buyer", Version: "1"},
		Capabilities:    mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapability{}},
	}}); err != nil {
		t.Fatal(err)
	}
	return c
}

// call is one tool call's parameters: the token goes in the argument, the
// header (every line of headers), _meta[DefaultMetaKey] or _meta under the
// header name.
type call struct {
	args       map[string]any
	header     string
	headers    []string
	meta       string
	metaHeader string
	// extra are more _meta fields.
	extra map[string]any
}

func (e *env) call(t testing.TB, c *client.Client, name string, cl call) *mcp.CallToolResult {
	t.Helper()
	res, err := e.callErr(c, name, cl)
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	return res
}

func (e *env) callErr(c *client.Client, name string, cl call) (*mcp.CallToolResult, error) {
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = cl.args
	if cl.header != "" {
		cl.headers = append(cl.headers, cl.header)
	}
	if len(cl.headers) > 0 {
		req.Header = map[string][]string{}
		for _, h := range cl.headers {
			req.Header.Add(kyapay.HeaderName, h)
		}
	}
	if cl.meta != "" || cl.metaHeader != "" || cl.extra != nil {
		req.Params.Meta = &mcp.Meta{AdditionalFields: maps.Clone(cl.extra)}
		if req.Params.Meta.AdditionalFields == nil {
			req.Params.Meta.AdditionalFields = map[string]any{}
		}
		if cl.meta != "" {
			req.Params.Meta.AdditionalFields[kyapaymcpgo.DefaultMetaKey] = cl.meta
		}
		if cl.metaHeader != "" {
			req.Params.Meta.AdditionalFields[kyapay.HeaderName] = cl.metaHeader
		}
	}
	return c.CallTool(context.Background(), req)
}

// text returns the result's text content, joined.
func text(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// detail decodes a refusal's structuredContent.
func detail(t testing.TB, res *mcp.CallToolResult) middleware.RefusalDetail {
	t.Helper()
	var d middleware.RefusalDetail
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("structuredContent %s: %v", b, err)
	}
	return d
}

// receipt returns the receipt in the result's _meta.
func receipt(res *mcp.CallToolResult) (map[string]any, bool) {
	if res.Meta == nil {
		return nil, false
	}
	r, ok := res.Meta.AdditionalFields[kyapaymcpgo.ReceiptMetaKey].(map[string]any)
	return r, ok
}

// instantCharger answers every charge at once.
type instantCharger struct{ n atomic.Int64 }

func (c *instantCharger) Charge(_ context.Context, _ string, amount kyapay.Amount) (charge.Receipt, error) {
	c.n.Add(1)
	return charge.Receipt{AmountCharged: amount}, nil
}

func (c *instantCharger) ChargeServicePrice(context.Context, string) (charge.Receipt, error) {
	c.n.Add(1)
	return charge.Receipt{AmountCharged: kyapay.MustParseAmount("0.01")}, nil
}
