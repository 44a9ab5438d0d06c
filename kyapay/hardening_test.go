package kyapay

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func TestNewVerifierAudienceRequired(t *testing.T) {
	t.Parallel()
	keys := StaticKeys{"k1": &testKey.PublicKey}
	_, err := NewVerifier(VerifierConfig{Issuers: []string{testIss}, Keys: keys})
	if err == nil || !strings.Contains(err.Error(), "Audience is required") || !strings.Contains(err.Error(), "InsecureSkipAudience") {
		t.Fatalf("NewVerifier without Audience: err = %v; want an error naming Audience and InsecureSkipAudience", err)
	}
	if _, err := NewVerifier(VerifierConfig{Issuers: []string{testIss}, Keys: keys, Audience: testAud, InsecureSkipAudience: true}); err == nil {
		t.Error("NewVerifier accepted Audience together with InsecureSkipAudience")
	}
	// The opt-out accepts a token for any seller, and one without aud.
	v := newTestVerifier(t, func(c *VerifierConfig) { c.Audience, c.InsecureSkipAudience = "", true })
	for _, claims := range []map[string]any{with(currentPay(), "aud", "another-seller"), with(currentPay(), "aud", nil)} {
		if _, err := v.Verify(context.Background(), mint(testKey, currentHeader("pay+jwt"), claims)); err != nil {
			t.Errorf("InsecureSkipAudience: %v", err)
		}
	}
}

func TestPresetIssuerImpliesEnv(t *testing.T) {
	t.Parallel()
	keys := StaticKeys{"k1": &testKey.PublicKey}
	tok := func(iss, env string) string {
		return mint(testKey, currentHeader("pay+jwt"), with(currentPay(), "iss", iss, "env", env))
	}
	tests := []struct {
		name     string
		issuers  []string
		env      string
		token    string
		wantCode Code
	}{
		{"production issuer, production token", []string{ProductionIssuer}, "", tok(ProductionIssuer, EnvProduction), ""},
		{"production issuer, sandbox token", []string{ProductionIssuer}, "", tok(ProductionIssuer, EnvSandbox), CodeEnvMismatch},
		{"production issuer, no env", []string{ProductionIssuer}, "", tok(ProductionIssuer, ""), CodeEnvMismatch},
		{"sandbox issuer, production token", []string{SandboxIssuer}, "", tok(SandboxIssuer, EnvProduction), CodeEnvMismatch},
		{"sandbox issuer, sandbox token", []string{SandboxIssuer}, "", tok(SandboxIssuer, EnvSandbox), ""},
		{"both presets, each its env", []string{ProductionIssuer, SandboxIssuer}, "", tok(SandboxIssuer, EnvSandbox), ""},
		{"both presets, crossed", []string{ProductionIssuer, SandboxIssuer}, "", tok(SandboxIssuer, EnvProduction), CodeEnvMismatch},
		{"explicit Env wins", []string{ProductionIssuer}, EnvSandbox, tok(ProductionIssuer, EnvSandbox), ""},
		{"other issuer, env not checked", []string{testIss}, "", tok(testIss, "staging"), ""},
		{"slash spelling, production token", []string{ProductionIssuer}, "", tok(ProductionIssuer+"/", EnvProduction), ""},
		{"slash spelling, sandbox token", []string{ProductionIssuer}, "", tok(ProductionIssuer+"/", EnvSandbox), CodeEnvMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := NewVerifier(VerifierConfig{Issuers: tt.issuers, Keys: keys, Audience: testAud, Env: tt.env,
				Clock: func() time.Time { return testNow }})
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(context.Background(), tt.token)
			if got := CodeOf(err); got != tt.wantCode {
				t.Fatalf("Verify: code %q (%v); want %q", got, err, tt.wantCode)
			}
		})
	}
}

// recordingKeys is a KeySource that records the issuer names it is asked
// for, without implementing KeyPeeker.
type recordingKeys struct {
	mu      sync.Mutex // guards issuers
	issuers []string
	keys    map[string]*ecdsa.PublicKey
}

func (r *recordingKeys) Key(_ context.Context, iss, kid string) (*ecdsa.PublicKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.issuers = append(r.issuers, iss)
	if k, ok := r.keys[kid]; ok {
		return k, nil
	}
	return nil, ErrKeyUnknown
}

