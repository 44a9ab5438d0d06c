package middleware

import (
	"context"
	"log/slog"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
)

// EventKind is what an [Event] reports.
type EventKind uint8

// Event kinds. The set may grow; an Observer should ignore kinds it does
// not know.
const (
	// EventVerified: a token was verified and met the route's requirement.
	EventVerified EventKind = iota + 1
	// EventRefused: a request was refused; Event.Code says why. A request
	// refused because its charge failed reports the charge's event
	// (EventDeclined, EventUnknown, ...) and then EventRefused.
	EventRefused
	// EventChargeStarted: a charge call is about to be made.
	EventChargeStarted
	// EventPaid: Skyfire confirmed a charge. Amount is what it charged,
	// Remaining the balance it reported, Duration the call's time.
	EventPaid
	// EventDeclined: Skyfire declined a charge; nothing was charged.
	// Code is token_depleted, charge_declined or charge_unavailable.
	EventDeclined
	// EventNotSent: a charge call provably never reached Skyfire; nothing
	// was charged.
	EventNotSent
	// EventUnknown: a charge's outcome is unknown (timeout, 5xx after
	// sending). The jti is to be reconciled.
	EventUnknown
	// EventMismatch: Skyfire charged a different amount than asked for;
	// Amount is what it charged, Price what was asked.
	EventMismatch
	// EventReconciled: a charge whose outcome was unknown was resolved;
	// Code is empty when it was found charged, charge_declined when not.
	EventReconciled
	// EventReplayed: an idempotent request was answered from a stored
	// response, without running the handler or charging.
	EventReplayed
	// EventKeysRefreshed: the issuer's key set was fetched.
	EventKeysRefreshed
	// EventKeysRefreshFailed: fetching the issuer's key set failed; the
	// last good keys, if any, stay in use.
	EventKeysRefreshFailed
	// EventKeyUnknown: a token was signed with a key the issuer does not
	// publish.
	EventKeyUnknown
)

var eventNames = [...]string{
	EventVerified:          "verified",
	EventRefused:           "refused",
	EventChargeStarted:     "charge_started",
	EventPaid:              "paid",
	EventDeclined:          "declined",
	EventNotSent:           "not_sent",
	EventUnknown:           "unknown",
	EventMismatch:          "mismatch",
	EventReconciled:        "reconciled",
	EventReplayed:          "replayed",
	EventKeysRefreshed:     "keys_refreshed",
	EventKeysRefreshFailed: "keys_refresh_failed",
	EventKeyUnknown:        "key_unknown",
}

// String returns the kind's snake_case name ("paid", "refused", ...),
// suitable as a metric label value.
func (k EventKind) String() string {
	if int(k) < len(eventNames) && eventNames[k] != "" {
		return eventNames[k]
	}
	return "unknown_event"
}

// Event is one decision of the gate or the key cache, for an [Observer].
// It never carries the token, an API key or an identity claim such as an
// email; JTI and Subject are for logs only and must not become metric
// labels (they are unbounded).
type Event struct {
	// Kind is what happened.
	Kind EventKind
	// Route names the route or tool ([Requirement.Name], else the HTTP mux
	// pattern); "" when unknown.
	Route string
	// Timing is the route's charge timing.
	Timing ChargeTiming
	// TokenType is the verified token's type (0 before verification).
	TokenType kyapay.TokenType
	// Issuer is the token's issuer, when known.
	Issuer string
	// JTI and Subject identify the token and buyer, and Path is the HTTP
	// request's path: for logs and reconciliation only, never for metric
	// labels.
	JTI, Subject, Path string
	// Code is the refusal or decline code, when there is one.
	Code kyapay.Code
	// Price is what the request costs, when known (HasPrice).
	Price    kyapay.Amount
	HasPrice bool
	// Amount is what Skyfire charged (EventPaid, EventMismatch).
	Amount kyapay.Amount
	// Remaining is the balance Skyfire reported (HasRemaining).
	Remaining    kyapay.Amount
	HasRemaining bool
	// Duration is how long the charge call or key fetch took.
	Duration time.Duration
	// Keys is the number of usable keys fetched (key events).
	Keys int
	// Err is the internal cause, for logs only: it may name upstream
	// details, never the token or a key.
	Err error
}

