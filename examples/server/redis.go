package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapayredis"
)

// envRedisURL names the Redis that the server's replicas share; unset, the
// state stays in this process's memory.
const envRedisURL = "KYAPAY_REDIS_URL"

// redisPing bounds the start-up check that Redis answers.
const redisPing = 5 * time.Second

// checkRedisURL validates KYAPAY_REDIS_URL without ever quoting it: it may
// carry a password.
func checkRedisURL(s string) error {
	if _, err := redis.ParseURL(s); err != nil {
		return errors.New("is not a Redis URL (redis://[user:password@]host:port[/db], or rediss:// for TLS)")
	}
	return nil
}

// redisLogValue is KYAPAY_REDIS_URL for the log: scheme, host and
// database, never the credentials; "memory" when unset.
func redisLogValue(s string) string {
	if s == "" {
		return "memory"
	}
	u, err := url.Parse(s)
	if err != nil {
		return "redis"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// openStore returns the Middleware's Store for KYAPAY_REDIS_URL, checking
// that Redis answers, and a function closing its client. Unset, it returns
// a nil Store: the Middleware's in-memory default.
func openStore(ctx context.Context, rawURL string) (middleware.Store, func() error, error) {
	if rawURL == "" {
		return nil, func() error { return nil }, nil
	}
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %v", envRedisURL, checkRedisURL(rawURL))
	}
	rdb := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, redisPing)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, nil, fmt.Errorf("%s: cannot reach Redis at %s: %w", envRedisURL, redisLogValue(rawURL), err)
	}
	store, err := kyapayredis.New(rdb, kyapayredis.Options{})
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	return store, rdb.Close, nil
}
