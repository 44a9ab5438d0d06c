package kyapaycaddy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/kyapay/kyapay-go/middleware/kyapayredis"
)

// redisPingTimeout bounds the PING with which a handler checks, when it is
// provisioned, that the Redis server of its redis setting answers.
const redisPingTimeout = 5 * time.Second

// The Redis stores in use, one go-redis client and one Store per distinct
// redis URL, shared by every handler that names it and reference counted
// like the Verifiers: a reload that keeps the URL keeps the client and its
// connections, and the last handler to release it closes the client.
var redisStores = caddy.NewUsagePool()

// redisSettings is a parsed redis URL.
type redisSettings struct {
	url  string         // as resolved; may hold a password
	opts *redis.Options // the client options it gives
	desc string         // scheme://host:port/db: what errors may show
}

// key identifies the URL in the pool by its hash, so the pool never holds
// a password as a map key.
func (s redisSettings) key() string {
	sum := sha256.Sum256([]byte(s.url))
	return "redis:" + hex.EncodeToString(sum[:])
}

// redisSyntax is what the redis setting takes, for errors.
const redisSyntax = "want redis://[[user]:password@]host[:port][/db] or rediss://… (TLS)"

// parseRedisURL parses the redis setting: a redis:// or rediss:// URL, as
// go-redis reads it (its query options, such as pool_size or dial_timeout,
// included). Its errors show at most the scheme, host, port and database,
// never the user or the password.
func parseRedisURL(raw string) (redisSettings, error) {
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return redisSettings{}, errors.New("not a URL: " + redisSyntax)
	}
	scheme = strings.ToLower(scheme)
	if scheme != "redis" && scheme != "rediss" {
		if !validScheme(scheme) {
			return redisSettings{}, errors.New("no redis:// or rediss:// scheme: " + redisSyntax)
		}
		return redisSettings{}, fmt.Errorf("scheme %q is not redis or rediss", scheme)
	}
	// url.Parse's own errors quote the whole URL, password included.
	u, err := url.Parse(raw)
	if err != nil {
		return redisSettings{}, errors.New("not a valid URL (a password with reserved characters must be percent-encoded): " + redisSyntax)
	}
	if u.Host == "" {
		return redisSettings{}, errors.New("no host: " + redisSyntax)
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		// go-redis quotes the bad part (a database, an option's value),
		// where a mistyped URL may have put the password: scrub it.
		return redisSettings{}, fmt.Errorf("%s://%s: %s", scheme, u.Host, scrub(err.Error(), u))
	}
	s := redisSettings{url: raw, opts: opts}
	s.desc = scheme + "://" + opts.Addr + "/" + strconv.Itoa(opts.DB)
	return s, nil
}

// validScheme reports whether s is a plausible URL scheme, short and of
// the characters RFC 3986 allows, so that quoting it in an error cannot
// quote a password.
func validScheme(s string) bool {
	if s == "" || len(s) > 16 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// scrub removes the URL's user name and password from an error text.
func scrub(msg string, u *url.URL) string {
	if u.User == nil {
		return msg
	}
	if p, ok := u.User.Password(); ok && p != "" {
		msg = strings.ReplaceAll(msg, p, "[redacted]")
	}
	if n := u.User.Username(); n != "" {
		msg = strings.ReplaceAll(msg, n, "[redacted]")
	}
	return msg
}

// sharedStore is a pooled go-redis client and the Store on it.
type sharedStore struct {
	client *redis.Client
	store  *kyapayredis.Store
}

// Destruct closes the client: its connection pool and its goroutines.
func (s sharedStore) Destruct() error { return s.client.Close() }

// acquireStore returns the Store for s, connecting to the server (and
// checking it with a PING bounded by redisPingTimeout) if no handler holds
// one; each successful call must be paired with redisStores.Delete(s.key()).
func acquireStore(ctx context.Context, s redisSettings) (*kyapayredis.Store, error) {
	val, _, err := redisStores.LoadOrNew(s.key(), func() (caddy.Destructor, error) {
		c := redis.NewClient(s.opts)
		pctx, cancel := context.WithTimeout(ctx, redisPingTimeout)
		err := c.Ping(pctx).Err()
		cancel()
		if err != nil {
			c.Close()
			u, _ := url.Parse(s.url)
			return nil, fmt.Errorf("redis: %s: PING failed: %s", s.desc, scrub(err.Error(), u))
		}
		st, err := kyapayredis.New(c, kyapayredis.Options{})
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("redis: %w", err)
		}
		return sharedStore{client: c, store: st}, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(sharedStore).store, nil
}
