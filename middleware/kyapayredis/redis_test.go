package kyapayredis_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapayredis"
	"github.com/kyapay/kyapay-go/middleware/storetest"
)

// requireEnv makes a missing redis-server a failure instead of a skip.
const requireEnv = "KYAPAY_REQUIRE_REDIS"

// redisServer finds redis-server, or skips the test (fails when
// KYAPAY_REQUIRE_REDIS is set).
func redisServer(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(requireEnv) != "" {
			t.Fatalf("redis-server not found and %s is set; install it (Debian: apt-get install redis-server)", requireEnv)
		}
		t.Skipf("redis-server not found: install it (Debian: apt-get install redis-server) to run the Redis tests; set %s=1 to fail instead of skipping", requireEnv)
	}
	return path
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer starts redis-server on a free loopback port with extra
// arguments, waits until it accepts connections (it says so on stdout),
// and stops it when t ends. It returns the address.
func startServer(t testing.TB, extra ...string) string {
	t.Helper()
	bin := redisServer(t)
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		dir := t.TempDir()
		args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--logfile", "", "--daemonize", "no"}, extra...)
		cmd := exec.Command(bin, args...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready, log := waitReady(out)
		if ready {
			t.Cleanup(func() {
				cmd.Process.Kill()
				cmd.Wait()
			})
			go io.Copy(io.Discard, out)
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		}
		cmd.Process.Kill()
		cmd.Wait()
		if attempt == 3 || !strings.Contains(log, "Address already in use") {
			t.Fatalf("redis-server did not start:\n%s", log)
		}
	}
}

// waitReady reads redis-server's log until it is ready or exits.
func waitReady(out io.Reader) (bool, string) {
	var log strings.Builder
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "Ready to accept connections") {
			return true, log.String()
		}
	}
	return false, log.String()
}

var (
	sharedOnce sync.Once
	sharedAddr string
	prefixSeq  atomic.Int64
)

// sharedRedis is one redis-server for the package's tests; each store
// gets its own key prefix. It lives until the test binary exits.
func sharedRedis(t testing.TB) *redis.Client {
	t.Helper()
	redisServer(t)
	sharedOnce.Do(func() { sharedAddr = startDetached(t) })
	if sharedAddr == "" {
		t.Fatal("shared redis-server did not start")
	}
	c := redis.NewClient(&redis.Options{Addr: sharedAddr})
	t.Cleanup(func() { c.Close() })
	return c
}

var sharedCmd *exec.Cmd

// startDetached starts the shared server; TestMain stops it.
func startDetached(t testing.TB) string {
	port := freePort(t)
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", os.TempDir(), "--logfile", "")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if ok, log := waitReady(out); !ok {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("redis-server did not start:\n%s", log)
	}
	go io.Copy(io.Discard, out)
	sharedCmd = cmd
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedCmd != nil {
		sharedCmd.Process.Kill()
		sharedCmd.Wait()
	}
	os.Exit(code)
}

func newPrefix() string { return fmt.Sprintf("t%d", prefixSeq.Add(1)) }

// cluster starts three redis-server masters on loopback ports, joins them
// with redis-cli --cluster create, and returns a ClusterClient.
func cluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	redisServer(t)
	if _, err := exec.LookPath("redis-cli"); err != nil {
		if os.Getenv(requireEnv) != "" {
			t.Fatalf("redis-cli not found and %s is set; install it (Debian: apt-get install redis-server)", requireEnv)
		}
		t.Skip("redis-cli not found (Debian: apt-get install redis-server)")
	}
	var addrs []string
	for range 3 {
		addrs = append(addrs, startServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000"))
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil || !strings.Contains(string(out), "All 16384 slots covered") {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { c.Close() })
	// The nodes learn of each other by gossip: wait until every node says
	// the cluster is ok and knows three masters.
	for _, a := range addrs {
		nc := redis.NewClient(&redis.Options{Addr: a})
		defer nc.Close()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(30 * time.Second)
		for {
			info, err := nc.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3") {
				break
			}
			select {
			case <-tick.C:
			case <-deadline:
				t.Fatalf("cluster not ok after 30s: %v\n%s", err, info)
			}
		}
	}
	return c
}

// ttlsWithin checks that every key under prefix expires, within max (plus
// a second of rounding).
func ttlsWithin(t *testing.T, c redis.UniversalClient, prefix string, max time.Duration) {
	t.Helper()
	ctx := context.Background()
	check := func(ctx context.Context, node *redis.Client) error {
		keys, err := node.Keys(ctx, prefix+":*").Result()
		if err != nil {
			return err
		}
		for _, k := range keys {
			ttl, err := node.PTTL(ctx, k).Result()
			if err != nil {
				return err
			}
			if ttl <= 0 || ttl > max+time.Second {
				t.Errorf("key %s has TTL %v; want (0, %v]", k, ttl, max)
			}
		}
		if len(keys) == 0 {
			t.Errorf("no keys under %s", prefix)
		}
		return nil
	}
	var err error
	switch c := c.(type) {
	case *redis.ClusterClient:
		var mu sync.Mutex
		found := 0
		err = c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			keys, err := node.Keys(ctx, prefix+":*").Result()
			mu.Lock()
			found += len(keys)
			mu.Unlock()
			if err != nil || len(keys) == 0 {
				return err
			}
			return check(ctx, node)
		})
		if found == 0 {
			t.Errorf("no keys under %s on any master", prefix)
		}
	case *redis.Client:
		err = check(ctx, c)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestStoreConformance(t *testing.T) {
	t.Parallel()
	c := sharedRedis(t)
	prefixes := sync.Map{}
	storetest.Run(t, storetest.Suite{
		New: func(t *testing.T) middleware.Store {
			p := newPrefix()
			s, err := kyapayredis.New(c, kyapayredis.Options{Prefix: p, Shards: 8})
			if err != nil {
				t.Fatal(err)
			}
			prefixes.Store(s, p)
			return s
		},
		TTLs: func(t *testing.T, s middleware.Store, max time.Duration) {
			p, _ := prefixes.Load(s)
			ttlsWithin(t, c, p.(string), max)
		},
	})
}

// TestCluster runs on one local Redis Cluster of three masters: the Store
// contract, the gate's idempotency and shared depletion, and the fault
// load.
func TestCluster(t *testing.T) {
	c := cluster(t)
	t.Run("Load", func(t *testing.T) {
		testFaultLoad(t, c, "Redis Cluster of 3 masters")
	})
	t.Run("Gate", func(t *testing.T) {
		t.Parallel()
		testGate(t, c)
	})
	t.Run("Conformance", func(t *testing.T) {
		t.Parallel()
		prefixes := sync.Map{}
		storetest.Run(t, storetest.Suite{
			New: func(t *testing.T) middleware.Store {
				p := newPrefix()
				s, err := kyapayredis.New(c, kyapayredis.Options{Prefix: p})
				if err != nil {
					t.Fatal(err)
				}
				prefixes.Store(s, p)
				return s
			},
			TTLs: func(t *testing.T, s middleware.Store, max time.Duration) {
				p, _ := prefixes.Load(s)
				ttlsWithin(t, c, p.(string), max)
			},
		})
	})
}
