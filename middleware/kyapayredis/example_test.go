package kyapayredis_test

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapayredis"
)

// Each replica builds its Middleware on a Store over the shared Redis.
func ExampleNew() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"}) // or redis.NewClusterClient, redis.NewUniversalClient
	defer rdb.Close()
	store, err := kyapayredis.New(rdb, kyapayredis.Options{Prefix: "shop"})
	if err != nil {
		panic(err)
	}
	var _ middleware.Store = store
	// m, err := middleware.New(middleware.Config{Verifier: v, Charger: cc, Store: store})
	// defer m.Close()
	fmt.Println("store ready")
	// Output: store ready
}
