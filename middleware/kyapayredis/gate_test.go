package kyapayredis_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapayredis"
	"github.com/kyapay/kyapay-go/middleware/storetest"
)

// replicas returns three Middlewares sharing one Redis Store, the fake
// issuer and a clock.
func replicas(t *testing.T, c kyapayredis.Client, opts ...func(*middleware.Config)) (*sellertest.Seller, [3]*middleware.Middleware) {
	t.Helper()
	store, err := kyapayredis.New(c, kyapayredis.Options{Prefix: newPrefix()})
	if err != nil {
		t.Fatal(err)
	}
	withStore := append([]func(*middleware.Config){func(cfg *middleware.Config) { cfg.Store = store }}, opts...)
	e := sellertest.New(t, withStore...)
	ms := [3]*middleware.Middleware{e.Middleware}
	for i := 1; i < 3; i++ {
		cfg := middleware.Config{Verifier: e.Verifier, Charger: e.Charger, Clock: e.Clock.Now}
		for _, o := range withStore {
			o(&cfg)
		}
		m, err := middleware.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		ms[i] = m
	}
	return e, ms
}

func content(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "content "+r.URL.RawQuery) }

func withKey(k string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set(middleware.IdempotencyKeyHeader, k) }
}

// testGate checks, through three replicas on c, that depletion and
// idempotency hold across replicas.
func testGate(t *testing.T, c kyapayredis.Client) {
	t.Run("depletion", func(t *testing.T) {
		t.Parallel()
		e, ms := replicas(t, c)
		var routes [3]http.Handler
		for i, m := range ms {
			routes[i] = m.MustWrap(http.HandlerFunc(content), middleware.Pay(middleware.FixedPrice("0.01")))
		}
		tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("0.01"))
		if got := sellertest.Do(t, routes[0], tok); got.Status != 200 {
			t.Fatalf("replica 0: %d", got.Status)
		}
		spent := e.SpentElsewhere(t)
		if got := sellertest.Do(t, routes[0], spent); got.Status != 402 {
			t.Fatalf("replica 0, token spent elsewhere: %d; want 402", got.Status)
		}
		calls := e.Issuer.Requests(kyapaytest.EndpointCharge)
		for i := 1; i < 3; i++ {
			for _, tk := range []string{tok, spent} {
				got := sellertest.Do(t, routes[i], tk)
				if got.Status != 402 || got.Header.Get(middleware.CodeHeader) != string(kyapay.CodeTokenDepleted) {
					t.Errorf("replica %d: %d %v; want 402 token_depleted", i, got.Status, got.Header)
				}
			}
		}
		if n := e.Issuer.Requests(kyapaytest.EndpointCharge); n != calls {
			t.Errorf("%d charge calls by replicas 1 and 2; want 0 (Redis told them)", n-calls)
		}
	})
	t.Run("idempotency", func(t *testing.T) {
		t.Parallel()
		e, ms := replicas(t, c)
		entered, release := make(chan struct{}), make(chan struct{})
		var runs atomic.Int32
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if runs.Add(1) == 1 {
				close(entered)
				<-release
			}
			content(w, r)
		})
		var routes [3]http.Handler
		for i, m := range ms {
			routes[i] = m.MustWrap(h, sellertest.PayAfter())
		}
		tok := e.Issuer.Mint(kyapay.TypePay)
		first := make(chan sellertest.Result)
		go func() {
			first <- sellertest.Do(t, routes[0], tok, withKey("k"), func(r *http.Request) { r.URL.RawQuery = "q=1" })
		}()
		<-entered
		if got := sellertest.Do(t, routes[1], tok, withKey("k"), func(r *http.Request) { r.URL.RawQuery = "q=1" }); got.Status != 409 {
			t.Errorf("replica 1 while replica 0 runs the key: %d; want 409", got.Status)
		}
		close(release)
		if got := <-first; got.Status != 200 || got.Body != "content q=1" {
			t.Fatalf("replica 0: %d %q", got.Status, got.Body)
		}
		got := sellertest.Do(t, routes[1], tok, withKey("k"), func(r *http.Request) { r.URL.RawQuery = "q=1" })
		if got.Status != 200 || got.Body != "content q=1" || got.Header.Get(middleware.ReplayedHeader) != "true" {
			t.Errorf("replica 1 after completion: %d %q %v; want the replay", got.Status, got.Body, got.Header)
		}
		if got := sellertest.Do(t, routes[2], tok, withKey("k"), func(r *http.Request) { r.URL.RawQuery = "q=2" }); got.Status != 422 {
			t.Errorf("replica 2 with another query: %d; want 422", got.Status)
		}
		if runs.Load() != 1 || e.Issuer.ChargeCount() != 1 {
			t.Errorf("%d runs, %d charges; want 1 and 1", runs.Load(), e.Issuer.ChargeCount())
		}
	})
	t.Run("unknown charge resolved on another replica", func(t *testing.T) {
		t.Parallel()
		e, ms := replicas(t, c, func(cfg *middleware.Config) { cfg.ChargeTimeout = time.Second })
		var routes [3]http.Handler
		for i, m := range ms {
			routes[i] = m.MustWrap(http.HandlerFunc(content), middleware.Pay(middleware.FixedPrice("0.01")))
		}
		tok := e.Issuer.Mint(kyapay.TypePay)
		e.Issuer.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, TimeoutAfterCharge: true, Times: 1})
		if got := sellertest.Do(t, routes[0], tok, withKey("k")); got.Status != 502 {
			t.Fatalf("replica 0: %d; want 502", got.Status)
		}
		if got := sellertest.Do(t, routes[2], tok, withKey("k")); got.Status != 200 {
			t.Errorf("replica 2 retry: %d; want 200 (the charge was made)", got.Status)
		}
		if got := sellertest.Do(t, routes[1], tok, withKey("k")); got.Status != 200 || got.Header.Get(middleware.ReplayedHeader) != "true" {
			t.Errorf("replica 1 duplicate: %d %v; want a replay", got.Status, got.Header)
		}
		if n := e.Issuer.ChargeCount(); n != 1 {
			t.Errorf("%d charges; want 1", n)
		}
	})
}

