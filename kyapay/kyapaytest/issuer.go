package kyapaytest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
)

// Defaults used by [NewIssuer] and [Issuer.Mint]. The UUID-looking values
// are fixed so that tests can configure a verifier with them.
const (
	// DefaultAPIKey is the seller API key the fake API accepts unless
	// [WithAPIKey] is given.
	DefaultAPIKey = "test-api-key"
	// DefaultAudience is the aud claim (seller agent ID) of minted tokens
	// unless [WithAudience] or [Audience] is given.
	DefaultAudience = "3f1c2a9e-5b7d-4e0a-9c61-2d8f4b7a1e05"
	// DefaultServiceID is the ssi claim (seller service ID) of minted
	// tokens unless [WithServiceID] or [ServiceID] is given.
	DefaultServiceID = "9b2e7c41-0d3a-4f58-8e16-7a5c3b9d2f60"
	// DefaultSubject is the sub claim (buyer agent ID) of minted tokens
	// unless [Subject] is given.
	DefaultSubject = "c4a8e2f1-6d3b-4c7e-a915-0f2b8d6e4a73"
	// DefaultBuyerTag is the btg claim of minted tokens unless [BuyerTag]
	// is given.
	DefaultBuyerTag = "e7d1b3a5-2c4f-4a6e-8b90-1f3e5d7c9a24"
	// DefaultEmail is the email in the hid (legacy bid) claim of kya and
	// kya-pay tokens unless [Email] or [Human] is given.
	DefaultEmail = "buyer@example.com"
	// DefaultAmount is the amt (legacy amount) of pay and kya-pay tokens
	// unless [Amount] is given.
	DefaultAmount = "10"
	// DefaultServicePrice is the service price (spr claim, and the amount
	// charged when chargeAmount is omitted) unless [WithServicePrice] is
	// given.
	DefaultServicePrice = "0.01"
	// DefaultAgentName is the aid.name of kya and kya-pay tokens unless
	// [Agent] is given.
	DefaultAgentName = "Test Agent"
	// DefaultKeyID is the kid of the issuer's first signing key.
	DefaultKeyID = "key-1"
	// DefaultJWKSMaxAge is the Cache-Control max-age of the JWKS unless
	// [WithJWKSMaxAge] is given.
	DefaultJWKSMaxAge = time.Hour
	// DefaultTokenLifetime is how long after iat a minted token expires
	// unless [ExpiresAt] or [ExpiresIn] is given.
	DefaultTokenLifetime = time.Hour
	// ChargeGracePeriod is how long after exp the fake API still accepts
	// charges on a token, as Skyfire documents.
	ChargeGracePeriod = 24 * time.Hour
)

// Endpoint names, used by [Fault.Endpoint] and [Issuer.Requests].
const (
	EndpointCharge     = "charge"     // POST /api/v1/tokens/charge
	EndpointIntrospect = "introspect" // POST /api/v1/tokens/introspect
	EndpointCharges    = "charges"    // GET /api/v1/tokens/{jti}/charges
	EndpointJWKS       = "jwks"       // GET /.well-known/jwks.json
)

// API paths served by the fake seller API, relative to [Issuer.APIBaseURL].
const (
	ChargePath     = "/api/v1/tokens/charge"
	IntrospectPath = "/api/v1/tokens/introspect"
	// ChargesPathPrefix is followed by the token's jti and "/charges".
	ChargesPathPrefix = "/api/v1/tokens/"
	// APIKeyHeader is the header that carries the seller API key.
	APIKeyHeader = "skyfire-api-key"
)

// Option configures an [Issuer]. Options are created by the With*
// functions of this package.
type Option func(*config)

type config struct {
	clock        func() time.Time
	issuer       string
	slash        bool
	apiKey       string
	audience     string
	serviceID    string
	env          string
	servicePrice string
	jwksMaxAge   time.Duration
	api          apiConfig // options of the fake seller API (api.go)
}

