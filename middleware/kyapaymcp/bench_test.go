package kyapaymcp_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcp"
)

// These benchmarks measure what the gate adds to one MCP tool call made
// with the SDK's client: the same call to the same tool, once on a server
// without the gate and once on a server where the tool costs 0.01 USD
// (charge after success). The charge round trip is left out: the Charger
// answers at once. The token is reused, as an agent does, so it is
// verified once and then found in the verifier's cache.
//
//	go test -run '^$' -bench 'ToolCallPaired' -benchtime 2000x -count 3 .

// instantCharger confirms every charge at once.
type instantCharger struct{}

func (instantCharger) Charge(_ context.Context, _ string, amount kyapay.Amount) (charge.Receipt, error) {
	return charge.Receipt{AmountCharged: amount, RemainingBalance: kyapay.MustParseAmount("9"), HasRemainingBalance: true}, nil
}

func (instantCharger) ChargeServicePrice(context.Context, string) (charge.Receipt, error) {
	return charge.Receipt{AmountCharged: kyapay.MustParseAmount("0.01")}, nil
}

// benchSessions returns a session to an ungated server and one to a gated
// server with the same tool, over transport ("http": streamable HTTP on
// loopback; "memory": the SDK's in-memory transport), and the arguments
// of the call, which carry a valid pay token.
func benchSessions(b *testing.B, transport string) (plain, paid *mcp.ClientSession, args map[string]any) {
	iss := kyapaytest.NewIssuer()
	b.Cleanup(iss.Close)
	v, err := kyapay.NewVerifier(iss.VerifierConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { v.Close() })
	m, err := middleware.New(middleware.Config{Verifier: v, Charger: instantCharger{}, DepletedCacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	g, err := kyapaymcp.New(m, kyapaymcp.Config{Tools: map[string]kyapaymcp.Requirement{
		"quote": {Requirement: middleware.Pay(middleware.FixedPrice("0.01"))},
	}})
	if err != nil {
		b.Fatal(err)
	}
	answer := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "quote: 42"}}}
	newServer := func() *mcp.Server {
		s := mcp.NewServer(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
		s.AddTool(&mcp.Tool{Name: "quote", InputSchema: &jsonschema.Schema{Type: "object"}},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) { return answer, nil })
		return s
	}
	plainServer, paidServer := newServer(), newServer()
	paidServer.AddReceivingMiddleware(g.Middleware())
	connect := func(s *mcp.Server) *mcp.ClientSession {
		var t mcp.Transport
		switch transport {
		case "http":
			srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: true}))
			b.Cleanup(srv.Close)
			t = &mcp.StreamableClientTransport{Endpoint: srv.URL, HTTPClient: srv.Client(), DisableStandaloneSSE: true}
		default:
			st, ct := mcp.NewInMemoryTransports()
			ss, err := s.Connect(context.Background(), st, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { ss.Close() })
			t = ct
		}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "buyer", Version: "1"}, nil).Connect(context.Background(), t, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cs.Close() })
		return cs
	}
	args = map[string]any{"symbol": "ACME", kyapaymcp.DefaultArgument: iss.Mint(kyapay.TypePay)}
	return connect(plainServer), connect(paidServer), args
}

func callOnce(b *testing.B, cs *mcp.ClientSession, args map[string]any, paid bool) {
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "quote", Arguments: args})
	if err != nil {
		b.Fatal(err)
	}
	if res.IsError || (paid && res.Meta[kyapaymcp.ReceiptMetaKey] == nil) {
		b.Fatalf("call failed: %+v", res)
	}
}

func benchCall(b *testing.B, transport string, paid bool) {
	plain, gated, args := benchSessions(b, transport)
	cs := plain
	if paid {
		cs = gated
	}
	b.ReportAllocs()
	for b.Loop() {
		callOnce(b, cs, args, paid)
	}
}

func BenchmarkToolCallUngatedHTTP(b *testing.B)   { benchCall(b, "http", false) }
func BenchmarkToolCallPaidHTTP(b *testing.B)      { benchCall(b, "http", true) }
func BenchmarkToolCallUngatedMemory(b *testing.B) { benchCall(b, "memory", false) }
func BenchmarkToolCallPaidMemory(b *testing.B)    { benchCall(b, "memory", true) }

// BenchmarkToolCallPaired times, in each iteration, the ungated call and
// the paid call, one after the other, and reports the median per-pair ratio as
// "paid/ungated".
func BenchmarkToolCallPaired(b *testing.B) {
	for _, transport := range []string{"http", "memory"} {
		b.Run(transport, func(b *testing.B) {
			plain, gated, args := benchSessions(b, transport)
			ratios := make([]float64, 0, b.N)
			first := false
			for b.Loop() {
				// Alternate which call goes first, so that neither always
				// pays for what the other left behind (garbage, cold
				// connections).
				first = !first
				t0 := time.Now()
				if first {
					callOnce(b, plain, args, false)
				} else {
					callOnce(b, gated, args, true)
				}
				t1 := time.Now()
				if first {
					callOnce(b, gated, args, true)
				} else {
					callOnce(b, plain, args, false)
				}
				t2 := time.Now()
				a, z := t1.Sub(t0), t2.Sub(t1) // ungated, paid when first
				if !first {
					a, z = z, a
				}
				ratios = append(ratios, float64(z)/float64(a))
			}
			sort.Float64s(ratios)
			b.ReportMetric(ratios[len(ratios)/2], "paid/ungated")
		})
	}
}
