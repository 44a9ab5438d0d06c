package charge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
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
	// header. It must pass [APIKey.Check]. Required unless KeySource is
	// set, and must be empty if it is.
	APIKey APIKey
	// KeySource, if set, supplies the API key instead of APIKey, so that
	// a key can be rotated without a restart (see [FileKey] for a key kept
	// in a file, such as a mounted Kubernetes secret). New calls it once
	// (an error, or a key that fails [APIKey.Check], fails New). The
	// Client calls it again whenever the API answers 401 NOT_AUTHORIZED:
	// if it then gives another valid key, the request is sent once more
	// with that key (a 401 charged nothing) and the new key is used from
	// then on. A source that fails, or gives a malformed key, leaves the
	// current key in use and the 401 is returned ([ReasonAPIKeyRejected],
	// with the source's error as Err, so the source's errors must not
	// quote the key). Concurrent 401s share one call of the source.
	//
	// To rotate: create the new key, update what KeySource reads, then
	// delete the old key at Skyfire. Requests still using the old key get
	// a 401, pick up the new key and are retried once; none fails.
	KeySource KeySource
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
	// secret returns the current key and header values. It is a closure
	// so that no reflection-based printer (fmt with any verb, on a Client,
	// a pointer to one or a struct holding one) can reach the key.
	secret func() *clientSecret
	// keys holds what secret returns; it is a pointer so that a Client
	// value stays copyable (for its value-receiver printing methods).
	keys *keyState
	// source is Config.KeySource, or nil.
	source KeySource
	// now and sleep are the clock and the wait for Retry-After; tests
	// replace them.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// keyState is the current key of a Client.
type keyState struct {
	mu  sync.Mutex // serialises rekey
	cur atomic.Pointer[clientSecret]
}

// KeySource returns the current API key. It must be safe for concurrent
// use, and its errors must not quote the key. See [Config.KeySource].
type KeySource func(ctx context.Context) (APIKey, error)

// Bounds of an API key file read by [FileKey].
const maxKeyFileBytes = 64 << 10

// FileKey returns a [KeySource] that reads the API key from the file at
// path each time it is called, such as a Kubernetes secret mounted as a
// file (which is replaced atomically when the secret changes). One
// trailing line break ("\n" or "\r\n") is ignored; any other whitespace
// makes the key malformed. Errors name the path, never the contents.
func FileKey(path string) KeySource {
	return func(context.Context) (APIKey, error) {
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
		if err != nil {
			return "", fmt.Errorf("reading API key file %s: %w", path, err)
		}
		if len(b) > maxKeyFileBytes {
			return "", fmt.Errorf("%w: API key file %s is larger than %d bytes", ErrInvalidAPIKey, path, maxKeyFileBytes)
		}
		b = bytes.TrimSuffix(b, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
		return APIKey(b), nil
	}
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
	apiKey := cfg.APIKey
	switch {
	case cfg.KeySource != nil && apiKey != "":
		return nil, fmt.Errorf("%w: set APIKey or KeySource, not both", ErrInvalidConfig)
	case cfg.KeySource != nil:
		if apiKey, err = cfg.KeySource(context.Background()); err != nil {
			return nil, fmt.Errorf("%w: KeySource: %w", ErrInvalidConfig, err)
		}
		if err := apiKey.Check(); err != nil {
			return nil, fmt.Errorf("%w: KeySource: %w", ErrInvalidConfig, err)
		}
	case apiKey == "":
		return nil, fmt.Errorf("%w: APIKey is empty", ErrInvalidConfig)
	default:
		if err := apiKey.Check(); err != nil {
			return nil, fmt.Errorf("%w: APIKey: %w", ErrInvalidConfig, err)
		}
	}
	key := apiKey.Reveal()
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
		source:        cfg.KeySource,
		now:           time.Now,
		sleep:         sleepCtx,
	}
	c.keys = new(keyState)
	c.keys.cur.Store(newClientSecret(key, ua))
	c.secret = c.keys.cur.Load
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

// CloseIdleConnections closes the idle keep-alive connections of the
// client's transport (when it has that method, as *http.Transport does).
// A Client in use keeps working: later calls open new connections. Call it
// when the Client is dropped, for example on a configuration reload.
func (c *Client) CloseIdleConnections() {
	if t, ok := c.rt.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

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
