package kyapaytest

import (
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
)

// TokenOption changes one aspect of a token minted by [Issuer.Mint].
// Options apply in order; a later option overrides an earlier one that sets
// the same thing. [Claim], [WithoutClaim], [Header] and [WithoutHeader]
// apply after every other option, in the order given.
type TokenOption func(*tokenSpec)

// tokenSpec collects the token options. A nil pointer means "default".
type tokenSpec struct {
	legacy bool

	sub, aud, ssi, sdm, srl, btg, env, jti, ori *string
	iat, exp, nbf                               *time.Time
	expiresIn                                   *time.Duration
	scope                                       []string
	hasScope                                    bool

	human           map[string]any
	email           *string
	skyfireEmail    bool
	platform, agent map[string]any

	amount, value, currency, spr, sps, stp *string
	mnr                                    *int
	sti                                    map[string]any

	claimOps  []fieldOp
	headerOps []fieldOp

	kid      string
	signKey  *ecdsa.PrivateKey
	signKid  string
	balance  *string
	typeName *string
}

// fieldOp sets or removes one claim or header parameter.
type fieldOp struct {
	name   string
	value  any
	remove bool
}

func ptr[T any](v T) *T { return &v }

// Legacy mints the token in the 2025 claim vocabulary: typ "kya+JWT",
// "pay+JWT" or "kya+pay+JWT"; bid instead of hid; amount ("10.000000", six
// decimals) and value instead of amt and val; spr with six decimals; sps
// "PAY_PER_USE"; mnr as a string; scopes as an array; and ver "1".
func Legacy() TokenOption { return func(s *tokenSpec) { s.legacy = true } }

// Subject sets the sub claim (buyer agent ID). Default: [DefaultSubject].
func Subject(sub string) TokenOption { return func(s *tokenSpec) { s.sub = &sub } }

// Audience sets the aud claim (seller agent ID). Default: the issuer's
// [WithAudience], or [DefaultAudience].
func Audience(aud string) TokenOption { return func(s *tokenSpec) { s.aud = &aud } }

// ServiceID sets the ssi claim (seller service ID). Default: the issuer's
// [WithServiceID], or [DefaultServiceID].
func ServiceID(id string) TokenOption { return func(s *tokenSpec) { s.ssi = &id } }

// SellerDomain sets the sdm claim. Default: absent.
func SellerDomain(domain string) TokenOption { return func(s *tokenSpec) { s.sdm = &domain } }

// SellerURL sets the srl claim. Default: absent.
func SellerURL(u string) TokenOption { return func(s *tokenSpec) { s.srl = &u } }

// BuyerTag sets the btg claim. Default: [DefaultBuyerTag].
func BuyerTag(tag string) TokenOption { return func(s *tokenSpec) { s.btg = &tag } }

// Originator sets the ori claim. Default: absent.
func Originator(u string) TokenOption { return func(s *tokenSpec) { s.ori = &u } }

// Env sets the env claim. Default: the issuer's [WithEnv], or "production".
func Env(env string) TokenOption { return func(s *tokenSpec) { s.env = &env } }

// JTI sets the jti claim, the token's ID and ledger key. Default: a random
// UUID v4. Tokens minted with the same jti share one ledger entry (the
// first mint's amount and balance).
func JTI(id string) TokenOption { return func(s *tokenSpec) { s.jti = &id } }

// IssuedAt sets the iat claim. Default: the issuer's clock.
func IssuedAt(t time.Time) TokenOption { return func(s *tokenSpec) { s.iat = &t } }

// ExpiresAt sets the exp claim. Default: iat + [DefaultTokenLifetime].
func ExpiresAt(t time.Time) TokenOption {
	return func(s *tokenSpec) { s.exp, s.expiresIn = &t, nil }
}

// ExpiresIn sets the exp claim to iat + d; a negative d mints an already
// expired token. Default: [DefaultTokenLifetime].
func ExpiresIn(d time.Duration) TokenOption {
	return func(s *tokenSpec) { s.expiresIn, s.exp = &d, nil }
}

