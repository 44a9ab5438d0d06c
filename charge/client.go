package charge

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Base URLs of the Skyfire API. API keys are per environment: a sandbox key
// only works against the sandbox.
const (
	ProductionBaseURL = "https://api.skyfire.xyz"
	SandboxBaseURL    = "https://api-sandbox.skyfire.xyz"
)

// Defaults applied by [New] to zero [Config] fields.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultMaxResponseBytes = 64 << 10
	DefaultMaxRetries       = 2
	DefaultUserAgent        = "kyapay-go-charge"
)

// Limits on arguments, checked before anything is sent.
const (
	maxTokenBytes  = 16 << 10 // a KYAPay JWT is well under 2 KiB
	maxJTIBytes    = 256
	maxCursorBytes = 4 << 10
)

// ErrInvalidConfig is wrapped by every error [New] returns.
var ErrInvalidConfig = errors.New("charge: invalid config")

// Config configures a [Client]. Zero fields take the documented defaults;
// BaseURL and APIKey are required.
type Config struct {
	// BaseURL is the API's absolute https URL, without query, fragment or
	// user info; a trailing slash is tolerated. Usually [ProductionBaseURL]
	// or [SandboxBaseURL]. Required.
	//
	// Plain http is refused, because the API key would travel unencrypted,
	// except to a loopback host (localhost, 127.0.0.0/8, ::1), which is
	// what tests and a local fake API use.
	BaseURL string
	// APIKey is the seller agent's API key, sent in the skyfire-api-key
	// header. Required.
	APIKey APIKey
	// HTTPClient sends the requests. Default: a client dedicated to this
	// Client with a keep-alive Transport (64 idle connections per host).
	// Only the client's Transport and Timeout are used: the Transport is
	// called directly (redirects are never followed, so the API key is
	// never sent to another host, and no cookie jar is consulted), and a
	// Timeout shorter than the Timeout below replaces it.
	//
	// Retries on OutcomeNotSent rely on the Transport reporting
	// net/http/httptrace events (GetConn, GotConn), as *http.Transport
	// does; with a Transport that does not, every transport failure is
	// OutcomeUnknown and nothing is retried.
	HTTPClient *http.Client
	// Timeout bounds each call, retries included, on top of the caller's
	// context. Default: 10 s. Must not be negative.
	Timeout time.Duration
	// MaxResponseBytes bounds a response body; a larger body is an error,
	// never silently truncated. Default: 64 KiB. Must not be negative.
	MaxResponseBytes int64
	// MaxRetries is how many times a call is retried, and only when the
	// failure provably happened before any byte of the request was sent
	// (OutcomeNotSent: DNS, dial, TLS handshake). Nothing else is ever
	// retried: Skyfire's charge API has no idempotency key. Default: 2;
	// negative means no retries.
	MaxRetries int
	// RetryBackoff returns the wait before retry number attempt (1, 2, ...).
	// The wait ends early if the context is done. Default: 50ms*attempt.
	RetryBackoff func(attempt int) time.Duration
	// UserAgent is sent in the User-Agent header. Default: "kyapay-go-charge".
	UserAgent string
}

// LogValue makes log/slog print the configuration with the key redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("base_url", c.BaseURL),
		slog.String("api_key", redacted),
		slog.Duration("timeout", c.Timeout),
		slog.Int64("max_response_bytes", c.MaxResponseBytes),
		slog.Int("max_retries", c.MaxRetries),
		slog.String("user_agent", c.UserAgent),
	)
}

// Client calls Skyfire's seller APIs: charge, introspect and token charges.
//
// A Client is safe for concurrent use by multiple goroutines and holds a
// connection pool: create one per process (per API key) and reuse it.
// It never prints its API key (fmt, slog and encoding/json all see a
// redacted form).
type Client struct {
	baseURL       string // normalised, no trailing slash
	chargeURL     string
	introspectURL string
	tokensURL     string // base + "/api/v1/tokens/"
	hc            *http.Client
	// rt is hc's Transport (or http.DefaultTransport), called directly:
	// the API is never redirected to and takes no cookies, so
	// http.Client's redirect, cookie and header-copying work is skipped.
	rt http.RoundTripper
	// sharedHeaders reports whether rt is known never to modify a
	// request's Header (*http.Transport), so that one read-only header map
	// per key can be shared by every request. Any other RoundTripper gets
	// a fresh copy per request, in case it breaks that rule.
	sharedHeaders bool
	// chargeReq and introspectReq are templates of the POST requests,
	// copied by WithContext for each attempt; never modified.
	chargeReq     *http.Request
	introspectReq *http.Request
	timeout       time.Duration
	maxBody       int64
	maxRetries    int
	backoff       func(int) time.Duration
	// secret returns the key and header values. It is a closure so that no
	// reflection-based printer (fmt with any verb, on a Client, a pointer
	// to one or a struct holding one) can reach the key.
	secret func() *clientSecret
}

type clientSecret struct {
	key       string
	userAgent string
	// postHeader and getHeader are the complete request headers, built
	// once per key and never modified after.
	postHeader http.Header
	getHeader  http.Header
}

// newClientSecret returns the secret for key, with its request headers.
func newClientSecret(key, userAgent string) *clientSecret {
	return &clientSecret{
		key:       key,
		userAgent: userAgent,
		postHeader: http.Header{
			"Skyfire-Api-Key": {key},
			"User-Agent":      {userAgent},
			"Accept":          {"application/json"},
			"Content-Type":    {"application/json"},
		},
		getHeader: http.Header{
			"Skyfire-Api-Key": {key},
			"User-Agent":      {userAgent},
			"Accept":          {"application/json"},
		},
	}
}

