package middleware_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/storetest"
)

func TestMemoryStoreConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, storetest.Suite{New: func(*testing.T) middleware.Store {
		return middleware.NewMemoryStore(middleware.MemoryStoreConfig{})
	}})
}

// An attacker choosing jtis and keys cannot grow a MemoryStore past its
// bounds: the least recently used entries go.
func TestMemoryStoreIsBounded(t *testing.T) {
	t.Parallel()
	s := middleware.NewMemoryStore(middleware.MemoryStoreConfig{MaxTokens: 10, MaxRecords: 20, MaxBytes: 1000})
	ctx := context.Background()
	now := storetest.T0
	var first middleware.TokenRef
	for i := range 500 {
		tok := storetest.Token()
		if i == 0 {
			first = tok
		}
		if err := s.Note(ctx, tok, middleware.Note{ChargeID: "c", Balance: middleware.Balance{Known: true}}, now); err != nil {
			t.Fatal(err)
		}
		r := middleware.Reservation{Token: tok, Route: "r", Key: fmt.Sprint("k", i), Attempt: "a", Now: now, Lease: time.Minute}
		if _, err := s.Begin(ctx, r); err != nil {
			t.Fatal(err)
		}
		o := middleware.Outcome{Kind: middleware.OutcomeCharged, Response: make([]byte, 200), Now: now}
		if err := s.Finish(ctx, r, o); err != nil {
			t.Fatal(err)
		}
	}
	tokens, records, bytes := middleware.MemoryStoreSize(s)
	if tokens > 10 || records > 20 || bytes > 1000 {
		t.Errorf("after 500 tokens: %d tokens, %d records, %d bytes; want at most 10, 20, 1000", tokens, records, bytes)
	}
	if b, _ := s.Balance(ctx, first); b.Known {
		t.Error("the least recently used token was kept")
	}
}
