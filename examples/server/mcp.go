package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcp"
)

// noInput is the input of the tools that take no argument. Its inferred
// schema is strict (no additional properties): the gate removes the token
// argument before the SDK validates it.
type noInput struct{}

// newMCPHandler returns the handler of POST /mcp: a stateless
// streamable-HTTP MCP server with three tools, gated by m.
//
//	quote   a pay or kya-pay token, charged cfg.Price per call with cfg.Mode;
//	        answers the charge receipt (as GET /pay does)
//	whoami  a kya or kya-pay token carrying hid.email; answers the buyer's
//	        identity claims (as GET /kya does)
//	echo    free; answers its arguments
func newMCPHandler(cfg config, m *middleware.Middleware) (http.Handler, error) {
	g, err := kyapaymcp.New(m, kyapaymcp.Config{})
	if err != nil {
		return nil, err
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "kyapay-example-seller", Version: "1"}, nil)

	quote := kyapaymcp.Requirement{
		Requirement:  middleware.Pay(middleware.FixedPrice(cfg.Price.String())),
		ChargeBefore: cfg.Mode == middleware.ChargeBefore,
	}
	pay := payHandler{price: cfg.Price, mode: cfg.Mode}
	err = kyapaymcp.AddTool(server, g, &mcp.Tool{
		Name:        "quote",
		Description: "A paid call: returns the charge receipt (charged " + cfg.Price.String() + " USD, " + cfg.Mode.String() + " the tool runs).",
	}, quote, func(ctx context.Context, _ *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
		return pay.respond(ctx)
	})
	if err != nil {
		return nil, err
	}

	err = kyapaymcp.AddTool(server, g, &mcp.Tool{
		Name:        "whoami",
		Description: "Returns the identity claims of your token (it must carry your email).",
	}, kyapaymcp.Requirement{Requirement: middleware.Identity("email")},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
			c, ok := kyapay.FromContext(ctx)
			if !ok {
				return nil, nil, errNoClaims
			}
			return nil, identityOf(c), nil
		})
	if err != nil {
		return nil, err
	}

	mcp.AddTool(server, &mcp.Tool{Name: "echo", Description: "Free: returns its arguments."},
		func(_ context.Context, _ *mcp.CallToolRequest, args map[string]any) (*mcp.CallToolResult, any, error) {
			return nil, args, nil
		})

	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true}), nil
}

var errNoClaims = errors.New("no verified token")

// respond is the quote tool's answer: the body of GET /pay. In
// charge-after mode the tool runs before the charge, so the receipt is not
// in its answer but in the result's _meta (kyapaymcp.ReceiptMetaKey).
func (h payHandler) respond(ctx context.Context) (*mcp.CallToolResult, any, error) {
	c, ok := kyapay.FromContext(ctx)
	if !ok {
		return nil, nil, errNoClaims
	}
	resp := payResponse{Subject: c.Subject, ID: c.ID, ChargeMode: h.mode.String(), Price: h.price}
	if rc, ok := middleware.ReceiptFromContext(ctx); ok {
		resp.Charged = true
		resp.AmountCharged = &rc.AmountCharged
		if rc.HasRemainingBalance {
			resp.RemainingBalance = &rc.RemainingBalance
		}
		resp.TransactionID = rc.TransactionID
	}
	return nil, resp, nil
}
