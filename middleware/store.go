package middleware

import (
	"context"
	"errors"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
)

// PostExpiryChargeWindow is how long after a token's exp Skyfire may still
// charge it. No record a [Store] keeps about a token outlives the token's
// exp plus this window ([TokenRef.Until]).
const PostExpiryChargeWindow = 24 * time.Hour

// Store holds the state that the replicas of a seller share: what is known
// about tokens' balances, idempotency records, and charges whose outcome is
// unknown. Each method is one atomic operation: a transition that must not
// race between replicas is never a read followed by a write. Every record
// expires on its own by its token's [TokenRef.Until].
//
// The default is a [MemoryStore] private to one Middleware. The kyapayredis
// module provides a Store on Redis for many replicas; the storetest package
// checks any implementation against this contract.
//
// Times passed in (Now, Until, lease ends) come from the Middleware's clock;
// a Store compares them with each other and never with its own clock.
// Implementations must be safe for concurrent use.
type Store interface {
	// Balance returns what is known about the token's balance; the zero
	// Balance when nothing is.
	Balance(ctx context.Context, tok TokenRef) (Balance, error)
	// Note merges what a charge taught about a token into its balance
	// ([Balance.Merge]) and, when n.ChargeID is set, marks that charge as
	// accounted for, so that reconciliation never attributes it to another
	// request. now is the current time.
	Note(ctx context.Context, tok TokenRef, n Note, now time.Time) error
	// Begin reserves the idempotency key r.Key on r.Route for the token, for
	// the attempt r.Attempt until r.Now+r.Lease, or reports why it cannot
	// ([BeginState]). It also returns the token's balance.
	Begin(ctx context.Context, r Reservation) (Begun, error)
	// Finish records how the attempt that holds the key ended. It returns
	// [ErrNotHolder] (and changes nothing) if r.Attempt no longer holds the
	// key. Outcome.Note is merged into the token as by Note.
	Finish(ctx context.Context, r Reservation, o Outcome) error
	// AddPending records a charge without an idempotency key whose outcome
	// is unknown, due for reconciliation at once.
	AddPending(ctx context.Context, p PendingCharge) error
	// Due returns up to limit pending charges whose reconciliation is due
	// at now, and postpones each to now+lease so that no other caller takes
	// it meanwhile. A key held by an attempt whose lease ran out is due too:
	// its holder vanished (a crash) and may have charged, so it is returned
	// as a PendingCharge whose Unknown is the lease end.
	Due(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]PendingCharge, error)
	// Resolve settles the pending charge p, if it is still pending: with
	// the first of r.Candidates that no other request accounts for (charged:
	// that charge is marked accounted for), else, if r.Settled, as not
	// charged, else not at all. See [Resolution].
	Resolve(ctx context.Context, p PendingCharge, r Resolution) (Resolved, error)
}

// ErrNotHolder is returned by [Store.Finish] when the attempt no longer
// holds its idempotency key (the lease ran out and another attempt took
// it).
var ErrNotHolder = errors.New("kyapay/middleware: idempotency key is no longer held by this attempt")

// TokenRef names a token in a [Store].
type TokenRef struct {
	// Issuer and JTI identify the token.
	Issuer, JTI string
	// Until is when every record about the token may be dropped: its exp
	// plus [PostExpiryChargeWindow].
	Until time.Time
}

// Balance is what is known about a token's balance. Balances only go down,
// so a known remaining balance is an upper bound, and a price above it is
// always refused.
type Balance struct {
	// Known reports that Skyfire reported Remaining as the balance.
	Known     bool
	Remaining kyapay.Amount
	// DeclinedAt is the smallest price Skyfire declined for lack of
	// balance (zero: none), and ServiceDeclined reports a declined
	// service-price charge. Both hold until DeclineUntil: a decline may be
	// wrong, and the balance may be spendable again later.
	DeclinedAt      kyapay.Amount
	ServiceDeclined bool
	DeclineUntil    time.Time
}

// Merge folds n into b: the lower known balance wins; a decline lowers
// DeclinedAt, sets ServiceDeclined and extends DeclineUntil. Merging is
// commutative and idempotent, so replicas may note in any order.
func (b *Balance) Merge(n Balance) {
	if n.Known && (!b.Known || n.Remaining.Cmp(b.Remaining) < 0) {
		b.Known, b.Remaining = true, n.Remaining
	}
	if !n.DeclinedAt.IsZero() && (b.DeclinedAt.IsZero() || n.DeclinedAt.Cmp(b.DeclinedAt) < 0) {
		b.DeclinedAt = n.DeclinedAt
	}
	if n.ServiceDeclined {
		b.ServiceDeclined = true
	}
	if n.DeclineUntil.After(b.DeclineUntil) {
		b.DeclineUntil = n.DeclineUntil
	}
}

// refuses returns the refusal the balance warrants for a charge of price
// (hasPrice false: the service price) at now, or nil.
func (b *Balance) refuses(price kyapay.Amount, hasPrice bool, now time.Time) error {
	switch {
	case b.Known && b.Remaining.IsZero():
		return kyapay.ErrTokenDepleted
	case b.Known && hasPrice && b.Remaining.Cmp(price) < 0:
		return kyapay.ErrTokenDepleted
	}
	if now.After(b.DeclineUntil) {
		return nil // a remembered decline heals after DeclineMemory
	}
	switch {
	case !hasPrice && b.ServiceDeclined:
		return kyapay.ErrTokenDepleted
	case hasPrice && !b.DeclinedAt.IsZero() && price.Cmp(b.DeclinedAt) >= 0:
		return kyapay.ErrTokenDepleted
	}
	return nil
}

