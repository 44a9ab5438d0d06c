package kyapaycaddy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	_ "github.com/kyapay/kyapay-go/middleware/kyapaycaddy"
)

// sellerID is the seller agent ID the tests configure and the fake issuer
// puts in aud.
const sellerID = "seller-1"

// apiKeyEnv is the environment variable the test configs read the API key
// from, as a seller's would.
const apiKeyEnv = "KYAPAYCADDY_TEST_API_KEY"

func TestMain(m *testing.M) {
	// Keep Caddy's config and data directories out of the user's.
	dir, err := os.MkdirTemp("", "kyapaycaddy-test")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CONFIG_HOME", dir)
	os.Setenv("XDG_DATA_HOME", dir)
	os.Setenv(apiKeyEnv, kyapaytest.DefaultAPIKey)
	code := m.Run()
	_ = caddy.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// env is one test's world: the fake issuer, an upstream that records what
// it receives, and the address Caddy listens on.
type env struct {
	iss      *kyapaytest.Issuer
	upstream *upstream
	addr     string // host:port of Caddy's site
	client   *http.Client
	global   string // extra global options
	settings string // extra lines of the global kyapay option
	logs     string // global logging options; default: discard everything
}

func newEnv(t testing.TB) *env {
	t.Helper()
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience(sellerID))
	t.Cleanup(iss.Close)
	up := newUpstream()
	t.Cleanup(up.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &env{iss: iss, upstream: up, addr: freeAddr(t), client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// caddyfile wraps site directives in a Caddyfile serving e.addr, with the
// kyapay global option trusting the fake issuer. {up} in site is replaced
// by the upstream's address.
func (e *env) caddyfile(site string) string {
	logs := e.logs
	if logs == "" {
		logs = "log {\n\t\toutput discard\n\t}"
	}
	return fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	%s
	%s
	kyapay {
		issuer %s
		seller_id %s
		api_url %s
		api_key {env.%s}
		%s
	}
}

http://%s {
	%s
}
`, logs, e.global, e.iss.Issuer(), sellerID, e.iss.APIBaseURL(), apiKeyEnv, e.settings, e.addr, strings.ReplaceAll(site, "{up}", e.upstream.addr()))
}

// load adapts and runs a Caddyfile, replacing the running config.
func load(caddyfile string) error {
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		return err
	}
	_ = warnings
	return caddy.Load(cfg, true)
}

// start runs the site with Caddy and stops Caddy when the test ends.
func (e *env) start(t testing.TB, site string) {
	t.Helper()
	if err := load(e.caddyfile(site)); err != nil {
		t.Fatalf("loading config: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
}

// result is a response read in full.
type result struct {
	status int
	header http.Header
	body   string
}

// do sends a request to Caddy with the token (if any) and extra headers
// given as name, value pairs.
func (e *env) do(t testing.TB, method, path, token string, body []byte, headers ...string) result {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+e.addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set(kyapay.HeaderName, token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}

// getAfterReload is get for the first request after a config reload. On
// Linux, Caddy's new listener shares the port with the old one
// (SO_REUSEPORT) while the reload runs, and a connection the kernel queued
// on the old one is reset when it closes, and a kept-alive connection the
// old server closes as the client reuses it ends in EOF; only such
// connection-level failures are retried, a few times. headers are name,
// value pairs.
func (e *env) getAfterReload(t testing.TB, path, token string, headers ...string) result {
	t.Helper()
	for try := 0; ; try++ {
		req, err := http.NewRequest(http.MethodGet, "http://"+e.addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(kyapay.HeaderName, token)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Add(headers[i], headers[i+1])
		}
		resp, err := e.client.Do(req)
		if err != nil {
			if try < 3 && (strings.Contains(err.Error(), "connection reset") || errors.Is(err, io.EOF)) {
				continue
			}
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return result{resp.StatusCode, resp.Header, string(b)}
	}
}

// get is do for a GET without a body.
func (e *env) get(t testing.TB, path, token string, headers ...string) result {
	t.Helper()
	return e.do(t, http.MethodGet, path, token, nil, headers...)
}

// seen is a request as the upstream received it.
type seen struct {
	method string
	path   string
	header http.Header
	body   []byte
}

// upstream is a loopback HTTP server that records every request and
// answers by path: /fail answers 500, /sse an event stream, /cut part of
// a body before it breaks the connection, /nocontent 204, /echo and /mcp
// the request body, anything else 200 "ok <path>".
type upstream struct {
	srv *httptest.Server

	mu   sync.Mutex // guards reqs
	reqs []seen

	// sse, when not nil, is waited on by /sse between its two events.
	sse chan struct{}
	// quiet stops the recording (for benchmarks).
	quiet bool
}

func newUpstream() *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	return u
}

func (u *upstream) Close() { u.srv.Close() }

func (u *upstream) addr() string { return strings.TrimPrefix(u.srv.URL, "http://") }

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	if !u.quiet {
		u.reqs = append(u.reqs, seen{r.Method, r.URL.Path, r.Header.Clone(), body})
	}
	sse := u.sse
	u.mu.Unlock()
	switch {
	case strings.HasSuffix(r.URL.Path, "/fail"):
		http.Error(w, "upstream failed", http.StatusInternalServerError)
	case strings.HasSuffix(r.URL.Path, "/cut"):
		// Part of a chunked body, then the connection breaks.
		fmt.Fprint(w, "partial content")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case strings.HasSuffix(r.URL.Path, "/nocontent"):
		w.WriteHeader(http.StatusNoContent)
	case strings.HasSuffix(r.URL.Path, "/sse"):
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		if sse != nil {
			<-sse
		}
		fmt.Fprint(w, "data: two\n\n")
	case strings.HasSuffix(r.URL.Path, "/echo") || r.URL.Path == "/mcp":
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	default:
		io.WriteString(w, "ok ")
		io.WriteString(w, r.URL.Path)
	}
}

// requests returns the requests received so far.
func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

// last returns the last request received; the test fails if there is none.
func (u *upstream) last(t testing.TB) seen {
	t.Helper()
	reqs := u.requests()
	if len(reqs) == 0 {
		t.Fatal("the upstream received no request")
	}
	return reqs[len(reqs)-1]
}

// chargedAmounts lists the amounts the fake issuer charged, in order.
func chargedAmounts(iss *kyapaytest.Issuer) []string {
	var out []string
	for _, c := range iss.Charges() {
		out = append(out, c.Amount.String())
	}
	return out
}

// kyapayServiceID mints tokens for the service svc-i.
func kyapayServiceID(i int) kyapaytest.TokenOption {
	return kyapaytest.ServiceID(fmt.Sprintf("svc-%d", i))
}