// TestPresetTrailingSlash: a preset accepts its 2025 spelling with a
// trailing slash and looks its keys up under the configured spelling;
// other issuers stay exact (TestVerifyRefuses "issuer trailing slash").
func TestPresetTrailingSlash(t *testing.T) {
	t.Parallel()
	for _, configured := range []string{ProductionIssuer, ProductionIssuer + "/"} {
		keys := &recordingKeys{keys: map[string]*ecdsa.PublicKey{"k1": &testKey.PublicKey}}
		v, err := NewVerifier(VerifierConfig{Issuers: []string{configured}, Keys: keys, Audience: testAud,
			Clock: func() time.Time { return testNow }, CacheSize: -1})
		if err != nil {
			t.Fatal(err)
		}
		for _, iss := range []string{ProductionIssuer, ProductionIssuer + "/"} {
			c, err := v.Verify(context.Background(), mint(testKey, currentHeader("pay+jwt"), with(currentPay(), "iss", iss)))
			if err != nil {
				t.Fatalf("configured %q, token iss %q: %v", configured, iss, err)
			}
			if c.Issuer != iss {
				t.Errorf("Claims.Issuer = %q; want the token's %q", c.Issuer, iss)
			}
		}
		if strings.Join(keys.issuers, " ") != configured+" "+configured {
			t.Errorf("configured %q: keys looked up under %q; want the configured spelling", configured, keys.issuers)
		}
		if _, err := v.Verify(context.Background(), mint(testKey, currentHeader("pay+jwt"), with(currentPay(), "iss", ProductionIssuer+"//"))); !errors.Is(err, ErrIssuerUntrusted) {
			t.Errorf("double slash: err = %v; want issuer_untrusted", err)
		}
	}
}

// mutableKeys is a KeyPeeker whose keys a test changes.
type mutableKeys struct {
	mu   sync.RWMutex // guards keys
	keys map[string]*ecdsa.PublicKey
}

func (m *mutableKeys) Key(_ context.Context, _, kid string) (*ecdsa.PublicKey, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if k, ok := m.keys[kid]; ok {
		return k, nil
	}
	return nil, ErrKeyUnknown
}

func (m *mutableKeys) PeekKey(_, kid string) (*ecdsa.PublicKey, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	k, ok := m.keys[kid]
	return k, ok
}

func (m *mutableKeys) set(kid string, k *ecdsa.PublicKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k == nil {
		delete(m.keys, kid)
	} else {
		m.keys[kid] = k
	}
}

// keyOnly is a KeySource without PeekKey.
type keyOnly struct{ *mutableKeys }

func (k keyOnly) Key(ctx context.Context, iss, kid string) (*ecdsa.PublicKey, error) {
	return k.mutableKeys.Key(ctx, iss, kid)
}

// TestCacheHitChecksKeyStillPublished: a cached token whose key the source
// no longer has, or has replaced, is refused at once, not at its exp.
func TestCacheHitChecksKeyStillPublished(t *testing.T) {
	t.Parallel()
	for _, peek := range []bool{true, false} {
		keys := &mutableKeys{keys: map[string]*ecdsa.PublicKey{"k1": &testKey.PublicKey}}
		var src KeySource = keys
		if !peek {
			src = keyOnly{keys}
		}
		v := newTestVerifier(t, func(c *VerifierConfig) { c.Keys = src })
		tok := mint(testKey, currentHeader("pay+jwt"), currentPay())
		first, err := v.Verify(context.Background(), tok)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := v.Verify(context.Background(), tok); err != nil || again != first {
			t.Fatalf("peek=%v: second Verify not a cache hit: %v", peek, err)
		}
		keys.set("k1", nil)
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrKeyUnknown) {
			t.Errorf("peek=%v: cached token after its key was removed: err = %v; want key_unknown", peek, err)
		}
		keys.set("k1", &mustKey().PublicKey) // same kid, another key
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrSignatureInvalid) {
			t.Errorf("peek=%v: cached token after its kid got another key: err = %v; want signature_invalid", peek, err)
		}
		keys.set("k1", &testKey.PublicKey)
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Errorf("peek=%v: token after its key came back: %v", peek, err)
		}
	}
}

