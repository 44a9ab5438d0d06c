package kyapaymcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcp"
)

// Protocol versions the SDK client speaks: the current one (server/discover,
// per-request _meta) and the last one with an initialize handshake.
const (
	protoNew = "2026-07-28"
	protoOld = "2025-11-25"
)

// install is how a test server gates its tools.
type install int

const (
	// viaMiddleware lists the tools in Config.Tools, registers them with
	// the SDK as usual and installs Gate.Middleware once.
	viaMiddleware install = iota
	// viaAddTool registers each paid tool with Gate.AddTool or
	// kyapaymcp.AddTool.
	viaAddTool
)

func (i install) String() string {
	if i == viaAddTool {
		return "addtool"
	}
	return "middleware"
}

var installs = []install{viaMiddleware, viaAddTool}

// cityIn is the input of the typed tool: its inferred schema is strict
// (additionalProperties false).
type cityIn struct {
	City string `json:"city" jsonschema:"the city to quote"`
}

type cityOut struct {
	Answer string `json:"answer"`
}

// recorder remembers what the tools saw.
type recorder struct {
	mu    sync.Mutex
	args  map[string][]string // tool -> raw arguments of each call
	metas map[string][]mcp.Meta
	runs  atomic.Int32
	// hook, when set, runs in every tool call after it was recorded.
	hook func(name string)
}

func (r *recorder) record(name string, req *mcp.CallToolRequest) {
	r.runs.Add(1)
	r.mu.Lock()
	if r.args == nil {
		r.args, r.metas = map[string][]string{}, map[string][]mcp.Meta{}
	}
	r.args[name] = append(r.args[name], string(req.Params.Arguments))
	r.metas[name] = append(r.metas[name], req.Params.Meta)
	hook := r.hook
	r.mu.Unlock()
	if hook != nil {
		hook(name)
	}
}

// setHook makes every later tool call run hook.
func (r *recorder) setHook(hook func(name string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hook = hook
}

func (r *recorder) lastArgs(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.args[name]
	if len(a) == 0 {
		return ""
	}
	return a[len(a)-1]
}

func (r *recorder) lastMeta(name string) mcp.Meta {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.metas[name]
	if len(a) == 0 {
		return nil
	}
	return a[len(a)-1]
}

func (r *recorder) calls(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.args[name])
}

// harness is a test seller (fake issuer, middleware) serving an MCP server
// over streamable HTTP on loopback.
type harness struct {
	seller *sellertest.Seller
	gate   *kyapaymcp.Gate
	server *mcp.Server
	url    string
	rec    *recorder
	// tools are the *mcp.Tool values registered with the SDK, to check
	// that tools/list never modifies them.
	tools map[string]*mcp.Tool
}

type harnessOpts struct {
	install   install
	stateful  bool
	cfg       kyapaymcp.Config
	mwOpts    []func(*middleware.Config)
	serverOpt *mcp.ServerOptions
}

func objectSchema() *jsonschema.Schema {
	return &jsonschema.Schema{Type: "object", Properties: map[string]*jsonschema.Schema{
		"symbol": {Type: "string"},
	}}
}

// The test tools and their requirements.
var (
	reqQuote  = kyapaymcp.Requirement{Requirement: middleware.Pay(middleware.FixedPrice("0.01"))}
	reqBefore = kyapaymcp.Requirement{Requirement: middleware.Pay(middleware.FixedPrice("0.01")), ChargeBefore: true}
	reqWhoami = kyapaymcp.Requirement{Requirement: middleware.Identity("email")}
)

