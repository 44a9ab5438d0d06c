package kyapaytest_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return t0 }

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func num(n int64) json.Number { return json.Number(strconv.FormatInt(n, 10)) }

// Claim names as in the example tokens of protocol.md section 1.4.
var (
	commonClaims  = []string{"iss", "sub", "aud", "iat", "exp", "jti", "env", "ssi", "btg"}
	currentPay    = []string{"amt", "val", "cur", "spr", "sps", "mnr", "stp", "sti"}
	legacyPay     = []string{"amount", "value", "cur", "spr", "sps", "mnr", "stp", "sti"}
	defaultHuman  = map[string]any{"email": "buyer@example.com", "verified": true}
	defaultSettle = map[string]any{"type": "usdc", "verified": true}
	defaultAgent  = map[string]any{"name": kyapaytest.DefaultAgentName, "creation_ip": "127.0.0.1", "source_ips": []any{"127.0.0.1"}}
)

func TestMintDefaults(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer(kyapaytest.WithClock(fixedClock))
	defer iss.Close()

	common := map[string]any{
		"iss": iss.Issuer(),
		"sub": kyapaytest.DefaultSubject,
		"aud": kyapaytest.DefaultAudience,
		"iat": num(t0.Unix()),
		"exp": num(t0.Add(time.Hour).Unix()),
		"env": "production",
		"ssi": kyapaytest.DefaultServiceID,
		"btg": kyapaytest.DefaultBuyerTag,
	}
	payCurrent := map[string]any{
		"amt": "10", "val": "10000000", "cur": "USD", "spr": "0.01",
		"sps": "pay_per_use", "mnr": json.Number("1000"), "stp": "coin", "sti": defaultSettle,
	}
	payLegacy := map[string]any{
		"amount": "10.000000", "value": "10000000", "cur": "USD", "spr": "0.010000",
		"sps": "PAY_PER_USE", "mnr": "1000", "stp": "coin", "sti": defaultSettle,
	}
	merge := func(ms ...map[string]any) map[string]any {
		out := map[string]any{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	tests := []struct {
		name    string
		typ     kyapay.TokenType
		opts    []kyapaytest.TokenOption
		wantTyp string
		want    map[string]any // all claims except jti
	}{
		{"current kya", kyapay.TypeKYA, nil, "kya+jwt",
			merge(common, map[string]any{"hid": defaultHuman, "aid": defaultAgent})},
		{"current pay", kyapay.TypePay, nil, "pay+jwt",
			merge(common, payCurrent)},
		{"current kya-pay", kyapay.TypeKYAPay, nil, "kya-pay+jwt",
			merge(common, payCurrent, map[string]any{"hid": defaultHuman, "aid": defaultAgent})},
		{"legacy kya", kyapay.TypeKYA, []kyapaytest.TokenOption{kyapaytest.Legacy()}, "kya+JWT",
			merge(common, map[string]any{"bid": defaultHuman, "aid": defaultAgent, "ver": "1"})},
		{"legacy pay", kyapay.TypePay, []kyapaytest.TokenOption{kyapaytest.Legacy()}, "pay+JWT",
			merge(common, payLegacy, map[string]any{"ver": "1"})},
		{"legacy kya-pay", kyapay.TypeKYAPay, []kyapaytest.TokenOption{kyapaytest.Legacy()}, "kya+pay+JWT",
			merge(common, payLegacy, map[string]any{"bid": defaultHuman, "aid": defaultAgent, "ver": "1"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := iss.Mint(tt.typ, tt.opts...)
			header, claims := verifyIndependently(t, iss, tok)
			wantHeader := map[string]any{"alg": "ES256", "kid": "key-1", "typ": tt.wantTyp}
			if !reflect.DeepEqual(header, wantHeader) {
				t.Errorf("header = %v; want %v", header, wantHeader)
			}
			jti := str(claims, "jti")
			if !uuidV4.MatchString(jti) {
				t.Errorf("jti = %q; want a UUID v4", jti)
			}
			delete(claims, "jti")
			if !reflect.DeepEqual(claims, tt.want) {
				t.Errorf("claims =\n%v\nwant\n%v", claims, tt.want)
			}
			if got := kyapaytest.TokenID(tok); got != jti {
				t.Errorf("TokenID = %q; want %q", got, jti)
			}
		})
	}
}

// TestMintClaimNamesMatchDocs pins the exact claim vocabulary of both
// generations against the example tokens in the protocol notes.
func TestMintClaimNamesMatchDocs(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()

	_, claims := verifyIndependently(t, iss, iss.Mint(kyapay.TypeKYAPay,
		kyapaytest.Platform(map[string]any{"id": "p", "name": "Acme", "verified": true}),
		kyapaytest.Agent(map[string]any{"name": "a", "creation_ip": "54.86.50.139"})))
	want := sorted(append(append(slices.Clone(commonClaims), currentPay...), "hid", "apd", "aid")...)
	if got := keysOf(claims); !slices.Equal(got, want) {
		t.Errorf("current kya-pay claims = %v; want %v", got, want)
	}
	_, claims = verifyIndependently(t, iss, iss.Mint(kyapay.TypePay, kyapaytest.Legacy()))
	want = sorted(append(append(slices.Clone(commonClaims), legacyPay...), "ver")...)
	if got := keysOf(claims); !slices.Equal(got, want) {
		t.Errorf("legacy pay claims = %v; want %v", got, want)
	}
	if _, ok := claims["hid"]; ok {
		t.Error("pay token carries hid")
	}
}

func TestMintIssuerOptions(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer(
		kyapaytest.WithClock(fixedClock),
		kyapaytest.WithIssuer("https://issuer.test"),
		kyapaytest.WithAudience("seller-1"),
		kyapaytest.WithServiceID("service-1"),
		kyapaytest.WithEnv(kyapay.EnvSandbox),
		kyapaytest.WithServicePrice("0.25"),
	)
	defer iss.Close()
	if iss.Issuer() != "https://issuer.test" {
		t.Errorf("Issuer() = %q", iss.Issuer())
	}
	_, c := verifyIndependently(t, iss, iss.Mint(kyapay.TypePay, kyapaytest.Amount("5")))
	for name, want := range map[string]any{
		"iss": "https://issuer.test", "aud": "seller-1", "ssi": "service-1", "env": "sandbox",
		"spr": "0.25", "amt": "5", "val": "5000000", "mnr": json.Number("20"),
	} {
		if !reflect.DeepEqual(c[name], want) {
			t.Errorf("%s = %#v; want %#v", name, c[name], want)
		}
	}
}

func TestMintTokenOptions(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer(kyapaytest.WithClock(fixedClock))
	defer iss.Close()
	later := t0.Add(30 * time.Minute)

	tests := []struct {
		name string
		typ  kyapay.TokenType
		opts []kyapaytest.TokenOption
		want map[string]any // claim -> value; nil value means absent
	}{
		{"subject", kyapay.TypeKYA, opts(kyapaytest.Subject("s-1")), map[string]any{"sub": "s-1"}},
		{"audience", kyapay.TypeKYA, opts(kyapaytest.Audience("a-1")), map[string]any{"aud": "a-1"}},
		{"service", kyapay.TypeKYA, opts(kyapaytest.ServiceID("svc")), map[string]any{"ssi": "svc"}},
		{"seller domain and url", kyapay.TypeKYA, opts(kyapaytest.SellerDomain("shop.example"), kyapaytest.SellerURL("https://shop.example/x")),
			map[string]any{"sdm": "shop.example", "srl": "https://shop.example/x"}},
		{"buyer tag", kyapay.TypeKYA, opts(kyapaytest.BuyerTag("tag")), map[string]any{"btg": "tag"}},
		{"originator", kyapay.TypeKYA, opts(kyapaytest.Originator("https://o.example")), map[string]any{"ori": "https://o.example"}},
		{"env", kyapay.TypeKYA, opts(kyapaytest.Env("sandbox")), map[string]any{"env": "sandbox"}},
		{"jti", kyapay.TypeKYA, opts(kyapaytest.JTI("id-1")), map[string]any{"jti": "id-1"}},
		{"issued at moves exp", kyapay.TypeKYA, opts(kyapaytest.IssuedAt(later)),
			map[string]any{"iat": num(later.Unix()), "exp": num(later.Add(time.Hour).Unix())}},
		{"expires at", kyapay.TypeKYA, opts(kyapaytest.ExpiresAt(later)), map[string]any{"exp": num(later.Unix())}},
		{"expires in negative", kyapay.TypeKYA, opts(kyapaytest.ExpiresIn(-time.Minute)), map[string]any{"exp": num(t0.Add(-time.Minute).Unix())}},
		{"last expiry option wins", kyapay.TypeKYA, opts(kyapaytest.ExpiresIn(time.Minute), kyapaytest.ExpiresAt(later)), map[string]any{"exp": num(later.Unix())}},
		{"not before", kyapay.TypeKYA, opts(kyapaytest.NotBefore(later)), map[string]any{"nbf": num(later.Unix())}},
		{"scope", kyapay.TypeKYA, opts(kyapaytest.Scope("read", "write")), map[string]any{"scope": "read write", "scopes": nil}},
		{"legacy scopes", kyapay.TypeKYA, opts(kyapaytest.Legacy(), kyapaytest.Scope("read", "write")),
			map[string]any{"scopes": []any{"read", "write"}, "scope": nil}},
		{"human", kyapay.TypeKYA, opts(kyapaytest.Human(map[string]any{"email": "h@x.example", "given_name": "Ada"})),
			map[string]any{"hid": map[string]any{"email": "h@x.example", "given_name": "Ada"}}},
		{"email keeps other fields", kyapay.TypeKYA, opts(kyapaytest.Email("e@x.example")),
			map[string]any{"hid": map[string]any{"email": "e@x.example", "verified": true}}},
		{"email on pay token adds hid", kyapay.TypePay, opts(kyapaytest.Email("e@x.example")),
			map[string]any{"hid": map[string]any{"email": "e@x.example", "verified": true}}},
		{"legacy email goes to bid", kyapay.TypeKYA, opts(kyapaytest.Legacy(), kyapaytest.Email("e@x.example")),
			map[string]any{"bid": map[string]any{"email": "e@x.example", "verified": true}, "hid": nil}},
		{"platform and agent", kyapay.TypeKYA, opts(
			kyapaytest.Platform(map[string]any{"id": "p-1"}),
			kyapaytest.Agent(map[string]any{"source_ips": []string{"1.1.1.0/24"}})),
			map[string]any{"apd": map[string]any{"id": "p-1"}, "aid": map[string]any{"source_ips": []any{"1.1.1.0/24"}}}},
		{"amount exact micros", kyapay.TypePay, opts(kyapaytest.Amount("12.345678")),
			map[string]any{"amt": "12.345678", "val": "12345678", "mnr": json.Number("1234")}},
		{"amount written as given", kyapay.TypePay, opts(kyapaytest.Amount("5.50")),
			map[string]any{"amt": "5.50", "val": "5500000"}},
		{"legacy amount six decimals", kyapay.TypePay, opts(kyapaytest.Legacy(), kyapaytest.Amount("0.5")),
			map[string]any{"amount": "0.500000", "value": "500000", "mnr": "50", "amt": nil, "val": nil}},
		{"malformed amount kept, no val", kyapay.TypePay, opts(kyapaytest.Amount("1e3")),
			map[string]any{"amt": "1e3", "val": nil, "mnr": nil}},
		{"value", kyapay.TypePay, opts(kyapaytest.Value("42")), map[string]any{"val": "42", "amt": "10"}},
		{"currency", kyapay.TypePay, opts(kyapaytest.Currency("EUR")), map[string]any{"cur": "EUR"}},
		{"service price claim", kyapay.TypePay, opts(kyapaytest.ServicePriceClaim("0.02")),
			map[string]any{"spr": "0.02", "mnr": json.Number("500")}},
		{"legacy service price claim", kyapay.TypePay, opts(kyapaytest.Legacy(), kyapaytest.ServicePriceClaim("0.02")),
			map[string]any{"spr": "0.020000"}},
		{"pricing scheme custom drops mnr", kyapay.TypePay, opts(kyapaytest.PricingScheme("custom")),
			map[string]any{"sps": "custom", "mnr": nil}},
		{"max requests", kyapay.TypePay, opts(kyapaytest.MaxRequests(1600)), map[string]any{"mnr": json.Number("1600")}},
		{"legacy max requests", kyapay.TypePay, opts(kyapaytest.Legacy(), kyapaytest.MaxRequests(1500)), map[string]any{"mnr": "1500"}},
		{"settlement", kyapay.TypePay, opts(kyapaytest.SettlementType("card"),
			kyapaytest.Settlement(map[string]any{"type": "visa_vic", "verified": false})),
			map[string]any{"stp": "card", "sti": map[string]any{"type": "visa_vic", "verified": false}}},
		{"kya has no pay claims", kyapay.TypeKYA, nil,
			map[string]any{"amt": nil, "val": nil, "cur": nil, "spr": nil, "sps": nil, "mnr": nil, "stp": nil, "sti": nil}},
		{"explicit pay option on kya", kyapay.TypeKYA, opts(kyapaytest.Amount("3")),
			map[string]any{"amt": "3", "val": "3000000", "cur": nil}},
		{"claim override", kyapay.TypePay, opts(kyapaytest.Claim("amt", 15), kyapaytest.Claim("x-extra", "y")),
			map[string]any{"amt": json.Number("15"), "x-extra": "y"}},
		{"claim raw JSON", kyapay.TypePay, opts(kyapaytest.Claim("exp", json.RawMessage(`1.5e9`))),
			map[string]any{"exp": json.Number("1.5e9")}},
		{"without claim", kyapay.TypePay, opts(kyapaytest.WithoutClaim("jti"), kyapaytest.WithoutClaim("aud")),
			map[string]any{"jti": nil, "aud": nil}},
		{"claim after without", kyapay.TypePay, opts(kyapaytest.WithoutClaim("aud"), kyapaytest.Claim("aud", []string{"a", "b"})),
			map[string]any{"aud": []any{"a", "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := verifyIndependently(t, iss, iss.Mint(tt.typ, tt.opts...))
			for name, want := range tt.want {
				got, present := c[name]
				switch {
				case want == nil && present:
					t.Errorf("%s = %#v; want absent", name, got)
				case want != nil && !reflect.DeepEqual(got, want):
					t.Errorf("%s = %#v; want %#v", name, got, want)
				}
			}
		})
	}
}

func opts(o ...kyapaytest.TokenOption) []kyapaytest.TokenOption { return o }

func TestMintHeaderOptions(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()

	h, _ := verifyIndependently(t, iss, iss.Mint(kyapay.TypeKYA, kyapaytest.Typ("application/kya+jwt")))
	if h["typ"] != "application/kya+jwt" {
		t.Errorf("typ = %v", h["typ"])
	}
	h, _ = verifyIndependently(t, iss, iss.Mint(kyapay.TypeKYA, kyapaytest.Header("crit", []string{"x"}), kyapaytest.Header("alg", "ES256")))
	if !reflect.DeepEqual(h["crit"], []any{"x"}) {
		t.Errorf("crit = %#v", h["crit"])
	}
	h, _, err := kyapaytest.Decode(iss.Mint(kyapay.TypeKYA, kyapaytest.WithoutHeader("typ")))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := h["typ"]; ok {
		t.Errorf("typ present after WithoutHeader: %v", h)
	}
	h, _, _ = kyapaytest.Decode(iss.Mint(kyapay.TypeKYA, kyapaytest.Header("alg", "none")))
	if h["alg"] != "none" {
		t.Errorf("alg = %v; want none", h["alg"])
	}
}

func TestMintSignWithForeignKey(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	foreign := kyapaytest.NewKey()

	// A foreign key under the issuer's own kid must not verify.
	tok := iss.Mint(kyapay.TypePay, kyapaytest.SignWith(foreign, "key-1"))
	h, _, _ := kyapaytest.Decode(tok)
	if h["kid"] != "key-1" {
		t.Fatalf("kid = %v", h["kid"])
	}
	keys, _, _ := fetchJWKS(t, iss)
	if verifiesWith(tok, keys["key-1"]) {
		t.Error("foreign-key token verifies with the issuer's key")
	}
	if !verifiesWith(tok, &foreign.PublicKey) {
		t.Error("foreign-key token does not verify with the foreign key")
	}
	// Empty kid omits the header.
	h, _, _ = kyapaytest.Decode(iss.Mint(kyapay.TypePay, kyapaytest.SignWith(foreign, "")))
	if _, ok := h["kid"]; ok {
		t.Errorf("kid present: %v", h)
	}
	// The fake API refuses it.
	res := charge(t, iss, tok, "0.01")
	wantStatus(t, res, 401, kyapaytest.CodeNotAuthorized)
}

func TestMintPanicsOnProgrammerErrors(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	for name, f := range map[string]func(){
		"bad type":     func() { iss.Mint(kyapay.AnyType) },
		"zero type":    func() { iss.Mint(0) },
		"unknown kid":  func() { iss.Mint(kyapay.TypePay, kyapaytest.KeyID("nope")) },
		"bad balance":  func() { iss.Mint(kyapay.TypePay, kyapaytest.Balance("-1")) },
		"bad claim":    func() { iss.Mint(kyapay.TypePay, kyapaytest.Claim("x", func() {})) },
		"bad price":    func() { kyapaytest.NewIssuer(kyapaytest.WithServicePrice("0")) },
		"retire nope":  func() { iss.RetireKey("nope") },
		"fault target": func() { iss.InjectFault(kyapaytest.Fault{Endpoint: "nope"}) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		})
	}
}

func TestMintConcurrentSharedOptions(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	shared := []kyapaytest.TokenOption{kyapaytest.Human(map[string]any{"given_name": "Ada"}), kyapaytest.Email("x@example.com")}
	done := make(chan string)
	for n := 0; n < 20; n++ {
		go func() { done <- iss.Mint(kyapay.TypeKYA, shared...) }()
	}
	seen := map[string]bool{}
	for n := 0; n < 20; n++ {
		tok := <-done
		_, c, _ := kyapaytest.Decode(tok)
		if got := fmt.Sprint(c["hid"]); got != "map[email:x@example.com given_name:Ada]" {
			t.Errorf("hid = %s", got)
		}
		seen[kyapaytest.TokenID(tok)] = true
	}
	if len(seen) != 20 {
		t.Errorf("%d distinct jtis; want 20", len(seen))
	}
}
