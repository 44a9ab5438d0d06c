package eventmetrics

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kyapay/kyapay-go/middleware"
)

// Family is the metric family an event feeds.
type Family uint8

// Metric families. Each names the label values of a [Class] it sets; the
// others are empty.
const (
	// FamilyNone: the event feeds no metric (a charge about to start, or
	// a kind this package does not know).
	FamilyNone Family = iota
	// FamilyRequests: a gate decision. Route, TokenType, Outcome
	// ("verified", "refused" or "replayed") and Code (the refusal code
	// when refused, else "").
	FamilyRequests
	// FamilyCharges: the end of a charge call, counted and timed
	// (Event.Duration). Route, TokenType, Outcome ("paid", "mismatch",
	// "declined", "not_sent" or "unknown") and Code (the refusal code the
	// outcome led to, "" when paid).
	FamilyCharges
	// FamilyReconciled: a charge of unknown outcome resolved. Route and
	// Outcome ("charged" or "not_charged"); TokenType too, which the USD
	// sum of a charge found charged is kept under.
	FamilyReconciled
	// FamilyKeyRefreshes: a fetch of an issuer's key set. Issuer and
	// Outcome ("ok" or "error"); on "ok", Event.Keys is the number of
	// usable keys.
	FamilyKeyRefreshes
	// FamilyKeyUnknown: a token signed with a key its issuer does not
	// publish. Issuer.
	FamilyKeyUnknown
)

var familyNames = [...]string{
	FamilyNone:         "none",
	FamilyRequests:     "requests",
	FamilyCharges:      "charges",
	FamilyReconciled:   "reconciled",
	FamilyKeyRefreshes: "key_refreshes",
	FamilyKeyUnknown:   "key_unknown",
}

// String returns the family's snake_case name ("requests", "charges",
// ...).
func (f Family) String() string {
	if int(f) < len(familyNames) {
		return familyNames[f]
	}
	return "unknown_family"
}

// Class is how one event counts: the family it feeds, its label values,
// and what it changes in the state a [Recorder] keeps. Every label value
// is valid UTF-8 and comes from a bounded set.
type Class struct {
	// Family is the metric family the event feeds.
	Family Family
	// Route is the route's name or HTTP mux pattern ("" when unknown).
	Route string
	// TokenType is "kya", "pay", "kya-pay" or "none" (before the token was
	// verified).
	TokenType string
	// Outcome is the decision, charge, reconciliation or fetch outcome;
	// "" for FamilyKeyUnknown.
	Outcome string
	// Code is the refusal code ("token_missing", "token_depleted", ...),
	// or "".
	Code string
	// Issuer is the token issuer of a key event. From [Classify] it is
	// the event's issuer; from [Recorder.Record], [OtherIssuer] once the
	// cap on distinct issuers is reached.
	Issuer string
	// AddsUSD reports whether Event.Amount counts as USD charged: a
	// confirmed charge (paid or mismatch) or an unknown charge reconciled
	// as charged.
	AddsUSD bool
	// Pending is +1 when a charge's outcome became unknown, -1 when such
	// a charge was reconciled, else 0.
	Pending int
	// RefreshedAt is, from [Recorder.Record] on a successful key fetch,
	// the time the Recorder's clock gave it; zero otherwise.
	RefreshedAt time.Time
}

// Classify returns how e counts, and false when it feeds no metric
// (FamilyNone). It keeps no state: Issuer is not capped, and RefreshedAt
// is zero.
func Classify(e middleware.Event) (Class, bool) {
	var c Class
	switch e.Kind {
	case middleware.EventVerified:
		c = Class{Family: FamilyRequests, Outcome: "verified"}
	case middleware.EventRefused:
		c = Class{Family: FamilyRequests, Outcome: "refused", Code: labelValue(string(e.Code))}
	case middleware.EventReplayed:
		c = Class{Family: FamilyRequests, Outcome: "replayed"}
	case middleware.EventPaid, middleware.EventMismatch, middleware.EventDeclined,
		middleware.EventNotSent, middleware.EventUnknown:
		c = Class{Family: FamilyCharges, Outcome: e.Kind.String(), Code: labelValue(string(e.Code))}
		switch e.Kind {
		case middleware.EventPaid, middleware.EventMismatch:
			c.AddsUSD = true
		case middleware.EventUnknown:
			c.Pending = 1
		}
	case middleware.EventReconciled:
		// The reconciler reports a charge found charged with no code.
		c = Class{Family: FamilyReconciled, Outcome: "not_charged", Pending: -1}
		if e.Code == "" {
			c.Outcome, c.AddsUSD = "charged", true
		}
	case middleware.EventKeysRefreshed:
		return Class{Family: FamilyKeyRefreshes, Outcome: "ok", Issuer: labelValue(e.Issuer)}, true
	case middleware.EventKeysRefreshFailed:
		return Class{Family: FamilyKeyRefreshes, Outcome: "error", Issuer: labelValue(e.Issuer)}, true
	case middleware.EventKeyUnknown:
		return Class{Family: FamilyKeyUnknown, Issuer: labelValue(e.Issuer)}, true
	default:
		return Class{}, false
	}
	c.Route = labelValue(e.Route)
	c.TokenType = e.TokenType.String()
	return c, true
}

// labelValue makes s valid UTF-8, replacing each invalid byte sequence
// with U+FFFD: Prometheus refuses label values that are not valid UTF-8
// (its vectors panic on them), and OTLP encodes attribute strings as
// protobuf strings, which must be valid UTF-8 too.
func labelValue(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
