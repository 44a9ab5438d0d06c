package main

import (
	"encoding/json"
	"io"
	"net/http"
)

// upstream is the seller's API, unchanged: it knows nothing of tokens or
// charges, and reads who the buyer is from the Kyapay-* headers the
// gateway sets (and strips when a client sends them).
func upstream() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/quote", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"quote":            "CADDY 42.00",
			"buyer":            r.Header.Get("Kyapay-Subject"),
			"token_type":       r.Header.Get("Kyapay-Token-Type"),
			"charged":          r.Header.Get("Kyapay-Charged"),
			"saw_pay_token":    r.Header.Get("Skyfire-Pay-Id") != "",
			"saw_forged_claim": r.Header.Get("Kyapay-Forged") != "",
		})
	})
	mux.HandleFunc("GET /api/report", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("fail") {
			http.Error(w, `{"error":"report generation failed"}`, http.StatusInternalServerError)
			return
		}
		writeJSON(w, map[string]any{"report": "Q3 summary", "price_if_delivered": r.Header.Get("Kyapay-Price")})
	})
	mux.HandleFunc("GET /api/profile", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"buyer": r.Header.Get("Kyapay-Subject"), "email": r.Header.Get("Kyapay-Email")})
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("POST /mcp", serveMCP)
	return mux
}

// serveMCP is a minimal MCP server (JSON-RPC over HTTP, JSON answers):
// initialize, tools/list, and two tools.
func serveMCP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Name      string         `json:"name"`
			Arguments map[string]any `json:"arguments"`
		} `json:"params"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "bad JSON-RPC", http.StatusBadRequest)
		return
	}
	var result any
	switch req.Method {
	case "initialize":
		result = map[string]any{"protocolVersion": "2025-06-18", "serverInfo": map[string]any{"name": "demo", "version": "1"}, "capabilities": map[string]any{"tools": map[string]any{}}}
	case "tools/list":
		result = map[string]any{"tools": []map[string]any{
			{"name": "search", "description": "Search (0.01 USD)", "inputSchema": map[string]any{"type": "object"}},
			{"name": "fetch", "description": "Fetch a document (0.05 USD)", "inputSchema": map[string]any{"type": "object"}},
		}}
	case "tools/call":
		text := req.Params.Name + " for " + r.Header.Get("Kyapay-Subject") + ", charged " + r.Header.Get("Kyapay-Charged")
		result = map[string]any{"content": []map[string]any{{"type": "text", "text": text}}}
	default:
		writeJSON(w, map[string]any{"jsonrpc": "2.0", "id": req.ID, "error": map[string]any{"code": -32601, "message": "method not found"}})
		return
	}
	writeJSON(w, map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": result})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
