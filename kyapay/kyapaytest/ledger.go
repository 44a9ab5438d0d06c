package kyapaytest

import (
	"fmt"
	"slices"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
)

// Charge is one successful charge recorded by the fake API.
type Charge struct {
	// TokenID is the charged token's jti.
	TokenID string
	// ChargeID identifies the charge; the charge API returned it as
	// transactionId.
	ChargeID string
	// Amount is the amount charged.
	Amount kyapay.Amount
	// At is the issuer clock's time of the charge.
	At time.Time
}

// tokenRecord is the ledger entry of one minted token. Guarded by
// Issuer.ledgerMu.
type tokenRecord struct {
	typ      kyapay.TokenType
	original kyapay.Amount // the token amount; zero if absent or malformed
	balance  kyapay.Amount
	charges  []Charge
}

// ledgerAmounts returns the original amount and starting balance a token
// minted with s gets; both are zero for kya tokens. It panics if the
// Balance option is invalid.
func ledgerAmounts(typ kyapay.TokenType, s *tokenSpec) (original, balance kyapay.Amount) {
	if !typ.HasPayment() {
		return original, balance
	}
	if raw, ok := tokenAmountString(typ, s); ok {
		original, _ = kyapay.ParseAmount(raw) // malformed counts as zero
	}
	balance = original
	if s.balance != nil {
		b, err := kyapay.ParseAmount(*s.balance)
		if err != nil {
			panic(fmt.Sprintf("kyapaytest: Balance(%q): %v", *s.balance, err))
		}
		balance = b
	}
	return original, balance
}

// openLedger records a minted token unless its jti is already known.
func (i *Issuer) openLedger(jti string, typ kyapay.TokenType, original, balance kyapay.Amount) {
	i.ledgerMu.Lock()
	defer i.ledgerMu.Unlock()
	if _, ok := i.tokens[jti]; ok {
		return
	}
	i.tokens[jti] = &tokenRecord{typ: typ, original: original, balance: balance}
}

// chargeOutcome is why a ledger charge failed.
type chargeOutcome int

const (
	chargeOK chargeOutcome = iota
	chargeUnknownToken
	chargeNotPayable
	chargeOverOriginal
	chargeOverBalance
)

// charge subtracts amount from the token's balance and records the charge,
// atomically. It returns the charge and the remaining balance. It costs
// the same whatever the token's history: the charge is appended, nothing
// is copied.
func (i *Issuer) charge(jti string, amount kyapay.Amount) (Charge, kyapay.Amount, kyapay.Amount, chargeOutcome) {
	now := i.now()
	i.ledgerMu.Lock()
	defer i.ledgerMu.Unlock()
	rec, ok := i.tokens[jti]
	if !ok {
		return Charge{}, kyapay.Amount{}, kyapay.Amount{}, chargeUnknownToken
	}
	if !rec.typ.HasPayment() {
		return Charge{}, rec.balance, rec.original, chargeNotPayable
	}
	if amount.Cmp(rec.original) > 0 {
		return Charge{}, rec.balance, rec.original, chargeOverOriginal
	}
	rest, err := rec.balance.Sub(amount)
	if err != nil {
		return Charge{}, rec.balance, rec.original, chargeOverBalance
	}
	c := Charge{TokenID: jti, ChargeID: newUUID(), Amount: amount, At: now}
	rec.balance = rest
	rec.charges = append(rec.charges, c)
	i.charges = append(i.charges, c)
	return c, rest, rec.original, chargeOK
}

// tokenType returns the type of the token with the given jti and whether
// the issuer minted it.
func (i *Issuer) tokenType(jti string) (kyapay.TokenType, bool) {
	i.ledgerMu.Lock()
	defer i.ledgerMu.Unlock()
	rec, ok := i.tokens[jti]
	if !ok {
		return 0, false
	}
	return rec.typ, true
}

// chargesPage returns a copy of at most size of the token's charges from
// offset on, oldest first, and how many charges the token has. It copies
// only the page, so listing a long history page by page costs what the
// pages cost. ok is false if the issuer did not mint the token.
func (i *Issuer) chargesPage(jti string, offset, size int) (page []Charge, total int, ok bool) {
	i.ledgerMu.Lock()
	defer i.ledgerMu.Unlock()
	rec, ok := i.tokens[jti]
	if !ok {
		return nil, 0, false
	}
	total = len(rec.charges)
	if offset < 0 || offset >= total || size <= 0 {
		return nil, total, true
	}
	return slices.Clone(rec.charges[offset:min(offset+size, total)]), total, true
}

// Charges returns a copy of every successful charge, in the order they
// were made.
func (i *Issuer) Charges() []Charge {
	i.ledgerMu.Lock()
	defer i.ledgerMu.Unlock()
	return slices.Clone(i.charges)
}

// ChargesFor returns a copy of the successful charges on the token with
// the given jti, oldest first; nil if there are none.
func (i *Issuer) ChargesFor(jti string) []Charge {
	i.ledgerMu.Lock()
	defer i.ledgerMu.Unlock()
	rec, ok := i.tokens[jti]
	if !ok {
		return nil
	}
	return slices.Clone(rec.charges)
}

// ChargeCount returns the number of successful charges.
func (i *Issuer) ChargeCount() int {
	i.ledgerMu.Lock()
	defer i.ledgerMu.Unlock()
	return len(i.charges)
}

// Balance returns the remaining balance of the token with the given jti
// (see [TokenID]), and whether the issuer minted such a token. kya tokens
// have a zero balance.
func (i *Issuer) Balance(jti string) (kyapay.Amount, bool) {
	i.ledgerMu.Lock()
	defer i.ledgerMu.Unlock()
	rec, ok := i.tokens[jti]
	if !ok {
		return kyapay.Amount{}, false
	}
	return rec.balance, true
}
