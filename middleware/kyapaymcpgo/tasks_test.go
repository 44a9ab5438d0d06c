package kyapaymcpgo_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcpgo"
)

var taskID atomic.Int64

// callTask sends a task-augmented tools/call and returns the task's result,
// or the JSON-RPC error of the call.
func callTask(t *testing.T, c *client.Client, name string, args map[string]any) (*mcp.TaskResultResult, *mcp.JSONRPCErrorDetails) {
	t.Helper()
	ctx := context.Background()
	resp, err := c.GetTransport().SendRequest(ctx, transport.JSONRPCRequest{
		JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(1000 + taskID.Add(1)), Method: string(mcp.MethodToolsCall),
		Params: map[string]any{"name": name, "arguments": args, "task": map[string]any{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	var created mcp.CreateTaskResult
	if err := json.Unmarshal(resp.Result, &created); err != nil || created.Task.TaskId == "" {
		t.Fatalf("tools/call as a task: %s (%v)", resp.Result, err)
	}
	res, err := c.TaskResult(ctx, mcp.TaskResultRequest{Params: mcp.TaskResultParams{TaskId: created.Task.TaskId}})
	if err != nil {
		t.Fatalf("tasks/result: %v", err)
	}
	return res, nil
}

func taskText(res *mcp.TaskResultResult) string {
	return text(&mcp.CallToolResult{Content: res.Content})
}

// mcp-go runs AddTaskTool tools without the tool middleware chain. The gate
// covers them through TaskTool, hides those registered without it, and
// gates regular tools that run as tasks through its middleware.
func TestTaskToolsAreGatedOrHidden(t *testing.T) {
	t.Parallel()
	var ran, sneakyRan atomic.Int32
	e := newEnv(t, envOpts{
		server: []server.ServerOption{server.WithTaskCapabilities(true, true, true)},
		cfg: func(c *kyapaymcpgo.Config) {
			c.Tools["sneaky"] = middleware.Pay(middleware.FixedPrice("0.01"))
			c.Tools["hybrid"] = middleware.Pay(middleware.FixedPrice("0.01"))
		},
		extraTools: func(s *server.MCPServer, g *kyapaymcpgo.Gate) {
			s.AddTaskTools(g.TaskTool(mcp.NewTool("long", mcp.WithTaskSupport(mcp.TaskSupportRequired)),
				func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CreateTaskResult, error) {
					ran.Add(1)
					c, _ := kyapay.FromContext(ctx)
					if _, leaked := req.GetArguments()[kyapaymcpgo.DefaultArgument]; leaked {
						return nil, context.Canceled
					}
					return &mcp.CreateTaskResult{Content: []mcp.Content{mcp.NewTextContent("report for " + c.Subject)}}, nil
				}))
			s.AddTaskTool(mcp.NewTool("sneaky", mcp.WithTaskSupport(mcp.TaskSupportRequired)),
				func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CreateTaskResult, error) {
					sneakyRan.Add(1)
					return &mcp.CreateTaskResult{Content: []mcp.Content{mcp.NewTextContent("free lunch")}}, nil
				})
			s.AddTool(mcp.NewTool("hybrid", mcp.WithTaskSupport(mcp.TaskSupportOptional)),
				func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
					c, _ := kyapay.FromContext(ctx)
					return mcp.NewToolResultText("hybrid for " + c.Subject), nil
				})
		},
	})
	c := e.connect(t, client.WithLegacyProtocolOnly())
	tools := listed(t, c)
	if _, ok := tools["sneaky"]; ok {
		t.Error("an ungated task tool is listed")
	}
	if a := advertOf(t, tools["long"]); a["price"] != "0.01" {
		t.Errorf("long advert = %v", a)
	}
	if _, rpcErr := callTask(t, c, "sneaky", map[string]any{kyapaymcpgo.DefaultArgument: e.Issuer.Mint(kyapay.TypePay)}); rpcErr == nil {
		t.Error("an ungated task tool was callable")
	}
	if sneakyRan.Load() != 0 {
		t.Error("the ungated task tool ran")
	}

	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Subject("buyer-9"), kyapaytest.Balance("0.05"))
	res, rpcErr := callTask(t, c, "long", map[string]any{kyapaymcpgo.DefaultArgument: tok})
	if rpcErr != nil || res.IsError || taskText(res) != "report for buyer-9" {
		t.Fatalf("long: %v %+v", rpcErr, res)
	}
	if r, _ := res.Meta.AdditionalFields[kyapaymcpgo.ReceiptMetaKey].(map[string]any); r["amountCharged"] != "0.01" {
		t.Errorf("task receipt = %v", res.Meta.AdditionalFields)
	}
	if n := e.Issuer.ChargeCount(); n != 1 {
		t.Errorf("ledger = %d after one task; want 1", n)
	}

	res, rpcErr = callTask(t, c, "long", nil)
	if rpcErr != nil || !res.IsError || !strings.Contains(taskText(res), "Missing pay token") || ran.Load() != 1 {
		t.Errorf("unpaid task: %v %q, handler runs %d; want the refusal as the task result and 1 run", rpcErr, taskText(res), ran.Load())
	}

	res, rpcErr = callTask(t, c, "long", map[string]any{kyapaymcpgo.DefaultArgument: e.SpentElsewhere(t)})
	if rpcErr != nil || !res.IsError || strings.Contains(taskText(res), "report for") {
		t.Errorf("declined task: %v %q; want the refusal, not the report", rpcErr, taskText(res))
	}

	res, rpcErr = callTask(t, c, "hybrid", map[string]any{kyapaymcpgo.DefaultArgument: tok})
	if rpcErr != nil || res.IsError || taskText(res) != "hybrid for buyer-9" {
		t.Fatalf("hybrid as a task: %v %+v", rpcErr, res)
	}
	res, _ = callTask(t, c, "hybrid", nil)
	if !res.IsError {
		t.Errorf("unpaid hybrid task: %q; want the refusal", taskText(res))
	}
	if n := e.Issuer.ChargeCount(); n != 3 { // long, the charge made elsewhere, hybrid
		t.Errorf("ledger = %d; want 3", n)
	}
}
