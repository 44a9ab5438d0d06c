// Package storetest checks a [middleware.Store] implementation against the
// contract the gate relies on: balances merge, an idempotency key is held
// by one attempt at a time, a completed request is replayed, a charge of
// unknown outcome becomes pending and is resolved once, a charge is
// attributed to one request only, and nothing outlives its token.
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, storetest.Suite{New: func(t *testing.T) middleware.Store { return newStore(t) }})
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// Suite describes the Store under test.
type Suite struct {
	// New returns an empty Store; each test gets its own. Required.
	New func(t *testing.T) middleware.Store
	// TTLs, if set, is called at the end of tests that wrote records, with
	// the largest Until-minus-Now they used: it should check that
	// everything the Store holds expires on its own within that.
	TTLs func(t *testing.T, s middleware.Store, max time.Duration)
}

// T0 is the clock of the suite's operations.
var T0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

var seq atomic.Int64

// Token returns a fresh token reference valid for an hour past T0 (plus
// the post-expiry window).
func Token() middleware.TokenRef {
	return middleware.TokenRef{
		Issuer: "https://issuer.example/",
		JTI:    fmt.Sprintf("jti-%d-%d", time.Now().UnixNano(), seq.Add(1)),
		Until:  T0.Add(time.Hour + middleware.PostExpiryChargeWindow),
	}
}

func amount(s string) kyapay.Amount { return kyapay.MustParseAmount(s) }

func fp(s string) [32]byte { return middleware.Fingerprint("GET", s, nil) }

// reservation returns a reservation of key on tok at now.
func reservation(tok middleware.TokenRef, key, attempt string, now time.Time) middleware.Reservation {
	return middleware.Reservation{
		Token: tok, Route: "GET /x", Key: key, Fingerprint: fp("/x"), Attempt: attempt,
		Amount: amount("0.01"), HasAmount: true, Now: now, Lease: time.Minute,
	}
}

// Run runs the conformance tests.
func Run(t *testing.T, s Suite) {
	t.Helper()
	tests := []struct {
		name string
		f    func(t *testing.T, s Suite)
	}{
		{"BalanceMerge", testBalanceMerge},
		{"BeginHoldsKey", testBeginHoldsKey},
		{"DoneIsReplayed", testDoneIsReplayed},
		{"ReleasedFreesKey", testReleasedFreesKey},
		{"ChargedWithoutResponse", testChargedWithoutResponse},
		{"LeaseEndMakesPending", testLeaseEndMakesPending},
		{"UnknownResolvedCharged", testUnknownResolvedCharged},
		{"UnknownResolvedNotCharged", testUnknownResolvedNotCharged},
		{"ChargeAttributedOnce", testChargeAttributedOnce},
		{"StaleResolution", testStaleResolution},
		{"KeylessPending", testKeylessPending},
		{"ExpiredTokenForgotten", testExpiredTokenForgotten},
		{"ConcurrentBegin", testConcurrentBegin},
		{"ConcurrentResolve", testConcurrentResolve},
		{"BoundedChargeIDs", testBoundedChargeIDs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.f(t, s)
		})
	}
}

func ctx() context.Context { return context.Background() }

// ok fails the test on a Store error and returns the value.
type ok struct{ t *testing.T }

func must(t *testing.T) ok { return ok{t} }

func (o ok) fail(err error) {
	o.t.Helper()
	if err != nil {
		o.t.Fatal(err)
	}
}

func (o ok) balance(v middleware.Balance, err error) middleware.Balance {
	o.t.Helper()
	o.fail(err)
	return v
}

func (o ok) begun(v middleware.Begun, err error) middleware.Begun {
	o.t.Helper()
	o.fail(err)
	return v
}

func (o ok) resolved(v middleware.Resolved, err error) middleware.Resolved {
	o.t.Helper()
	o.fail(err)
	return v
}

func (o ok) due(v []middleware.PendingCharge, err error) []middleware.PendingCharge {
	o.t.Helper()
	o.fail(err)
	return v
}

// checkTTL asks the Store under test whether everything it holds expires
// within tok's Until as seen from T0, the earliest time the tests use.
func checkTTL(t *testing.T, s Suite, st middleware.Store, tok middleware.TokenRef) {
	if s.TTLs != nil {
		s.TTLs(t, st, tok.Until.Sub(T0))
	}
}