// TestCacheHitNoAllocsWithKeyCheck: the key check on a hit costs no
// allocation with a KeyPeeker, even when the source hands out an equal key
// under a new pointer only once (after which the pointer matches again).
func TestCacheHitNoAllocsWithKeyCheck(t *testing.T) {
	keys := &mutableKeys{keys: map[string]*ecdsa.PublicKey{"k1": &testKey.PublicKey}}
	v := newTestVerifier(t, func(c *VerifierConfig) { c.Keys = keys })
	tok := mint(testKey, currentHeader("pay+jwt"), currentPay())
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("cached Verify with the key check allocates %v times; want 0", allocs)
	}
	// An equal key under another pointer still passes.
	cp := testKey.PublicKey
	keys.set("k1", &cp)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Errorf("equal key under a new pointer: %v", err)
	}
}

func TestNoLeeway(t *testing.T) {
	t.Parallel()
	expired := mint(testKey, currentHeader("pay+jwt"), with(currentPay(), "exp", testNow.Unix()-1))
	future := mint(testKey, currentHeader("pay+jwt"), with(currentPay(), "iat", testNow.Unix()+1))
	def := newTestVerifier(t, nil)
	for _, tok := range []string{expired, future} {
		if _, err := def.Verify(context.Background(), tok); err != nil {
			t.Errorf("default leeway refused a token 1 s off: %v", err)
		}
	}
	strict := newTestVerifier(t, func(c *VerifierConfig) { c.NoLeeway = true })
	if _, err := strict.Verify(context.Background(), expired); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("NoLeeway, exp 1 s ago: err = %v; want token_expired", err)
	}
	if _, err := strict.Verify(context.Background(), future); !errors.Is(err, ErrTokenNotYetValid) {
		t.Errorf("NoLeeway, iat 1 s ahead: err = %v; want token_not_yet_valid", err)
	}
	atExp := mint(testKey, currentHeader("pay+jwt"), with(currentPay(), "exp", testNow.Unix()))
	if _, err := strict.Verify(context.Background(), atExp); err != nil {
		t.Errorf("NoLeeway, exp == now: %v", err)
	}
	if _, err := NewVerifier(VerifierConfig{Issuers: []string{testIss}, Keys: StaticKeys{}, Audience: testAud, NoLeeway: true, Leeway: time.Second}); err == nil {
		t.Error("NewVerifier accepted Leeway with NoLeeway")
	}
}

