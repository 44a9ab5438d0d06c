package kyapaycaddy_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaycaddy"
)

// twoSites is e's Caddyfile for siteA plus a second site serving siteB at
// addrB, as two replicas behind one load balancer would be.
func (e *env) twoSites(siteA, addrB, siteB string) string {
	return e.caddyfile(siteA) + fmt.Sprintf("\nhttp://%s {\n\t%s\n}\n", addrB,
		strings.ReplaceAll(siteB, "{up}", e.upstream.addr()))
}

// at is e serving requests to addr instead.
func (e *env) at(addr string) *env {
	c := *e
	c.addr = addr
	return &c
}

// upstreamCalls counts the requests the upstream received for path.
func upstreamCalls(u *upstream, path string) int {
	n := 0
	for _, r := range u.requests() {
		if r.path == path {
			n++
		}
	}
	return n
}

// Two handlers on two sites, each with its own Redis client (two URLs
// naming one server), share the idempotency records through Redis only: a
// paid request retried with the same Idempotency-Key on the other site is
// replayed, charged once, and reaches the upstream once; in both timings.
// Without redis each handler keeps its own records, and the retry is a
// second purchase.
func TestRedisIdempotencyAcrossSites(t *testing.T) {
	addr := kyapaycaddy.StartRedis(t)
	site := func(url string) string {
		if url != "" {
			url = "redis " + url
		}
		return fmt.Sprintf(`kyapay /paid 0.01 {
		%s
	}
	kyapay /after {
		price 0.02
		timing after
		%s
	}
	reverse_proxy {up}`, url, url)
	}
	for _, c := range []struct {
		name         string
		urlA, urlB   string
		wantReplayed bool
	}{
		{"redis", "redis://" + addr + "/0", "redis://" + addr + "/0?client_name=replica-b", true},
		{"no redis", "", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.at(freeAddr(t))
			if err := load(e.twoSites(site(c.urlA), b.addr, site(c.urlB))); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = caddy.Stop() })
			tok := e.iss.Mint(kyapay.TypePay)
			charges := 0
			for _, path := range []string{"/paid", "/after"} {
				key := "key" + path
				first := e.get(t, path, tok, middleware.IdempotencyKeyHeader, key)
				if first.status != http.StatusOK || first.body != "ok "+path || first.header.Get(middleware.ReplayedHeader) != "" {
					t.Fatalf("%s on site A: got %d %q %v", path, first.status, first.body, first.header)
				}
				retry := b.get(t, path, tok, middleware.IdempotencyKeyHeader, key)
				if retry.status != http.StatusOK || retry.body != first.body {
					t.Fatalf("%s retried on site B: got %d %q; want 200 %q", path, retry.status, retry.body, first.body)
				}
				replayed := retry.header.Get(middleware.ReplayedHeader) == "true"
				if replayed != c.wantReplayed {
					t.Errorf("%s retried on site B: replayed %v; want %v", path, replayed, c.wantReplayed)
				}
				want := 2
				if c.wantReplayed {
					want = 1
				}
				charges += want
				if n := e.iss.ChargeCount(); n != charges {
					t.Errorf("%s: %d charges in all; want %d", path, n, charges)
				}
				if n := upstreamCalls(e.upstream, path); n != want {
					t.Errorf("%s: the upstream was called %d times; want %d", path, n, want)
				}
			}
			if !c.wantReplayed {
				return
			}
			// A new key is a new purchase: the replay is the key's, not the
			// token's.
			if res := b.get(t, "/paid", tok, middleware.IdempotencyKeyHeader, "another"); res.status != http.StatusOK || res.header.Get(middleware.ReplayedHeader) != "" {
				t.Fatalf("new key: got %d %v", res.status, res.header)
			}
			if got, want := chargedAmounts(e.iss), []string{"0.01", "0.02", "0.01"}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("charged %v; want %v", got, want)
			}
		})
	}
}

