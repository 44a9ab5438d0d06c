package eventmetrics

import "time"

// DefaultChargeBuckets are the charge latency histogram's bucket
// boundaries, in seconds: from 5 ms to the middleware's default 15 s charge
// timeout.
var DefaultChargeBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15}

// DefaultMaxIssuers is how many distinct issuer values the key metrics use
// unless [WithMaxIssuers] says otherwise.
const DefaultMaxIssuers = 16

// OtherIssuer is the issuer value of events about issuers beyond the cap
// ([Config.MaxIssuers]).
const OtherIssuer = "other"

// Config is what the options of a metric adapter set. Build it with
// [NewConfig], which fills in the defaults.
type Config struct {
	// ChargeBuckets are the charge latency histogram's bucket boundaries,
	// in seconds. NewConfig's default: [DefaultChargeBuckets].
	ChargeBuckets []float64
	// Now is the clock that dates successful key fetches. NewConfig's
	// default: time.Now.
	Now func() time.Time
	// MaxIssuers bounds how many distinct issuer values the key metrics
	// use, at least 1. NewConfig's default: [DefaultMaxIssuers].
	MaxIssuers int
}

// Option adjusts a [Config].
type Option func(*Config)

// WithChargeBuckets sets the charge latency histogram's bucket
// boundaries, in seconds; b is copied. Default: [DefaultChargeBuckets].
func WithChargeBuckets(b []float64) Option {
	return func(c *Config) { c.ChargeBuckets = append([]float64(nil), b...) }
}

// WithClock sets the clock that dates successful key fetches. A nil now
// means time.Now. Default: time.Now.
func WithClock(now func() time.Time) Option {
	return func(c *Config) { c.Now = now }
}

// WithMaxIssuers bounds how many distinct issuer values the key metrics
// use; events about further issuers are reported as [OtherIssuer]. Issuers
// come from the Verifier's configuration, so the bound only guards against
// a misconfiguration. A value below 1 means 1. Default:
// [DefaultMaxIssuers].
func WithMaxIssuers(n int) Option {
	return func(c *Config) { c.MaxIssuers = n }
}

// NewConfig returns the defaults adjusted by opts, in order. A nil clock
// becomes time.Now and a MaxIssuers below 1 becomes 1.
func NewConfig(opts ...Option) Config {
	c := Config{ChargeBuckets: DefaultChargeBuckets, Now: time.Now, MaxIssuers: DefaultMaxIssuers}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c.normalized()
}

// normalized returns c with a nil clock replaced by time.Now and
// MaxIssuers raised to at least 1.
func (c Config) normalized() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	c.MaxIssuers = max(c.MaxIssuers, 1)
	return c
}
