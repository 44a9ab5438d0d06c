package kyapaycaddy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/middleware"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the fields of [Handler] and [MCP].
const (
	// DefaultMaxBody bounds the request body read on an MCP route to find
	// the tool name (MCP.MaxBody).
	DefaultMaxBody = 1 << 20
	// maxAPIKeyFileBytes bounds what api_key_file reads.
	maxAPIKeyFileBytes = 64 << 10
)

// Settings say whom to trust and how to charge: the part of the
// configuration that is usually the same for every route. In a Caddyfile
// it may be written once as the global option kyapay and is then copied
// into every kyapay directive, which may override any field. Every string
// field may hold Caddy placeholders such as {env.NAME} or {file.PATH},
// resolved once when the handler is provisioned.
type Settings struct {
	// Env is the Skyfire environment, "production" or "sandbox": tokens
	// must carry it in their env claim, and it picks the default Issuers
	// and APIURL. Default: "production".
	Env string `json:"env,omitempty"`
	// Issuers are the trusted token issuers (iss), compared exactly. The
	// issuer's keys are fetched from <issuer>/.well-known/jwks.json.
	// Default: Skyfire's issuer for Env (kyapay.ProductionIssuer or
	// kyapay.SandboxIssuer).
	Issuers []string `json:"issuers,omitempty"`
	// SellerID is the seller agent's account ID: the aud claim of every
	// token Skyfire issues for this seller. Required, unless
	// InsecureAnyAudience is set.
	SellerID string `json:"seller_id,omitempty"`
	// InsecureAnyAudience accepts tokens whatever their aud: a token issued
	// for another seller is then accepted here. Set it only when the seller
	// agent's ID cannot be known, and never together with SellerID.
	InsecureAnyAudience bool `json:"insecure_any_audience,omitempty"`
	// ServiceID is the expected ssi claim (the seller service ID). Empty:
	// not checked.
	ServiceID string `json:"service_id,omitempty"`
	// APIKey is the seller agent's Skyfire API key, used to charge pay
	// tokens. Write it as a placeholder ({env.SKYFIRE_API_KEY} or
	// {file./run/secrets/skyfire}): a key written out in the config is
	// readable through Caddy's admin API and its autosaved config.
	// Required on routes that charge; at most one of APIKey and APIKeyFile.
	APIKey string `json:"api_key,omitempty"`
	// APIKeyFile is a file holding the API key (surrounding white space is
	// ignored), the alternative to APIKey.
	APIKeyFile string `json:"api_key_file,omitempty"`
	// APIURL is the base URL of Skyfire's API. Default: charge.ProductionBaseURL
	// or charge.SandboxBaseURL, after Env.
	APIURL string `json:"api_url,omitempty"`
	// Redis is the URL of a Redis server (redis://[[user]:password@]host[:port][/db],
	// or rediss:// for TLS; go-redis's query options such as pool_size are
	// accepted) that holds the state the gate shares between Caddy
	// instances and across reloads: known balances, Idempotency-Key
	// records and charges of unknown outcome ([kyapayredis.Store]). Empty:
	// each handler keeps that state in its own memory, lost on reload.
	// Write the password as a placeholder ({env.KYAPAY_REDIS_URL}): errors
	// and logs show only the scheme, host, port and database. Handlers with
	// the same URL share one client; the server must answer a PING when
	// the handler is provisioned.
	Redis string `json:"redis,omitempty"`
	// Header is the request header that carries the token. Default:
	// "skyfire-pay-id". It is never passed upstream.
	Header string `json:"header,omitempty"`
	// StatusPolicy chooses the refusal statuses and texts: "seed"
	// (Skyfire's 402 texts; the default) or "status_codes" (403 for
	// identity refusals, 402 for payment ones).
	StatusPolicy string `json:"status_policy,omitempty"`
	// ChargeTimeout bounds each charge call. Default: 15 s.
	ChargeTimeout caddy.Duration `json:"charge_timeout,omitempty"`
	// MaxBuffer bounds, in bytes, the upstream response a charge-after
	// route holds until the charge is confirmed; a larger response is not
	// delivered and not charged. Default: 16 MiB.
	MaxBuffer int `json:"max_buffer,omitempty"`
}

