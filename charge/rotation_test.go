package charge_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
)

// writeKeyFile replaces the key file atomically, as Kubernetes does when
// a mounted secret changes.
func writeKeyFile(t *testing.T, path, key string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestKeyFileRotationUnderLoad rotates the API key the way Skyfire tells
// sellers to (create a new key, update the configuration, delete the old
// key) while workers charge concurrently, and checks that no charge fails.
func TestKeyFileRotationUnderLoad(t *testing.T) {
	t.Parallel()
	const (
		oldKey    = "sk_old_rotation_0123456789abcdef"
		newKey    = "sk_new_rotation_fedcba9876543210"
		workers   = 8
		perWorker = 30
		rotateAt  = workers * perWorker / 3
	)
	iss := kyapaytest.NewIssuer(kyapaytest.WithAPIKey(oldKey))
	defer iss.Close()
	path := filepath.Join(t.TempDir(), "skyfire-api-key")
	writeKeyFile(t, path, oldKey)
	c, err := charge.New(charge.Config{BaseURL: iss.APIBaseURL(), KeySource: charge.FileKey(path), HTTPClient: iss.Client()})
	if err != nil {
		t.Fatal(err)
	}
	tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("1000"))
	price := kyapay.MustParseAmount("0.01")

	rotated := make(chan struct{})
	rotate := func() {
		iss.SetAPIKeys(oldKey, newKey) // 1. the new key is created
		writeKeyFile(t, path, newKey)  // 2. the configuration is updated
		iss.SetAPIKeys(newKey)         // 3. the old key is deleted
		close(rotated)
	}
	var (
		wg        sync.WaitGroup
		successes atomic.Int32
		failures  atomic.Int32
		once      sync.Once
	)
	chargeOnce := func() {
		if _, err := c.Charge(context.Background(), tok, price); err != nil {
			failures.Add(1)
			t.Errorf("charge failed: %v", err)
			return
		}
		if successes.Add(1) == rotateAt {
			once.Do(func() { go rotate() })
		}
	}
	for range workers {
		wg.Go(func() {
			for range perWorker {
				chargeOnce()
			}
			// At least one charge per worker after the old key is gone.
			<-rotated
			chargeOnce()
		})
	}
	wg.Wait()

	total := int32(workers * (perWorker + 1))
	if failures.Load() != 0 || successes.Load() != total || iss.ChargeCount() != int(total) {
		t.Fatalf("%d failures, %d successes, ledger %d; want 0, %d, %d", failures.Load(), successes.Load(), iss.ChargeCount(), total, total)
	}
	// The client kept the old key until a 401 told it otherwise, so the
	// first charge after the rotation was refused once and retried.
	refused := iss.Requests(kyapaytest.EndpointCharge) - int64(total)
	if refused < 1 || refused > workers {
		t.Errorf("%d requests refused with the old key; want 1 to %d (one per request in flight)", refused, workers)
	}
	t.Logf("%d charges, %d refused with the old key and retried with the new one", total, refused)
	// Now the new key is in use: one request per charge.
	before := iss.Requests(kyapaytest.EndpointCharge)
	if _, err := c.Charge(context.Background(), tok, price); err != nil {
		t.Fatal(err)
	}
	if n := iss.Requests(kyapaytest.EndpointCharge) - before; n != 1 {
		t.Errorf("a charge after the rotation took %d requests; want 1", n)
	}
}