// NotBefore sets the nbf claim. Default: absent.
func NotBefore(t time.Time) TokenOption { return func(s *tokenSpec) { s.nbf = &t } }

// Scope sets the scope claim: a space-separated string, or in [Legacy]
// tokens a scopes array. Default: absent.
func Scope(scopes ...string) TokenOption {
	return func(s *tokenSpec) { s.scope, s.hasScope = append([]string(nil), scopes...), true }
}

// Human sets the whole hid (legacy bid) object, and adds it to pay tokens
// too; nil gives an empty object. Default for kya and kya-pay tokens:
// {"email":"buyer@example.com","verified":true}. The map is copied
// (shallowly).
func Human(fields map[string]any) TokenOption {
	fields = cloneMap(fields)
	return func(s *tokenSpec) { s.human = fields }
}

// Email sets hid.email (legacy bid.email), keeping the other identity
// fields, and adds the identity object to pay tokens too.
func Email(email string) TokenOption { return func(s *tokenSpec) { s.email = &email } }

// LegacySkyfireEmail mints a [Legacy] token whose identity email is
// bid.skyfireEmail, as Skyfire spelled it until February 2026, instead of
// bid.email. It implies Legacy.
func LegacySkyfireEmail() TokenOption {
	return func(s *tokenSpec) { s.legacy, s.skyfireEmail = true, true }
}

// Platform sets the apd (agent platform) object. Default: absent. The map
// is copied.
func Platform(fields map[string]any) TokenOption {
	fields = cloneMap(fields)
	return func(s *tokenSpec) { s.platform = fields }
}

// Agent sets the aid (agent identity) object. Default for kya and kya-pay
// tokens: {"name": [DefaultAgentName], "creation_ip": "127.0.0.1",
// "source_ips": ["127.0.0.1"]}; absent for pay tokens. The map is copied;
// [WithoutClaim]("aid") removes it.
func Agent(fields map[string]any) TokenOption {
	fields = cloneMap(fields)
	return func(s *tokenSpec) { s.agent = fields }
}

// Amount sets the token amount: the amt claim (legacy amount, written with
// six decimals when amt parses) and, unless [Value] is given, the val claim
// computed exactly in micro-units. It is also the ledger's original amount
// and, unless [Balance] is given, its starting balance. The string is
// written as given, so malformed amounts can be minted; they count as zero
// in the ledger. Default for pay and kya-pay tokens: [DefaultAmount].
func Amount(amt string) TokenOption { return func(s *tokenSpec) { s.amount = &amt } }

// Value sets the val claim (legacy value) as given. Default: the amount in
// micro-units ("10" gives "10000000").
func Value(val string) TokenOption { return func(s *tokenSpec) { s.value = &val } }

// Currency sets the cur claim. Default for pay tokens: "USD".
func Currency(cur string) TokenOption { return func(s *tokenSpec) { s.currency = &cur } }

// ServicePriceClaim sets the spr claim (written with six decimals in
// [Legacy] tokens when it parses). It does not change what the fake API
// charges; see [WithServicePrice]. Default for pay tokens: the issuer's
// service price.
func ServicePriceClaim(price string) TokenOption { return func(s *tokenSpec) { s.spr = &price } }

// PricingScheme sets the sps claim as given. Default for pay tokens:
// "pay_per_use" (legacy "PAY_PER_USE").
func PricingScheme(scheme string) TokenOption { return func(s *tokenSpec) { s.sps = &scheme } }

// MaxRequests sets the mnr claim (a number; a string in [Legacy] tokens).
// Default for pay_per_use tokens: the amount divided by spr, rounded down.
func MaxRequests(n int) TokenOption { return func(s *tokenSpec) { s.mnr = &n } }

// SettlementType sets the stp claim. Default for pay tokens: "coin".
func SettlementType(stp string) TokenOption { return func(s *tokenSpec) { s.stp = &stp } }

// Settlement sets the sti object. Default for pay tokens:
// {"type":"usdc","verified":true}. The map is copied.
func Settlement(fields map[string]any) TokenOption {
	fields = cloneMap(fields)
	return func(s *tokenSpec) { s.sti = fields }
}

