// Package kyapayredis is a [middleware.Store] on Redis, for sellers that
// run several replicas: what one replica learns about a token's balance,
// the idempotency records of paid requests, and the charges whose outcome
// is unknown are shared by all, and survive a restart.
//
// It takes the application's go-redis client ([Client]: *redis.Client,
// *redis.ClusterClient or a redis.UniversalClient) and runs each
// transition as one Lua script, atomic on the node that owns its keys. All
// the keys of one transition share a hash tag, so it works on Redis
// Cluster; every key expires at its token's exp plus Skyfire's 24-hour
// post-expiry charge window. A paid request costs at most two round trips;
// the Middleware's local memory stays in front, so a token known to be
// depleted is refused without one, and unpaid and identity routes never
// touch Redis.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
//	store, err := kyapayredis.New(rdb, kyapayredis.Options{})
//	...
//	m, err := middleware.New(middleware.Config{Verifier: v, Charger: cc, Store: store})
//	defer m.Close()
package kyapayredis