func testBalanceMerge(t *testing.T, s Suite) {
	st := s.New(t)
	tok, other := Token(), Token()
	if b := must(t).balance(st.Balance(ctx(), tok)); b != (middleware.Balance{}) {
		t.Fatalf("unknown token balance = %+v; want zero", b)
	}
	until := T0.Add(time.Minute)
	notes := []middleware.Note{
		{Balance: middleware.Balance{Known: true, Remaining: amount("0.05")}, ChargeID: "c1"},
		{Balance: middleware.Balance{Known: true, Remaining: amount("0.07")}},
		{Balance: middleware.Balance{DeclinedAt: amount("0.04"), DeclineUntil: until}},
		{Balance: middleware.Balance{DeclinedAt: amount("0.06"), ServiceDeclined: true, DeclineUntil: T0}},
	}
	for _, n := range notes {
		if err := st.Note(ctx(), tok, n, T0); err != nil {
			t.Fatal(err)
		}
	}
	want := middleware.Balance{Known: true, Remaining: amount("0.05"), DeclinedAt: amount("0.04"), ServiceDeclined: true, DeclineUntil: until}
	if b := must(t).balance(st.Balance(ctx(), tok)); !sameBalance(b, want) {
		t.Errorf("merged balance = %+v; want %+v", b, want)
	}
	if b := must(t).balance(st.Balance(ctx(), other)); b != (middleware.Balance{}) {
		t.Errorf("another token's balance = %+v; want zero", b)
	}
	// Begin returns the balance too.
	b := must(t).begun(st.Begin(ctx(), reservation(tok, "k", "a1", T0)))
	if !sameBalance(b.Balance, want) {
		t.Errorf("Begin balance = %+v; want %+v", b.Balance, want)
	}
	checkTTL(t, s, st, tok)
}

func sameBalance(a, b middleware.Balance) bool {
	return a.Known == b.Known && a.Remaining == b.Remaining && a.DeclinedAt == b.DeclinedAt &&
		a.ServiceDeclined == b.ServiceDeclined && a.DeclineUntil.Equal(b.DeclineUntil)
}

func testBeginHoldsKey(t *testing.T, s Suite) {
	st := s.New(t)
	tok := Token()
	r := reservation(tok, "k", "a1", T0)
	if b := must(t).begun(st.Begin(ctx(), r)); b.State != middleware.BeginReserved || b.Charged {
		t.Fatalf("first Begin = %+v; want reserved, not charged", b)
	}
	dup := reservation(tok, "k", "a2", T0.Add(time.Second))
	b := must(t).begun(st.Begin(ctx(), dup))
	if b.State != middleware.BeginInFlight || !b.LeaseUntil.Equal(T0.Add(time.Minute)) {
		t.Errorf("duplicate Begin = %+v; want in flight until %v", b, T0.Add(time.Minute))
	}
	other := dup
	other.Fingerprint = fp("/y")
	if b := must(t).begun(st.Begin(ctx(), other)); b.State != middleware.BeginMismatch {
		t.Errorf("Begin with another fingerprint = %v; want mismatch", b.State)
	}
	// Another key, route or token is another record.
	for _, r2 := range []middleware.Reservation{
		reservation(tok, "k2", "a3", T0),
		func() middleware.Reservation { r := reservation(tok, "k", "a4", T0); r.Route = "GET /z"; return r }(),
		reservation(Token(), "k", "a5", T0),
	} {
		if b := must(t).begun(st.Begin(ctx(), r2)); b.State != middleware.BeginReserved {
			t.Errorf("Begin of %s %s %s = %v; want reserved", r2.Token.JTI, r2.Route, r2.Key, b.State)
		}
	}
	// Only the holder may finish.
	if err := st.Finish(ctx(), dup, middleware.Outcome{Kind: middleware.OutcomeReleased, Now: T0}); !errors.Is(err, middleware.ErrNotHolder) {
		t.Errorf("Finish by a non-holder = %v; want ErrNotHolder", err)
	}
	checkTTL(t, s, st, tok)
}