// WithClock sets the clock that drives the iat and exp defaults of minted
// tokens, the expiry checks of the fake API (including the 24-hour charge
// window) and the time recorded on charges. Default: time.Now.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now == nil {
			panic("kyapaytest: WithClock(nil)")
		}
		c.clock = now
	}
}

// WithIssuer sets the iss claim of minted tokens. Default: the server URL
// ([Issuer.URL]), so a verifier that trusts it finds the keys at
// URL()+"/.well-known/jwks.json".
func WithIssuer(iss string) Option { return func(c *config) { c.issuer = iss } }

// WithIssuerTrailingSlash appends a slash to the iss claim of minted tokens
// (to the [WithIssuer] value, or to the server URL): the spelling of 2025
// tokens, "https://app.skyfire.xyz/". [Issuer.Issuer] returns it with the
// slash; the JWKS stays at [Issuer.JWKSURL].
func WithIssuerTrailingSlash() Option { return func(c *config) { c.slash = true } }

// WithAPIKey sets the seller API key the fake API requires in the
// skyfire-api-key header. Default: [DefaultAPIKey].
func WithAPIKey(key string) Option { return func(c *config) { c.apiKey = key } }

// WithAudience sets the default aud claim of minted tokens. Default:
// [DefaultAudience].
func WithAudience(aud string) Option { return func(c *config) { c.audience = aud } }

// WithServiceID sets the default ssi claim of minted tokens. Default:
// [DefaultServiceID].
func WithServiceID(id string) Option { return func(c *config) { c.serviceID = id } }

// WithEnv sets the default env claim of minted tokens. Default:
// [kyapay.EnvProduction].
func WithEnv(env string) Option { return func(c *config) { c.env = env } }

// WithServicePrice sets the seller service's price: the amount the fake API
// charges when chargeAmount is omitted, and the default spr claim. It must
// be a valid [kyapay.Amount] greater than zero; NewIssuer panics otherwise.
// Default: [DefaultServicePrice].
func WithServicePrice(price string) Option { return func(c *config) { c.servicePrice = price } }

// WithJWKSMaxAge sets the max-age of the Cache-Control header on the JWKS,
// rounded down to whole seconds; zero or negative gives max-age=0.
// Default: [DefaultJWKSMaxAge].
func WithJWKSMaxAge(d time.Duration) Option { return func(c *config) { c.jwksMaxAge = d } }

// Issuer is a fake Skyfire issuer and seller API served by an
// [httptest.Server] on the loopback interface. Create one with [NewIssuer]
// and stop it with [Issuer.Close].
//
// An Issuer is safe for concurrent use by multiple goroutines.
type Issuer struct {
	cfg          config
	servicePrice kyapay.Amount
	srv          *httptest.Server
	iss          string

	done      chan struct{} // closed by Close before the server is closed
	closeOnce sync.Once

	counters map[string]*atomic.Int64 // per endpoint; the map is never written after NewIssuer

	keysMu sync.RWMutex // guards keys, signer, nextKey
	keys   []*keyEntry
	signer string
	// nextKey numbers the kids of keys made by AddKey.
	nextKey int

	ledgerMu sync.Mutex // guards tokens and charges
	tokens   map[string]*tokenRecord
	charges  []Charge

	faultsMu sync.Mutex // guards faults
	faults   []*faultEntry

	api apiState // state of the fake seller API (api.go)
}

