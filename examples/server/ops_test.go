package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcp"
)

// running is a server started by startRun.
type running struct {
	addr        string // API listener
	metricsAddr string // metrics listener; "" when off
	out         *output
	stop        func() int // cancels run and returns its exit status
}

// startRun runs the program in this process with env until the test ends
// (or stop is called), and waits for its listeners.
func startRun(t *testing.T, env map[string]string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := newOutput()
	code := make(chan int, 1)
	exited := make(chan struct{})
	go func() {
		code <- run(ctx, envMap(env), out)
		close(exited)
	}()
	var once sync.Once
	status := -1
	stop := func() int {
		once.Do(func() {
			cancel()
			select {
			case status = <-code:
			case <-time.After(30 * time.Second):
				t.Errorf("run did not return 30 s after cancel; output:\n%s", out)
			}
		})
		return status
	}
	t.Cleanup(func() { stop() })
	r := &running{addr: waitAddr(t, out, exited), out: out, stop: stop}
	if env[envMetrics] != "" {
		select {
		case r.metricsAddr = <-out.metricsAddr:
		case <-exited:
			t.Fatalf("server exited before its metrics listener; output:\n%s", out)
		case <-time.After(15 * time.Second):
			t.Fatalf("no metrics listening address after 15 s; output:\n%s", out)
		}
	}
	return r
}

// mcpCall posts one tools/call JSON-RPC request to /mcp and returns the
// HTTP status and body.
func mcpCall(t *testing.T, c *client, tool, token string) (int, string) {
	t.Helper()
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":%q,"arguments":{%q:%q}}}`,
		tool, kyapaymcp.DefaultArgument, token)
	req, err := http.NewRequest(http.MethodPost, c.base+"/mcp", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	res, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// samples returns the lines of a text exposition that are samples of the
// named metric (not its HELP or TYPE lines), sorted.
func samples(page, name string) []string {
	var got []string
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			got = append(got, line)
		}
	}
	slices.Sort(got)
	return got
}