// Handler is the Caddy HTTP handler http.handlers.kyapay: it lets through
// only requests whose KYAPay token meets the route's requirement, charges
// pay tokens, and passes the verified identity upstream in the Kyapay-*
// request headers. See the package documentation for the Caddyfile syntax.
//
// Its exported fields are its JSON configuration; the zero value of each
// means its documented default.
type Handler struct {
	Settings

	// Types are the accepted token types: "kya", "pay", "kya-pay". Default:
	// all three, narrowed by Price (a priced route accepts pay and kya-pay
	// only) and Identity (kya and kya-pay only).
	Types []string `json:"types,omitempty"`
	// Identity lists the hid fields the token must carry ("email",
	// "given_name", "family_name", ...). Default: none.
	Identity []string `json:"identity,omitempty"`
	// Price is charged per request: a decimal USD amount such as "0.01", or
	// "service" for the seller service's price configured at Skyfire.
	// Default: free.
	Price string `json:"price,omitempty"`
	// Timing is when a priced route charges: "before" the upstream is
	// called (the default; required for streaming upstreams) or "after" a
	// chargeable upstream response, which is held until the charge is
	// confirmed.
	Timing string `json:"timing,omitempty"`
	// Format is the refusal body format: "auto" (the default: JSON for
	// JSON and JSON-RPC callers, text otherwise), "text" or "json".
	Format string `json:"format,omitempty"`
	// Name names the route in logs. Default: none.
	Name string `json:"name,omitempty"`
	// MCP, when set, treats the route as an MCP (JSON-RPC) endpoint: only
	// tools/call requests are gated, priced per tool.
	MCP *MCP `json:"mcp,omitempty"`

	m       *middleware.Middleware
	route   *middleware.Route
	mcp     *mcpRoutes
	header  string // the token header, canonical
	hNorm   string // the token header, lower case with '-' for '_' and '.'
	verKey  string // pool key of the shared Verifier, once acquired
	chgKey  string // pool key of the shared charge client, once acquired
	rdsKey  string // pool key of the shared Redis store, once acquired
	logger  *zap.Logger
	charged bool // the route or one of its tools charges
}

