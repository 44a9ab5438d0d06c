package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// Environment variable names.
const (
	envAddr       = "KYAPAY_ADDR"
	envIssuer     = "KYAPAY_ISSUER"
	envJWKSURL    = "KYAPAY_JWKS_URL"
	envAPIBase    = "KYAPAY_API_BASE"
	envAPIKey     = "SKYFIRE_API_KEY"
	envAPIKeyFile = "SKYFIRE_API_KEY_FILE"
	envSellerID   = "KYAPAY_SELLER_ID"
	envSkipAud    = "KYAPAY_INSECURE_SKIP_AUDIENCE"
	envServiceID  = "KYAPAY_SERVICE_ID"
	envEnv        = "KYAPAY_ENV"
	envPrice      = "KYAPAY_PRICE"
	envChargeMode = "KYAPAY_CHARGE_MODE"
	envMetrics    = "KYAPAY_METRICS_ADDR"
)

// Defaults.
const (
	defaultAddr  = "127.0.0.1:8080"
	defaultPrice = "0.01"
)

// config is the validated, effective configuration.
type config struct {
	Addr    string
	Issuer  string
	JWKSURL string
	APIBase string
	APIKey  charge.APIKey // SKYFIRE_API_KEY; prints as [REDACTED] everywhere
	// APIKeyFile is SKYFIRE_API_KEY_FILE, the file the key is read from at
	// start and again whenever the charge API refuses the key in use.
	// Exactly one of APIKey and APIKeyFile is set.
	APIKeyFile string
	SellerID   string        // expected aud; "" only with SkipAud
	SkipAud    bool          // KYAPAY_INSECURE_SKIP_AUDIENCE=1: aud not checked
	ServiceID  string        // "": ssi not checked
	Env        string        // "": the issuer preset's env, else not checked
	Price      kyapay.Amount // > 0
	Mode       middleware.ChargeTiming
	RedisURL   string // KYAPAY_REDIS_URL; "": the in-memory store
	// MetricsAddr is KYAPAY_METRICS_ADDR, the host:port of the Prometheus
	// metrics listener; "": no metrics.
	MetricsAddr string
}

// LogValue lists the effective configuration for the start-up log line. The
// API key appears only redacted; a key file appears as its path.
func (c config) LogValue() slog.Value {
	unchecked := func(s string) string {
		if s == "" {
			return "(not checked)"
		}
		return s
	}
	env := c.Env
	switch {
	case env != "":
	case c.Issuer == kyapay.ProductionIssuer:
		env = kyapay.EnvProduction + " (from the issuer)"
	case c.Issuer == kyapay.SandboxIssuer:
		env = kyapay.EnvSandbox + " (from the issuer)"
	default:
		env = "(not checked)"
	}
	key := slog.Any("api_key", c.APIKey)
	if c.APIKeyFile != "" {
		key = slog.String("api_key_file", c.APIKeyFile)
	}
	metrics := c.MetricsAddr
	if metrics == "" {
		metrics = "(off)"
	}
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("metrics_addr", metrics),
		slog.String("issuer", c.Issuer),
		slog.String("jwks_url", c.JWKSURL),
		slog.String("api_base", c.APIBase),
		key,
		slog.String("seller_id", unchecked(c.SellerID)),
		slog.String("service_id", unchecked(c.ServiceID)),
		slog.String("env", env),
		slog.String("price", c.Price.String()),
		slog.String("charge_mode", c.Mode.String()),
		slog.String("store", redisLogValue(c.RedisURL)),
	)
}

// configError lists every configuration problem found, each naming its
// variable, on one line.
type configError struct {
	problems []string
}

func (e *configError) Error() string {
	return "invalid configuration: " + strings.Join(e.problems, "; ")
}

