package eventmetrics_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/eventmetrics"
)

// counters stands in for a metrics SDK: counts by metric name and label
// values.
type counters map[string]int

func (c counters) inc(name string, labels ...string) {
	c[name+"{"+strings.Join(labels, ",")+"}"]++
}

// observer is a minimal metric adapter: a Recorder classifies each event
// and keeps the exact USD sum and the pending count; the adapter maps the
// families onto its instruments.
type observer struct {
	rec *eventmetrics.Recorder
	c   counters
}

func newObserver(opts ...eventmetrics.Option) *observer {
	return &observer{rec: eventmetrics.NewRecorder(eventmetrics.NewConfig(opts...)), c: counters{}}
}

func (o *observer) Observe(_ context.Context, e middleware.Event) {
	c, ok := o.rec.Record(e)
	if !ok {
		return
	}
	switch c.Family {
	case eventmetrics.FamilyRequests:
		o.c.inc("requests", c.Route, c.TokenType, c.Outcome, c.Code)
	case eventmetrics.FamilyCharges:
		o.c.inc("charges", c.Route, c.TokenType, c.Outcome, c.Code)
	case eventmetrics.FamilyReconciled:
		o.c.inc("reconciled", c.Route, c.Outcome)
	case eventmetrics.FamilyKeyRefreshes:
		o.c.inc("key_refreshes", c.Issuer, c.Outcome)
	case eventmetrics.FamilyKeyUnknown:
		o.c.inc("key_unknown", c.Issuer)
	}
}

// A metric adapter built on a Recorder. Two charges of 0.1 and 0.2 USD sum
// to exactly 0.3; a charge of unknown outcome is pending; the third issuer
// beyond a cap of two is reported as "other".
func Example() {
	var obs middleware.Observer = newObserver(eventmetrics.WithMaxIssuers(2),
		eventmetrics.WithClock(func() time.Time { return time.Unix(1_800_000_000, 0) }))
	ctx := context.Background()
	paid := func(amount string) middleware.Event {
		return middleware.Event{Kind: middleware.EventPaid, Route: "GET /quote", TokenType: kyapay.TypePay,
			Amount: kyapay.MustParseAmount(amount), Duration: 40 * time.Millisecond}
	}
	for _, e := range []middleware.Event{
		{Kind: middleware.EventRefused, Route: "GET /quote", Code: kyapay.CodeTokenMissing},
		{Kind: middleware.EventVerified, Route: "GET /quote", TokenType: kyapay.TypePay},
		paid("0.1"),
		{Kind: middleware.EventVerified, Route: "GET /quote", TokenType: kyapay.TypePay},
		paid("0.2"),
		{Kind: middleware.EventUnknown, Route: "GET /quote", TokenType: kyapay.TypePay, Code: kyapay.CodeChargeUnknown},
		{Kind: middleware.EventKeysRefreshed, Issuer: "https://a.example", Keys: 2},
		{Kind: middleware.EventKeysRefreshed, Issuer: "https://b.example", Keys: 1},
		{Kind: middleware.EventKeysRefreshFailed, Issuer: "https://c.example"},
	} {
		obs.Observe(ctx, e)
	}

	o := obs.(*observer)
	for _, k := range slices.Sorted(maps.Keys(o.c)) {
		fmt.Println(k, o.c[k])
	}
	o.rec.RangeUSD(func(route, tokenType string, usd float64) {
		fmt.Printf("usd{%s,%s} %v\n", route, tokenType, usd)
	})
	fmt.Println("pending", o.rec.Pending())
	// Output:
	// charges{GET /quote,pay,paid,} 2
	// charges{GET /quote,pay,unknown,charge_unknown} 1
	// key_refreshes{https://a.example,ok} 1
	// key_refreshes{https://b.example,ok} 1
	// key_refreshes{other,error} 1
	// requests{GET /quote,none,refused,token_missing} 1
	// requests{GET /quote,pay,verified,} 2
	// usd{GET /quote,pay} 0.3
	// pending 1
}
