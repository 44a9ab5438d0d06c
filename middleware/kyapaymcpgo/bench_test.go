package kyapaymcpgo_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcpgo"
)

// benchServers returns two servers with the same quote tool, one selling
// it for 0.01 through a Charger that answers at once, one with no gate, and
// a pay token (verified once, then from the verifier's cache, as an agent
// reuses its token).
func benchServers(b *testing.B) (paid, plain *server.MCPServer, tok string) {
	b.Helper()
	e := sellertest.New(b, func(c *middleware.Config) { c.Charger = &instantCharger{} })
	g, err := kyapaymcpgo.New(kyapaymcpgo.Config{Middleware: e.Middleware,
		Tools: map[string]middleware.Requirement{"quote": middleware.Pay(middleware.FixedPrice("0.01"))}})
	if err != nil {
		b.Fatal(err)
	}
	quote := func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("quote " + req.GetString("symbol", "?")), nil
	}
	tool := mcp.NewTool("quote", mcp.WithString("symbol"))
	paid = server.NewMCPServer("paid", "1")
	paid.AddTool(tool, quote)
	g.Install(paid)
	plain = server.NewMCPServer("plain", "1")
	plain.AddTool(tool, quote)
	return paid, plain, e.Issuer.Mint(kyapay.TypePay, kyapaytest.Amount("1000000"), kyapaytest.ExpiresIn(24*time.Hour))
}

// BenchmarkPaidToolCallPaired times, in each iteration, the same tools/call
// message (token in the argument) handled by the server with no gate and
// by the gated one, in process (JSON-RPC decode, hooks, middleware, tool,
// encode), and reports the median per-pair ratio paid/ungated.
func BenchmarkPaidToolCallPaired(b *testing.B) {
	paid, plain, tok := benchServers(b)
	msg, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
		"params": map[string]any{"name": "quote", "arguments": map[string]any{"symbol": "ACME", kyapaymcpgo.DefaultArgument: tok}}})
	ctx := context.Background()
	check := func(resp mcp.JSONRPCMessage) {
		r, ok := resp.(mcp.JSONRPCResponse)
		if !ok {
			b.Fatalf("response %#v", resp)
		}
		if res, ok := r.Result.(*mcp.CallToolResult); ok && res.IsError {
			b.Fatalf("refused: %v", res.Content)
		}
	}
	check(paid.HandleMessage(ctx, msg))
	ratios := make([]float64, 0, b.N)
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		plain.HandleMessage(ctx, msg)
		t1 := time.Now()
		paid.HandleMessage(ctx, msg)
		t2 := time.Now()
		ratios = append(ratios, float64(t2.Sub(t1))/float64(t1.Sub(t0)))
	}
	sort.Float64s(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "paid/ungated")
}

// BenchmarkPaidToolCallHTTPPaired is the same pair through mcp-go's client
// and streamable HTTP on loopback.
func BenchmarkPaidToolCallHTTPPaired(b *testing.B) {
	paid, plain, tok := benchServers(b)
	connect := func(s *server.MCPServer) *client.Client {
		srv := httptest.NewServer(server.NewStreamableHTTPServer(s, server.WithStateLess(true)))
		b.Cleanup(srv.Close)
		tr, err := transport.NewStreamableHTTP(srv.URL + "/mcp")
		if err != nil {
			b.Fatal(err)
		}
		c := client.NewClient(tr)
		b.Cleanup(func() { c.Close() })
		if err := c.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Initialize(context.Background(), mcp.InitializeRequest{Params: mcp.InitializeParams{
			ProtocolVersion: mcp.LATEST_PROTOCOL_VERSION, ClientInfo: mcp.Implementation{Name: "bench", Version: "1"}}}); err != nil {
			b.Fatal(err)
		}
		return c
	}
	cp, cu := connect(paid), connect(plain)
	req := mcp.CallToolRequest{}
	req.Params.Name = "quote"
	req.Params.Arguments = map[string]any{"symbol": "ACME", kyapaymcpgo.DefaultArgument: tok}
	ctx := context.Background()
	do := func(c *client.Client) {
		res, err := c.CallTool(ctx, req)
		if err != nil || res.IsError {
			b.Fatalf("call: %v %v", err, res)
		}
	}
	do(cp)
	ratios := make([]float64, 0, b.N)
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		do(cu)
		t1 := time.Now()
		do(cp)
		t2 := time.Now()
		ratios = append(ratios, float64(t2.Sub(t1))/float64(t1.Sub(t0)))
	}
	sort.Float64s(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "paid/ungated")
}