// TestMetricsScrape runs a scripted session of paid, refused and declined
// requests against the server, then scrapes KYAPAY_METRICS_ADDR and finds
// exactly the counts the session implies; the API listener has no
// /metrics and the metrics listener nothing else.
func TestMetricsScrape(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	// A price of 0.1: four charges of it on one series sum to 0.4 exactly,
	// where adding float64s would give 0.30000000000000004 on the way.
	srv := startRun(t, sellerEnv(iss, envMetrics, "127.0.0.1:0", envPrice, "0.1"))
	if srv.metricsAddr == srv.addr {
		t.Fatalf("metrics share the API listener %s", srv.addr)
	}
	api := newClient(t, srv.addr)
	expect := func(r response, status int) {
		t.Helper()
		if r.status != status {
			t.Fatalf("status %d, want %d; body %q", r.status, status, r.body)
		}
	}

	// The session. Route labels are the mux pattern, or the tool name on
	// /mcp; token_type is "none" for a request refused before its token
	// was verified.
	expect(api.get("/pay", ""), 402) // refused token_missing, none
	pay := iss.Mint(kyapay.TypePay)
	for range 4 {
		expect(api.get("/pay", pay), 200) // verified + paid 0.1, pay (x4)
	}
	expect(api.get("/pay", iss.Mint(kyapay.TypeKYAPay)), 200)                         // verified + paid 0.1, kya-pay
	expect(api.get("/pay", iss.Mint(kyapay.TypeKYA)), 402)                            // refused pay_required, kya
	expect(api.get("/pay", iss.Mint(kyapay.TypePay, kyapaytest.Amount("0.05"))), 402) // verified, then refused before charging: the token's amount is below the price
	// Skyfire declines a charge for lack of balance: the token verified,
	// the charge was declined, the request refused.
	iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Status: http.StatusPaymentRequired,
		Message: "insufficient balance", Times: 1})
	expect(api.get("/pay", iss.Mint(kyapay.TypePay)), 402)
	expect(api.get("/kya", iss.Mint(kyapay.TypeKYA)), 200) // verified, kya; nothing charged
	if status, body := mcpCall(t, api, "quote", iss.Mint(kyapay.TypePay)); status != 200 || !strings.Contains(body, `"charged":true`) {
		t.Fatalf("MCP quote: %d %s", status, body) // verified + paid 0.1 on route quote
	}
	if n := iss.ChargeCount(); n != 6 {
		t.Fatalf("the ledger has %d charges after the session; want 6", n)
	}

	// The API listener serves no metrics.
	if r := api.get("/metrics", ""); r.status != http.StatusNotFound || strings.Contains(r.body, "kyapay_") {
		t.Errorf("GET /metrics on the API listener: %d %q; want 404", r.status, r.body)
	}

	mc := newClient(t, srv.metricsAddr)
	r := mc.get("/metrics", "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	page := r.body
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"kyapay_requests_total", []string{
			`kyapay_requests_total{code="",outcome="verified",route="GET /kya",token_type="kya"} 1`,
			`kyapay_requests_total{code="",outcome="verified",route="GET /pay",token_type="kya-pay"} 1`,
			`kyapay_requests_total{code="",outcome="verified",route="GET /pay",token_type="pay"} 6`,
			`kyapay_requests_total{code="",outcome="verified",route="quote",token_type="pay"} 1`,
			`kyapay_requests_total{code="amount_insufficient",outcome="refused",route="GET /pay",token_type="pay"} 1`,
			`kyapay_requests_total{code="pay_required",outcome="refused",route="GET /pay",token_type="kya"} 1`,
			`kyapay_requests_total{code="token_depleted",outcome="refused",route="GET /pay",token_type="pay"} 1`,
			`kyapay_requests_total{code="token_missing",outcome="refused",route="GET /pay",token_type="none"} 1`,
		}},
		{"kyapay_charges_total", []string{
			`kyapay_charges_total{code="",outcome="paid",route="GET /pay",token_type="kya-pay"} 1`,
			`kyapay_charges_total{code="",outcome="paid",route="GET /pay",token_type="pay"} 4`,
			`kyapay_charges_total{code="",outcome="paid",route="quote",token_type="pay"} 1`,
			`kyapay_charges_total{code="token_depleted",outcome="declined",route="GET /pay",token_type="pay"} 1`,
		}},
		{"kyapay_charged_usd_total", []string{
			`kyapay_charged_usd_total{route="GET /pay",token_type="kya-pay"} 0.1`,
			`kyapay_charged_usd_total{route="GET /pay",token_type="pay"} 0.4`,
			`kyapay_charged_usd_total{route="quote",token_type="pay"} 0.1`,
		}},
		{"kyapay_charge_duration_seconds_count", []string{
			`kyapay_charge_duration_seconds_count{outcome="declined",route="GET /pay"} 1`,
			`kyapay_charge_duration_seconds_count{outcome="paid",route="GET /pay"} 5`,
			`kyapay_charge_duration_seconds_count{outcome="paid",route="quote"} 1`,
		}},
		{"kyapay_charges_unknown_pending", []string{`kyapay_charges_unknown_pending 0`}},
	} {
		if got := samples(page, tc.name); !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
	// The server's own registry also carries the Go and process collectors.
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if len(samples(page, name)) != 1 {
			t.Errorf("the page lacks %s", name)
		}
	}
	// Only /metrics is served there.
	if r := mc.get("/pay", pay); r.status != http.StatusNotFound {
		t.Errorf("GET /pay on the metrics listener: %d; want 404", r.status)
	}

	api.hc.CloseIdleConnections()
	mc.hc.CloseIdleConnections()
	if code := srv.stop(); code != 0 {
		t.Fatalf("run returned %d; output:\n%s", code, srv.out)
	}
	// Both addresses were logged, and the metrics listener shut down with
	// the server.
	var sawListening, sawMetrics bool
	for _, m := range srv.out.records(t) {
		switch m["msg"] {
		case "listening":
			sawListening = m["addr"] == srv.addr
		case "metrics listening":
			sawMetrics = m["addr"] == srv.metricsAddr && m["url"] == "http://"+srv.metricsAddr
		case "starting":
			cfg, _ := m["config"].(map[string]any)
			if cfg["metrics_addr"] != "127.0.0.1:0" {
				t.Errorf("start-up configuration %v; want metrics_addr 127.0.0.1:0", cfg)
			}
		}
	}
	if !sawListening || !sawMetrics {
		t.Errorf("log lacks the listening lines (api %v, metrics %v):\n%s", sawListening, sawMetrics, srv.out)
	}
	// (Whatever else might have taken the freed port since does not serve
	// these metrics.)
	if res, err := mc.hc.Get("http://" + srv.metricsAddr + "/metrics"); err == nil {
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if strings.Contains(string(body), "kyapay_requests_total") {
			t.Errorf("the metrics listener still answers after the server stopped")
		}
	}
}

