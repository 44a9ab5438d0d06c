package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
)

// envMap turns a map into a getenv function.
func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// with returns a copy of base with the changes applied; an empty value
// deletes the variable.
func with(base map[string]string, kv ...string) map[string]string {
	m := make(map[string]string, len(base)+len(kv)/2)
	for k, v := range base {
		m[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	sandbox := map[string]string{
		envIssuer:   kyapay.SandboxIssuer,
		envAPIKey:   "sk-secret-key",
		envSellerID: "seller-1",
	}
	custom := map[string]string{
		envIssuer:   "http://127.0.0.1:9999",
		envAPIBase:  "http://127.0.0.1:9998/",
		envAPIKey:   "sk-secret-key",
		envSellerID: "seller-1",
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    *config // checked when non-nil
		wantErr []string
	}{
		{
			name: "sandbox defaults",
			env:  sandbox,
			want: &config{
				Addr:     "127.0.0.1:8080",
				Issuer:   kyapay.SandboxIssuer,
				JWKSURL:  "https://app-sandbox.skyfire.xyz/.well-known/jwks.json",
				APIBase:  charge.SandboxBaseURL,
				APIKey:   "sk-secret-key",
				SellerID: "seller-1",
				Price:    kyapay.MustParseAmount("0.01"),
				Mode:     middleware.ChargeBefore,
			},
		},
		{
			name: "production issuer",
			env:  with(sandbox, envIssuer, kyapay.ProductionIssuer),
			want: &config{
				Addr:     "127.0.0.1:8080",
				Issuer:   kyapay.ProductionIssuer,
				JWKSURL:  "https://app.skyfire.xyz/.well-known/jwks.json",
				APIBase:  charge.ProductionBaseURL,
				APIKey:   "sk-secret-key",
				SellerID: "seller-1",
				Price:    kyapay.MustParseAmount("0.01"),
			},
		},
		{
			name: "everything set",
			env: with(custom, envAddr, ":0", envJWKSURL, "https://keys.example/jwks",
				envSellerID, "seller-1", envServiceID, "svc-1", envEnv, "sandbox",
				envPrice, "1.250000", envChargeMode, "after"),
			want: &config{
				Addr:      ":0",
				Issuer:    "http://127.0.0.1:9999",
				JWKSURL:   "https://keys.example/jwks",
				APIBase:   "http://127.0.0.1:9998/",
				APIKey:    "sk-secret-key",
				SellerID:  "seller-1",
				ServiceID: "svc-1",
				Env:       kyapay.EnvSandbox,
				Price:     kyapay.MustParseAmount("1.25"),
				Mode:      middleware.ChargeAfter,
			},
		},
		{name: "explicit API base overrides sandbox default", env: with(sandbox, envAPIBase, "https://api.example"),
			want: &config{Addr: defaultAddr, Issuer: kyapay.SandboxIssuer, JWKSURL: kyapay.JWKSURL(kyapay.SandboxIssuer),
				APIBase: "https://api.example", APIKey: "sk-secret-key", SellerID: "seller-1", Price: kyapay.MustParseAmount("0.01")}},
		{name: "production env", env: with(sandbox, envEnv, "production"),
			want: &config{Addr: defaultAddr, Issuer: kyapay.SandboxIssuer, JWKSURL: kyapay.JWKSURL(kyapay.SandboxIssuer),
				APIBase: charge.SandboxBaseURL, APIKey: "sk-secret-key", SellerID: "seller-1", Env: kyapay.EnvProduction, Price: kyapay.MustParseAmount("0.01")}},
		{name: "audience check waived", env: with(sandbox, envSellerID, "", envSkipAud, "1"),
			want: &config{Addr: defaultAddr, Issuer: kyapay.SandboxIssuer, JWKSURL: kyapay.JWKSURL(kyapay.SandboxIssuer),
				APIBase: charge.SandboxBaseURL, APIKey: "sk-secret-key", SkipAud: true, Price: kyapay.MustParseAmount("0.01")}},

		{name: "nothing set", env: map[string]string{}, wantErr: []string{envIssuer + ": is required", envAPIKey + ": is required"}},
		{name: "issuer missing", env: with(sandbox, envIssuer, ""), wantErr: []string{envIssuer + ": is required"}},
		{name: "API key missing", env: with(sandbox, envAPIKey, ""), wantErr: []string{envAPIKey + ": is required"}},
		{name: "API base missing for custom issuer", env: with(custom, envAPIBase, ""), wantErr: []string{envAPIBase + ": is required"}},
		{name: "API key with space", env: with(sandbox, envAPIKey, "sk-secret key"), wantErr: []string{envAPIKey + ": contains"}},
		{name: "API key with newline", env: with(sandbox, envAPIKey, "sk-secret-key\n"), wantErr: []string{envAPIKey + ": contains"}},

		{name: "price exponent", env: with(sandbox, envPrice, "1e-2"), wantErr: []string{envPrice + `: "1e-2" is not`}},
		{name: "price negative", env: with(sandbox, envPrice, "-1"), wantErr: []string{envPrice + `: "-1" is not`}},
		{name: "price zero", env: with(sandbox, envPrice, "0.00"), wantErr: []string{envPrice + ": must be greater than zero"}},
		{name: "price too precise", env: with(sandbox, envPrice, "0.0000001"), wantErr: []string{envPrice}},
		{name: "price word", env: with(sandbox, envPrice, "cheap"), wantErr: []string{envPrice}},
		{name: "price with dollar", env: with(sandbox, envPrice, "$1"), wantErr: []string{envPrice}},

		{name: "mode", env: with(sandbox, envChargeMode, "later"), wantErr: []string{envChargeMode + `: "later" is not`}},
		{name: "mode upper case", env: with(sandbox, envChargeMode, "AFTER"), wantErr: []string{envChargeMode}},
		{name: "env", env: with(sandbox, envEnv, "staging"), wantErr: []string{envEnv + `: "staging" is not`}},

		{name: "issuer not a URL", env: with(sandbox, envIssuer, "app.skyfire.xyz"), wantErr: []string{envIssuer + ": must be an absolute"}},
		{name: "issuer ftp", env: with(sandbox, envIssuer, "ftp://app.skyfire.xyz"), wantErr: []string{envIssuer + ": must be an absolute"}},
		{name: "issuer no host", env: with(sandbox, envIssuer, "https://"), wantErr: []string{envIssuer + ": URL has no host"}},
		{name: "issuer with space", env: with(sandbox, envIssuer, kyapay.SandboxIssuer+" "), wantErr: []string{envIssuer + ": URL contains spaces"}},
		{name: "JWKS URL with query", env: with(sandbox, envJWKSURL, "https://x.example/jwks?a=1"), wantErr: []string{envJWKSURL + ": URL must not have a query"}},
		{name: "JWKS URL unparsable", env: with(sandbox, envJWKSURL, "https://x.example:port/"), wantErr: []string{envJWKSURL + ": is not a valid URL"}},
		{name: "API base with user info", env: with(sandbox, envAPIBase, "https://user:hunter2@api.example"), wantErr: []string{envAPIBase + ": URL must not contain user info"}},
		{name: "seller ID with space", env: with(sandbox, envSellerID, "seller 1"), wantErr: []string{envSellerID}},
		{name: "seller ID missing", env: with(sandbox, envSellerID, ""), wantErr: []string{envSellerID + ": is required", envSkipAud + "=1"}},
		{name: "seller ID and waiver", env: with(sandbox, envSkipAud, "1"), wantErr: []string{envSkipAud + ": is set together with " + envSellerID}},
		{name: "waiver not 1", env: with(sandbox, envSellerID, "", envSkipAud, "true"), wantErr: []string{envSkipAud + `: "true" is not 1`, envSellerID + ": is required"}},
		{name: "service ID with newline", env: with(sandbox, envServiceID, "svc\n1"), wantErr: []string{envServiceID}},

		{name: "address without port", env: with(sandbox, envAddr, "localhost"), wantErr: []string{envAddr + `: "localhost" is not host:port`}},
		{name: "address port too big", env: with(sandbox, envAddr, "127.0.0.1:99999"), wantErr: []string{envAddr + ": " + `"127.0.0.1:99999": port must be`}},
		{name: "address named port", env: with(sandbox, envAddr, "127.0.0.1:http"), wantErr: []string{envAddr}},
		{name: "address negative port", env: with(sandbox, envAddr, "127.0.0.1:-1"), wantErr: []string{envAddr}},

		{name: "several problems at once", env: with(sandbox, envPrice, "1e-2", envChargeMode, "x", envAPIKey, ""),
			wantErr: []string{envPrice, envChargeMode, envAPIKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := loadConfig(envMap(tt.env))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("loadConfig succeeded with %+v; want an error", got)
				}
				msg := err.Error()
				for _, w := range tt.wantErr {
					if !strings.Contains(msg, w) {
						t.Errorf("error %q does not contain %q", msg, w)
					}
				}
				if strings.Contains(msg, "\n") {
					t.Errorf("error %q is not one line", msg)
				}
				for _, secret := range []string{"sk-secret", "hunter2"} {
					if strings.Contains(msg, secret) {
						t.Errorf("error %q quotes a secret", msg)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			if tt.want != nil && got != *tt.want {
				t.Errorf("loadConfig =\n%#v\nwant\n%#v", got, *tt.want)
			}
		})
	}
}

func TestConfigLogValueRedactsKey(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(envMap(map[string]string{envIssuer: kyapay.SandboxIssuer, envAPIKey: "sk-very-secret", envSellerID: "seller-1"}))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", slog.Any("config", cfg))
	out := buf.String()
	if strings.Contains(out, "sk-very-secret") {
		t.Fatalf("log line reveals the API key: %s", out)
	}
	for _, want := range []string{`"api_key":"[REDACTED]"`, `"issuer":"https://app-sandbox.skyfire.xyz"`,
		`"api_base":"https://api-sandbox.skyfire.xyz"`, `"price":"0.01"`, `"charge_mode":"before"`, `"addr":"127.0.0.1:8080"`,
		`"seller_id":"seller-1"`, `"env":"sandbox (from the issuer)"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log line lacks %s: %s", want, out)
		}
	}
}

// output collects a server's stderr and reports its listening addresses.
type output struct {
	mu          sync.Mutex
	buf         bytes.Buffer
	pending     []byte
	addr        chan string // receives the address of the "listening" line once
	sent        bool
	metricsAddr chan string // receives the address of the "metrics listening" line once
	metricsSent bool
}

func newOutput() *output {
	return &output{addr: make(chan string, 1), metricsAddr: make(chan string, 1)}
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	o.pending = append(o.pending, p...)
	for {
		i := bytes.IndexByte(o.pending, '\n')
		if i < 0 {
			break
		}
		line := o.pending[:i]
		o.pending = o.pending[i+1:]
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(line, &rec) != nil {
			continue
		}
		switch {
		case rec.Msg == "listening" && !o.sent:
			o.sent = true
			o.addr <- rec.Addr
		case rec.Msg == "metrics listening" && !o.metricsSent:
			o.metricsSent = true
			o.metricsAddr <- rec.Addr
		}
	}
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// lines returns the JSON log records written so far.
func (o *output) records(t *testing.T) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(o.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("output line is not JSON: %q", line)
			continue
		}
		recs = append(recs, m)
	}
	return recs
}

// waitAddr waits for the listening address, failing if exited is closed or
// closes first.
func waitAddr(t *testing.T, o *output, exited <-chan struct{}) string {
	t.Helper()
	select {
	case addr := <-o.addr:
		return addr
	case <-exited:
		t.Fatalf("server exited before listening; output:\n%s", o)
	case <-time.After(15 * time.Second):
		t.Fatalf("no listening address after 15 s; output:\n%s", o)
	}
	return ""
}

// randomKey returns a distinctive API key, so that finding it in the
// output means it leaked.
func randomKey(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "sk-test-" + hex.EncodeToString(b)
}

// sellerEnv is the environment pointing the program at a fake issuer.
func sellerEnv(iss *kyapaytest.Issuer, extra ...string) map[string]string {
	return with(map[string]string{
		envAddr:      "127.0.0.1:0",
		envIssuer:    iss.Issuer(),
		envJWKSURL:   iss.JWKSURL(),
		envAPIBase:   iss.APIBaseURL(),
		envAPIKey:    iss.APIKey(),
		envSellerID:  kyapaytest.DefaultAudience,
		envServiceID: kyapaytest.DefaultServiceID,
	}, extra...)
}

type response struct {
	status int
	header http.Header
	body   string
}

type client struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newClient(t *testing.T, addr string) *client {
	tr := &http.Transport{Proxy: nil} // loopback only, never a proxy
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, base: "http://" + addr, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (c *client) do(method, path, token string) response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set(kyapay.HeaderName, token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return response{res.StatusCode, res.Header, string(body)}
}

func (c *client) get(path, token string) response {
	c.t.Helper()
	return c.do(http.MethodGet, path, token)
}

// payBody is the JSON of GET /pay.
type payBody struct {
	Sub              string  `json:"sub"`
	JTI              string  `json:"jti"`
	ChargeMode       string  `json:"chargeMode"`
	Price            string  `json:"price"`
	Charged          bool    `json:"charged"`
	AmountCharged    *string `json:"amountCharged"`
	RemainingBalance *string `json:"remainingBalance"`
}

// exercise runs every route against a server wired to iss, charging price
// in the given mode, and returns the tokens it sent.
func exercise(t *testing.T, c *client, iss *kyapaytest.Issuer, mode, price string) []string {
	t.Helper()
	var tokens []string
	mint := func(typ kyapay.TokenType, opts ...kyapaytest.TokenOption) string {
		tok := iss.Mint(typ, opts...)
		tokens = append(tokens, tok)
		return tok
	}
	expect := func(r response, status int, contains ...string) {
		t.Helper()
		if r.status != status {
			t.Fatalf("status %d, want %d; body %q", r.status, status, r.body)
		}
		for _, s := range contains {
			if !strings.Contains(r.body, s) {
				t.Errorf("body %q does not contain %q", r.body, s)
			}
		}
	}

	// Health.
	r := c.get("/healthz", "")
	expect(r, 200)
	if r.body != "ok" {
		t.Errorf("/healthz body %q", r.body)
	}

	// /kya.
	expect(c.get("/kya", ""), 402, "ERROR: Missing KYAPay token in the skyfire-pay-id header.", "https://docs.skyfire.xyz/reference/create-token")
	kya := mint(kyapay.TypeKYA, kyapaytest.Agent(map[string]any{"name": "agent-7"}), kyapaytest.Platform(map[string]any{"name": "platform-x"}))
	r = c.get("/kya", kya)
	expect(r, 200)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("/kya Content-Type %q", ct)
	}
	if strings.Contains(r.body, kya) {
		t.Errorf("/kya echoes the token")
	}
	var id struct {
		Sub  string `json:"sub"`
		Type string `json:"type"`
		Env  string `json:"env"`
		Hid  struct {
			Email    string `json:"email"`
			Verified bool   `json:"verified"`
		} `json:"hid"`
		Apd struct{ Name string } `json:"apd"`
		Aid struct{ Name string } `json:"aid"`
		JTI string                `json:"jti"`
		Exp int64                 `json:"exp"`
	}
	if err := json.Unmarshal([]byte(r.body), &id); err != nil {
		t.Fatalf("/kya body %q: %v", r.body, err)
	}
	if id.Sub != kyapaytest.DefaultSubject || id.Type != "kya" || id.Env != kyapay.EnvProduction ||
		id.Hid.Email != kyapaytest.DefaultEmail || !id.Hid.Verified || id.Apd.Name != "platform-x" ||
		id.Aid.Name != "agent-7" || id.JTI != kyapaytest.TokenID(kya) || id.Exp <= time.Now().Unix() {
		t.Errorf("/kya body %s", r.body)
	}
	// A kya-pay token carries identity too; a pay token does not.
	expect(c.get("/kya", mint(kyapay.TypeKYAPay)), 200, kyapaytest.DefaultEmail)
	expect(c.get("/kya", mint(kyapay.TypePay)), 402)
	// The seller and service checks come from the environment.
	expect(c.get("/kya", mint(kyapay.TypeKYA, kyapaytest.Audience("another-seller"))), 402)
	expect(c.get("/kya", mint(kyapay.TypeKYA, kyapaytest.ServiceID("another-service"))), 402)
	expect(c.do(http.MethodPost, "/kya", kya), http.StatusMethodNotAllowed)

	// /pay.
	required := "The required amount is " + price + " USD."
	expect(c.get("/pay", ""), 402, "ERROR: Missing pay token", required)
	expect(c.get("/pay", kya), 402, "ERROR: Missing pay token", required)
	if n := iss.ChargeCount(); n != 0 {
		t.Fatalf("ledger has %d charges after refusals; want 0", n)
	}
	pay := mint(kyapay.TypePay) // amount kyapaytest.DefaultAmount
	jti := kyapaytest.TokenID(pay)
	balance := kyapay.MustParseAmount(kyapaytest.DefaultAmount)
	p := kyapay.MustParseAmount(price)
	for call := 1; call <= 2; call++ {
		r := c.get("/pay", pay)
		expect(r, 200)
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("/pay Cache-Control %q", cc)
		}
		var got payBody
		if err := json.Unmarshal([]byte(r.body), &got); err != nil {
			t.Fatalf("/pay body %q: %v", r.body, err)
		}
		var err error
		if balance, err = balance.Sub(p); err != nil {
			t.Fatal(err)
		}
		if n := iss.ChargeCount(); n != call {
			t.Errorf("after call %d the ledger has %d charges", call, n)
		}
		if b, _ := iss.Balance(jti); b != balance {
			t.Errorf("after call %d the ledger balance is %s; want %s", call, b, balance)
		}
		if got.Sub != kyapaytest.DefaultSubject || got.JTI != jti || got.ChargeMode != mode || got.Price != price {
			t.Errorf("/pay body %s", r.body)
		}
		switch mode {
		case "before":
			if !got.Charged || got.AmountCharged == nil || *got.AmountCharged != price ||
				got.RemainingBalance == nil || *got.RemainingBalance != balance.String() {
				t.Errorf("call %d: /pay body %s; want charged %s, remaining %s", call, r.body, price, balance)
			}
		case "after":
			if got.Charged || got.AmountCharged != nil || got.RemainingBalance != nil {
				t.Errorf("call %d: /pay body %s; want no receipt in after mode", call, r.body)
			}
		}
	}
	// A kya-pay token is charged too.
	expect(c.get("/pay", mint(kyapay.TypeKYAPay)), 200)
	if n := iss.ChargeCount(); n != 3 {
		t.Errorf("ledger has %d charges; want 3", n)
	}
	// A token whose amount is below the price is refused without a charge.
	expect(c.get("/pay", mint(kyapay.TypePay, kyapaytest.Amount("0.000001"))), 402, "depleted")
	if n := iss.ChargeCount(); n != 3 {
		t.Errorf("ledger has %d charges; want 3", n)
	}

	// /llms.txt.
	r = c.get("/llms.txt", "")
	expect(r, 200, "GET /pay", "GET /kya", price+" USD per request", kyapaytest.DefaultServiceID, kyapaytest.DefaultAudience)
	if mode == "after" {
		expect(r, 200, "Charged after the request succeeds")
	}

	expect(c.get("/nope", ""), 404)
	return tokens
}

// checkOutput checks a server's log: no secret, the request lines, the
// redacted configuration.
func checkOutput(t *testing.T, o *output, apiKey string, tokens []string) {
	t.Helper()
	out := o.String()
	if strings.Contains(out, apiKey) {
		t.Errorf("output contains the API key")
	}
	for _, tok := range tokens {
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		if strings.Contains(out, tok) || strings.Contains(out, sig) {
			t.Errorf("output contains a token")
		}
	}
	recs := o.records(t)
	var sawStart, sawRefusal, sawPaid, sawCharged, sawStopped bool
	for _, m := range recs {
		switch m["msg"] {
		case "starting":
			cfg, _ := m["config"].(map[string]any)
			sawStart = cfg["api_key"] == "[REDACTED]" && cfg["jwks_url"] != nil && cfg["api_base"] != nil
		case "request":
			if _, ok := m["duration"]; !ok || m["method"] == nil {
				t.Errorf("request line lacks fields: %v", m)
			}
			if m["path"] == "/kya" && m["status"] == 402.0 && m["refusal"] == "token_missing" {
				sawRefusal = true
			}
			if m["path"] == "/pay" && m["status"] == 200.0 {
				sawPaid = true
			}
		case "kyapay: charged":
			sawCharged = m["component"] == "kyapay"
		case "stopped":
			sawStopped = true
		}
	}
	if !sawStart || !sawRefusal || !sawPaid || !sawCharged || !sawStopped {
		t.Errorf("log lacks lines: start %v, refusal %v, paid request %v, charged %v, stopped %v; output:\n%s",
			sawStart, sawRefusal, sawPaid, sawCharged, sawStopped, out)
	}
}

// buildBinary builds the program into dir and returns its path.
func buildBinary(t *testing.T, ctx context.Context, dir string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH; skipping the binary test")
	}
	bin := filepath.Join(dir, "kyapay-server")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// envList turns a map into an exec environment: only these variables, so
// nothing from the test's own environment leaks in.
func envList(m map[string]string) []string {
	env := make([]string, 0, len(m))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	return env
}

func TestBinary(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the test stops the program with SIGINT")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel) // after the parallel subtests, unlike defer
	bin := buildBinary(t, ctx, t.TempDir())

	t.Run("bad configuration", func(t *testing.T) {
		t.Parallel()
		full := map[string]string{envIssuer: "http://127.0.0.1:1", envAPIBase: "http://127.0.0.1:1", envAPIKey: "sk-bad-config-secret"}
		for _, tc := range []struct {
			env  map[string]string
			name string
		}{
			{with(full, envAPIKey, ""), envAPIKey},
			{with(full, envIssuer, ""), envIssuer},
			{with(full, envPrice, "1e-2"), envPrice},
			{with(full, envPrice, "-1"), envPrice},
			{with(full, envChargeMode, "sometimes"), envChargeMode},
			{with(full, envEnv, "prod"), envEnv},
			{with(full, envJWKSURL, "not a url"), envJWKSURL},
			{with(full, envAddr, "127.0.0.1"), envAddr},
			{with(full, envAPIKey, "sk-bad-config-secret with space"), envAPIKey},
			{with(full, envAPIKeyFile, "/nonexistent/key"), envAPIKey}, // both set
			{with(full, envAPIKey, "", envAPIKeyFile, "/nonexistent/key", envSellerID, "seller-1"), envAPIKeyFile},
			{with(full, envMetrics, "127.0.0.1"), envMetrics},
		} {
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, bin)
			cmd.Env = envList(tc.env)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Errorf("%s: exit %v, want status 2; stderr %q", tc.name, err, stderr.String())
				continue
			}
			msg := stderr.String()
			if !strings.Contains(msg, tc.name+":") || strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") {
				t.Errorf("%s: stderr %q is not one line naming the variable", tc.name, msg)
			}
			if strings.Contains(msg, "sk-bad-config-secret") || stdout.Len() != 0 {
				t.Errorf("%s: output reveals the key or uses stdout: %q %q", tc.name, msg, stdout.String())
			}
		}
	})

	for _, tc := range []struct {
		mode, price string
		extra       []string
	}{
		{mode: "before", price: "0.01", extra: []string{envEnv, kyapay.EnvProduction}}, // price and mode by default
		{mode: "after", price: "0.25", extra: []string{envPrice, "0.25", envChargeMode, "after"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			key := randomKey(t)
			iss := kyapaytest.NewIssuer(kyapaytest.WithAPIKey(key))
			defer iss.Close()

			out := newOutput()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Env = envList(sellerEnv(iss, tc.extra...))
			cmd.Stdout, cmd.Stderr = out, out
			cmd.WaitDelay = 5 * time.Second
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			var waitErr error
			go func() { waitErr = cmd.Wait(); close(exited) }()
			defer func() {
				_ = cmd.Process.Kill() // no-op once it exited
				<-exited
			}()

			addr := waitAddr(t, out, exited)
			c := newClient(t, addr)
			tokens := exercise(t, c, iss, tc.mode, tc.price)
			c.hc.CloseIdleConnections()

			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			select {
			case <-exited:
			case <-ctx.Done():
				t.Fatalf("no exit after SIGINT; output:\n%s", out)
			}
			if waitErr != nil {
				t.Fatalf("exit after SIGINT: %v; output:\n%s", waitErr, out)
			}
			checkOutput(t, out, key, tokens)
		})
	}
}

// TestRunInProcess drives run itself, under the race detector.
func TestRunInProcess(t *testing.T) {
	t.Parallel()
	key := randomKey(t)
	iss := kyapaytest.NewIssuer(kyapaytest.WithAPIKey(key))
	defer iss.Close()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := newOutput()
	code := make(chan int, 1)
	exited := make(chan struct{})
	go func() {
		code <- run(ctx, envMap(sellerEnv(iss, envEnv, kyapay.EnvProduction)), out)
		close(exited)
	}()
	addr := waitAddr(t, out, exited)
	c := newClient(t, addr)
	tokens := exercise(t, c, iss, "before", "0.01")

	cancel()
	select {
	case got := <-code:
		if got != 0 {
			t.Fatalf("run returned %d after cancel; output:\n%s", got, out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not return after cancel")
	}
	checkOutput(t, out, key, tokens)
}

func TestRunBadConfig(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	got := run(t.Context(), envMap(map[string]string{envIssuer: kyapay.SandboxIssuer, envPrice: "1e-2", envAPIKey: "sk-x"}), &stderr)
	if got != 2 {
		t.Fatalf("run = %d, want 2", got)
	}
	if msg := stderr.String(); !strings.Contains(msg, envPrice+": ") || strings.Count(msg, "\n") != 1 {
		t.Errorf("stderr %q", msg)
	}
}

// TestRunRequiresSellerID: without KYAPAY_SELLER_ID, and without the
// explicit waiver, the program refuses to start: one line on stderr, exit
// status 2.
func TestRunRequiresSellerID(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	got := run(t.Context(), envMap(map[string]string{envIssuer: kyapay.SandboxIssuer, envAPIKey: "sk-x"}), &stderr)
	if got != 2 {
		t.Fatalf("run = %d, want 2; stderr %s", got, stderr.String())
	}
	if msg := stderr.String(); !strings.Contains(msg, envSellerID+": is required") || !strings.Contains(msg, envSkipAud+"=1") || strings.Count(msg, "\n") != 1 {
		t.Errorf("stderr %q; want one line naming %s and %s", msg, envSellerID, envSkipAud)
	}
}

func TestRunListenFails(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stderr bytes.Buffer
	got := run(t.Context(), envMap(map[string]string{
		envAddr: ln.Addr().String(), envIssuer: "http://127.0.0.1:1", envAPIBase: "http://127.0.0.1:1", envAPIKey: "sk-x",
		envSellerID: "seller-1",
	}), &stderr)
	if got != 1 {
		t.Fatalf("run = %d, want 1; stderr %s", got, stderr.String())
	}
	if !strings.Contains(stderr.String(), `"msg":"listen failed"`) {
		t.Errorf("stderr %s", stderr.String())
	}
}