func testDoneIsReplayed(t *testing.T, s Suite) {
	st := s.New(t)
	tok := Token()
	r := reservation(tok, "k", "a1", T0)
	must(t).begun(st.Begin(ctx(), r))
	c := middleware.ChargeRef{ID: "tx-1", Amount: amount("0.01")}
	resp := []byte("stored \x00 response")
	o := middleware.Outcome{Kind: middleware.OutcomeCharged, Charge: c, Response: resp, Now: T0,
		Note: middleware.Note{ChargeID: "tx-1", Balance: middleware.Balance{Known: true, Remaining: amount("0.99")}}}
	if err := st.Finish(ctx(), r, o); err != nil {
		t.Fatal(err)
	}
	b := must(t).begun(st.Begin(ctx(), reservation(tok, "k", "a2", T0.Add(time.Second))))
	if b.State != middleware.BeginDone || string(b.Response) != string(resp) || !b.Charged || b.Charge != c {
		t.Fatalf("Begin after completion = %+v; want done with the response and charge", b)
	}
	if !b.Balance.Known || b.Balance.Remaining != amount("0.99") {
		t.Errorf("Finish did not merge its note: balance %+v", b.Balance)
	}
	// The finished attempt cannot finish again.
	if err := st.Finish(ctx(), r, o); !errors.Is(err, middleware.ErrNotHolder) {
		t.Errorf("second Finish = %v; want ErrNotHolder", err)
	}
	// Its charge is accounted for: a pending charge elsewhere cannot claim it.
	p := pendingFor(t, st, tok, "k2")
	res := must(t).resolved(st.Resolve(ctx(), p, middleware.Resolution{Candidates: []middleware.ChargeRef{c}, Now: T0}))
	if res.Done || res.Charged {
		t.Errorf("Resolve with an accounted-for charge = %+v; want undecided", res)
	}
	checkTTL(t, s, st, tok)
}

// pendingFor leaves key's charge pending (unknown since T0) and returns
// the pending charge.
func pendingFor(t *testing.T, st middleware.Store, tok middleware.TokenRef, key string) middleware.PendingCharge {
	t.Helper()
	r := reservation(tok, key, "att-"+key, T0)
	if b := must(t).begun(st.Begin(ctx(), r)); b.State != middleware.BeginReserved {
		t.Fatalf("Begin %s = %v", key, b.State)
	}
	if err := st.Finish(ctx(), r, middleware.Outcome{Kind: middleware.OutcomeUnknown, Started: T0, Unknown: T0, Now: T0}); err != nil {
		t.Fatal(err)
	}
	b := must(t).begun(st.Begin(ctx(), reservation(tok, key, "probe", T0)))
	if b.State != middleware.BeginPending {
		t.Fatalf("Begin after an unknown outcome = %v; want pending", b.State)
	}
	return b.Pending
}

func testReleasedFreesKey(t *testing.T, s Suite) {
	st := s.New(t)
	tok := Token()
	r := reservation(tok, "k", "a1", T0)
	must(t).begun(st.Begin(ctx(), r))
	note := middleware.Note{Balance: middleware.Balance{DeclinedAt: amount("0.01"), DeclineUntil: T0.Add(time.Minute)}}
	if err := st.Finish(ctx(), r, middleware.Outcome{Kind: middleware.OutcomeReleased, Note: note, Now: T0}); err != nil {
		t.Fatal(err)
	}
	b := must(t).begun(st.Begin(ctx(), reservation(tok, "k", "a2", T0)))
	if b.State != middleware.BeginReserved || b.Charged {
		t.Errorf("Begin after release = %+v; want reserved afresh", b)
	}
	if b.Balance.DeclinedAt != amount("0.01") {
		t.Errorf("released Finish did not merge its note: %+v", b.Balance)
	}
	// A fingerprint is not kept past a release.
	other := reservation(tok, "k3", "a3", T0)
	must(t).begun(st.Begin(ctx(), other))
	if err := st.Finish(ctx(), other, middleware.Outcome{Kind: middleware.OutcomeReleased, Now: T0}); err != nil {
		t.Fatal(err)
	}
	other.Fingerprint, other.Attempt = fp("/other"), "a4"
	if b := must(t).begun(st.Begin(ctx(), other)); b.State != middleware.BeginReserved {
		t.Errorf("Begin with a new fingerprint after release = %v; want reserved", b.State)
	}
}