// TestMetricsOff: without KYAPAY_METRICS_ADDR there is no metrics listener
// and the API has no /metrics.
func TestMetricsOff(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	srv := startRun(t, sellerEnv(iss))
	c := newClient(t, srv.addr)
	if r := c.get("/metrics", ""); r.status != http.StatusNotFound {
		t.Errorf("GET /metrics: %d; want 404", r.status)
	}
	c.hc.CloseIdleConnections()
	if code := srv.stop(); code != 0 {
		t.Fatalf("run returned %d", code)
	}
	for _, m := range srv.out.records(t) {
		if m["msg"] == "metrics listening" {
			t.Errorf("a metrics listener started: %v", m)
		}
		if cfg, ok := m["config"].(map[string]any); ok && cfg["metrics_addr"] != "(off)" {
			t.Errorf("start-up configuration %v; want metrics_addr (off)", cfg)
		}
	}
}

// writeFileAtomic replaces path with content the way a mounted secret is
// updated: a new file renamed over the old one, so a reader sees the old
// or the new content, never a partial one.
func writeFileAtomic(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		t.Fatal(err)
	}
}

// keyCall is one charge API call seen by keyRecorder.
type keyCall struct {
	phase  int32  // the test's phase when the call arrived
	key    string // "A", "B" or "other"
	status int
}

// keyRecorder stands between the server and the fake charge API and
// records which key each charge call carried and what it was answered.
type keyRecorder struct {
	url      string
	phase    atomic.Int32
	mu       sync.Mutex
	calls    []keyCall
	firstB   chan struct{} // closed when a call with key B succeeded
	firstBOK sync.Once
}

func newKeyRecorder(t *testing.T, iss *kyapaytest.Issuer, keyA, keyB string) *keyRecorder {
	t.Helper()
	target, err := url.Parse(iss.APIBaseURL())
	if err != nil {
		t.Fatal(err)
	}
	kr := &keyRecorder{firstB: make(chan struct{})}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
	name := func(k string) string {
		switch k {
		case keyA:
			return "A"
		case keyB:
			return "B"
		}
		return "other"
	}
	proxy.ModifyResponse = func(res *http.Response) error {
		if !strings.HasSuffix(res.Request.URL.Path, "/tokens/charge") {
			return nil
		}
		phase, _ := res.Request.Context().Value(phaseKey{}).(int32)
		c := keyCall{phase: phase, key: name(res.Request.Header.Get(kyapaytest.APIKeyHeader)), status: res.StatusCode}
		kr.mu.Lock()
		kr.calls = append(kr.calls, c)
		kr.mu.Unlock()
		if c.key == "B" && c.status == http.StatusOK {
			kr.firstBOK.Do(func() { close(kr.firstB) })
		}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The phase is read when the call arrives.
		proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), phaseKey{}, kr.phase.Load())))
	}))
	t.Cleanup(srv.Close)
	kr.url = srv.URL
	return kr
}

type phaseKey struct{}

func (kr *keyRecorder) snapshot() []keyCall {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	return slices.Clone(kr.calls)
}

// Phases of TestKeyFileRotationUnderLoad.
const (
	phaseA         = iota // the API accepts A; the file holds A
	phaseBoth             // the API accepts A and B
	phaseFileB            // the file holds B
	phaseOnlyB            // the API accepts only B (A deleted)
	phaseAfterLoad        // the load has stopped
)