// New validates cfg, applies defaults and returns a Client. An invalid
// config gives an error wrapping [ErrInvalidConfig] that names the field;
// it never quotes the API key.
func New(cfg Config) (*Client, error) {
	base, err := validateBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	key := cfg.APIKey.Reveal()
	if key == "" {
		return nil, fmt.Errorf("%w: APIKey is empty", ErrInvalidConfig)
	}
	if !validHeaderValue(key) || strings.TrimSpace(key) != key {
		return nil, fmt.Errorf("%w: APIKey contains characters not allowed in an HTTP header (or leading/trailing space)", ErrInvalidConfig)
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	if !validHeaderValue(ua) {
		return nil, fmt.Errorf("%w: UserAgent contains characters not allowed in an HTTP header", ErrInvalidConfig)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("%w: Timeout is negative", ErrInvalidConfig)
	}
	if cfg.MaxResponseBytes < 0 {
		return nil, fmt.Errorf("%w: MaxResponseBytes is negative", ErrInvalidConfig)
	}
	c := &Client{
		baseURL:       base,
		chargeURL:     base + "/api/v1/tokens/charge",
		introspectURL: base + "/api/v1/tokens/introspect",
		tokensURL:     base + "/api/v1/tokens/",
		timeout:       cfg.Timeout,
		maxBody:       cfg.MaxResponseBytes,
		maxRetries:    cfg.MaxRetries,
		backoff:       cfg.RetryBackoff,
	}
	sec := newClientSecret(key, ua)
	c.secret = func() *clientSecret { return sec }
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxBody == 0 {
		c.maxBody = DefaultMaxResponseBytes
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.backoff == nil {
		c.backoff = defaultBackoff
	}
	if cfg.HTTPClient != nil {
		hc := *cfg.HTTPClient
		hc.CheckRedirect = noRedirects
		c.hc = &hc
		if hc.Timeout > 0 && hc.Timeout < c.timeout {
			c.timeout = hc.Timeout
		}
	} else {
		c.hc = &http.Client{Transport: newTransport(), CheckRedirect: noRedirects}
	}
	c.rt = c.hc.Transport
	if c.rt == nil {
		c.rt = http.DefaultTransport
	}
	_, c.sharedHeaders = c.rt.(*http.Transport)
	if c.chargeReq, err = newTemplate(http.MethodPost, c.chargeURL); err != nil {
		return nil, err
	}
	if c.introspectReq, err = newTemplate(http.MethodPost, c.introspectURL); err != nil {
		return nil, err
	}
	return c, nil
}

// newTemplate returns a request template for method and target.
func newTemplate(method, target string) (*http.Request, error) {
	r, err := http.NewRequest(method, target, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: BaseURL does not make a valid request URL", ErrInvalidConfig)
	}
	return r, nil
}

func defaultBackoff(attempt int) time.Duration {
	return time.Duration(attempt) * 50 * time.Millisecond
}

// noRedirects makes the client return a 3xx as is: following it would
// resend the charge and the API key, possibly to another host.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// newTransport returns the default keep-alive transport.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

func validateBaseURL(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%w: BaseURL is empty", ErrInvalidConfig)
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse errors quote the input, which may hold credentials.
		return "", fmt.Errorf("%w: BaseURL is not a valid URL", ErrInvalidConfig)
	}
	if u.User != nil {
		return "", fmt.Errorf("%w: BaseURL must not contain user info", ErrInvalidConfig)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%w: BaseURL %q must be an absolute http or https URL", ErrInvalidConfig, clip(s, 100))
	}
	if u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("%w: BaseURL %q has no host", ErrInvalidConfig, clip(s, 100))
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return "", fmt.Errorf("%w: BaseURL %q uses plain http:// to a host that is not loopback; the API key would travel unencrypted: use https:// (http:// is allowed only for localhost, 127.0.0.0/8 and ::1)",
			ErrInvalidConfig, clip(s, 100))
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(s, "?#") {
		return "", fmt.Errorf("%w: BaseURL %q must not have a query or fragment", ErrInvalidConfig, clip(s, 100))
	}
	if !validHeaderValue(s) || strings.ContainsAny(s, " ") {
		return "", fmt.Errorf("%w: BaseURL contains spaces or control characters", ErrInvalidConfig)
	}
	return strings.TrimRight(s, "/"), nil
}

// isLoopbackHost reports whether host (without port or brackets) is
// "localhost" or a loopback IP address (127.0.0.0/8, ::1, or an
// IPv4-mapped 127.x address). Other names, even ones that resolve to a
// loopback address, are not trusted: resolution can change.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	if i := strings.IndexByte(host, '%'); i >= 0 { // IPv6 zone
		host = host[:i]
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// validHeaderValue reports whether s is visible ASCII, spaces and tabs
// only, which every HTTP version accepts in a field value.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 0x20 && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

// String describes the client without its key:
// "charge.Client{BaseURL: https://api.skyfire.xyz, APIKey: [REDACTED]}".
func (c Client) String() string {
	return "charge.Client{BaseURL: " + c.baseURL + ", APIKey: " + redacted + "}"
}

// GoString is the same as String.
func (c Client) GoString() string { return c.String() }

// Format writes [Client.String] for every verb, so no fmt verb can reach
// the configuration through reflection.
func (c Client) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue makes log/slog print the base URL and a redacted key.
func (c Client) LogValue() slog.Value {
	return slog.GroupValue(slog.String("base_url", c.baseURL), slog.String("api_key", redacted))
}