func testChargedWithoutResponse(t *testing.T, s Suite) {
	st := s.New(t)
	tok := Token()
	r := reservation(tok, "k", "a1", T0)
	must(t).begun(st.Begin(ctx(), r))
	c := middleware.ChargeRef{ID: "tx-1", Amount: amount("0.01")}
	if err := st.Finish(ctx(), r, middleware.Outcome{Kind: middleware.OutcomeCharged, Charge: c, Now: T0}); err != nil {
		t.Fatal(err)
	}
	// The next attempt holds the key and is told the charge was made.
	r2 := reservation(tok, "k", "a2", T0)
	b := must(t).begun(st.Begin(ctx(), r2))
	if b.State != middleware.BeginReserved || !b.Charged || b.Charge != c {
		t.Fatalf("Begin after an unstored charged response = %+v; want reserved, charged", b)
	}
	if b := must(t).begun(st.Begin(ctx(), reservation(tok, "k", "a3", T0))); b.State != middleware.BeginInFlight {
		t.Errorf("third Begin = %v; want in flight", b.State)
	}
	// A release by that attempt keeps the charge.
	if err := st.Finish(ctx(), r2, middleware.Outcome{Kind: middleware.OutcomeReleased, Now: T0}); err != nil {
		t.Fatal(err)
	}
	if b := must(t).begun(st.Begin(ctx(), reservation(tok, "k", "a4", T0))); b.State != middleware.BeginReserved || !b.Charged {
		t.Errorf("Begin after the release = %+v; want reserved, charged", b)
	}
}

func testLeaseEndMakesPending(t *testing.T, s Suite) {
	st := s.New(t)
	tok := Token()
	r := reservation(tok, "k", "a1", T0)
	must(t).begun(st.Begin(ctx(), r))
	if due := must(t).due(st.Due(ctx(), T0.Add(30*time.Second), time.Minute, 10)); len(due) != 0 {
		t.Errorf("Due during the lease = %+v; want none", due)
	}
	end := T0.Add(time.Minute)
	b := must(t).begun(st.Begin(ctx(), reservation(tok, "k", "a2", end)))
	if b.State != middleware.BeginPending || b.Pending.ID != "a1" || !b.Pending.Unknown.Equal(end) ||
		b.Pending.Key != "k" || b.Pending.Route != "GET /x" || b.Pending.Amount != amount("0.01") || !b.Pending.HasAmount ||
		b.Pending.Token.JTI != tok.JTI || b.Pending.Token.Issuer != tok.Issuer || !b.Pending.Token.Until.Equal(tok.Until) {
		t.Fatalf("Begin after the lease = %+v; want pending a1 unknown since %v", b, end)
	}
	// The vanished holder cannot finish any more.
	if err := st.Finish(ctx(), r, middleware.Outcome{Kind: middleware.OutcomeReleased, Now: end}); !errors.Is(err, middleware.ErrNotHolder) {
		t.Errorf("Finish after the lease = %v; want ErrNotHolder", err)
	}
	// The reconciler sees it without anyone's Begin, too.
	st2 := s.New(t)
	must(t).begun(st2.Begin(ctx(), r))
	due := must(t).due(st2.Due(ctx(), end, time.Minute, 10))
	if len(due) != 1 || due[0].ID != "a1" || due[0].Key != "k" {
		t.Errorf("Due after the lease = %+v; want a1", due)
	}
}

