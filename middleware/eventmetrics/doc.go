// Package eventmetrics is what the metric adapters of the middleware (the
// kyapayprom and kyapayotel modules) share: how a [middleware.Event] is
// classified into bounded label values, the exact sum of the USD charged,
// the cap on the issuer label, and the options common to every adapter.
// It depends on no metrics SDK; an adapter maps what it computes onto its
// own instruments.
//
// [Classify] says which metric family an event feeds and with which label
// values: a gate decision (requests: route, token_type, outcome verified,
// refused or replayed, code), the end of a charge call (charges and the
// charge latency: outcome paid, mismatch, declined, not_sent or unknown),
// a reconciliation (outcome charged or not_charged), a key fetch (issuer,
// outcome ok or error) or a token signed with an unknown key (issuer).
// Every value comes from a bounded set (routes and issuers from the
// seller's configuration, codes and outcomes from fixed lists) and is
// valid UTF-8; no value ever carries a jti, a subject, an email or a
// token.
//
// A [Recorder] adds the state the metrics need across events: the USD
// charged per route and token type, kept as an integer number of
// micro-dollars so that the sum is exact, the number of charges whose
// outcome is unknown and not yet reconciled, and each issuer's last
// successful key fetch, with at most [Config.MaxIssuers] distinct issuer
// values before further issuers are reported as [OtherIssuer].
//
// An adapter builds its [Config] with [NewConfig] from the [Option] values
// its own New received, creates one Recorder, and calls [Recorder.Record]
// from its Observe method:
//
//	cfg := eventmetrics.NewConfig(opts...)
//	rec := eventmetrics.NewRecorder(cfg)
//	...
//	c, ok := rec.Record(e)
//	if !ok {
//		return // a kind that feeds no metric
//	}
//	switch c.Family {
//	case eventmetrics.FamilyRequests:
//		requests.WithLabelValues(c.Route, c.TokenType, c.Outcome, c.Code).Inc()
//	...
//	}
package eventmetrics