// newHarness builds the test server with these tools:
//
//	quote   paid 0.01, charge after; raw handler; answers "quote for SUB"
//	before  paid 0.01, charge before; answers the receipt from its context
//	fail    paid 0.01; returns an isError result
//	crash   paid 0.01; returns a Go error (a protocol error)
//	typed   paid 0.01; typed handler with a strict struct input
//	ask     paid 0.01; asks for input once (multi round-trip), then answers
//	whoami  identity with email; answers the email
//	echo    free; answers its arguments
func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	h := &harness{seller: sellertest.New(t, o.mwOpts...), rec: &recorder{}, tools: map[string]*mcp.Tool{}}
	h.server = mcp.NewServer(&mcp.Implementation{Name: "test-seller", Version: "1"}, o.serverOpt)

	raw := map[string]mcp.ToolHandler{
		"quote": func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			h.rec.record("quote", req)
			c, ok := kyapay.FromContext(ctx)
			if !ok {
				return nil, errors.New("no claims")
			}
			return text("quote for " + c.Subject), nil
		},
		"before": func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			h.rec.record("before", req)
			c, _ := kyapay.FromContext(ctx)
			rc, ok := middleware.ReceiptFromContext(ctx)
			return text(fmt.Sprintf("sub=%s receipt=%v amount=%s", c.Subject, ok, rc.AmountCharged)), nil
		},
		"fail": func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			h.rec.record("fail", req)
			r := text("upstream unavailable")
			r.IsError = true
			return r, nil
		},
		"crash": func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			h.rec.record("crash", req)
			return nil, errors.New("crashed")
		},
		"ask": func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			h.rec.record("ask", req)
			if len(req.Params.InputResponses) == 0 {
				return &mcp.CallToolResult{
					InputRequests: mcp.InputRequestMap{"confirm": &mcp.ElicitParams{Message: "Proceed?"}},
					RequestState:  "round-1",
				}, nil
			}
			return text("answered"), nil
		},
		"whoami": func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			h.rec.record("whoami", req)
			c, _ := kyapay.FromContext(ctx)
			email, _ := c.Human.Field("email")
			return text(email), nil
		},
	}
	reqs := map[string]kyapaymcp.Requirement{
		"quote": reqQuote, "before": reqBefore, "fail": reqQuote, "crash": reqQuote,
		"ask": reqQuote, "whoami": reqWhoami, "typed": reqQuote,
	}
	typed := func(ctx context.Context, req *mcp.CallToolRequest, in cityIn) (*mcp.CallToolResult, cityOut, error) {
		h.rec.record("typed", req)
		if in.City == "nowhere" {
			return nil, cityOut{}, errors.New("unknown city")
		}
		return nil, cityOut{Answer: "quote for " + in.City}, nil
	}

	cfg := o.cfg
	if o.install == viaMiddleware && cfg.Tools == nil {
		cfg.Tools = reqs
	}
	g, err := kyapaymcp.New(h.seller.Middleware, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.gate = g
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		tool := &mcp.Tool{Name: name, Description: "the " + name + " tool", InputSchema: objectSchema()}
		h.tools[name] = tool
		if o.install == viaAddTool {
			if err := g.AddTool(h.server, tool, reqs[name], raw[name]); err != nil {
				t.Fatal(err)
			}
		} else {
			h.server.AddTool(tool, raw[name])
		}
	}
	typedTool := &mcp.Tool{Name: "typed", Description: "a typed tool"}
	if o.install == viaAddTool {
		if err := kyapaymcp.AddTool(h.server, g, typedTool, reqs["typed"], typed); err != nil {
			t.Fatal(err)
		}
	} else {
		mcp.AddTool(h.server, typedTool, typed)
	}
	echo := &mcp.Tool{Name: "echo", Description: "free", InputSchema: &jsonschema.Schema{Type: "object"}}
	h.tools["echo"] = echo
	h.server.AddTool(echo, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		h.rec.record("echo", req)
		return text(string(req.Params.Arguments)), nil
	})
	if o.install == viaMiddleware {
		h.server.AddReceivingMiddleware(g.Middleware())
	}

	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return h.server },
		&mcp.StreamableHTTPOptions{Stateless: !o.stateful})
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

// headerTransport sets the token header on every request when it holds
// one.
type headerTransport struct {
	base  http.RoundTripper
	name  string // the header
	token atomic.Pointer[string]
}

func (h *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if tok := h.token.Load(); tok != nil && *tok != "" {
		r = r.Clone(r.Context())
		r.Header.Set(h.name, *tok)
	}
	return h.base.RoundTrip(r)
}

// client is an SDK client session over streamable HTTP.
type client struct {
	*mcp.ClientSession
	header *headerTransport
}

// setHeader makes every later request carry tok in the token header ("":
// none).
func (c *client) setHeader(tok string) { c.header.token.Store(&tok) }

type clientOpts struct {
	proto  string
	copts  *mcp.ClientOptions
	header string // the token header; default skyfire-pay-id
}

func (h *harness) connect(t testing.TB, o clientOpts) *client {
	t.Helper()
	ht := &headerTransport{base: http.DefaultTransport, name: o.header}
	if ht.name == "" {
		ht.name = kyapay.HeaderName
	}
	hc := &http.Client{Transport: ht}
	t.Cleanup(hc.CloseIdleConnections)
	c := mcp.NewClient(&mcp.Implementation{Name: "test-buyer", Version: "1"}, o.copts)
	proto := o.proto
	if proto == "" {
		proto = protoNew
	}
	cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: h.url, HTTPClient: hc, DisableStandaloneSSE: true},
		&mcp.ClientSessionOptions{ProtocolVersion: proto})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return &client{ClientSession: cs, header: ht}
}

// call calls a tool and fails the test on a protocol error.
func (c *client) call(t testing.TB, name string, args map[string]any, meta mcp.Meta) *mcp.CallToolResult {
	t.Helper()
	res, err := c.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args, Meta: meta})
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	return res
}

func resultText(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// structured decodes a result's structuredContent as a JSON object.
func structured(t testing.TB, r *mcp.CallToolResult) map[string]any {
	t.Helper()
	b, err := json.Marshal(r.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("structuredContent %s: %v", b, err)
	}
	return m
}

// receiptOf returns the receipt in a result's _meta, nil if none.
func receiptOf(t testing.TB, r *mcp.CallToolResult) map[string]any {
	t.Helper()
	v, ok := r.Meta[kyapaymcp.ReceiptMetaKey]
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("receipt is %T", v)
	}
	return m
}

// charges returns how many charges the fake issuer recorded on tok.
func (h *harness) charges(tok string) int {
	return len(h.seller.Issuer.ChargesFor(kyapaytest.TokenID(tok)))
}