func testUnknownResolvedCharged(t *testing.T, s Suite) {
	for _, stored := range []bool{false, true} {
		t.Run(fmt.Sprint("response stored ", stored), func(t *testing.T) {
			st := s.New(t)
			tok := Token()
			r := reservation(tok, "k", "a1", T0)
			must(t).begun(st.Begin(ctx(), r))
			o := middleware.Outcome{Kind: middleware.OutcomeUnknown, Started: T0, Unknown: T0.Add(time.Second), Now: T0.Add(time.Second)}
			if stored {
				o.Response = []byte("content")
			}
			if err := st.Finish(ctx(), r, o); err != nil {
				t.Fatal(err)
			}
			now := T0.Add(2 * time.Second)
			due := must(t).due(st.Due(ctx(), now, time.Minute, 10))
			if len(due) != 1 || due[0].ID != "a1" || !due[0].Started.Equal(T0) || !due[0].Unknown.Equal(T0.Add(time.Second)) {
				t.Fatalf("Due = %+v; want the pending charge a1", due)
			}
			if again := must(t).due(st.Due(ctx(), now, time.Minute, 10)); len(again) != 0 {
				t.Errorf("Due again within its lease = %+v; want none", again)
			}
			claimed := middleware.ChargeRef{ID: "tx-0", Amount: amount("0.01")}
			if err := st.Note(ctx(), tok, middleware.Note{ChargeID: claimed.ID}, T0); err != nil {
				t.Fatal(err)
			}
			c := middleware.ChargeRef{ID: "tx-1", Amount: amount("0.01")}
			res := must(t).resolved(st.Resolve(ctx(), due[0], middleware.Resolution{Candidates: []middleware.ChargeRef{claimed, c}, Attempt: "a2", Lease: time.Minute, Now: now}))
			if !res.Done || !res.Charged || res.Charge != c {
				t.Fatalf("Resolve = %+v; want done, charged with tx-1", res)
			}
			if stored {
				if res.Record.State != middleware.BeginDone || string(res.Record.Response) != "content" {
					t.Errorf("record after resolution = %+v; want done with the kept response", res.Record)
				}
				if b := must(t).begun(st.Begin(ctx(), reservation(tok, "k", "a3", now))); b.State != middleware.BeginDone || b.Charge != c {
					t.Errorf("Begin after resolution = %+v; want done, charge tx-1", b)
				}
			} else {
				if res.Record.State != middleware.BeginReserved || !res.Record.Charged || res.Record.Charge != c {
					t.Errorf("record after resolution = %+v; want reserved for a2, charged", res.Record)
				}
				if b := must(t).begun(st.Begin(ctx(), reservation(tok, "k", "a3", now))); b.State != middleware.BeginInFlight {
					t.Errorf("Begin after resolution = %v; want in flight (a2 holds it)", b.State)
				}
				if err := st.Finish(ctx(), reservation(tok, "k", "a2", now), middleware.Outcome{Kind: middleware.OutcomeCharged, Charge: c, Response: []byte("x"), Now: now}); err != nil {
					t.Errorf("Finish by the resolving attempt = %v", err)
				}
			}
			if due := must(t).due(st.Due(ctx(), now.Add(time.Hour), time.Minute, 10)); len(due) != 0 {
				t.Errorf("Due after resolution = %+v; want none", due)
			}
			checkTTL(t, s, st, tok)
		})
	}
}

func testUnknownResolvedNotCharged(t *testing.T, s Suite) {
	for _, take := range []bool{false, true} {
		t.Run(fmt.Sprint("take ", take), func(t *testing.T) {
			st := s.New(t)
			tok := Token()
			p := pendingFor(t, st, tok, "k")
			res := must(t).resolved(st.Resolve(ctx(), p, middleware.Resolution{Now: T0}))
			if res.Done || res.Record.State != middleware.BeginPending || res.Record.Pending.ID != p.ID {
				t.Fatalf("Resolve before settling, no candidate = %+v; want undecided, still pending", res)
			}
			r := middleware.Resolution{Settled: true, Now: T0}
			if take {
				r.Attempt, r.Lease = "a2", time.Minute
			}
			res = must(t).resolved(st.Resolve(ctx(), p, r))
			if !res.Done || res.Charged {
				t.Fatalf("settled Resolve = %+v; want done, not charged", res)
			}
			b := must(t).begun(st.Begin(ctx(), reservation(tok, "k", "a3", T0)))
			if take {
				if res.Record.State != middleware.BeginReserved || res.Record.Charged {
					t.Errorf("record = %+v; want reserved for a2, not charged", res.Record)
				}
				if b.State != middleware.BeginInFlight {
					t.Errorf("Begin after = %v; want in flight", b.State)
				}
			} else if b.State != middleware.BeginReserved || b.Charged {
				t.Errorf("Begin after = %+v; want reserved afresh", b)
			}
		})
	}
}

func testChargeAttributedOnce(t *testing.T, s Suite) {
	st := s.New(t)
	tok := Token()
	p1, p2 := pendingFor(t, st, tok, "k1"), pendingFor(t, st, tok, "k2")
	c := middleware.ChargeRef{ID: "tx-1", Amount: amount("0.01")}
	r1 := must(t).resolved(st.Resolve(ctx(), p1, middleware.Resolution{Candidates: []middleware.ChargeRef{c}, Now: T0}))
	r2 := must(t).resolved(st.Resolve(ctx(), p2, middleware.Resolution{Candidates: []middleware.ChargeRef{c}, Now: T0}))
	if !r1.Done || !r1.Charged || r2.Done {
		t.Fatalf("one charge for two pending charges: %+v, %+v; want the first charged, the second undecided", r1, r2)
	}
	c2 := middleware.ChargeRef{ID: "tx-2", Amount: amount("0.01")}
	r2 = must(t).resolved(st.Resolve(ctx(), p2, middleware.Resolution{Candidates: []middleware.ChargeRef{c, c2}, Now: T0}))
	if !r2.Done || r2.Charge != c2 {
		t.Errorf("second resolution = %+v; want tx-2", r2)
	}
}

