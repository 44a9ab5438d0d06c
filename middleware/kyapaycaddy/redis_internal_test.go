package kyapaycaddy

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// requireRedisEnv makes a missing redis-server a failure instead of a skip
// (scripts/test-all.sh sets it).
const requireRedisEnv = "KYAPAY_REQUIRE_REDIS"

// startRedis starts redis-server on a free loopback port with extra
// arguments, waits until it accepts connections, and stops it when t
// ends. It returns host:port. Without redis-server the test is skipped,
// or fails when KYAPAY_REQUIRE_REDIS is set.
func startRedis(t testing.TB, extra ...string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(requireRedisEnv) != "" {
			t.Fatalf("redis-server not found and %s is set; install it (Debian: apt-get install redis-server)", requireRedisEnv)
		}
		t.Skipf("redis-server not found: install it (Debian: apt-get install redis-server) to run the Redis tests; set %s=1 to fail instead of skipping", requireRedisEnv)
	}
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", t.TempDir(), "--logfile", "", "--daemonize", "no"}, extra...)
		cmd := exec.Command(bin, args...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// redis-server says on stdout when it is ready, or why it exits.
		var log strings.Builder
		ready := false
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Ready to accept connections") {
				ready = true
				break
			}
		}
		if ready {
			go io.Copy(io.Discard, out)
			t.Cleanup(func() {
				cmd.Process.Kill()
				cmd.Wait()
			})
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		}
		cmd.Process.Kill()
		cmd.Wait()
		if attempt == 3 || !strings.Contains(log.String(), "Address already in use") {
			t.Fatalf("redis-server did not start:\n%s", log.String())
		}
	}
}

// Handlers naming the same redis URL share one client and Store, counted
// by reference; another URL gets its own; the last release closes the
// client, and a failed connection leaves nothing in the pool.
func TestRedisStorePool(t *testing.T) {
	addr := startRedis(t)
	ctx := context.Background()
	a, err := parseRedisURL("redis://" + addr + "/0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseRedisURL("redis://" + addr + "/1")
	if err != nil {
		t.Fatal(err)
	}
	s1, err := acquireStore(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := acquireStore(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	s3, err := acquireStore(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if s1 != s2 {
		t.Error("two handlers with the same URL got two stores")
	}
	if s1 == s3 {
		t.Error("two URLs share one store")
	}
	if refs, ok := redisStores.References(a.key()); !ok || refs != 2 {
		t.Errorf("references to the shared store = %d, %v; want 2", refs, ok)
	}
	// A store that works, through a client that will be closed.
	tok := middleware.TokenRef{Issuer: "iss", JTI: "jti", Until: time.Now().Add(time.Hour)}
	note := middleware.Note{Balance: middleware.Balance{Known: true, Remaining: kyapay.MustParseAmount("1")}}
	if err := s1.Note(ctx, tok, note, time.Now()); err != nil {
		t.Fatal(err)
	}

	redisStores.Delete(a.key())
	if _, err := s1.Balance(ctx, tok); err != nil {
		t.Errorf("store closed while a handler still holds it: %v", err)
	}
	redisStores.Delete(a.key())
	if _, ok := redisStores.References(a.key()); ok {
		t.Error("the store is still pooled after its last release")
	}
	if _, err := s1.Balance(ctx, tok); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("after the last release the store's client answers %v; want it closed", err)
	}
	redisStores.Delete(b.key())

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	d, err := parseRedisURL("redis://:pw@" + down)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acquireStore(ctx, d); err == nil {
		t.Fatal("a store on a server that does not answer was built")
	}
	if _, ok := redisStores.References(d.key()); ok {
		t.Error("a failed connection stays in the pool")
	}
}

// The redis setting's errors never show the user or the password, and a
// good URL is described by scheme, host, port and database only.
func TestParseRedisURL(t *testing.T) {
	const secret = "s3cr3t-pw"
	good := []struct{ in, desc string }{
		{"redis://localhost:6379", "redis://localhost:6379/0"},
		{"redis://:" + secret + "@10.0.0.1/3", "redis://10.0.0.1:6379/3"},
		{"REDISS://user:" + secret + "@[::1]:6380/2?pool_size=4", "rediss://[::1]:6380/2"},
	}
	for _, g := range good {
		s, err := parseRedisURL(g.in)
		if err != nil {
			t.Errorf("%s: %v", g.desc, err)
			continue
		}
		if s.desc != g.desc {
			t.Errorf("desc = %q; want %q", s.desc, g.desc)
		}
		if strings.Contains(s.desc, secret) || strings.Contains(s.desc, "user") {
			t.Errorf("desc %q shows the user or the password", s.desc)
		}
	}
	bad := []struct{ in, want string }{
		{"127.0.0.1:6379", "not a URL"},
		{"http://h:6379", `scheme "http" is not redis or rediss`},
		{"unix:///run/redis.sock", `scheme "unix" is not redis or rediss`},
		{"user:" + secret + "@host://x", "no redis:// or rediss:// scheme"},
		{"redis://:" + secret + "@host:port/0", "not a valid URL"},
		{"redis://:" + secret + "@/0", "no host"},
		{"redis://:" + secret + "@h/" + secret, "invalid database number"},
		{"redis://:" + secret + "@h/0?pool_size=" + secret, "invalid pool_size number"},
		{"redis://" + secret + ":" + secret + "@h/0?" + secret + "=1", "unexpected option"},
	}
	for _, b := range bad {
		_, err := parseRedisURL(b.in)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("got %v; want an error containing %q", err, b.want)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q shows the password", err)
		}
	}
}
