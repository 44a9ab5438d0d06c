package middleware_test

import (
	"testing"

	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/storetest"
)

// Three replicas sharing one MemoryStore under charge faults, with a
// replica restarted in the middle. (Not parallel: it counts the process's
// reconciliation loops.)
func TestFaultLoadMemoryStore(t *testing.T) {
	res := storetest.Load(t, storetest.LoadConfig{
		Store:   middleware.NewMemoryStore(middleware.MemoryStoreConfig{}),
		Restart: true,
	})
	t.Logf("fault load, MemoryStore:\n%s", res)
}
