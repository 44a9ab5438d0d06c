// Package kyapayotel reports the events of a KYAPay
// [github.com/kyapay/kyapay-go/middleware.Middleware] as OpenTelemetry
// metrics, and traces each charge call with a span.
//
// It depends on the OpenTelemetry API only: the application chooses and
// configures the SDK and exporters, and hands this package a
// metric.MeterProvider and a trace.TracerProvider. It lives in a module of
// its own so that users of the middleware who do not use OpenTelemetry never
// download it.
//
//	obs, err := kyapayotel.New(meterProvider)
//	...
//	cc, err := charge.New(charge.Config{
//		BaseURL:    charge.ProductionBaseURL,
//		APIKey:     key,
//		HTTPClient: &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport)},
//	})
//	...
//	m, err := middleware.New(middleware.Config{
//		Verifier: v,
//		Charger:  kyapayotel.WrapCharger(cc, tracerProvider),
//		Observer: obs,
//	})
//
// # Metrics
//
// The metrics have the meaning of the kyapayprom module's, named by
// OpenTelemetry conventions (the constants Metric* document each):
//
//	kyapay.requests                 counter        {request}  kyapay.route, kyapay.token.type, kyapay.outcome, kyapay.code
//	kyapay.charges                  counter        {charge}   kyapay.route, kyapay.token.type, kyapay.outcome, kyapay.code
//	kyapay.charge.duration          histogram      s          kyapay.route, kyapay.outcome
//	kyapay.charged                  counter        USD        kyapay.route, kyapay.token.type
//	kyapay.charges.unknown_pending  up-down count  {charge}
//	kyapay.charges.reconciled       counter        {charge}   kyapay.route, kyapay.outcome
//	kyapay.jwks.refreshes           counter        {refresh}  kyapay.issuer, kyapay.outcome
//	kyapay.jwks.age                 gauge          s          kyapay.issuer
//	kyapay.jwks.keys                gauge          {key}      kyapay.issuer
//	kyapay.jwks.key_unknown         counter        {token}    kyapay.issuer
//
// Requests have the outcomes verified, refused (with kyapay.code, the stable
// refusal code) and replayed; these are the gate's decisions, so a request
// whose token verified and whose charge then failed counts once as verified
// and once as refused. Charges have the outcomes paid, mismatch, declined,
// not_sent and unknown. No attribute ever carries a jti, a subject, an email
// or a token, and every metric attribute value is valid UTF-8 (an invalid
// byte sequence in a route or issuer becomes U+FFFD, as in kyapayprom):
// OTLP encodes attribute values as protobuf strings, which must be.
//
// kyapay.charged is an observable counter kept as an integer number of
// micro-dollars and reported, at each collection, as the float64 nearest to
// the exact sum: for totals below one billion USD its shortest decimal form
// is exact (0.3, never 0.30000000000000004). This holds for cumulative
// temporality, the default; a delta exporter subtracts floats and may not
// be exact. HTTP-level metrics (http.client.request.duration, ...) are not
// repeated here: otelhttp records them.
//
// # Spans
//
// [WrapCharger] runs each charge call in a span named "kyapay.charge", the
// parent of the otelhttp client span of each HTTP attempt. The Observer adds
// each event ("kyapay.verified", "kyapay.paid", "kyapay.refused", ...) to
// the request's span, when the request is traced (for instance by
// otelhttp.NewHandler) and the span is recording.
//
// # Retries through otelhttp
//
// The charge client retries only a failure that provably happened before
// the request left, which it learns from net/http/httptrace events.
// otelhttp's Transport keeps those events (and any ClientTrace given with
// otelhttp.WithClientTrace composes with them), so wrapping the client's
// transport changes nothing about which failures are retried: a refused
// connection is retried, a connection dropped after it was obtained is an
// unknown outcome and is never retried.
package kyapayotel