// TestProfileRules: every rule of the default profile refuses, and its
// relaxation accepts; the optional rules are off by default.
func TestProfileRules(t *testing.T) {
	t.Parallel()
	pay := func(kv ...any) string { return mint(testKey, currentHeader("pay+jwt"), with(currentPay(), kv...)) }
	kya := func(kv ...any) string { return mint(testKey, currentHeader("kya+jwt"), with(currentKYA(), kv...)) }
	tests := []struct {
		name  string
		token string
		want  *Error
		relax func(*Profile)
	}{
		{"iat missing", pay("iat", nil), ErrClaimMissing, func(p *Profile) { p.AllowMissingIssuedAt = true }},
		{"jti not a UUID", pay("jti", "not-a-uuid"), ErrClaimInvalid, func(p *Profile) { p.AllowAnyTokenID = true }},
		{"jti UUID without hyphens", pay("jti", "b98218937699d24af06803a6a16476b0000"), ErrClaimInvalid, func(p *Profile) { p.AllowAnyTokenID = true }},
		{"amt zero", pay("amt", "0"), ErrClaimInvalid, func(p *Profile) { p.AllowZeroAmount = true }},
		{"val zero", pay("val", "0"), ErrClaimInvalid, func(p *Profile) { p.AllowZeroAmount = true }},
		{"val missing", pay("val", nil), ErrClaimMissing, func(p *Profile) { p.AllowMissingValue = true }},
		{"cur missing", pay("cur", nil), ErrClaimMissing, func(p *Profile) { p.AllowMissingCurrency = true }},
		{"stp unexpected", pay(), ErrClaimInvalid, nil},
		{"spr unexpected", pay("spr", "0.02"), ErrClaimInvalid, nil},
		{"spr missing", pay("spr", nil), ErrClaimInvalid, nil},
		{"sps unexpected", pay("sps", "subscription"), ErrClaimInvalid, nil},
		{"sti not verified", pay("sti", map[string]any{"type": "usdc", "verified": false}), ErrClaimInvalid, nil},
		{"sti missing", pay("sti", nil), ErrClaimInvalid, nil},
		{"email not an address", kya("hid", map[string]any{"email": "buyer at example.com"}), ErrClaimInvalid, nil},
		{"email missing", kya("hid", map[string]any{"given_name": "Ada"}), ErrClaimMissing, nil},
	}
	// The optional rules, switched on for the rows with no relaxation.
	optional := Profile{ExpectSettlementType: "COIN", ExpectServicePrice: "0.010000", ExpectPricingScheme: "PAY_PER_USE",
		RequireVerifiedSettlement: true, RequireEmail: true}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			strict, relaxed := Profile{}, Profile{}
			if tt.relax == nil {
				strict = optional
			} else {
				tt.relax(&relaxed)
			}
			v := newTestVerifier(t, func(c *VerifierConfig) { c.Profile = strict; c.CacheSize = -1 })
			if _, err := v.Verify(context.Background(), tt.token); !errors.Is(err, tt.want) {
				t.Errorf("strict: err = %v; want %s", err, tt.want.Code)
			}
			v = newTestVerifier(t, func(c *VerifierConfig) { c.Profile = relaxed; c.CacheSize = -1 })
			if _, err := v.Verify(context.Background(), tt.token); err != nil {
				t.Errorf("relaxed: %v", err)
			}
		})
	}
	// The optional rules accept a token that meets them.
	v := newTestVerifier(t, func(c *VerifierConfig) { c.Profile = optional })
	ok := pay("stp", "coin", "sti", map[string]any{"type": "usdc", "verified": true})
	if _, err := v.Verify(context.Background(), ok); err != nil {
		t.Errorf("optional rules refused a conforming pay token: %v", err)
	}
	if _, err := v.Verify(context.Background(), kya()); err != nil {
		t.Errorf("optional rules refused a conforming kya token: %v", err)
	}
	// The lenient profile accepts what the first release accepted.
	v = newTestVerifier(t, func(c *VerifierConfig) { c.Profile = LenientProfile() })
	if _, err := v.Verify(context.Background(), pay("iat", nil, "jti", "x", "amt", "0", "val", nil, "cur", nil)); err != nil {
		t.Errorf("LenientProfile: %v", err)
	}
	if _, err := NewVerifier(VerifierConfig{Issuers: []string{testIss}, Keys: StaticKeys{}, Audience: testAud,
		Profile: Profile{ExpectServicePrice: "1e-2"}}); err == nil {
		t.Error("NewVerifier accepted an unparsable ExpectServicePrice")
	}
}

// TestLegacyTolerance: a legacy decimal value and bid.skyfireEmail do not
// refuse the token.
func TestLegacyTolerance(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, func(c *VerifierConfig) { c.Profile.RequireEmail = true })
	tok := mint(testKey, currentHeader("kya+pay+JWT"), with(legacyPay(), "value", "15.000000"))
	c, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("legacy decimal value: %v", err)
	}
	if c.Value != "15.000000" || c.Human == nil || c.Human.Email != "old@example.com" {
		t.Errorf("value %q, identity %+v; want the value as sent and the skyfireEmail", c.Value, c.Human)
	}
	for _, zero := range []string{"0.000000", "0"} {
		if _, err := v.Verify(context.Background(), mint(testKey, currentHeader("pay+JWT"), with(legacyPay(), "value", zero))); !errors.Is(err, ErrClaimInvalid) {
			t.Errorf("value %q: err = %v; want claim_invalid", zero, err)
		}
	}
}