func testStaleResolution(t *testing.T, s Suite) {
	st := s.New(t)
	tok := Token()
	p := pendingFor(t, st, tok, "k")
	if res := must(t).resolved(st.Resolve(ctx(), p, middleware.Resolution{Settled: true, Attempt: "a2", Lease: time.Minute, Now: T0})); !res.Done {
		t.Fatal("first resolution not done")
	}
	r := reservation(tok, "k", "a2", T0)
	if err := st.Finish(ctx(), r, middleware.Outcome{Kind: middleware.OutcomeUnknown, Started: T0, Unknown: T0, Now: T0}); err != nil {
		t.Fatal(err)
	}
	// p is the old pending charge: resolving it must not touch the new one.
	res := must(t).resolved(st.Resolve(ctx(), p, middleware.Resolution{Settled: true, Candidates: []middleware.ChargeRef{{ID: "tx-9", Amount: amount("0.01")}}, Now: T0}))
	if res.Done || res.Record.State != middleware.BeginPending || res.Record.Pending.ID != "a2" {
		t.Errorf("stale Resolve = %+v; want not done, record pending a2", res)
	}
	// And the charge it offered was not consumed.
	p2 := res.Record.Pending
	if res := must(t).resolved(st.Resolve(ctx(), p2, middleware.Resolution{Candidates: []middleware.ChargeRef{{ID: "tx-9", Amount: amount("0.01")}}, Now: T0})); !res.Done || !res.Charged {
		t.Errorf("Resolve of the current pending charge = %+v; want charged tx-9", res)
	}
	// A pending charge of a record that is gone is nothing to resolve.
	if res := must(t).resolved(st.Resolve(ctx(), middleware.PendingCharge{ID: "x", Token: Token(), Route: "GET /x", Key: "nope"}, middleware.Resolution{Settled: true, Now: T0})); res.Done {
		t.Errorf("Resolve of a missing record = %+v; want not done", res)
	}
}

func testKeylessPending(t *testing.T, s Suite) {
	st := s.New(t)
	tok := Token()
	p := middleware.PendingCharge{ID: "p1", Token: tok, Route: "GET /x", Amount: amount("0.02"), HasAmount: true, Started: T0, Unknown: T0}
	if err := st.AddPending(ctx(), p); err != nil {
		t.Fatal(err)
	}
	svc := middleware.PendingCharge{ID: "p2", Token: tok, Route: "GET /svc", Started: T0, Unknown: T0.Add(time.Second)}
	if err := st.AddPending(ctx(), svc); err != nil {
		t.Fatal(err)
	}
	due := must(t).due(st.Due(ctx(), T0.Add(time.Second), time.Minute, 1))
	if len(due) != 1 || due[0].ID != "p1" || due[0].Key != "" || due[0].Amount != amount("0.02") || !due[0].HasAmount || due[0].Route != "GET /x" {
		t.Fatalf("Due limit 1 = %+v; want p1 first", due)
	}
	due2 := must(t).due(st.Due(ctx(), T0.Add(time.Second), time.Minute, 10))
	if len(due2) != 1 || due2[0].ID != "p2" || due2[0].HasAmount {
		t.Fatalf("Due = %+v; want p2 (service price)", due2)
	}
	res := must(t).resolved(st.Resolve(ctx(), due[0], middleware.Resolution{Candidates: []middleware.ChargeRef{{ID: "tx", Amount: amount("0.02")}}, Now: T0}))
	if !res.Done || !res.Charged || res.Record.State != 0 {
		t.Errorf("Resolve keyless = %+v; want done, charged, no record", res)
	}
	if res := must(t).resolved(st.Resolve(ctx(), due[0], middleware.Resolution{Settled: true, Now: T0})); res.Done {
		t.Error("a resolved keyless charge resolved twice")
	}
	if due := must(t).due(st.Due(ctx(), T0.Add(time.Hour), time.Minute, 10)); len(due) != 1 || due[0].ID != "p2" {
		t.Errorf("Due after resolving p1 = %+v; want p2 only", due)
	}
	checkTTL(t, s, st, tok)
}

