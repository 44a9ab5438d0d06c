// Package kyapayprom exports the events of a KYAPay
// [github.com/kyapay/kyapay-go/middleware.Middleware] as Prometheus metrics:
// requests by outcome and refusal code, charges by outcome, charge latency,
// USD charged, charges of unknown outcome awaiting reconciliation, and the
// state of each issuer's signing keys.
//
// It lives in a module of its own so that users of the middleware who do not
// use Prometheus never download client_golang. Create an [Observer] on the
// registry your /metrics page serves and install it in the middleware's
// configuration:
//
//	reg := prometheus.NewRegistry()
//	obs, err := kyapayprom.New(reg)
//	...
//	m, err := middleware.New(middleware.Config{Verifier: v, Charger: cc, Observer: obs})
//	...
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// [New] never touches the global default registry unless it is handed
// prometheus.DefaultRegisterer. To keep logs too, the middleware's Logger
// receives the same events; to feed several consumers, combine them with
// [middleware.Observers].
//
// # Metrics
//
//	kyapay_requests_total{route,token_type,outcome,code}          counter
//	kyapay_charges_total{route,token_type,outcome,code}           counter
//	kyapay_charge_duration_seconds{route,outcome}                 histogram
//	kyapay_charged_usd_total{route,token_type}                    counter
//	kyapay_charges_unknown_pending                                gauge
//	kyapay_charges_reconciled_total{route,outcome}                counter
//	kyapay_jwks_refreshes_total{issuer,outcome}                   counter
//	kyapay_jwks_last_refresh_timestamp_seconds{issuer}            gauge
//	kyapay_jwks_keys{issuer}                                      gauge
//	kyapay_jwks_key_unknown_total{issuer}                         counter
//
// The constants Metric* document each one. Requests have the outcomes
// verified, refused (with code, the stable refusal code such as
// token_missing or token_depleted) and replayed; these are the gate's
// decisions, so a request whose token verified and whose charge then failed
// counts once as verified and once as refused. Charges have the outcomes
// paid, mismatch (Skyfire charged another amount than the price), declined,
// not_sent (provably never reached Skyfire; nothing charged) and unknown
// (the jti is logged at Error for reconciliation).
//
// The route label is the requirement's name or the HTTP mux pattern, and
// token_type is kya, pay, kya-pay or none (refused before the token was
// verified). No label ever carries a jti, a subject, an email or a token:
// those are unbounded and identify buyers; they belong in the logs.
//
// # Exact USD
//
// kyapay_charged_usd_total is summed as an integer number of micro-dollars
// and converted to a float64 only when scraped. The text exposition prints
// the shortest decimal that reads back as the same float64, which for any
// total below one billion USD is the exact sum: 0.1 + 0.2 is exposed as 0.3,
// never as the 0.30000000000000004 that adding float64 values would give.
//
// # Reconciliation and keys
//
// kyapay_charges_unknown_pending goes up by one for each charge of unknown
// outcome and down by one when such a charge is reconciled (never below
// zero); it counts what this process saw since it started. The key metrics
// are fed by the key cache's events; kyapay_jwks_last_refresh_timestamp_seconds
// holds the time of the last successful fetch, so
//
//	time() - kyapay_jwks_last_refresh_timestamp_seconds
//
// is the age of the keys in use. Issuers come from the Verifier's
// configuration; [WithMaxIssuers] bounds the issuer label's values anyway.
package kyapayprom