// TestAttackerStringsClipped: a 10 KB value in any claim or header field
// that ends up in an error reaches it clipped to 64 bytes with a marker.
func TestAttackerStringsClipped(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("9", 5000) + strings.Repeat("x", 5000)
	hdr := currentHeader("pay+jwt")
	v := newTestVerifier(t, func(c *VerifierConfig) { c.MaxTokenBytes = 64 << 10 })
	tests := map[string]string{
		"val":  mint(testKey, hdr, with(currentPay(), "val", huge)),
		"mnr":  mint(testKey, hdr, with(currentPay(), "mnr", huge)),
		"amt":  mint(testKey, hdr, with(currentPay(), "amt", huge)),
		"spr":  mint(testKey, hdr, with(currentPay(), "spr", huge)),
		"iss":  mint(testKey, hdr, with(currentPay(), "iss", huge)),
		"alg":  mint(testKey, with(hdr, "alg", huge), currentPay()),
		"typ":  mint(testKey, with(hdr, "typ", huge), currentPay()),
		"kid":  mint(testKey, with(hdr, "kid", huge), currentPay()),
		"exp":  mint(testKey, hdr, with(currentPay(), "exp", huge)),
		"jti":  mint(testKey, hdr, with(currentPay(), "jti", huge)),
		"cur":  mint(testKey, hdr, with(currentPay(), "cur", huge)),
		"hid":  mint(testKey, hdr, with(currentPay(), "hid", huge)),
		"aud":  mint(testKey, hdr, with(currentPay(), "aud", huge)),
		"env":  mint(testKey, hdr, with(currentPay(), "env", huge)),
		"ssi":  mint(testKey, hdr, with(currentPay(), "ssi", huge)),
		"nbf":  mint(testKey, hdr, with(currentPay(), "nbf", huge)),
		"sti":  mint(testKey, hdr, with(currentPay(), "sti", huge)),
		"ver":  mint(testKey, hdr, with(currentPay(), "ver", map[string]any{"x": huge})),
		"aud2": mint(testKey, hdr, with(currentPay(), "aud", []any{huge, 1})),
	}
	for name, tok := range tests {
		_, err := v.Verify(context.Background(), tok)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		msg := err.Error()
		if len(msg) > 300 {
			t.Errorf("%s: error is %d bytes long; want it bounded: %.200s…", name, len(msg), msg)
		}
		if strings.Contains(msg, strings.Repeat("9", 65)) || strings.Contains(msg, strings.Repeat("x", 65)) {
			t.Errorf("%s: error quotes more than 64 bytes of the value: %.200s", name, msg)
		}
	}
	// Where a value is quoted, the marker says it was clipped.
	_, err := v.Verify(context.Background(), tests["amt"])
	if !strings.Contains(err.Error(), "…(10000 bytes)") {
		t.Errorf("clipped amt lacks the marker: %v", err)
	}
	if got := clip(strings.Repeat("é", 40)); !strings.HasSuffix(got, "…(80 bytes)") || len(got) > 64+len("…(80 bytes)") || !strings.HasPrefix(got, strings.Repeat("é", 32)) {
		t.Errorf("clip cuts inside a rune or loses the marker: %q", got)
	}
}

// TestCacheBytesPerEntry measures the heap a verified-token cache entry
// keeps, over 10,000 distinct tokens, each verified from its own copy of
// the token string as a server gets it from each request.
func TestCacheBytesPerEntry(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("measures the heap over 10,000 signatures; not under -short or -race")
	}
	const n = 10_000
	for _, tt := range []struct {
		typ    string
		budget int64
		extra  []any
	}{
		{"pay", 1250, nil},
		{"kya-pay", 1500, []any{"hid", map[string]any{"email": "buyer@example.com", "verified": true}}},
	} {
		v := newTestVerifier(t, func(c *VerifierConfig) { c.CacheSize = n })
		toks := make([]string, n)
		for i := range toks {
			toks[i] = mint(testKey, currentHeader(tt.typ+"+jwt"), with(currentPay(), append([]any{"jti", newUUID()}, tt.extra...)...))
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, tok := range toks {
			if _, err := v.Verify(context.Background(), strings.Clone(tok)); err != nil {
				t.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(toks)
		if got := v.cache.len(); got != n {
			t.Fatalf("cache holds %d entries; want %d", got, n)
		}
		per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
		t.Logf("%s token (%d bytes): %d bytes per cache entry", tt.typ, len(toks[0]), per)
		if per > tt.budget {
			t.Errorf("%s: %d bytes per cache entry; want <= %d", tt.typ, per, tt.budget)
		}
		runtime.KeepAlive(v)
	}
}
