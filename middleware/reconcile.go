package middleware

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
)

// ChargeLister lists the charges made on a token (GET
// /api/v1/tokens/{jti}/charges). *charge.Client implements it. When
// [Config.Charger] implements it too, the Middleware resolves charges whose
// outcome was unknown by looking for them in the token's charges.
type ChargeLister interface {
	AllTokenCharges(ctx context.Context, jti string) ([]charge.ChargeRecord, error)
}

// reconcileSkew widens the window in which a listed charge may be the
// pending one, for clock skew between the seller and Skyfire.
const reconcileSkew = time.Minute

// maxCandidates bounds the charges offered to the Store for one
// resolution.
const maxCandidates = 64

// dueBatch is how many pending charges Reconcile takes at a time.
const dueBatch = 64

// errNoLister is returned by Reconcile when the Charger cannot list
// charges.
var errNoLister = errors.New("kyapay/middleware: the Charger does not list charges (ChargeLister); cannot reconcile")

// reconciler is the Middleware's background reconciliation loop.
type reconciler struct {
	running atomic.Bool // started and not closed: the request path's fast check
	mu      sync.Mutex  // guards started, closed, cancel and done
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// initStore applies the Store settings of cfg.
func (m *Middleware) initStore(cfg Config) error {
	m.store, m.shared = cfg.Store, cfg.Store != nil
	if m.store == nil {
		m.store = NewMemoryStore(MemoryStoreConfig{})
	}
	m.lister, _ = cfg.Charger.(ChargeLister)
	m.idemLease = cfg.IdempotencyLease
	if m.idemLease == 0 {
		m.idemLease = max(DefaultIdempotencyLease, 2*m.chargeTimeout)
	}
	if m.idemLease <= m.chargeTimeout {
		return errors.New("kyapay/middleware: IdempotencyLease must exceed ChargeTimeout")
	}
	m.maxReplay = cfg.MaxReplayBytes
	if m.maxReplay == 0 {
		m.maxReplay = DefaultMaxReplayBytes
	}
	if m.maxReplay < 0 {
		return errors.New("kyapay/middleware: MaxReplayBytes is negative")
	}
	m.reconcileGap = cfg.ReconcileInterval
	if m.reconcileGap == 0 {
		m.reconcileGap = DefaultReconcileInterval
	}
	m.settle = cfg.ReconcileAfter
	if m.settle == 0 {
		m.settle = DefaultReconcileAfter
	}
	if m.settle < 0 {
		return errors.New("kyapay/middleware: ReconcileAfter is negative")
	}
	return nil
}

// startReconciler starts the background loop on first use of the Store,
// unless it runs already, was closed, or cannot work (no ChargeLister,
// ReconcileInterval negative).
func (m *Middleware) startReconciler() {
	if m.rec.running.Load() || m.lister == nil || m.reconcileGap <= 0 {
		return
	}
	m.rec.mu.Lock()
	defer m.rec.mu.Unlock()
	if m.rec.started || m.rec.closed {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.rec.started, m.rec.cancel, m.rec.done = true, cancel, make(chan struct{})
	m.rec.running.Store(true)
	go m.reconcileLoop(ctx, m.rec.done)
}

// Close stops the Middleware's background reconciliation and waits for it
// to return, and stops reporting the verifier's key refreshes as events. Pending charges stay in the Store, for another replica or a
// later Middleware. The Middleware keeps serving requests after Close
// (charges of unknown outcome then wait for a retry or
// [Middleware.Reconcile]). Close is idempotent and always returns nil.
func (m *Middleware) Close() error {
	if m.unlistenKeys != nil {
		m.unlistenKeys()
	}
	m.rec.mu.Lock()
	m.rec.closed = true
	m.rec.running.Store(true) // the fast check then never starts it again
	cancel, done := m.rec.cancel, m.rec.done
	m.rec.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

func (m *Middleware) reconcileLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(m.reconcileGap)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := m.Reconcile(ctx); err != nil && ctx.Err() == nil {
			m.log.LogAttrs(ctx, slog.LevelWarn, "kyapay: reconciling charges failed", slog.String("error", clip(err.Error())))
		}
	}
}

// Reconcile resolves the pending charges that are due now: charges of
// unknown outcome, and idempotent requests whose holder vanished. Each is
// looked up in the token's charges through the Charger ([ChargeLister]):
// a listed charge of the amount, made after the attempt began and not
// accounted for by another request, means it was charged; none, once
// [Config.ReconcileAfter] has passed, means it was not. Each resolution is
// reported as [EventReconciled] and logged with the jti; one that cannot be
// decided yet stays pending. It returns how many it resolved.
//
// The background loop ([Config.ReconcileInterval]) calls it; call it
// yourself when the loop is disabled.
func (m *Middleware) Reconcile(ctx context.Context) (int, error) {
	if m.lister == nil {
		return 0, errNoLister
	}
	lease := max(2*m.chargeTimeout, m.reconcileGap)
	n := 0
	for {
		due, err := m.store.Due(ctx, m.now(), lease, dueBatch)
		if err != nil {
			return n, err
		}
		for _, p := range due {
			rs, _ := m.resolve(ctx, p, "")
			if rs.Done {
				n++
			}
		}
		if len(due) < dueBatch || ctx.Err() != nil {
			return n, ctx.Err()
		}
	}
}

// resolve tries to settle the pending charge p through the charges listing;
// attempt, when set, takes the key over for a retry in the same Store
// operation. A Resolved whose Record is still BeginPending could not be
// decided yet.
func (m *Middleware) resolve(ctx context.Context, p PendingCharge, attempt string) (Resolved, error) {
	undecided := Resolved{Record: Begun{State: BeginPending, Pending: p}}
	if m.lister == nil {
		return undecided, errNoLister
	}
	lctx, cancel := context.WithTimeout(ctx, m.chargeTimeout)
	records, err := m.lister.AllTokenCharges(lctx, p.Token.JTI)
	cancel()
	now := m.now()
	if err != nil {
		m.log.LogAttrs(ctx, slog.LevelWarn, "kyapay: listing a token's charges failed; its pending charge stays pending",
			slog.String("jti", clip(p.Token.JTI)), slog.String("error", clip(err.Error())))
		return undecided, err
	}
	sctx, cancel := m.storeCtx(ctx)
	rs, err := m.store.Resolve(sctx, p, Resolution{
		Candidates: candidates(records, p),
		Settled:    !now.Before(p.Unknown.Add(m.settle)),
		Attempt:    attempt,
		Lease:      m.idemLease,
		Now:        now,
	})
	cancel()
	if err != nil {
		return undecided, err
	}
	if rs.Done {
		e := Event{Kind: EventReconciled, Route: p.Route, Issuer: p.Token.Issuer, JTI: p.Token.JTI, Price: p.Amount, HasPrice: p.HasAmount}
		if rs.Charged {
			e.Amount = rs.Charge.Amount
		} else {
			e.Code = kyapay.CodeChargeDeclined
		}
		m.emit(ctx, e)
	}
	return rs, nil
}

// candidates returns the listed charges that may be p: of its amount (any
// amount for a service-price charge), made no earlier than its start (less
// the skew), oldest first.
func candidates(records []charge.ChargeRecord, p PendingCharge) []ChargeRef {
	from := p.Started.Add(-reconcileSkew)
	var out []charge.ChargeRecord
	for _, r := range records {
		if r.ChargeID == "" || (p.HasAmount && r.Amount.Cmp(p.Amount) != 0) {
			continue
		}
		if !r.ChargedAt.IsZero() && r.ChargedAt.Before(from) {
			continue
		}
		out = append(out, r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ChargedAt.Before(out[j].ChargedAt) })
	if len(out) > maxCandidates {
		out = out[:maxCandidates]
	}
	refs := make([]ChargeRef, len(out))
	for i, r := range out {
		refs[i] = ChargeRef{ID: r.ChargeID, Amount: r.Amount}
	}
	return refs
}
