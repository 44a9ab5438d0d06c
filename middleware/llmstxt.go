package middleware

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
)

// ServiceInfo describes a KYAPay-protected service for [LLMsTxt]. Only Name
// is required; every other zero field takes its documented default.
type ServiceInfo struct {
	// Name is the service's name, the llms.txt title. Required.
	Name string
	// Description is a short summary, rendered as the llms.txt blockquote.
	// Default: none.
	Description string
	// Header is the request header that carries the token. Default:
	// skyfire-pay-id (it should match the middleware's).
	Header string
	// SellerID is the seller agent's Skyfire account ID, the aud of tokens
	// meant for this service. Default: not stated.
	SellerID string
	// ServiceID is the seller service ID to name as sellerServiceId when
	// creating tokens. Default: not stated.
	ServiceID string
	// Environment is "production" or "sandbox", the Skyfire environment
	// tokens must come from. Default: not stated.
	Environment string
	// CreateTokenURL documents how to create a token. Default:
	// https://docs.skyfire.xyz/reference/create-token.
	CreateTokenURL string
	// SignupURL is where a buyer creates a Skyfire account. Default:
	// https://app.skyfire.xyz, or https://app-sandbox.skyfire.xyz when
	// Environment is "sandbox".
	SignupURL string
	// Policy is the refusal status policy, so the page states the right
	// status codes. Default: PolicySeed (it should match the middleware's).
	Policy StatusPolicy
	// Routes lists the protected routes. Default: none.
	Routes []RouteInfo
}

// RouteInfo describes one protected route for [LLMsTxt].
type RouteInfo struct {
	// Method is the HTTP method, e.g. "GET". Default: any method.
	Method string
	// Path is the route's path or pattern, e.g. "/v1/forecast". Required.
	Path string
	// Description says what the route does. Default: none.
	Description string
	// Requirement is what the route demands; it is validated exactly as the
	// middleware validates it.
	Requirement Requirement
}

// LLMsTxt returns a handler that serves an llms.txt page (markdown) that
// explains to agents how to use and pay for the service: the header that
// carries the token, the token types, price, required identity fields and
// charge timing of each route, where to create tokens, and what refusals
// look like (including that charge_unknown means "do not pay again").
//
// Every route's Requirement is validated as the middleware would validate
// it, and the page is rendered once, here; an invalid requirement, a missing
// Name or Path, a line break in a name, method or path, or an unknown
// Environment is an error.
//
// The handler answers GET and HEAD with 200, Content-Type text/markdown;
// charset=utf-8, Cache-Control: public, max-age=300 and an ETag (so
// If-None-Match gets 304), and any other method with 405 and Allow: GET,
// HEAD. Mount it at /llms.txt. It is safe for concurrent use.
func LLMsTxt(info ServiceInfo) (http.Handler, error) {
	page, err := renderLLMsTxt(info)
	if err != nil {
		return nil, err
	}
	return &llmsTxtHandler{page: page, etag: etagOf(page)}, nil
}

type llmsTxtHandler struct {
	page []byte // rendered once; read-only
	etag string
}

var modTimeUnknown time.Time

func (h *llmsTxtHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/markdown; charset=utf-8")
	hd.Set("Cache-Control", "public, max-age=300")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("ETag", h.etag)
	http.ServeContent(w, r, "", modTimeUnknown, bytes.NewReader(h.page))
}

// etagOf returns a strong ETag from an FNV-1a hash of the page.
func etagOf(page []byte) string {
	var x uint64 = 14695981039346656037
	for _, c := range page {
		x ^= uint64(c)
		x *= 1099511628211
	}
	return `"` + strconv.FormatUint(x, 16) + `"`
}

