package kyapayotel_test

import (
	"context"
	"testing"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapayotel"
)

// Attribute values are valid UTF-8 even when a route or issuer is not:
// OTLP carries them as protobuf strings, which must be, so one bad value
// would otherwise fail every export of its batch.
func TestInvalidUTF8Attributes(t *testing.T) {
	t.Parallel()
	s := newSDK(t)
	obs, err := kyapayotel.New(s.mp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []middleware.Event{
		{Kind: middleware.EventRefused, Route: "r\xff", Code: kyapay.CodeTokenMissing},
		{Kind: middleware.EventKeyUnknown, Issuer: "\xffiss"},
	} {
		obs.Observe(context.Background(), e)
	}
	points, _ := s.metrics(t)
	wantValues(t, points, kyapayotel.MetricRequests, map[string]float64{
		"code=token_missing,outcome=refused,route=r\uFFFD,token.type=none": 1,
	})
	wantValues(t, points, kyapayotel.MetricJWKSKeyUnknown, map[string]float64{"issuer=\uFFFDiss": 1})
}