func TestGate(t *testing.T) {
	t.Parallel()
	testGate(t, sharedRedis(t))
}

// countingClient counts the scripts run: each EVALSHA or EVAL is one
// round trip to Redis.
type countingClient struct {
	kyapayredis.Client
	n atomic.Int64
}

func (c *countingClient) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	c.n.Add(1)
	return c.Client.Eval(ctx, script, keys, args...)
}

func (c *countingClient) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	c.n.Add(1)
	return c.Client.EvalSha(ctx, sha, keys, args...)
}

// A paid request costs at most two Redis round trips, with or without an
// idempotency key; a replay one; unpaid routes and locally known
// depletion none.
func TestRoundTripsPerRequest(t *testing.T) {
	t.Parallel()
	cc := &countingClient{Client: sharedRedis(t)}
	store, err := kyapayredis.New(cc, kyapayredis.Options{Prefix: newPrefix()})
	if err != nil {
		t.Fatal(err)
	}
	e := sellertest.New(t, func(c *middleware.Config) { c.Store = store })
	before := e.Middleware.MustWrap(http.HandlerFunc(content), middleware.Pay(middleware.FixedPrice("0.01")))
	after := e.Middleware.MustWrap(http.HandlerFunc(content), sellertest.PayAfter())
	identity := e.Middleware.MustWrap(http.HandlerFunc(content), middleware.Identity())
	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
	// Load every script once (EVALSHA then EVAL the first time).
	sellertest.Do(t, before, tok)
	sellertest.Do(t, before, tok, withKey("warm"))
	sellertest.Do(t, before, tok, withKey("warm"))
	kya := e.Issuer.Mint(kyapay.TypeKYA)
	depleted := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("0.01"))
	sellertest.Do(t, before, depleted)

	for _, tt := range []struct {
		name   string
		h      http.Handler
		token  string
		mod    []func(*http.Request)
		status int
		trips  int64
	}{
		{"paid, charge before", before, tok, nil, 200, 2},
		{"paid, charge after", after, tok, nil, 200, 2},
		{"paid with key, charge before", before, tok, []func(*http.Request){withKey("k1")}, 200, 2},
		{"paid with key, charge after", after, tok, []func(*http.Request){withKey("k2")}, 200, 2},
		{"replay", before, tok, []func(*http.Request){withKey("k1")}, 200, 1},
		{"identity route", identity, kya, nil, 200, 0},
		{"depleted, known locally", before, depleted, nil, 402, 0},
	} {
		n := cc.n.Load()
		got := sellertest.Do(t, tt.h, tt.token, tt.mod...)
		trips := cc.n.Load() - n
		if got.Status != tt.status || trips != tt.trips {
			t.Errorf("%s: %d, %d Redis round trips; want %d and %d", tt.name, got.Status, trips, tt.status, tt.trips)
		}
	}
}

// Three replicas sharing one Redis under charge faults, with a replica
// restarted (new client, old one closed) in the middle. KYAPAY_LONG_LOAD=1
// runs a longer load. (Not parallel: it counts the process's
// reconciliation loops.)
func TestFaultLoad(t *testing.T) {
	testFaultLoad(t, sharedRedis(t), "Redis")
}

// testFaultLoad runs the fault load on c; each replica gets its own client
// on c's server (or cluster), and a restarted replica's client is closed.
func testFaultLoad(t *testing.T, c redis.UniversalClient, name string) {
	prefix := newPrefix()
	open := func() middleware.Store {
		var nc redis.UniversalClient
		switch c := c.(type) {
		case *redis.Client:
			nc = redis.NewClient(&redis.Options{Addr: c.Options().Addr})
		case *redis.ClusterClient:
			nc = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Options().Addrs})
		}
		t.Cleanup(func() { nc.Close() })
		s, err := kyapayredis.New(nc, kyapayredis.Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		clients.Store(s, nc)
		return s
	}
	cfg := storetest.LoadConfig{
		Store:   open(),
		Open:    open,
		Restart: true,
		Kill: func(s middleware.Store) {
			if nc, ok := clients.Load(s); ok {
				nc.(redis.UniversalClient).Close()
			}
		},
	}
	if os.Getenv("KYAPAY_LONG_LOAD") != "" {
		cfg.Agents, cfg.KeysPerAgent = 32, 100
	}
	res := storetest.Load(t, cfg)
	t.Logf("fault load, %s, 3 replicas, %d agents x %d keys:\n%s", name, max(cfg.Agents, 6), max(cfg.KeysPerAgent, 6), res)
}

// clients maps a Store to its client, for Kill.
var clients sync.Map