// MCP configures an MCP (JSON-RPC over HTTP) route: the handler reads the
// request body, up to MaxBody, to find the JSON-RPC method and, for
// tools/call, the tool name (params.name), and restores the body for the
// upstream. Only tools/call requests are gated; every other method
// (initialize, tools/list, notifications, responses) and bodiless requests
// (the GET event stream, DELETE) pass without a token. A tools/call is
// gated with the route's requirement and priced by Tools, falling back to
// the route's Price for tools not listed.
//
// MCP routes charge before the upstream: their answers may be event
// streams, which cannot be held until a charge is confirmed.
type MCP struct {
	// MaxBody bounds the request body in bytes; a larger body is refused
	// with 413 and not forwarded. Default: DefaultMaxBody (1 MiB).
	MaxBody int64 `json:"max_body,omitempty"`
	// Tools prices tools by name: a decimal USD amount ("0.01"),
	// "service" (the seller service's price), "free" (a token meeting the
	// route's requirement, not charged) or "open" (no token at all).
	Tools map[string]string `json:"tools,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.kyapay",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision validates the configuration, resolves its placeholders, and
// builds the gate. Handlers with the same trust settings share one
// Verifier (and its cached keys), also across config reloads; handlers
// with the same API URL and key share one charge client, and handlers
// with the same redis URL one Redis client and store.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	cfg, err := h.resolve()
	if err != nil {
		return err
	}
	if h.Settings.APIKey != "" && !strings.Contains(h.Settings.APIKey, "{") {
		h.logger.Warn("kyapay: api_key is written out in the config, where Caddy's admin API and autosaved config show it; use {env.SKYFIRE_API_KEY}, a {file.*} placeholder or api_key_file")
	}
	if cfg.redis != nil && cfg.redis.opts.Password != "" && !strings.Contains(h.Settings.Redis, "{") {
		h.logger.Warn("kyapay: redis: the URL's password is written out in the config, where Caddy's admin API and autosaved config show it; use a placeholder such as {env.KYAPAY_REDIS_URL}",
			zap.String("redis", cfg.redis.desc))
	}

	ver, err := acquireVerifier(cfg.verifier)
	if err != nil {
		return fmt.Errorf("kyapay: %w", err)
	}
	h.verKey = cfg.verifier.key()
	mcfg := middleware.Config{
		Verifier:       ver,
		Header:         cfg.header,
		Policy:         cfg.policy,
		Logger:         ctx.Slogger(),
		ChargeTimeout:  time.Duration(h.ChargeTimeout),
		MaxBufferBytes: h.MaxBuffer,
		OnCharged:      onCharged,
	}
	if h.charged {
		cc, err := acquireCharger(cfg.charger)
		if err != nil {
			return fmt.Errorf("kyapay: %w", err)
		}
		h.chgKey = cfg.charger.key()
		mcfg.Charger = cc
	}
	if cfg.redis != nil {
		st, err := acquireStore(ctx, *cfg.redis)
		if err != nil {
			return fmt.Errorf("kyapay: %w", err)
		}
		h.rdsKey = cfg.redis.key()
		mcfg.Store = st
	}
	h.m, err = middleware.New(mcfg)
	if err != nil {
		return fmt.Errorf("kyapay: %w", err)
	}
	h.header = http.CanonicalHeaderKey(cfg.header)
	h.hNorm = normHeader(cfg.header)
	if h.route, err = h.m.Route(cfg.req); err != nil {
		return fmt.Errorf("kyapay: requirement: %w", err)
	}
	if cfg.mcp != nil {
		h.mcp = &mcpRoutes{maxBody: cfg.mcp.maxBody, tools: make(map[string]toolRoute, len(cfg.mcp.tools))}
		for name, t := range cfg.mcp.tools {
			tr := toolRoute{open: t.open}
			if !t.open {
				if tr.route, err = h.m.Route(t.req); err != nil {
					return fmt.Errorf("kyapay: mcp: tool %q: %w", name, err)
				}
			}
			h.mcp.tools[name] = tr
		}
	}
	return nil
}

// Cleanup closes the handler's gate (stopping its background
// reconciliation of charges) and releases its share of the Verifier, the
// charge client and the Redis store; the last handler to release them
// stops the Verifier's key refresh, closes the charge client's idle
// connections and closes the Redis client.
func (h *Handler) Cleanup() error {
	if h.m != nil {
		// First: the reconciliation may still be using the store.
		_ = h.m.Close()
	}
	if h.rdsKey != "" {
		_, _ = redisStores.Delete(h.rdsKey)
		h.rdsKey = ""
	}
	if h.verKey != "" {
		_, _ = verifiers.Delete(h.verKey)
		h.verKey = ""
	}
	if h.chgKey != "" {
		_, _ = chargers.Delete(h.chgKey)
		h.chgKey = ""
	}
	return nil
}

// ServeHTTP gates the request and, if it is accepted, passes it to next
// with the token header removed and the verified identity in the
// Kyapay-* headers. Refusals are answered here; an error from next is
// returned as is (and on a route charging after, nothing is charged).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	stripClientHeaders(r.Header, h.header, h.hNorm)
	if st, ok := r.Context().Value(stateKey{}).(*reqState); ok && st.token != "" {
		// An earlier kyapay handler took the token off the request: this
		// one applies its own requirement to the same token.
		r.Header[h.header] = []string{st.token}
	}
	rt := h.route
	if h.mcp != nil {
		var open bool
		var err error
		rt, open, err = h.mcp.route(r, h.route)
		if err != nil {
			return err
		}
		if open {
			if _, ok := r.Header[h.header]; ok {
				_, r = h.takeToken(r)
			}
			return next.ServeHTTP(w, r)
		}
	}
	p := &pass{h: h, rt: rt, next: next}
	return h.m.Serve(w, r, rt, p.serve)
}

// reqState is what the kyapay handlers on one request share: the token
// the first of them took off the request, for the others, and the
// identity passed upstream.
type reqState struct {
	token string
	id    identity
}

type stateKey struct{}

// takeToken removes the token header from r, keeping the token in the
// request's shared state, which it creates on first use; it returns the
// state and the request to pass on.
func (h *Handler) takeToken(r *http.Request) (*reqState, *http.Request) {
	st, ok := r.Context().Value(stateKey{}).(*reqState)
	if !ok {
		st = new(reqState)
		if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			repl.Map(st.id.placeholder)
		}
		r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	}
	if vals := r.Header[h.header]; len(vals) == 1 && st.token == "" {
		st.token = strings.TrimSpace(vals[0])
	}
	delete(r.Header, h.header)
	return st, r
}

// onCharged makes the confirmed amount available to the rest of the
// route and to the access log as {kyapay.charged}, in both timings.
func onCharged(_ context.Context, c *middleware.Charged) {
	if c.Request == nil {
		return
	}
	if repl, ok := c.Request.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("kyapay.charged", c.Receipt.AmountCharged.String())
	}
}

// readAPIKey reads api_key_file.
func readAPIKey(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("kyapay: api_key_file: %w", err)
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxAPIKeyFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("kyapay: api_key_file: reading %s: %w", path, err)
	}
	if len(buf) > maxAPIKeyFileBytes {
		return "", fmt.Errorf("kyapay: api_key_file: %s is larger than %d bytes", path, maxAPIKeyFileBytes)
	}
	key := strings.TrimSpace(string(buf))
	if key == "" {
		return "", fmt.Errorf("kyapay: api_key_file: %s is empty", path)
	}
	return key, nil
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ middleware.Charger          = (*charge.Client)(nil)
)