// loadConfig reads and validates the configuration through getenv. It has
// no side effects. Error messages name the variable and never quote the
// API key or a URL's user info.
func loadConfig(getenv func(string) string) (config, error) {
	var cfg config
	var problems []string
	bad := func(name, format string, args ...any) {
		problems = append(problems, name+": "+fmt.Sprintf(format, args...))
	}

	// KYAPAY_ADDR
	cfg.Addr = getenv(envAddr)
	if cfg.Addr == "" {
		cfg.Addr = defaultAddr
	}
	if err := checkAddr(cfg.Addr); err != nil {
		bad(envAddr, "%v", err)
	}

	// KYAPAY_ISSUER
	cfg.Issuer = getenv(envIssuer)
	issuerOK := false
	if cfg.Issuer == "" {
		bad(envIssuer, "is required (e.g. %s)", kyapay.SandboxIssuer)
	} else if err := checkURL(cfg.Issuer); err != nil {
		bad(envIssuer, "%v", err)
	} else {
		issuerOK = true
	}

	// KYAPAY_JWKS_URL
	cfg.JWKSURL = getenv(envJWKSURL)
	if cfg.JWKSURL != "" {
		if err := checkURL(cfg.JWKSURL); err != nil {
			bad(envJWKSURL, "%v", err)
		}
	} else if issuerOK {
		cfg.JWKSURL = kyapay.JWKSURL(cfg.Issuer)
	}

	// KYAPAY_API_BASE
	cfg.APIBase = getenv(envAPIBase)
	switch {
	case cfg.APIBase != "":
		if err := checkURL(cfg.APIBase); err != nil {
			bad(envAPIBase, "%v", err)
		}
	case cfg.Issuer == kyapay.SandboxIssuer:
		cfg.APIBase = charge.SandboxBaseURL
	case cfg.Issuer == kyapay.ProductionIssuer:
		cfg.APIBase = charge.ProductionBaseURL
	case issuerOK:
		bad(envAPIBase, "is required when %s is not %s or %s", envIssuer, kyapay.SandboxIssuer, kyapay.ProductionIssuer)
	}

	// SKYFIRE_API_KEY, SKYFIRE_API_KEY_FILE: exactly one. The file itself
	// is read (and its key checked) when the charge client is built.
	key := getenv(envAPIKey)
	cfg.APIKeyFile = getenv(envAPIKeyFile)
	switch {
	case key != "" && cfg.APIKeyFile != "":
		bad(envAPIKey, "is set together with %s; set only one of them", envAPIKeyFile)
	case key == "" && cfg.APIKeyFile == "":
		bad(envAPIKey, "is required (or %s, the path of a file holding the key)", envAPIKeyFile)
	case key != "" && !visibleASCII(key):
		// Never quote the key, not even part of it.
		bad(envAPIKey, "contains spaces or characters not allowed in an HTTP header")
	case cfg.APIKeyFile != "" && !printable(cfg.APIKeyFile):
		bad(envAPIKeyFile, "%s contains control characters", quote(cfg.APIKeyFile))
	}
	cfg.APIKey = charge.APIKey(key)

	// KYAPAY_SELLER_ID, KYAPAY_INSECURE_SKIP_AUDIENCE, KYAPAY_SERVICE_ID
	cfg.SellerID = getenv(envSellerID)
	switch skip := getenv(envSkipAud); skip {
	case "":
	case "1":
		cfg.SkipAud = true
	default:
		bad(envSkipAud, "%s is not 1; unset it to check the audience", quote(skip))
	}
	switch {
	case cfg.SellerID == "" && !cfg.SkipAud:
		bad(envSellerID, "is required: the seller agent's account ID, the aud of tokens issued for this seller "+
			"(or set %s=1 to accept tokens issued for any seller)", envSkipAud)
	case cfg.SellerID != "" && cfg.SkipAud:
		bad(envSkipAud, "is set together with %s; unset one of them", envSellerID)
	case cfg.SellerID != "" && !visibleASCII(cfg.SellerID):
		bad(envSellerID, "contains spaces or control characters")
	}
	cfg.ServiceID = getenv(envServiceID)
	if cfg.ServiceID != "" && !visibleASCII(cfg.ServiceID) {
		bad(envServiceID, "contains spaces or control characters")
	}

	// KYAPAY_ENV
	cfg.Env = getenv(envEnv)
	switch cfg.Env {
	case "", kyapay.EnvProduction, kyapay.EnvSandbox:
	default:
		bad(envEnv, "%s is not %q or %q", quote(cfg.Env), kyapay.EnvProduction, kyapay.EnvSandbox)
	}

	// KYAPAY_PRICE
	price := getenv(envPrice)
	if price == "" {
		price = defaultPrice
	}
	if a, err := kyapay.ParseAmount(price); err != nil {
		bad(envPrice, "%s is not a plain decimal USD amount with at most %d decimal places (e.g. 0.01)", quote(price), kyapay.AmountDecimals)
	} else if a.IsZero() {
		bad(envPrice, "must be greater than zero")
	} else {
		cfg.Price = a
	}

	// KYAPAY_CHARGE_MODE
	switch mode := getenv(envChargeMode); mode {
	case "", "before":
		cfg.Mode = middleware.ChargeBefore
	case "after":
		cfg.Mode = middleware.ChargeAfter
	default:
		bad(envChargeMode, "%s is not \"before\" or \"after\"", quote(mode))
	}

	// KYAPAY_REDIS_URL
	if cfg.RedisURL = getenv(envRedisURL); cfg.RedisURL != "" {
		if err := checkRedisURL(cfg.RedisURL); err != nil {
			bad(envRedisURL, "%v", err)
		}
	}

	// KYAPAY_METRICS_ADDR
	if cfg.MetricsAddr = getenv(envMetrics); cfg.MetricsAddr != "" {
		if err := checkAddr(cfg.MetricsAddr); err != nil {
			bad(envMetrics, "%v", err)
		} else if cfg.MetricsAddr == cfg.Addr && !strings.HasSuffix(cfg.Addr, ":0") {
			bad(envMetrics, "is %s's address; metrics need a listener of their own", envAddr)
		}
	}

	if len(problems) > 0 {
		return config{}, &configError{problems: problems}
	}
	return cfg, nil
}

// checkAddr accepts host:port with a numeric port; the host may be empty
// (all interfaces).
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s is not host:port", quote(addr))
	}
	if strings.ContainsAny(host, " \t") {
		return fmt.Errorf("%s has spaces in its host", quote(addr))
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || port[0] == '+' {
		return fmt.Errorf("%s: port must be a number from 0 to 65535", quote(addr))
	}
	return nil
}

// checkURL accepts an absolute http or https URL with a host and without
// user info, query or fragment. Its errors do not quote the URL, which
// might carry credentials.
func checkURL(s string) error {
	if !visibleASCII(s) {
		return errors.New("URL contains spaces or control characters")
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("is not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must be an absolute http:// or https:// URL")
	case u.Host == "" || u.Opaque != "":
		return errors.New("URL has no host")
	case u.User != nil:
		return errors.New("URL must not contain user info")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(s, "?#"):
		return errors.New("URL must not have a query or fragment")
	}
	return nil
}

// visibleASCII reports whether s is visible ASCII only: no spaces, no
// control characters.
func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// printable reports whether s has no control characters (spaces and
// non-ASCII letters are allowed, as in file names).
func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

// quote quotes a configuration value for an error message, clipped so a
// pasted blob does not flood the terminal.
func quote(s string) string {
	const max = 40
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