// Observer receives every [Event] of a Middleware: the same events the
// Middleware's own log lines are written from, so logs and metrics cannot
// disagree. Observe runs synchronously on the request's goroutine (or the
// key cache's), so it must be quick and must not block; it may be called
// concurrently. The kyapayprom and kyapayotel modules provide Observers.
type Observer interface {
	Observe(ctx context.Context, e Event)
}

// ObserverFunc adapts a function to [Observer].
type ObserverFunc func(ctx context.Context, e Event)

// Observe calls f.
func (f ObserverFunc) Observe(ctx context.Context, e Event) { f(ctx, e) }

// Observers fans events out to several observers, in order.
func Observers(obs ...Observer) Observer {
	var list []Observer
	for _, o := range obs {
		if o != nil {
			list = append(list, o)
		}
	}
	return ObserverFunc(func(ctx context.Context, e Event) {
		for _, o := range list {
			o.Observe(ctx, e)
		}
	})
}

// observing reports whether anything consumes events of the given log
// level, so the hot path builds no Event when nothing would read it.
func (m *Middleware) observing(ctx context.Context, level slog.Level) bool {
	return m.obs != nil || m.log.Enabled(ctx, level)
}

// emit hands e to the observer and writes its log line.
func (m *Middleware) emit(ctx context.Context, e Event) {
	if m.obs != nil {
		m.obs.Observe(ctx, e)
	}
	logEvent(ctx, m.log, e)
}

// eventLevel is the log level of each kind.
func eventLevel(k EventKind) slog.Level {
	switch k {
	case EventPaid, EventReplayed, EventReconciled:
		return slog.LevelInfo
	case EventDeclined, EventNotSent, EventKeysRefreshFailed:
		return slog.LevelWarn
	case EventUnknown, EventMismatch:
		return slog.LevelError
	}
	return slog.LevelDebug
}

// logEvent is the slog consumer of events.
func logEvent(ctx context.Context, log *slog.Logger, e Event) {
	level := eventLevel(e.Kind)
	if !log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs, slog.String("event", e.Kind.String()))
	if e.Route != "" {
		attrs = append(attrs, slog.String("route", clip(e.Route)))
	}
	if e.Path != "" {
		attrs = append(attrs, slog.String("path", clip(e.Path)))
	}
	if e.Code != "" {
		attrs = append(attrs, slog.String("code", string(e.Code)))
	}
	if e.JTI != "" {
		attrs = append(attrs, slog.String("jti", clip(e.JTI)))
	}
	if e.Subject != "" {
		attrs = append(attrs, slog.String("sub", clip(e.Subject)))
	}
	if e.Issuer != "" && e.Kind >= EventKeysRefreshed {
		attrs = append(attrs, slog.String("iss", clip(e.Issuer)))
	}
	if e.HasPrice {
		attrs = append(attrs, slog.String("price", e.Price.String()))
	}
	switch e.Kind {
	case EventPaid, EventMismatch:
		attrs = append(attrs, slog.String("amount", e.Amount.String()))
		if e.HasRemaining {
			attrs = append(attrs, slog.String("remaining", e.Remaining.String()))
		}
		attrs = append(attrs, slog.Duration("duration", e.Duration))
	case EventReconciled, EventReplayed:
		if e.Code == "" {
			attrs = append(attrs, slog.String("amount", e.Amount.String()))
		}
	case EventKeysRefreshed:
		attrs = append(attrs, slog.Int("keys", e.Keys))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("error", clip(e.Err.Error())))
	}
	log.LogAttrs(ctx, level, logMessages[e.Kind], attrs...)
}

var logMessages = [...]string{
	EventVerified:          "kyapay: verified",
	EventRefused:           "kyapay: refused",
	EventChargeStarted:     "kyapay: charging",
	EventPaid:              "kyapay: charged",
	EventDeclined:          "kyapay: charge declined",
	EventNotSent:           "kyapay: charge not sent",
	EventUnknown:           "kyapay: charge outcome unknown; reconcile this token's charges",
	EventMismatch:          "kyapay: charged a different amount than the price; reconcile this token's charges",
	EventReconciled:        "kyapay: unknown charge reconciled",
	EventReplayed:          "kyapay: idempotent replay",
	EventKeysRefreshed:     "kyapay: issuer keys refreshed",
	EventKeysRefreshFailed: "kyapay: issuer keys refresh failed",
	EventKeyUnknown:        "kyapay: token signed with an unknown key",
}