// cloneMap returns a shallow copy of m; nil gives an empty map. Option
// values keep their copy read-only, so one option can serve concurrent
// Mint calls.
func cloneMap(m map[string]any) map[string]any {
	c := maps.Clone(m)
	if c == nil {
		c = map[string]any{}
	}
	return c
}

// Claim sets any top-level claim to v (encoded with encoding/json),
// overriding the value other options produce. Use [json.RawMessage] for
// exact JSON, for example a number written as 1.5e9.
func Claim(name string, v any) TokenOption {
	return func(s *tokenSpec) { s.claimOps = append(s.claimOps, fieldOp{name: name, value: v}) }
}

// WithoutClaim removes a claim from the token.
func WithoutClaim(name string) TokenOption {
	return func(s *tokenSpec) { s.claimOps = append(s.claimOps, fieldOp{name: name, remove: true}) }
}

// Header sets a JOSE header parameter to v, overriding the defaults
// (alg "ES256", kid, typ). The token is still signed with ES256.
func Header(name string, v any) TokenOption {
	return func(s *tokenSpec) { s.headerOps = append(s.headerOps, fieldOp{name: name, value: v}) }
}

// WithoutHeader removes a JOSE header parameter.
func WithoutHeader(name string) TokenOption {
	return func(s *tokenSpec) { s.headerOps = append(s.headerOps, fieldOp{name: name, remove: true}) }
}

// Typ sets the typ header to raw, for instance "application/kya+jwt" or
// "JWT". The fake API still treats the token as the type passed to Mint.
func Typ(raw string) TokenOption { return func(s *tokenSpec) { s.typeName = &raw } }

// KeyID signs the token with the issuer's key kid (published, retired or
// removed) and names it in the kid header. Mint panics if the issuer has no
// such key. Default: [Issuer.SigningKeyID].
func KeyID(kid string) TokenOption {
	return func(s *tokenSpec) { s.kid, s.signKey, s.signKid = kid, nil, "" }
}

// SignWith signs the token with a foreign key (see [NewKey]) and names kid
// in the kid header; an empty kid omits the header. The fake API refuses
// such tokens unless the kid matches a published key with the same public
// key.
func SignWith(priv *ecdsa.PrivateKey, kid string) TokenOption {
	if priv == nil {
		panic("kyapaytest: SignWith(nil, ...)")
	}
	return func(s *tokenSpec) { s.signKey, s.signKid, s.kid = priv, kid, "" }
}

// Balance sets the token's starting balance in the fake API's ledger,
// which may differ from its amount (for instance a token partly spent
// elsewhere). It must be a valid [kyapay.Amount]; Mint panics otherwise.
// It is ignored for kya tokens, whose balance is zero. Default: the token
// amount.
func Balance(amount string) TokenOption { return func(s *tokenSpec) { s.balance = &amount } }