// Note is what one charge taught about a token.
type Note struct {
	// Balance is merged into the token's balance.
	Balance Balance
	// ChargeID, when set, is a confirmed charge to mark as accounted for.
	ChargeID string
}

// IsZero reports whether n carries nothing to record.
func (n Note) IsZero() bool { return n == Note{} }

// Reservation is one attempt at an idempotent request.
type Reservation struct {
	// Token is the token the key is scoped to.
	Token TokenRef
	// Route and Key scope the record: the route's name and the
	// Idempotency-Key (or MCP idempotency value).
	Route, Key string
	// Fingerprint binds the key to the request ([Fingerprint]); a later
	// request with the same key and another fingerprint is refused.
	Fingerprint [32]byte
	// Attempt is a unique random value naming this attempt. It proves the
	// holder in Finish and names the pending charge the attempt may leave.
	Attempt string
	// Amount is the price the attempt will charge; HasAmount false means
	// the service price. Reconciliation matches it.
	Amount    kyapay.Amount
	HasAmount bool
	// Now is the current time and Lease how long the attempt may hold the
	// key before another may take it over.
	Now   time.Time
	Lease time.Duration
}

// BeginState is what [Store.Begin] found.
type BeginState uint8

// Begin states.
const (
	// BeginReserved: the key is now held by the caller's attempt. If
	// Begun.Charged, the key's charge was already made (an earlier attempt
	// charged and could not deliver): deliver without charging.
	BeginReserved BeginState = iota + 1
	// BeginInFlight: another attempt holds the key until Begun.LeaseUntil.
	BeginInFlight
	// BeginDone: the key's request completed; replay Begun.Response.
	BeginDone
	// BeginPending: the key's charge has an unknown outcome
	// (Begun.Pending); resolve it before anything else.
	BeginPending
	// BeginMismatch: the key was used with another fingerprint.
	BeginMismatch
)

// Begun is the answer of [Store.Begin] and [Store.Resolve].
type Begun struct {
	State BeginState
	// Charged and Charge: the charge already made for the key
	// (BeginReserved, BeginDone).
	Charged bool
	Charge  ChargeRef
	// Response is the stored response (BeginDone); nil if none was stored.
	Response []byte
	// LeaseUntil is when the holding attempt's lease ends (BeginInFlight).
	LeaseUntil time.Time
	// Pending is the charge to resolve (BeginPending).
	Pending PendingCharge
	// Balance is the token's balance (Begin only).
	Balance Balance
}

// ChargeRef is a charge made on a token: the transaction ID Skyfire gave
// (the charge ID of its charges list) and the amount it moved.
type ChargeRef struct {
	ID     string
	Amount kyapay.Amount
}

// OutcomeKind is how an attempt ended.
type OutcomeKind uint8

// Outcome kinds.
const (
	// OutcomeReleased: nothing was charged; the record is dropped (a
	// refusal, an uncharged response) so that the key may be used again.
	// If the key's charge had already been made, the record goes back to
	// charged-not-delivered instead.
	OutcomeReleased OutcomeKind = iota + 1
	// OutcomeCharged: the charge was made; the record keeps Charge and
	// Response (nil: too large to store; a duplicate runs again without
	// charging).
	OutcomeCharged
	// OutcomeUnknown: the charge's outcome is unknown; the record becomes
	// pending (named by the attempt) and is due for reconciliation at once.
	// Response, when not nil, is delivered if the charge is found made.
	OutcomeUnknown
)

// Outcome is how an attempt ended, for [Store.Finish].
type Outcome struct {
	Kind     OutcomeKind
	Charge   ChargeRef
	Response []byte
	// Started and Unknown are when the charge call began and when its
	// outcome became unknown (OutcomeUnknown).
	Started, Unknown time.Time
	// Note is merged into the token's balance in the same operation.
	Note Note
	// Now is the current time.
	Now time.Time
}

// PendingCharge is a charge whose outcome is unknown, with what is needed
// to resolve it.
type PendingCharge struct {
	// ID names the pending charge: the attempt that left it.
	ID string
	// Token is the charged token.
	Token TokenRef
	// Route and Key are the idempotency record it belongs to; Key is ""
	// for a charge made without one.
	Route, Key string
	// Amount is what was asked; HasAmount false means the service price.
	Amount    kyapay.Amount
	HasAmount bool
	// Started is when the charge call began; Unknown when its outcome
	// became unknown.
	Started, Unknown time.Time
}

// Resolution is how a caller resolves a pending charge with [Store.Resolve].
type Resolution struct {
	// Candidates are charges listed on the token that may be this one,
	// oldest first. The first that no other request accounts for is
	// attributed to the pending charge, atomically.
	Candidates []ChargeRef
	// Settled: enough time has passed that a charge not listed was never
	// made. With no candidate left, the charge is resolved as not made.
	Settled bool
	// Attempt and Lease, for a charge with an idempotency key: when
	// Attempt is set, the key is reserved for that attempt until Now+Lease
	// in the same operation (a retry that resolves the charge then
	// delivers or charges).
	Attempt string
	Lease   time.Duration
	// Now is the current time.
	Now time.Time
}

// Resolved is the answer of [Store.Resolve].
type Resolved struct {
	// Done reports that this call resolved the charge; Charged and Charge
	// say how.
	Done    bool
	Charged bool
	Charge  ChargeRef
	// Record is the state of the idempotency record afterwards, for a
	// charge with a key: BeginReserved when Resolution.Attempt now holds
	// it, BeginDone when a stored response is to be delivered,
	// BeginInFlight or BeginPending when it is not the caller's, zero when
	// the record is gone.
	Record Begun
}
