package mcpgate

import (
	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
)

// Receipt is the [ReceiptMetaKey] entry of a charged call's result _meta.
// In JSON: {"amountCharged": "0.01", "remainingBalance": "4.99"}.
type Receipt struct {
	// AmountCharged is what Skyfire charged, in USD.
	AmountCharged kyapay.Amount `json:"amountCharged"`
	// RemainingBalance is the token's balance after the charge, when
	// Skyfire reported it.
	RemainingBalance *kyapay.Amount `json:"remainingBalance,omitempty"`
}

// NewReceipt returns the _meta entry of a charge.
func NewReceipt(rc charge.Receipt) *Receipt {
	// The receipt and its balance share one allocation.
	box := &struct {
		info    Receipt
		balance kyapay.Amount
	}{info: Receipt{AmountCharged: rc.AmountCharged}, balance: rc.RemainingBalance}
	if rc.HasRemainingBalance {
		box.info.RemainingBalance = &box.balance
	}
	return &box.info
}

// ReceiptMeta returns a copy of meta, the _meta of a charged call's
// result, with the *[Receipt] of rc under [ReceiptMetaKey]. meta is never
// changed: a tool may return a shared result.
func ReceiptMeta(meta map[string]any, rc charge.Receipt) map[string]any {
	return withEntry(meta, ReceiptMetaKey, NewReceipt(rc))
}