func testExpiredTokenForgotten(t *testing.T, s Suite) {
	st := s.New(t)
	tok := Token()
	r := reservation(tok, "k", "a1", T0)
	must(t).begun(st.Begin(ctx(), r))
	if err := st.Finish(ctx(), r, middleware.Outcome{Kind: middleware.OutcomeCharged, Charge: middleware.ChargeRef{ID: "t", Amount: amount("0.01")}, Response: []byte("x"), Now: T0}); err != nil {
		t.Fatal(err)
	}
	p := middleware.PendingCharge{ID: "p1", Token: tok, Started: T0, Unknown: T0}
	if err := st.AddPending(ctx(), p); err != nil {
		t.Fatal(err)
	}
	after := tok.Until
	if b := must(t).begun(st.Begin(ctx(), reservation(tok, "k", "a2", after))); b.State == middleware.BeginDone {
		t.Errorf("Begin at Until found the record: %+v", b)
	}
	if due := must(t).due(st.Due(ctx(), after, time.Minute, 10)); len(due) != 0 {
		t.Errorf("Due at Until = %+v; want nothing", due)
	}
}

func testConcurrentBegin(t *testing.T, s Suite) {
	st := s.New(t)
	tok := Token()
	const n = 16
	var reserved, inflight atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			b, err := st.Begin(ctx(), reservation(tok, "k", fmt.Sprint("a", i), T0))
			switch {
			case err != nil:
				t.Error(err)
			case b.State == middleware.BeginReserved:
				reserved.Add(1)
			case b.State == middleware.BeginInFlight:
				inflight.Add(1)
			}
		})
	}
	wg.Wait()
	if reserved.Load() != 1 || inflight.Load() != n-1 {
		t.Errorf("%d concurrent Begins: %d reserved, %d in flight; want 1 and %d", n, reserved.Load(), inflight.Load(), n-1)
	}
}

func testConcurrentResolve(t *testing.T, s Suite) {
	st := s.New(t)
	tok := Token()
	const n = 8
	var ps []middleware.PendingCharge
	for i := range n {
		ps = append(ps, pendingFor(t, st, tok, fmt.Sprint("k", i)))
	}
	// Each pending charge is resolved by two racers; three charges exist.
	cands := []middleware.ChargeRef{{ID: "a", Amount: amount("0.01")}, {ID: "b", Amount: amount("0.01")}, {ID: "c", Amount: amount("0.01")}}
	var mu sync.Mutex
	got := map[string]int{}
	var done atomic.Int32
	var wg sync.WaitGroup
	for _, p := range ps {
		for range 2 {
			wg.Go(func() {
				res, err := st.Resolve(ctx(), p, middleware.Resolution{Candidates: cands, Settled: true, Now: T0})
				if err != nil {
					t.Error(err)
					return
				}
				if res.Done {
					done.Add(1)
					if res.Charged {
						mu.Lock()
						got[res.Charge.ID]++
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	if done.Load() != n {
		t.Errorf("%d resolutions done; want %d (one per pending charge)", done.Load(), n)
	}
	if len(got) != 3 {
		t.Errorf("charges attributed: %v; want each of 3 exactly once", got)
	}
	for id, k := range got {
		if k != 1 {
			t.Errorf("charge %s attributed %d times", id, k)
		}
	}
}

func testBoundedChargeIDs(t *testing.T, s Suite) {
	st := s.New(t)
	tok := Token()
	for i := range middleware.MaxChargeIDsPerToken + 10 {
		if err := st.Note(ctx(), tok, middleware.Note{ChargeID: fmt.Sprint("tx-", i)}, T0); err != nil {
			t.Fatal(err)
		}
	}
	// The newest are still accounted for.
	p := pendingFor(t, st, tok, "k")
	last := middleware.ChargeRef{ID: fmt.Sprint("tx-", middleware.MaxChargeIDsPerToken+9), Amount: amount("0.01")}
	if res := must(t).resolved(st.Resolve(ctx(), p, middleware.Resolution{Candidates: []middleware.ChargeRef{last}, Now: T0})); res.Done {
		t.Errorf("the newest accounted-for charge was attributed again: %+v", res)
	}
	checkTTL(t, s, st, tok)
}