// Mint returns a compact ES256 JWS of the given type, signed with the
// issuer's signing key, and opens a ledger entry for it under its jti.
//
// Current-generation defaults: header {"alg":"ES256","kid":
// [Issuer.SigningKeyID] ("key-1" at first),"typ":"kya+jwt"|"pay+jwt"|
// "kya-pay+jwt"}; claims iss ([Issuer.Issuer]),
// sub, aud, iat (now), exp (now+1h), jti (random UUID), env, ssi and btg;
// kya and kya-pay tokens add hid {"email":"buyer@example.com",
// "verified":true} and aid {"name":"Test Agent","creation_ip":"127.0.0.1",
// "source_ips":["127.0.0.1"]} (apd only when set); pay and kya-pay tokens add
// amt "10", val "10000000", cur "USD", spr (the service price, "0.01"), sps
// "pay_per_use", mnr (amt/spr, 1000), stp "coin" and sti
// {"type":"usdc","verified":true}. See [Legacy] for the 2025 vocabulary.
//
// With the defaults, tokens pass a kyapay.Verifier's default
// [kyapay.Profile] (iat present, jti a UUID, amt and val above zero, cur
// "USD"), so a verifier from [Issuer.VerifierConfig] accepts them.
//
// Mint panics on programmer errors only: a type other than [kyapay.TypeKYA],
// [kyapay.TypePay] or [kyapay.TypeKYAPay], an unknown [KeyID], an invalid
// [Balance] or a [Claim] value encoding/json cannot encode.
func (i *Issuer) Mint(typ kyapay.TokenType, opts ...TokenOption) string {
	if typ != kyapay.TypeKYA && typ != kyapay.TypePay && typ != kyapay.TypeKYAPay {
		panic(fmt.Sprintf("kyapaytest: Mint: invalid token type %v", typ))
	}
	var s tokenSpec
	for _, o := range opts {
		o(&s)
	}
	original, balance := ledgerAmounts(typ, &s)

	claims := i.buildClaims(typ, &s)
	for _, op := range s.claimOps {
		if op.remove {
			delete(claims, op.name)
		} else {
			claims[op.name] = op.value
		}
	}

	header := map[string]any{"alg": "ES256", "typ": typHeader(typ, s.legacy)}
	if s.typeName != nil {
		header["typ"] = *s.typeName
	}
	var priv *ecdsa.PrivateKey
	if s.signKey != nil {
		priv = s.signKey
		if s.signKid != "" {
			header["kid"] = s.signKid
		}
	} else {
		i.keysMu.RLock()
		kid := s.kid
		if kid == "" {
			kid = i.signer
		}
		k := i.findKeyLocked(kid)
		i.keysMu.RUnlock()
		if k == nil {
			panic(fmt.Sprintf("kyapaytest: Mint: unknown key ID %q", kid))
		}
		priv = k.priv
		header["kid"] = kid
	}
	for _, op := range s.headerOps {
		if op.remove {
			delete(header, op.name)
		} else {
			header[op.name] = op.value
		}
	}

	hb, err := json.Marshal(header)
	if err != nil {
		panic("kyapaytest: Mint: encoding header: " + err.Error())
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		panic("kyapaytest: Mint: encoding claims: " + err.Error())
	}
	tok := signES256(priv, hb, cb)

	if jti, ok := claims["jti"].(string); ok {
		i.openLedger(jti, typ, original, balance)
	}
	return tok
}

// typHeader returns the typ header of a token type in a generation.
func typHeader(typ kyapay.TokenType, legacy bool) string {
	switch {
	case typ == kyapay.TypeKYA && legacy:
		return "kya+JWT"
	case typ == kyapay.TypePay && legacy:
		return "pay+JWT"
	case typ == kyapay.TypeKYAPay && legacy:
		return "kya+pay+JWT"
	case typ == kyapay.TypeKYA:
		return "kya+jwt"
	case typ == kyapay.TypePay:
		return "pay+jwt"
	}
	return "kya-pay+jwt"
}

// tokenAmountString returns the amount option or the default for the type;
// ok is false when the token has no amount at all.
func tokenAmountString(typ kyapay.TokenType, s *tokenSpec) (string, bool) {
	if s.amount != nil {
		return *s.amount, true
	}
	if typ.HasPayment() {
		return DefaultAmount, true
	}
	return "", false
}

// sixDecimals formats an amount with exactly six decimals, the legacy form
// ("15.000000").
func sixDecimals(a kyapay.Amount) string {
	m := a.Micros()
	return fmt.Sprintf("%d.%06d", m/1_000_000, m%1_000_000)
}

// legacyDecimal rewrites a parsable amount with six decimals in legacy
// tokens and leaves anything else as given.
func legacyDecimal(raw string, legacy bool) string {
	if !legacy {
		return raw
	}
	if a, err := kyapay.ParseAmount(raw); err == nil {
		return sixDecimals(a)
	}
	return raw
}

