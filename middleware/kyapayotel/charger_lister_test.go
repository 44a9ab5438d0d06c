package kyapayotel_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapayotel"
)

type plainCharger struct{}

func (plainCharger) Charge(context.Context, string, kyapay.Amount) (charge.Receipt, error) {
	return charge.Receipt{}, nil
}
func (plainCharger) ChargeServicePrice(context.Context, string) (charge.Receipt, error) {
	return charge.Receipt{}, nil
}

type listingCharger struct{ plainCharger }

func (listingCharger) AllTokenCharges(context.Context, string) ([]charge.ChargeRecord, error) {
	return []charge.ChargeRecord{{}}, nil
}

// The reconciler finds the charge listing by a type assertion on the
// Charger; the tracing wrapper must keep it exactly when the inner Charger
// has it.
func TestWrapChargerKeepsChargeLister(t *testing.T) {
	tp := noop.NewTracerProvider()
	l, ok := kyapayotel.WrapCharger(listingCharger{}, tp).(middleware.ChargeLister)
	if !ok {
		t.Fatal("wrapped listing Charger lost AllTokenCharges")
	}
	if recs, err := l.AllTokenCharges(context.Background(), "jti"); err != nil || len(recs) != 1 {
		t.Errorf("AllTokenCharges through the wrapper: %v, %v", recs, err)
	}
	if _, ok := kyapayotel.WrapCharger(plainCharger{}, tp).(middleware.ChargeLister); ok {
		t.Error("wrapped plain Charger claims to list charges")
	}
}