// TestKeyFileRotationUnderLoad rotates the API key the way Skyfire tells
// users to (create the new key, update the configuration, delete the old
// key) while paid requests run concurrently: no request fails, every
// success is exactly one charge in the ledger, and once the old key is
// deleted the server charges with the new one, read from the file without
// a restart.
func TestKeyFileRotationUnderLoad(t *testing.T) {
	t.Parallel()
	keyA, keyB := randomKey(t), randomKey(t)
	iss := kyapaytest.NewIssuer(kyapaytest.WithAPIKey(keyA))
	defer iss.Close()
	rec := newKeyRecorder(t, iss, keyA, keyB)
	keyFile := filepath.Join(t.TempDir(), "skyfire-api-key")
	writeFileAtomic(t, keyFile, keyA+"\n") // as a secret file usually ends
	srv := startRun(t, sellerEnv(iss, envAPIKey, "", envAPIKeyFile, keyFile, envAPIBase, rec.url))
	c := newClient(t, srv.addr)

	// The load: workers send paid requests with fresh tokens until stopped.
	const workers = 8
	var (
		ok, failed atomic.Int64
		progress   = make(chan struct{}) // a success, to whoever waits
		stopLoad   = make(chan struct{})
		wg         sync.WaitGroup
		errMu      sync.Mutex
		errs       []string
	)
	paid := func() error {
		req, err := http.NewRequest(http.MethodGet, c.base+"/pay", nil)
		if err != nil {
			return err
		}
		req.Header.Set(kyapay.HeaderName, iss.Mint(kyapay.TypePay))
		res, err := c.hc.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d: %s", res.StatusCode, body)
		}
		return nil
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				if err := paid(); err != nil {
					failed.Add(1)
					errMu.Lock()
					errs = append(errs, err.Error())
					errMu.Unlock()
					continue
				}
				ok.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}()
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			close(stopLoad)
			wg.Wait()
		}
	}
	defer stop()
	// waitSuccesses waits for n more successful requests.
	waitSuccesses := func(step string, n int) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for range n {
			select {
			case <-progress:
			case <-deadline:
				stop()
				t.Fatalf("%s: load stalled (%d ok, %d failed); output:\n%s", step, ok.Load(), failed.Load(), srv.out)
			}
		}
	}

	waitSuccesses("with key A", 2*workers)
	// 1. Create the new key: Skyfire accepts both.
	rec.phase.Store(phaseBoth)
	iss.SetAPIKeys(keyA, keyB)
	waitSuccesses("both keys accepted", 2*workers)
	// 2. Update the configuration: the file now holds B.
	rec.phase.Store(phaseFileB)
	writeFileAtomic(t, keyFile, keyB+"\n")
	waitSuccesses("file updated", 2*workers)
	// 3. Delete the old key. The phase is set first, so every call that
	// carries B (sent only after a 401 to A, so after this) is in it.
	rec.phase.Store(phaseOnlyB)
	iss.SetAPIKeys(keyB)
	select {
	case <-rec.firstB:
	case <-time.After(30 * time.Second):
		stop()
		t.Fatalf("no charge with key B after the old key was deleted; output:\n%s", srv.out)
	}
	waitSuccesses("only key B accepted", 2*workers)
	stop()
	rec.phase.Store(phaseAfterLoad)

	// Requests after the rotation: all with B, no 401 on the way.
	const after = 10
	for range after {
		if err := paid(); err != nil {
			t.Fatalf("after the rotation: %v", err)
		}
	}
	okTotal := ok.Load() + after

	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during the rotation, e.g. %s", n, n+ok.Load(), errs[0])
	}
	if n := iss.ChargeCount(); int64(n) != okTotal {
		t.Errorf("the ledger has %d charges; %d requests succeeded", n, okTotal)
	}
	calls := rec.snapshot()
	count := map[keyCall]int{}
	var paidCalls int64
	for _, k := range calls {
		count[keyCall{phase: k.phase, key: k.key, status: k.status}]++
		if k.status == http.StatusOK {
			paidCalls++
		}
		switch {
		case k.key == "other":
			t.Errorf("a charge call carried neither key: %+v", k)
		case k.phase < phaseOnlyB && k.key != "A":
			// The file is read again only after a 401, which only the
			// deletion of A causes.
			t.Errorf("a charge call before the old key was deleted carried %s: %+v", k.key, k)
		case k.key == "B" && k.status != http.StatusOK:
			t.Errorf("a charge call with the new key was answered %d", k.status)
		case k.key == "A" && k.status != http.StatusOK && k.status != http.StatusUnauthorized:
			t.Errorf("a charge call with the old key was answered %d", k.status)
		case k.phase == phaseAfterLoad && (k.key != "B" || k.status != http.StatusOK):
			t.Errorf("a charge call after the rotation: %+v; want key B, 200", k)
		}
	}
	if paidCalls != okTotal {
		t.Errorf("%d charge calls were paid; %d requests succeeded", paidCalls, okTotal)
	}
	if n := count[keyCall{phaseAfterLoad, "B", 200}]; n != after {
		t.Errorf("%d charge calls with B after the rotation; want %d", n, after)
	}
	unauthorized := 0
	for k, n := range count {
		if k.status == http.StatusUnauthorized {
			unauthorized += n
		}
	}
	// At least one request met the 401 and was sent again with B; at most
	// each worker's request in flight at the deletion did.
	t.Logf("%d requests succeeded; charge calls by phase, key and status: %v", okTotal, count)
	if unauthorized < 1 || unauthorized > workers {
		t.Errorf("%d charge calls were refused with 401; want 1 to %d (calls by phase, key, status: %v)", unauthorized, workers, count)
	}

	c.hc.CloseIdleConnections()
	if code := srv.stop(); code != 0 {
		t.Fatalf("run returned %d; output:\n%s", code, srv.out)
	}
	out := srv.out.String()
	for name, k := range map[string]string{"A": keyA, "B": keyB} {
		if strings.Contains(out, k) {
			t.Errorf("the log contains key %s", name)
		}
	}
	if !strings.Contains(out, `"api_key_file":`+fmt.Sprintf("%q", keyFile)) {
		t.Errorf("the start-up line does not name the key file:\n%s", out)
	}
}