func renderLLMsTxt(info ServiceInfo) ([]byte, error) {
	if strings.TrimSpace(info.Name) == "" {
		return nil, errors.New("kyapay/middleware: llms.txt needs a service Name")
	}
	if err := singleLine("service Name", info.Name); err != nil {
		return nil, err
	}
	header := info.Header
	if header == "" {
		header = kyapay.HeaderName
	}
	if err := singleLine("Header", header); err != nil {
		return nil, err
	}
	signup := info.SignupURL
	switch info.Environment {
	case "", kyapay.EnvProduction:
		if signup == "" {
			signup = DefaultSignupURL
		}
	case kyapay.EnvSandbox:
		if signup == "" {
			signup = kyapay.SandboxIssuer
		}
	default:
		return nil, fmt.Errorf("kyapay/middleware: unknown Environment %q (want %q or %q)", info.Environment, kyapay.EnvProduction, kyapay.EnvSandbox)
	}
	createURL := info.CreateTokenURL
	if createURL == "" {
		createURL = DefaultCreateTokenURL
	}
	for _, f := range []struct{ name, v string }{
		{"SellerID", info.SellerID}, {"ServiceID", info.ServiceID},
		{"SignupURL", signup}, {"CreateTokenURL", createURL},
	} {
		if err := singleLine(f.name, f.v); err != nil {
			return nil, err
		}
	}
	policy := info.Policy.norm()

	routes := make([]*Route, len(info.Routes))
	var union kyapay.TokenTypes
	anyPaid, anyJSON := false, len(info.Routes) == 0
	for i, ri := range info.Routes {
		rt, err := ri.Requirement.compile()
		if err != nil {
			return nil, fmt.Errorf("kyapay/middleware: llms.txt route %d (%s %s): %w", i, ri.Method, ri.Path, err)
		}
		if ri.Path == "" {
			return nil, fmt.Errorf("kyapay/middleware: llms.txt route %d has no Path", i)
		}
		if err := singleLine("route Path", ri.Path); err != nil {
			return nil, err
		}
		if err := singleLine("route Method", ri.Method); err != nil {
			return nil, err
		}
		routes[i] = rt
		union |= rt.types
		anyPaid = anyPaid || rt.needsPay
		anyJSON = anyJSON || rt.format != FormatText
	}

	var b strings.Builder
	b.WriteString("# ")
	b.WriteString(info.Name)
	b.WriteString("\n\n")
	if d := strings.TrimSpace(info.Description); d != "" {
		for _, line := range strings.Split(d, "\n") {
			b.WriteString("> ")
			b.WriteString(strings.TrimSpace(line))
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "This service is for AI agents. It accepts Skyfire KYAPay tokens: send your token in the `%s` request header on every request.\n\n", header)

	// How to pay.
	b.WriteString("## How to pay\n\n")
	fmt.Fprintf(&b, "- Header: `%s: <your KYAPay token>` (the signed JWT, nothing else).\n", header)
	b.WriteString("- Token types: `kya` proves who the buyer is, `pay` is a prepaid balance the service charges, `kya-pay` is both. Each route below says which it accepts.\n")
	fmt.Fprintf(&b, "- Create a Skyfire account: %s\n", signup)
	fmt.Fprintf(&b, "- Create a token with Skyfire's create-token API: %s\n", createURL)
	if info.ServiceID != "" {
		fmt.Fprintf(&b, "- Seller service ID: `%s` (pass it as `sellerServiceId` when you create the token).\n", info.ServiceID)
	}
	if info.SellerID != "" {
		fmt.Fprintf(&b, "- Seller ID: `%s` (the token's audience).\n", info.SellerID)
	}
	switch info.Environment {
	case kyapay.EnvProduction:
		fmt.Fprintf(&b, "- Environment: production (tokens issued by %s).\n", kyapay.ProductionIssuer)
	case kyapay.EnvSandbox:
		fmt.Fprintf(&b, "- Environment: sandbox (tokens issued by %s; no real funds move).\n", kyapay.SandboxIssuer)
	}
	if anyPaid {
		b.WriteString("- A pay or kya-pay token can be charged on many requests until its balance runs out; create it with an amount of at least the route's price.\n")
	}
	b.WriteByte('\n')

	// Routes.
	b.WriteString("## Routes\n\n")
	if len(routes) == 0 {
		b.WriteString("No routes are listed.\n")
	}
	for i, rt := range routes {
		ri := info.Routes[i]
		b.WriteString("- `")
		if ri.Method != "" {
			b.WriteString(strings.ToUpper(ri.Method))
			b.WriteByte(' ')
		}
		b.WriteString(ri.Path)
		b.WriteByte('`')
		if d := oneLine(ri.Description); d != "" {
			b.WriteString(": ")
			b.WriteString(d)
		}
		b.WriteByte('\n')
		fmt.Fprintf(&b, "  - Accepted tokens: %s.\n", typeList(rt.types))
		fmt.Fprintf(&b, "  - Price: %s.\n", priceText(rt))
		if len(rt.fields) > 0 {
			fmt.Fprintf(&b, "  - Required identity fields: %s.\n", strings.Join(rt.fields, ", "))
		}
		if rt.needsPay {
			if rt.timing == ChargeAfter {
				b.WriteString("  - Charged after the request succeeds (status below 400); a failed request is not charged.\n")
			} else {
				b.WriteString("  - Charged before the request is processed.\n")
			}
		}
	}
	b.WriteByte('\n')

	// Refusals.
	if union == 0 {
		union = kyapay.AnyType
	}
	b.WriteString("## When a request is refused\n\n")
	if policy == PolicyStatusCodes {
		b.WriteString("A missing token (or one of the wrong kind) is answered with HTTP 403, an invalid or expired token with HTTP 401, and a token whose balance does not cover the price with HTTP 402.")
	} else {
		b.WriteString("A missing, invalid or depleted token is answered with HTTP 402 Payment Required.")
	}
	b.WriteString(" The body is plain text by default, for example:\n\n")
	example := Refusal{Err: kyapay.ErrTokenMissing, Accepted: union, Header: header}
	b.WriteString("    ")
	b.WriteString(RefusalMessage(&example, policy))
	b.WriteString("\n\n")
	if hasFixedPrice(routes) {
		depl := Refusal{Err: kyapay.ErrTokenDepleted, Accepted: union, Header: header, Price: firstFixed(routes), HasPrice: true}
		b.WriteString("and when the token's balance is used up:\n\n    ")
		b.WriteString(RefusalMessage(&depl, policy))
		b.WriteString("\n\n")
	}
	if anyJSON {
		b.WriteString("Send `Accept: application/json` (or call as an MCP/JSON-RPC client) to get the refusal as an MCP tool result instead: ")
		b.WriteString("`{\"content\":[{\"type\":\"text\",\"text\":\"...\"}],\"isError\":true,\"structuredContent\":{...}}`, ")
		b.WriteString("where `structuredContent` has `error` (a stable code such as `token_missing`, `token_expired`, `pay_required`, `token_depleted`), ")
		b.WriteString("`message`, `acceptedTokenTypes`, `requiredAmount` and `currency` (when the price is known), `header` and `createTokenUrl`. ")
		b.WriteString("A JSON-RPC request gets it as the `result` of a JSON-RPC response with the same `id`.\n\n")
	}
	b.WriteString("- `charge_unknown` (HTTP 502): the charge may have gone through. Do not pay again and do not create a new token for this request; retry later with the same token.\n")
	b.WriteString("- `charge_unavailable` and `keys_unavailable` (HTTP 503, with Retry-After): nothing was charged; retry after the given number of seconds.\n")
	b.WriteString("- `internal_error` (HTTP 500): a server-side failure, not a problem with your token.\n")
	return []byte(b.String()), nil
}

// singleLine refuses values that would break the page's structure.
func singleLine(name, v string) error {
	if strings.ContainsAny(v, "\r\n") {
		return fmt.Errorf("kyapay/middleware: llms.txt %s contains a line break", name)
	}
	return nil
}

// oneLine collapses runs of white space, line breaks included.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// typeList spells an accepted set for humans: "pay or kya-pay".
func typeList(t kyapay.TokenTypes) string {
	parts := t.Names()
	for i, p := range parts {
		parts[i] = "`" + p + "`"
	}
	switch len(parts) {
	case 0:
		return "none"
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " or " + parts[len(parts)-1]
}

// priceText describes a route's price.
func priceText(rt *Route) string {
	switch rt.price.kind {
	case priceFixed:
		return rt.fixed.String() + " USD per request"
	case priceFunc:
		return "price varies per request"
	case priceService:
		return "the service's pay-per-use price set on Skyfire"
	}
	return "free with a valid token"
}

func hasFixedPrice(routes []*Route) bool {
	for _, rt := range routes {
		if rt.price.kind == priceFixed {
			return true
		}
	}
	return false
}

func firstFixed(routes []*Route) kyapay.Amount {
	for _, rt := range routes {
		if rt.price.kind == priceFixed {
			return rt.fixed
		}
	}
	return kyapay.Amount{}
}
