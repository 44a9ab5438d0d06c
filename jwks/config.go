package jwks

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by [New] to zero-valued [Config] fields.
const (
	DefaultFetchTimeout        = 10 * time.Second
	DefaultTTL                 = 60 * time.Minute
	DefaultMinTTL              = 1 * time.Minute
	DefaultMaxTTL              = 24 * time.Hour
	DefaultUnknownKIDInterval  = 30 * time.Second
	DefaultNewKIDInterval      = 5 * time.Second
	DefaultMaxFetchesPerMinute = 6
	DefaultMaxStale            = 24 * time.Hour
	DefaultMaxBodyBytes        = 1 << 20
)

// Refresh reasons reported in [RefreshEvent.Reason].
const (
	// ReasonStartup: the first fetch of an issuer, started by [New], and
	// retries while no fetch of that issuer has succeeded yet.
	ReasonStartup = "startup"
	// ReasonTTL: the keys reached their refresh time (80% of the effective
	// TTL) or, after a failure, a retry became due.
	ReasonTTL = "ttl"
	// ReasonUnknownKID: [Cache.Key] was asked for a kid the current set
	// lacks.
	ReasonUnknownKID = "unknown_kid"
	// ReasonManual: [Cache.Refresh] was called.
	ReasonManual = "manual"
)

// Config configures a [Cache]. Only Issuers is required; the zero value of
// every other field selects the default stated on it. Negative durations and
// sizes are rejected by [New].
type Config struct {
	// Issuers maps each trusted issuer (the exact "iss" string) to the
	// absolute http or https URL of its JWK Set, for example
	// "https://app.skyfire.xyz" -> "https://app.skyfire.xyz/.well-known/jwks.json".
	// Required and non-empty; use https outside tests. New copies the map.
	Issuers map[string]string

	// HTTPClient performs the fetches. Default: a client with its own
	// transport (a clone of http.DefaultTransport) and Timeout
	// FetchTimeout. Whichever client is used, redirects to another host
	// (host:port) and from https to http are refused, and at most 10 are
	// followed: a supplied client is copied and its CheckRedirect, if any,
	// runs after those checks. Close closes the default client's idle
	// connections; a client supplied here is left alone.
	HTTPClient *http.Client

	// FetchTimeout bounds each fetch (connect, headers and body), whatever
	// the client. Default 10 s.
	FetchTimeout time.Duration

	// TTL is how long a fetched set is considered fresh when the response
	// has no usable Cache-Control max-age. Default 60 min (Skyfire's
	// guidance). Keys are refreshed in the background at 80% of the
	// effective TTL.
	TTL time.Duration

	// MinTTL and MaxTTL clamp a Cache-Control max-age (minus any Age
	// header). "no-store" and "no-cache" count as MinTTL. Defaults 1 min and
	// 24 h. MinTTL must not exceed MaxTTL. The clamp does not apply to TTL.
	MinTTL, MaxTTL time.Duration

	// UnknownKIDInterval is the rate limit on automatic fetches of one
	// issuer: a fetch for a kid that an earlier successful fetch already
	// came back without starts only if the previous fetch attempt of that
	// issuer (for whatever reason) started at least this long ago, and
	// retries after a failed fetch are spaced by it too. Manual
	// [Cache.Refresh] calls are not limited. Default 30 s.
	UnknownKIDInterval time.Duration

	// NewKIDInterval is the shorter spacing for a kid no fetch has been
	// asked for yet, typically the issuer's new key right after a
	// rotation: a fetch for it starts once the previous fetch attempt of
	// that issuer started at least this long ago. If it exceeds
	// UnknownKIDInterval, UnknownKIDInterval is used. Default 5 s.
	NewKIDInterval time.Duration

	// MaxFetchesPerMinute bounds the automatic fetches of one issuer
	// started in any 60 seconds, whatever the reason, so tokens naming
	// ever new random kids cannot make the cache hammer the issuer: with
	// the defaults, at most 6 fetches a minute per issuer. Manual
	// [Cache.Refresh] calls are not limited but count. Default 6.
	MaxFetchesPerMinute int

	// MaxStale is how long after their last successful fetch the last good
	// keys keep being served while refreshes fail (never less than the
	// effective TTL of that fetch). Past it, [Cache.Key] fails closed with
	// [ErrUnavailable] until a fetch succeeds. Default 24 h.
	MaxStale time.Duration

	// FailFast makes [New] fetch every issuer synchronously and return an
	// error if any fetch fails. When false (the default, "tolerant start"),
	// New returns at once and the first fetches run in the background;
	// [Cache.Key] waits for them if called early.
	FailFast bool

	// MaxBodyBytes bounds a JWKS response body. A larger body is an error
	// ([ErrBodyTooLarge]); it is never silently truncated. Default 1 MiB.
	MaxBodyBytes int64

	// Clock returns the current time. It is used for every TTL, staleness
	// and rate-limit decision, so tests can drive the cache with a fake
	// clock. Default time.Now.
	Clock func() time.Time

	// OnRefresh, if set, is called after every fetch attempt, successful or
	// not, on the goroutine that fetched, after the new state is visible to
	// Key and before callers waiting on that fetch are released. It must
	// return quickly and must not call [Cache.Close]. Calls for different
	// issuers may be concurrent.
	OnRefresh func(RefreshEvent)

	// Logger, if set, receives refresh failures at Warn (Debug for a fetch
	// cancelled by Close) and successes at Debug. Default: no logging.
	Logger *slog.Logger

	// noLoop, set only by this package's tests, keeps New from starting the
	// background refresh loop so that tests decide when fetches happen.
	noLoop bool
}