// buildClaims returns the claims of a token before Claim/WithoutClaim.
func (i *Issuer) buildClaims(typ kyapay.TokenType, s *tokenSpec) map[string]any {
	or := func(p *string, def string) string {
		if p != nil {
			return *p
		}
		return def
	}
	iat := i.now()
	if s.iat != nil {
		iat = *s.iat
	}
	exp := iat.Add(DefaultTokenLifetime)
	switch {
	case s.exp != nil:
		exp = *s.exp
	case s.expiresIn != nil:
		exp = iat.Add(*s.expiresIn)
	}

	c := map[string]any{
		"iss": i.iss,
		"sub": or(s.sub, DefaultSubject),
		"aud": or(s.aud, i.cfg.audience),
		"iat": iat.Unix(),
		"exp": exp.Unix(),
		"jti": or(s.jti, ""),
		"env": or(s.env, i.cfg.env),
		"ssi": or(s.ssi, i.cfg.serviceID),
		"btg": or(s.btg, DefaultBuyerTag),
	}
	if s.jti == nil {
		c["jti"] = newUUID()
	}
	if s.legacy {
		c["ver"] = "1"
	}
	if s.nbf != nil {
		c["nbf"] = s.nbf.Unix()
	}
	for name, p := range map[string]*string{"sdm": s.sdm, "srl": s.srl, "ori": s.ori} {
		if p != nil {
			c[name] = *p
		}
	}
	if s.hasScope {
		if s.legacy {
			c["scopes"] = s.scope
		} else {
			c["scope"] = strings.Join(s.scope, " ")
		}
	}

	// Identity.
	if typ.HasIdentity() || s.human != nil || s.email != nil {
		h := maps.Clone(s.human) // the option's map stays untouched
		if h == nil {
			h = map[string]any{"email": DefaultEmail, "verified": true}
		}
		if s.email != nil {
			h["email"] = *s.email
		}
		if s.skyfireEmail {
			if e, ok := h["email"]; ok {
				delete(h, "email")
				h["skyfireEmail"] = e
			}
		}
		if s.legacy {
			c["bid"] = h
		} else {
			c["hid"] = h
		}
	}
	if s.platform != nil {
		c["apd"] = s.platform
	}
	if s.agent != nil {
		c["aid"] = s.agent
	} else if typ.HasIdentity() {
		c["aid"] = map[string]any{"name": DefaultAgentName, "creation_ip": "127.0.0.1", "source_ips": []string{"127.0.0.1"}}
	}

	// Payment. Defaults only for pay types; explicit options always.
	pay := typ.HasPayment()
	amtName, valName := "amt", "val"
	if s.legacy {
		amtName, valName = "amount", "value"
	}
	amtRaw, hasAmt := tokenAmountString(typ, s)
	amt, amtErr := kyapay.ParseAmount(amtRaw)
	if hasAmt {
		c[amtName] = legacyDecimal(amtRaw, s.legacy)
	}
	switch {
	case s.value != nil:
		c[valName] = *s.value
	case hasAmt && amtErr == nil:
		c[valName] = strconv.FormatInt(amt.Micros(), 10)
	}
	if s.currency != nil || pay {
		c["cur"] = or(s.currency, "USD")
	}
	sprRaw := ""
	if s.spr != nil || pay {
		sprRaw = or(s.spr, i.servicePrice.String())
		c["spr"] = legacyDecimal(sprRaw, s.legacy)
	}
	sps := ""
	if s.sps != nil || pay {
		def := "pay_per_use"
		if s.legacy {
			def = "PAY_PER_USE"
		}
		sps = or(s.sps, def)
		c["sps"] = sps
	}
	mnr, hasMnr := 0, false
	if s.mnr != nil {
		mnr, hasMnr = *s.mnr, true
	} else if pay && strings.EqualFold(sps, "pay_per_use") && hasAmt && amtErr == nil {
		if price, err := kyapay.ParseAmount(sprRaw); err == nil && !price.IsZero() {
			mnr, hasMnr = int(amt.Micros()/price.Micros()), true
		}
	}
	if hasMnr {
		if s.legacy {
			c["mnr"] = strconv.Itoa(mnr)
		} else {
			c["mnr"] = mnr
		}
	}
	if s.stp != nil || pay {
		c["stp"] = or(s.stp, "coin")
	}
	if s.sti != nil {
		c["sti"] = s.sti
	} else if pay {
		c["sti"] = map[string]any{"type": "usdc", "verified": true}
	}
	return c
}
