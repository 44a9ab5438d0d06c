package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
)

func TestRedisURLConfig(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	_, err := loadConfig(envMap(sellerEnv(iss, envRedisURL, "http://user:hunter2@cache:6379")))
	if err == nil || !strings.Contains(err.Error(), envRedisURL) || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad %s: %v; want an error naming the variable, never its password", envRedisURL, err)
	}
	cfg, err := loadConfig(envMap(sellerEnv(iss, envRedisURL, "redis://user:hunter2@cache:6379/2")))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RedisURL != "redis://user:hunter2@cache:6379/2" {
		t.Errorf("RedisURL = %q", cfg.RedisURL)
	}
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("starting", slog.Any("config", cfg))
	if !strings.Contains(b.String(), `"store":"redis://cache:6379/2"`) || strings.Contains(b.String(), "hunter2") {
		t.Errorf("start-up log %q; want the Redis host and database, never the password", b.String())
	}
	if cfg, _ := loadConfig(envMap(sellerEnv(iss))); redisLogValue(cfg.RedisURL) != "memory" {
		t.Errorf("unset %s logs as %q; want memory", envRedisURL, redisLogValue(cfg.RedisURL))
	}
}

// startRedis starts redis-server on a free loopback port for t. It skips
// when redis-server is missing, unless KYAPAY_REQUIRE_REDIS is set.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("KYAPAY_REQUIRE_REDIS") != "" {
			t.Fatal("redis-server not found and KYAPAY_REQUIRE_REDIS is set; install it (Debian: apt-get install redis-server)")
		}
		t.Skip("redis-server not found: install it (Debian: apt-get install redis-server); set KYAPAY_REQUIRE_REDIS=1 to fail instead")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--logfile", "")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "Ready to accept connections") {
			go io.Copy(io.Discard, out)
			return "redis://127.0.0.1:" + strconv.Itoa(port) + "/0"
		}
	}
	t.Fatal("redis-server exited before it was ready")
	return ""
}

// Two servers sharing KYAPAY_REDIS_URL are replicas of one seller: a paid
// request retried on the other one with the same Idempotency-Key is
// replayed, not charged again.
func TestRunSharesRedis(t *testing.T) {
	t.Parallel()
	redisURL := startRedis(t)
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var addrs []string
	var codes []chan int
	for range 2 {
		out := newOutput()
		code, exited := make(chan int, 1), make(chan struct{})
		go func() {
			code <- run(ctx, envMap(sellerEnv(iss, envRedisURL, redisURL)), out)
			close(exited)
		}()
		addrs = append(addrs, waitAddr(t, out, exited))
		codes = append(codes, code)
	}
	tok := iss.Mint(kyapay.TypePay)
	get := func(addr string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/pay", nil)
		req.Header.Set(kyapay.HeaderName, tok)
		req.Header.Set(middleware.IdempotencyKeyHeader, `"order-7"`)
		res, err := (&http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	if res := get(addrs[0]); res.StatusCode != 200 || res.Header.Get(middleware.ReplayedHeader) != "" {
		t.Fatalf("replica 0: %d %v", res.StatusCode, res.Header)
	}
	if res := get(addrs[1]); res.StatusCode != 200 || res.Header.Get(middleware.ReplayedHeader) != "true" {
		t.Errorf("replica 1, same key: %d %v; want the replay", res.StatusCode, res.Header)
	}
	if n := iss.ChargeCount(); n != 1 {
		t.Errorf("%d charges; want 1", n)
	}
	cancel()
	for i, code := range codes {
		if got := <-code; got != 0 {
			t.Errorf("replica %d exited %d", i, got)
		}
	}
}
