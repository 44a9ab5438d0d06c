package eventmetrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/kyapay/kyapay-go/middleware"
)

// microsPerUSD is the number of micro-dollars in one USD.
const microsPerUSD = 1_000_000

// Recorder keeps the state that metrics built from events need across
// events: the exact USD charged per route and token type, the charges of
// unknown outcome awaiting reconciliation, and each issuer's last
// successful key fetch under a cap on distinct issuers. It is safe for
// concurrent use; [Recorder.Record] never blocks beyond a short critical
// section on key events.
type Recorder struct {
	now        func() time.Time
	maxIssuers int

	// usd maps a usdKey to a *atomic.Int64 sum of micro-dollars.
	usd sync.Map
	// pending counts charges whose outcome is unknown and not yet
	// reconciled; it never goes below zero.
	pending atomic.Int64

	issuersMu sync.Mutex // guards issuers
	// issuers holds at most maxIssuers issuers, plus OtherIssuer once
	// the cap is reached.
	issuers map[string]*issuerState
}

type usdKey struct{ route, tokenType string }

// issuerState is what the key metrics report about one issuer value.
type issuerState struct {
	lastOK time.Time // zero until a fetch succeeded
	keys   int
}

// NewRecorder returns a Recorder with cfg's clock and issuer cap. A nil
// clock means time.Now and a MaxIssuers below 1 means 1; build cfg with
// [NewConfig] for the defaults.
func NewRecorder(cfg Config) *Recorder {
	cfg = cfg.normalized()
	return &Recorder{now: cfg.Now, maxIssuers: cfg.MaxIssuers, issuers: make(map[string]*issuerState)}
}

// Record classifies e as [Classify] does and applies it to the state: it
// adds Event.Amount to the USD charged when Class.AddsUSD, moves the
// pending count by Class.Pending (never below zero), and for a key event
// caps Class.Issuer and, on a successful fetch, dates it with the clock
// (Class.RefreshedAt) and keeps Event.Keys. It returns false, changing
// nothing, when e feeds no metric.
func (r *Recorder) Record(e middleware.Event) (Class, bool) {
	c, ok := Classify(e)
	if !ok {
		return c, false
	}
	if c.AddsUSD {
		r.addUSD(c.Route, c.TokenType, e.Amount.Micros())
	}
	switch {
	case c.Pending > 0:
		r.pending.Add(1)
	case c.Pending < 0:
		for {
			n := r.pending.Load()
			if n <= 0 || r.pending.CompareAndSwap(n, n-1) {
				break
			}
		}
	}
	if c.Family == FamilyKeyRefreshes || c.Family == FamilyKeyUnknown {
		c.Issuer, c.RefreshedAt = r.issuer(c.Issuer, e.Kind == middleware.EventKeysRefreshed, e.Keys)
	}
	return c, true
}

// addUSD adds micros to the sum of route and tokenType.
func (r *Recorder) addUSD(route, tokenType string, micros int64) {
	if micros == 0 {
		return
	}
	k := usdKey{route, tokenType}
	v, ok := r.usd.Load(k)
	if !ok {
		v, _ = r.usd.LoadOrStore(k, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(micros)
}

// issuer returns the value for iss (itself while fewer than maxIssuers
// distinct issuers were seen, else OtherIssuer) and, when refreshed,
// dates that value's state with the clock and sets its key count; it
// then returns that time too.
func (r *Recorder) issuer(iss string, refreshed bool, keys int) (string, time.Time) {
	r.issuersMu.Lock()
	defer r.issuersMu.Unlock()
	st, ok := r.issuers[iss]
	if !ok {
		if len(r.issuers) >= r.maxIssuers {
			iss = OtherIssuer
			st = r.issuers[iss]
		}
		if st == nil {
			st = new(issuerState)
			r.issuers[iss] = st
		}
	}
	if !refreshed {
		return iss, time.Time{}
	}
	st.lastOK, st.keys = r.now(), keys
	return iss, st.lastOK
}

// USDValue converts micro-dollars to the float64 nearest to the exact
// decimal. Below 10^15 micro-dollars (one billion USD) that decimal has at
// most 15 significant digits, so the shortest formatting that reads back
// as the same float64 (Prometheus's text exposition, strconv's 'g' with
// precision -1) prints it exactly: "0.3", never "0.30000000000000004".
func USDValue(micros int64) float64 { return float64(micros) / microsPerUSD }

// RangeUSD calls f with each route and token type that was charged and its
// USD total ([USDValue] of the exact micro-dollar sum), in no set order.
// Totals only grow; a pair appears once something was charged on it.
func (r *Recorder) RangeUSD(f func(route, tokenType string, usd float64)) {
	r.usd.Range(func(k, v any) bool {
		key := k.(usdKey)
		f(key.route, key.tokenType, USDValue(v.(*atomic.Int64).Load()))
		return true
	})
}

// Pending returns the number of charges whose outcome is unknown and not
// yet reconciled, as this Recorder saw them: never below zero, since a
// reconciliation of a charge made before a restart counts for nothing.
func (r *Recorder) Pending() int64 { return r.pending.Load() }

// RangeIssuers calls f with each issuer value that had a successful key
// fetch, the time of its last one and the number of usable keys that
// fetch gave, in no set order. f runs after the state is unlocked, so it
// may call the Recorder.
func (r *Recorder) RangeIssuers(f func(issuer string, lastRefresh time.Time, keys int)) {
	type row struct {
		iss string
		st  issuerState
	}
	r.issuersMu.Lock()
	rows := make([]row, 0, len(r.issuers))
	for iss, st := range r.issuers {
		if !st.lastOK.IsZero() {
			rows = append(rows, row{iss, *st})
		}
	}
	r.issuersMu.Unlock()
	for _, x := range rows {
		f(x.iss, x.st.lastOK, x.st.keys)
	}
}