// The redis setting's provisioning errors name the field and the server
// (scheme, host, port, database) but never its password, and a bad
// setting leaves the running config in place. A placeholder holding the
// URL is resolved at provisioning.
func TestRedisProvisionErrors(t *testing.T) {
	const password = "right-pw-6c1f"
	addr := kyapaycaddy.StartRedis(t, "--requirepass", password)
	down := freeAddr(t)
	e := newEnv(t)
	e.start(t, `kyapay 0.01
	respond "running" 200`)

	t.Setenv("KYAPAYCADDY_TEST_REDIS_URL", "redis://:"+password+"@"+addr+"/2")
	cases := []struct {
		name, redis, want string
	}{
		{"no scheme", addr, "kyapay: redis: not a URL"},
		{"scheme", "http://:" + password + "@" + addr, `kyapay: redis: scheme "http" is not redis or rediss`},
		{"placeholder unset", "{env.KYAPAYCADDY_TEST_UNSET}", "kyapay: redis: a placeholder is unknown or empty"},
		{"database", "redis://:" + password + "@" + addr + "/x" + password, "kyapay: redis: redis://" + addr + ": redis: invalid database number"},
		{"unreachable", "redis://:" + password + "@" + down + "/1", "kyapay: redis: redis://" + down + "/1: PING failed"},
		{"wrong password", "redis://:wrong-" + password + "@" + addr + "/0", "kyapay: redis: redis://" + addr + "/0: PING failed: WRONGPASS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			err := load(e.caddyfile(`kyapay 0.01 {
			redis ` + c.redis + `
		}
		respond 200`))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v; want an error containing %q", err, c.want)
			}
			if !strings.Contains(err.Error(), "http.handlers.kyapay") {
				t.Errorf("error %q does not name the module", err)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error %q contains the password", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("failing took %v", d)
			}
		})
	}
	if res := e.get(t, "/", ""); res.status != http.StatusPaymentRequired {
		t.Errorf("the running config was replaced: got %d %q", res.status, res.body)
	}

	// In the global option, from the environment.
	e.settings = "redis {env.KYAPAYCADDY_TEST_REDIS_URL}"
	if err := load(e.caddyfile(`kyapay 0.01
	respond "paid" 200`)); err != nil {
		t.Fatal(err)
	}
	res := e.getAfterReload(t, "/", e.iss.Mint(kyapay.TypePay), middleware.IdempotencyKeyHeader, "k")
	if res.status != http.StatusOK || res.body != "paid" {
		t.Fatalf("got %d %q", res.status, res.body)
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: password, DB: 2})
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), "kyapay:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Error("no kyapay key in database 2 after an idempotent paid request")
	}
}

// callers counts the clients connected to the server other than probe.
func callers(t testing.TB, probe *redis.Client) int {
	t.Helper()
	list, err := probe.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(list) {
		if strings.TrimSpace(line) != "" && !strings.Contains(line, " name=probe ") {
			n++
		}
	}
	return n
}

// connections returns callers once it is at most want, or after a bound:
// the server notices a closed connection asynchronously.
func connections(t testing.TB, probe *redis.Client, want int) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	n := callers(t, probe)
	for n > want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		n = callers(t, probe)
	}
	return n
}

// Many reloads with redis set, most changing its URL, close each replaced
// config's gates (their reconciliation) and its Redis client (its
// connections), and stopping Caddy leaves no goroutine and no connection
// behind.
func TestRedisReloadNoLeak(t *testing.T) {
	addr := kyapaycaddy.StartRedis(t)
	probe := redis.NewClient(&redis.Options{Addr: addr, ClientName: "probe", PoolSize: 1})
	defer probe.Close()
	e := newEnv(t)
	tr := e.client.Transport.(*http.Transport)
	site := func(i int) string {
		// Two reloads in a row keep the URL (the client is kept), the
		// next changes it (a new client, and the old one closed).
		e.settings = fmt.Sprintf("redis redis://%s/%d", addr, (i/2)%4)
		return fmt.Sprintf(`kyapay /paid {
		price 0.01
		service_id svc-%d
	}
	kyapay /free {
		identity email
	}
	respond "ok" 200`, i)
	}
	paid := func(i int) {
		t.Helper()
		res := e.getAfterReload(t, "/paid", e.iss.Mint(kyapay.TypePay, kyapayServiceID(i)),
			middleware.IdempotencyKeyHeader, fmt.Sprintf("k-%d", i))
		if res.status != http.StatusOK {
			t.Fatalf("config %d: got %d %q", i, res.status, res.body)
		}
	}
	// Warm up: whatever Caddy and go-redis start once per process is not a
	// leak.
	e.start(t, site(0))
	paid(0)
	_ = caddy.Stop()
	tr.CloseIdleConnections()
	base := steady()
	if n := connections(t, probe, 0); n != 0 {
		t.Fatalf("%d connections to Redis after the warm-up's Stop; want 0", n)
	}

	const reloads = 40
	for i := 1; i <= reloads; i++ {
		if err := load(e.caddyfile(site(i))); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if n := reconcilers(0); n != 0 {
			t.Fatalf("reload %d: %d reconciliation loops left by the replaced config; want 0", i, n)
		}
		if i%5 == 0 {
			paid(i)
			if n := reconcilers(1); n != 1 {
				t.Fatalf("reload %d: %d reconciliation loops after a paid request; want 1", i, n)
			}
		}
		// One client in use, with a connection or two (the request's, the
		// reconciliation's); the replaced one is closed.
		if n := connections(t, probe, 2); n > 2 {
			t.Fatalf("reload %d: %d connections to Redis; want at most 2 (replaced clients closed)", i, n)
		}
	}
	if n := e.iss.ChargeCount(); n != 1+reloads/5 {
		t.Errorf("charges = %d; want %d", n, 1+reloads/5)
	}
	_ = caddy.Stop()
	tr.CloseIdleConnections()
	if n := reconcilers(0); n != 0 {
		t.Errorf("%d reconciliation loops after Stop; want 0", n)
	}
	if n := loops(0); n != 0 {
		t.Errorf("%d key refresh loops after Stop; want 0", n)
	}
	if n := connections(t, probe, 0); n != 0 {
		t.Errorf("%d connections to Redis after Stop; want 0", n)
	}
	if n := settle(base); n > base {
		t.Errorf("%d goroutines after %d reloads and Stop; %d before", n, reloads, base)
		buf := make([]byte, 1<<20)
		t.Logf("%s", buf[:runtime.Stack(buf, true)])
	}
}

// A password written out in the redis URL is warned about, and neither
// that warning nor any other line of Caddy's log shows it; a URL from a
// placeholder is not warned about.
func TestRedisLiteralPasswordWarned(t *testing.T) {
	const password = "literal-pw-93ad"
	addr := kyapaycaddy.StartRedis(t, "--requirepass", password)
	e := newEnv(t)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	e.logs = `log {
		output file ` + logFile + `
		level DEBUG
	}`
	t.Setenv("KYAPAYCADDY_TEST_REDIS_URL", "redis://:"+password+"@"+addr+"/1")
	e.start(t, `kyapay /literal 0.01 {
		redis redis://:`+password+`@`+addr+`/0
	}
	kyapay /placeholder 0.01 {
		redis {env.KYAPAYCADDY_TEST_REDIS_URL}
	}
	respond "ok" 200`)
	for _, p := range []string{"/literal", "/placeholder"} {
		if res := e.get(t, p, e.iss.Mint(kyapay.TypePay), middleware.IdempotencyKeyHeader, "k"+p); res.status != http.StatusOK {
			t.Fatalf("%s: got %d %q", p, res.status, res.body)
		}
	}
	_ = caddy.Stop() // flush and close the log
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	if n := strings.Count(log, "the URL's password is written out"); n != 1 {
		t.Errorf("%d warnings about a written-out password; want 1 (the literal URL's):\n%s", n, log)
	}
	if !strings.Contains(log, `"redis":"redis://`+addr+`/0"`) {
		t.Errorf("the warning does not name the server:\n%s", log)
	}
	if strings.Contains(log, password) {
		t.Errorf("the log contains the password:\n%s", log)
	}
}