// TestKeyConfigErrors: SKYFIRE_API_KEY and SKYFIRE_API_KEY_FILE are
// exclusive, one is required, the file must hold a valid key at start,
// and KYAPAY_METRICS_ADDR is checked like KYAPAY_ADDR. Each is one line on
// stderr naming the variable, exit status 2, never the key.
func TestKeyConfigErrors(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	dir := t.TempDir()
	const secret = "sk-config-secret"
	goodFile := filepath.Join(dir, "good")
	writeFileAtomic(t, goodFile, secret+"-good\n")
	spaced := filepath.Join(dir, "spaced")
	writeFileAtomic(t, spaced, secret+" spaced\n")
	empty := filepath.Join(dir, "empty")
	writeFileAtomic(t, empty, "")
	twoLines := filepath.Join(dir, "two-lines")
	writeFileAtomic(t, twoLines, secret+"\n\n")
	missing := filepath.Join(dir, "missing")

	base := sellerEnv(iss, envAPIKey, "")
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string // in the one line
	}{
		{"both set", with(base, envAPIKey, secret, envAPIKeyFile, goodFile),
			[]string{envAPIKey + ": is set together with " + envAPIKeyFile}},
		{"neither set", base, []string{envAPIKey + ": is required (or " + envAPIKeyFile}},
		{"file missing", with(base, envAPIKeyFile, missing), []string{envAPIKeyFile + ": ", missing, "no such file"}},
		{"file is a directory", with(base, envAPIKeyFile, dir), []string{envAPIKeyFile + ": ", dir}},
		{"file empty", with(base, envAPIKeyFile, empty), []string{envAPIKeyFile + ": ", empty, "empty"}},
		{"key with a space", with(base, envAPIKeyFile, spaced), []string{envAPIKeyFile + ": ", spaced, "whitespace"}},
		{"key with two line breaks", with(base, envAPIKeyFile, twoLines), []string{envAPIKeyFile + ": ", "whitespace"}},
		{"file name with a line break", with(base, envAPIKeyFile, dir+"/a\nb"), []string{envAPIKeyFile + ": ", "control characters"}},
		{"metrics address without port", with(base, envAPIKeyFile, goodFile, envMetrics, "localhost"),
			[]string{envMetrics + `: "localhost" is not host:port`}},
		{"metrics port too big", with(base, envAPIKeyFile, goodFile, envMetrics, "127.0.0.1:99999"), []string{envMetrics + ": ", "port must be"}},
		{"metrics named port", with(base, envAPIKeyFile, goodFile, envMetrics, "127.0.0.1:metrics"), []string{envMetrics + ": "}},
		{"metrics on the API address", with(base, envAPIKeyFile, goodFile, envAddr, "127.0.0.1:8080", envMetrics, "127.0.0.1:8080"),
			[]string{envMetrics + ": is " + envAddr + "'s address"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Cancelled already: a configuration wrongly accepted makes run
			// start and stop at once (exit 0) rather than serve on.
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			var stderr bytes.Buffer
			if got := run(ctx, envMap(tc.env), &stderr); got != exitConfig {
				t.Fatalf("run = %d, want %d; stderr %s", got, exitConfig, stderr.String())
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") {
				t.Errorf("stderr %q is not one line", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("stderr %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, secret) {
				t.Errorf("stderr %q quotes the key", msg)
			}
		})
	}
}

// TestKeyFileConfig: a key file is taken as is (path only; read when the
// charge client is built) and the start-up line shows its path, never a
// key; KYAPAY_METRICS_ADDR is taken as given.
func TestKeyFileConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{envIssuer: kyapay.SandboxIssuer, envAPIKeyFile: "/run/secrets/skyfire key", envSellerID: "seller-1",
		envMetrics: ":9090"}
	cfg, err := loadConfig(envMap(env))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.APIKeyFile != "/run/secrets/skyfire key" || cfg.APIKey != "" || cfg.MetricsAddr != ":9090" {
		t.Errorf("config %+v", cfg)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", slog.Any("config", cfg))
	out := buf.String()
	for _, want := range []string{`"api_key_file":"/run/secrets/skyfire key"`, `"metrics_addr":":9090"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log line lacks %s: %s", want, out)
		}
	}
	if strings.Contains(out, `"api_key"`) {
		t.Errorf("log line has an api_key with a key file: %s", out)
	}
}