// RefreshEvent reports one fetch attempt to Config.OnRefresh.
type RefreshEvent struct {
	// Issuer and URL identify the key set fetched. A password in the URL
	// is redacted.
	Issuer, URL string
	// Reason is why the fetch ran: ReasonStartup, ReasonTTL,
	// ReasonUnknownKID or ReasonManual.
	Reason string
	// Keys is the number of usable keys in the fetched set (0 on failure);
	// Skipped the number of elements ParseSet skipped.
	Keys, Skipped int
	// TTL is the effective TTL applied to the fetched set (Cache-Control
	// max-age clamped to [MinTTL, MaxTTL], or Config.TTL); 0 on failure.
	TTL time.Duration
	// Err is nil on success, otherwise a [*FetchError]. On failure the
	// previous keys, if any, are kept.
	Err error
	// Duration is the wall-clock time the attempt took.
	Duration time.Duration
	// At is when the attempt started, according to Config.Clock.
	At time.Time
}

// settings is a validated Config with defaults filled in.
type settings struct {
	issuers            map[string]string
	client             *http.Client
	ownClient          bool // client was created by New; Close closes its idle connections
	fetchTimeout       time.Duration
	ttl                time.Duration
	minTTL, maxTTL     time.Duration
	unknownKIDInterval time.Duration
	newKIDInterval     time.Duration
	maxPerMinute       int
	maxStale           time.Duration
	failFast           bool
	maxBodyBytes       int64
	clock              func() time.Time
	onRefresh          func(RefreshEvent)
	logger             *slog.Logger
	noLoop             bool
}

func (cfg *Config) settings() (*settings, error) {
	if len(cfg.Issuers) == 0 {
		return nil, errors.New("jwks: invalid config: Issuers is empty")
	}
	s := &settings{
		issuers:            make(map[string]string, len(cfg.Issuers)),
		client:             cfg.HTTPClient,
		fetchTimeout:       cfg.FetchTimeout,
		ttl:                cfg.TTL,
		minTTL:             cfg.MinTTL,
		maxTTL:             cfg.MaxTTL,
		unknownKIDInterval: cfg.UnknownKIDInterval,
		newKIDInterval:     cfg.NewKIDInterval,
		maxPerMinute:       cfg.MaxFetchesPerMinute,
		maxStale:           cfg.MaxStale,
		failFast:           cfg.FailFast,
		maxBodyBytes:       cfg.MaxBodyBytes,
		clock:              cfg.Clock,
		onRefresh:          cfg.OnRefresh,
		logger:             cfg.Logger,
		noLoop:             cfg.noLoop,
	}
	for iss, raw := range cfg.Issuers {
		if iss == "" {
			return nil, errors.New("jwks: invalid config: empty issuer in Issuers")
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("jwks: invalid config: JWKS URL for issuer %q: %w", iss, err)
		}
		if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("jwks: invalid config: JWKS URL %q for issuer %q must be an absolute http or https URL", raw, iss)
		}
		s.issuers[iss] = raw
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"FetchTimeout", &s.fetchTimeout, DefaultFetchTimeout},
		{"TTL", &s.ttl, DefaultTTL},
		{"MinTTL", &s.minTTL, DefaultMinTTL},
		{"MaxTTL", &s.maxTTL, DefaultMaxTTL},
		{"UnknownKIDInterval", &s.unknownKIDInterval, DefaultUnknownKIDInterval},
		{"NewKIDInterval", &s.newKIDInterval, DefaultNewKIDInterval},
		{"MaxStale", &s.maxStale, DefaultMaxStale},
	}
	for _, d := range durations {
		if *d.v < 0 {
			return nil, fmt.Errorf("jwks: invalid config: %s is negative (%v)", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	s.newKIDInterval = min(s.newKIDInterval, s.unknownKIDInterval)
	if s.maxPerMinute < 0 {
		return nil, fmt.Errorf("jwks: invalid config: MaxFetchesPerMinute is negative (%d)", s.maxPerMinute)
	}
	if s.maxPerMinute == 0 {
		s.maxPerMinute = DefaultMaxFetchesPerMinute
	}
	if s.minTTL > s.maxTTL {
		return nil, fmt.Errorf("jwks: invalid config: MinTTL (%v) exceeds MaxTTL (%v)", s.minTTL, s.maxTTL)
	}
	if s.maxBodyBytes < 0 {
		return nil, fmt.Errorf("jwks: invalid config: MaxBodyBytes is negative (%d)", s.maxBodyBytes)
	}
	if s.maxBodyBytes == 0 {
		s.maxBodyBytes = DefaultMaxBodyBytes
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.client == nil {
		s.client = defaultClient(s.fetchTimeout)
		s.ownClient = true
	} else {
		cp := *s.client
		cp.CheckRedirect = checkRedirect(s.client.CheckRedirect)
		s.client = &cp
	}
	return s, nil
}

// defaultClient is the client used when Config.HTTPClient is nil.
func defaultClient(timeout time.Duration) *http.Client {
	var tr *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	} else {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment}
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: checkRedirect(nil),
	}
}

// checkRedirect returns a redirect policy that refuses a redirect to
// another host than the JWKS URL's, a downgrade from https to http, and
// more than 10 redirects, then applies next if it is not nil. A JWKS is
// fetched from the URL the seller configured; a redirect elsewhere is
// either a misconfiguration or an attempt to substitute keys.
func checkRedirect(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("jwks: stopped after 10 redirects")
		}
		if !strings.EqualFold(req.URL.Host, via[0].URL.Host) {
			return fmt.Errorf("jwks: refusing redirect from host %q to another host", via[0].URL.Host)
		}
		if req.URL.Scheme != "https" && via[len(via)-1].URL.Scheme == "https" {
			return errors.New("jwks: refusing redirect from https to " + req.URL.Scheme)
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
}