// NewIssuer starts a fake issuer and seller API on a loopback address. It
// begins with one signing key, [DefaultKeyID]. It panics if an option is
// invalid (for instance an unparsable [WithServicePrice]).
func NewIssuer(opts ...Option) *Issuer {
	cfg := config{
		clock:        time.Now,
		apiKey:       DefaultAPIKey,
		audience:     DefaultAudience,
		serviceID:    DefaultServiceID,
		env:          kyapay.EnvProduction,
		servicePrice: DefaultServicePrice,
		jwksMaxAge:   DefaultJWKSMaxAge,
	}
	for _, o := range opts {
		o(&cfg)
	}
	price, err := kyapay.ParseAmount(cfg.servicePrice)
	if err != nil || price.IsZero() {
		panic(fmt.Sprintf("kyapaytest: invalid service price %q: must be a decimal amount greater than zero", cfg.servicePrice))
	}
	i := &Issuer{
		cfg:          cfg,
		servicePrice: price,
		done:         make(chan struct{}),
		counters:     make(map[string]*atomic.Int64),
		tokens:       make(map[string]*tokenRecord),
	}
	for _, e := range []string{EndpointCharge, EndpointIntrospect, EndpointCharges, EndpointJWKS} {
		i.counters[e] = new(atomic.Int64)
	}
	i.api.init(cfg)
	i.keys = []*keyEntry{newKeyEntry(DefaultKeyID)}
	i.signer = DefaultKeyID
	i.nextKey = 2

	mux := http.NewServeMux()
	mux.Handle(kyapay.JWKSPath, i.endpoint(EndpointJWKS, http.MethodGet, false, i.serveJWKS))
	mux.Handle(ChargePath, i.endpoint(EndpointCharge, http.MethodPost, true, i.serveCharge))
	mux.Handle(IntrospectPath, i.endpoint(EndpointIntrospect, http.MethodPost, true, i.serveIntrospect))
	mux.Handle(ChargesPathPrefix+"{jti}/charges", i.endpoint(EndpointCharges, http.MethodGet, true, i.serveCharges))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no such endpoint", nil)
	})
	i.srv = httptest.NewServer(mux)
	i.iss = cfg.issuer
	if i.iss == "" {
		i.iss = i.srv.URL
	}
	if cfg.slash && !strings.HasSuffix(i.iss, "/") {
		i.iss += "/"
	}
	return i
}

// URL returns the server's base URL, such as "http://127.0.0.1:12345",
// without a trailing slash.
func (i *Issuer) URL() string { return i.srv.URL }

// Issuer returns the iss claim minted tokens carry: the [WithIssuer] value,
// or [Issuer.URL], followed by a slash with [WithIssuerTrailingSlash].
func (i *Issuer) Issuer() string { return i.iss }

// JWKSURL returns the URL of the issuer's published key set,
// URL()+"/.well-known/jwks.json". It is served whatever [WithIssuer] says.
func (i *Issuer) JWKSURL() string { return i.srv.URL + kyapay.JWKSPath }

// APIBaseURL returns the base URL of the fake seller API, the counterpart of
// https://api.skyfire.xyz: endpoints live at APIBaseURL()+"/api/v1/...". It
// is the same server as [Issuer.URL].
func (i *Issuer) APIBaseURL() string { return i.srv.URL }

// APIKey returns the seller API key the fake API accepts (the first one,
// after [Issuer.SetAPIKeys]).
func (i *Issuer) APIKey() string { return i.api.primaryKey() }

// ServicePrice returns the amount charged when chargeAmount is omitted.
func (i *Issuer) ServicePrice() kyapay.Amount { return i.servicePrice }

// Client returns an HTTP client configured for the server. Its idle
// connections are closed by [Issuer.Close].
func (i *Issuer) Client() *http.Client { return i.srv.Client() }

// Close unblocks every request held by a fault, shuts the server down and
// waits for outstanding requests to finish. It is safe to call more than
// once.
func (i *Issuer) Close() {
	i.closeOnce.Do(func() {
		close(i.done)
		i.srv.Close()
	})
}

// JWKSFetches returns how many requests the JWKS endpoint has received,
// including faulted ones. It equals Requests("jwks").
func (i *Issuer) JWKSFetches() int64 { return i.Requests(EndpointJWKS) }

// Requests returns how many requests an endpoint ("charge", "introspect",
// "charges" or "jwks") has received, counting every request including those
// answered by a fault or refused. It returns 0 for other names.
func (i *Issuer) Requests(endpoint string) int64 {
	c, ok := i.counters[endpoint]
	if !ok {
		return 0
	}
	return c.Load()
}

// now returns the issuer's current time.
func (i *Issuer) now() time.Time { return i.cfg.clock() }
