package kyapay

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unsafe"

	"github.com/kyapay/kyapay-go/jwks"
)

// KeySource resolves the public key an issuer signed with. The jwks
// package's *jwks.Cache implements it. Key must return an error wrapping
// [ErrKeyUnknown] when the issuer has no key with that kid, and any other
// error when the keys could not be loaded (reported as keys_unavailable,
// which is never blamed on the buyer).
type KeySource interface {
	Key(ctx context.Context, issuer, kid string) (*ecdsa.PublicKey, error)
}

// KeyPeeker is implemented by a [KeySource] that can tell, without
// fetching, waiting or allocating, which key it currently holds for an
// issuer and kid; *jwks.Cache and [StaticKeys] implement it. A Verifier
// uses it each time it serves a token from its verified-token cache, to
// check that the key the token was verified with is still published: a
// key the issuer has removed stops its tokens at once, not at their exp.
// With a KeySource that does not implement it, the Verifier calls Key
// instead.
type KeyPeeker interface {
	PeekKey(issuer, kid string) (*ecdsa.PublicKey, bool)
}

// Defaults for [VerifierConfig].
const (
	// DefaultLeeway is the clock-skew tolerance applied to exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// DefaultMaxTokenBytes bounds the header value before any decoding.
	DefaultMaxTokenBytes = 8 << 10
	// DefaultCacheSize is the number of verified tokens remembered. An
	// entry costs about 1.1 KB for a pay token and 1.4 KB for a kya-pay
	// token with an identity (TestCacheBytesPerEntry measures it), so a
	// full default cache holds 22 to 28 MB: the memory the first release
	// spent on 10,000 entries now keeps twice as many tokens warm. That is
	// every token used in the last few minutes by up to 20,000 buyer
	// agents at once; a token that was evicted costs one signature
	// verification (about 0.1 ms of CPU) when it comes back, never a
	// refusal. Sellers with more concurrent buyers raise CacheSize.
	DefaultCacheSize = 20_000
)

// VerifierConfig configures a [Verifier]. Zero values mean the documented
// defaults. Audience is required: set it, or set InsecureSkipAudience.
type VerifierConfig struct {
	// Issuers are the trusted iss values, compared exactly. Required.
	// Use ProductionIssuer and/or SandboxIssuer for Skyfire; for those two
	// the spelling with a trailing slash, seen in 2025 tokens, is accepted
	// as well and shares the issuer's keys.
	Issuers []string
	// Keys resolves signing keys. Usually a *jwks.Cache. If nil,
	// NewVerifier builds a *jwks.Cache that fetches each issuer's keys from
	// JWKSURL(issuer) (or JWKSURLs[issuer]) with the jwks defaults, and
	// Close stops it. To change other jwks settings (for instance
	// jwks.Config.NewKIDInterval), build the cache and pass it here.
	Keys KeySource
	// JWKSURLs overrides the JWKS location of some issuers when Keys is nil.
	JWKSURLs map[string]string
	// HTTPClient fetches JWKS documents when Keys is nil. Default: the jwks
	// package's client (10 s timeout).
	HTTPClient *http.Client
	// Audience is the expected aud: the seller agent's account ID, which
	// Skyfire puts in every token issued for this seller. Required unless
	// InsecureSkipAudience is set.
	Audience string
	// InsecureSkipAudience accepts tokens whatever their aud. Without the
	// audience check a token issued for any other seller is accepted here:
	// an identity token a buyer sent to seller A opens seller B's identity
	// routes, if both trust the same issuer. Set it only if this seller
	// cannot know its agent ID, and never together with Audience.
	InsecureSkipAudience bool
	// ServiceID is the expected ssi (seller service ID) and SellerDomain the
	// expected sdm. If either is set, a token passes when its ssi equals
	// ServiceID or its sdm equals SellerDomain (and its srl, if any, is on
	// that domain). Both empty: not checked.
	ServiceID    string
	SellerDomain string
	// Env is the expected env claim, EnvProduction or EnvSandbox, for
	// every issuer. Empty: tokens of ProductionIssuer must say
	// "production" and those of SandboxIssuer "sandbox"; other issuers'
	// env is not checked.
	Env string
	// AcceptedTypes is the set of token types accepted at all. Zero means
	// all three; routes narrow it further.
	AcceptedTypes TokenTypes
	// Leeway is the tolerated clock skew for exp, nbf and iat. Zero means
	// DefaultLeeway (30 s); it must not be negative. For no tolerance at
	// all, as Skyfire's reference verifiers, set NoLeeway.
	Leeway time.Duration
	// NoLeeway makes the leeway zero: a token is refused from the second
	// its exp has passed. It must not be set together with Leeway.
	NoLeeway bool
	// Profile is the set of claim rules beyond signature, issuer, time,
	// audience, service and env. The zero value matches Skyfire's
	// reference verifiers; see [Profile] for each rule and how to relax it.
	Profile Profile
	// MaxTokenBytes limits the token's length, checked before any decoding.
	// Zero means DefaultMaxTokenBytes (8 KiB).
	MaxTokenBytes int
	// CacheSize is how many verified tokens are remembered, so a token
	// reused across requests is verified once. Zero means
	// DefaultCacheSize; negative disables the cache. On every hit the
	// token's exp is checked again, and so is that the key it was
	// verified with is still published (see [KeyPeeker]). Entries are
	// keyed by a 16-byte digest of the token, not the token itself, and
	// evicted least-recently-used first (approximately: CLOCK).
	CacheSize int
	// Clock returns the current time. Default: time.Now.
	Clock func() time.Time
}

// issuerRule is what the Verifier knows about one accepted iss spelling.
type issuerRule struct {
	keyIssuer string // the configured spelling, under which Keys knows the issuer
	env       string // expected env; "" not checked
}

// Verifier verifies KYAPay tokens offline. It is safe for concurrent use by
// multiple goroutines; build one per process and share it.
type Verifier struct {
	issuers       map[string]uint8 // accepted iss -> index into rules
	rules         []issuerRule
	keys          KeySource
	peek          KeyPeeker // keys, if it implements KeyPeeker
	audience      string
	skipAudience  bool
	serviceID     string
	sellerDomain  string
	types         TokenTypes
	leeway        time.Duration
	profile       profileRules
	maxTokenBytes int
	now           func() time.Time
	cache         *verifiedCache // nil when disabled
	closer        func() error
}

// presetEnv returns the env of a Skyfire issuer preset, in either
// spelling, or "".
func presetEnv(iss string) string {
	switch strings.TrimSuffix(iss, "/") {
	case ProductionIssuer:
		return EnvProduction
	case SandboxIssuer:
		return EnvSandbox
	}
	return ""
}

// NewVerifier validates cfg and returns a Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	v := &Verifier{
		issuers:       make(map[string]uint8, 2*len(cfg.Issuers)),
		keys:          cfg.Keys,
		audience:      cfg.Audience,
		skipAudience:  cfg.InsecureSkipAudience,
		serviceID:     cfg.ServiceID,
		sellerDomain:  strings.ToLower(strings.TrimSuffix(cfg.SellerDomain, ".")),
		types:         cfg.AcceptedTypes,
		leeway:        cfg.Leeway,
		maxTokenBytes: cfg.MaxTokenBytes,
		now:           cfg.Clock,
	}
	if len(cfg.Issuers) == 0 {
		return nil, errors.New("kyapay: invalid config: no trusted issuers")
	}
	if len(cfg.Issuers) > 255 {
		return nil, errors.New("kyapay: invalid config: more than 255 trusted issuers")
	}
	switch {
	case cfg.Audience == "" && !cfg.InsecureSkipAudience:
		return nil, errors.New("kyapay: invalid config: Audience is required: set it to the seller agent's account ID " +
			"(the aud of tokens issued for this seller), or set InsecureSkipAudience to accept tokens issued for any seller")
	case cfg.Audience != "" && cfg.InsecureSkipAudience:
		return nil, errors.New("kyapay: invalid config: Audience and InsecureSkipAudience are both set")
	}
	switch cfg.Env {
	case "", EnvProduction, EnvSandbox:
	default:
		return nil, fmt.Errorf("kyapay: invalid config: Env %q is not %q or %q", clip(cfg.Env), EnvProduction, EnvSandbox)
	}
	for _, iss := range cfg.Issuers {
		if iss == "" || strings.TrimSpace(iss) != iss {
			return nil, fmt.Errorf("kyapay: invalid config: issuer %q is empty or has surrounding space", clip(iss))
		}
		if _, dup := v.issuers[iss]; dup && v.rules[v.issuers[iss]].keyIssuer == iss {
			continue
		}
		env := cfg.Env
		if env == "" {
			env = presetEnv(iss)
		}
		v.issuers[iss] = uint8(len(v.rules))
		v.rules = append(v.rules, issuerRule{keyIssuer: iss, env: env})
	}
	// A preset in one spelling accepts the other, unless that one is
	// configured itself.
	for i, r := range v.rules {
		if presetEnv(r.keyIssuer) == "" {
			continue
		}
		other := r.keyIssuer + "/"
		if strings.HasSuffix(r.keyIssuer, "/") {
			other = strings.TrimSuffix(r.keyIssuer, "/")
		}
		if _, ok := v.issuers[other]; !ok {
			v.issuers[other] = uint8(i)
		}
	}
	if v.keys == nil {
		urls := make(map[string]string, len(v.rules))
		for _, r := range v.rules {
			urls[r.keyIssuer] = JWKSURL(r.keyIssuer)
			if u, ok := cfg.JWKSURLs[r.keyIssuer]; ok {
				urls[r.keyIssuer] = u
			}
		}
		for iss := range cfg.JWKSURLs {
			if _, ok := urls[iss]; !ok {
				return nil, fmt.Errorf("kyapay: invalid config: JWKSURLs names issuer %q that is not trusted", clip(iss))
			}
		}
		cache, err := jwks.New(context.Background(), jwks.Config{Issuers: urls, HTTPClient: cfg.HTTPClient, Clock: cfg.Clock})
		if err != nil {
			return nil, fmt.Errorf("kyapay: invalid config: %w", err)
		}
		v.keys = cache
		v.closer = cache.Close
	}
	v.peek, _ = v.keys.(KeyPeeker)
	if v.types == 0 {
		v.types = AnyType
	}
	if v.types&^AnyType != 0 {
		v.Close()
		return nil, fmt.Errorf("kyapay: invalid config: unknown token types %#x", uint8(v.types))
	}
	switch {
	case v.leeway < 0:
		v.Close()
		return nil, errors.New("kyapay: invalid config: Leeway is negative")
	case cfg.NoLeeway && v.leeway != 0:
		v.Close()
		return nil, errors.New("kyapay: invalid config: Leeway and NoLeeway are both set")
	case v.leeway == 0 && !cfg.NoLeeway:
		v.leeway = DefaultLeeway
	}
	var err error
	if v.profile, err = cfg.Profile.rules(); err != nil {
		v.Close()
		return nil, fmt.Errorf("kyapay: invalid config: Profile.ExpectServicePrice: %w", err)
	}
	if v.maxTokenBytes == 0 {
		v.maxTokenBytes = DefaultMaxTokenBytes
	}
	if v.maxTokenBytes < 128 {
		v.Close()
		return nil, fmt.Errorf("kyapay: invalid config: MaxTokenBytes %d is too small", v.maxTokenBytes)
	}
	if v.now == nil {
		v.now = time.Now
	}
	size := cfg.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	if size > 0 {
		v.cache = newVerifiedCache(size)
	}
	return v, nil
}

// Env returns the env claim every trusted issuer's tokens must carry: the
// configured Env, or the one the presets imply. It is "" when any env is
// accepted or when issuers expect different envs (production and sandbox
// presets trusted together).
func (v *Verifier) Env() string {
	env := ""
	for i, r := range v.rules {
		if i > 0 && r.env != env {
			return ""
		}
		env = r.env
	}
	return env
}

// Keys returns the key source the Verifier looks keys up in: the
// VerifierConfig.Keys it was given, or the *jwks.Cache it built.
func (v *Verifier) Keys() KeySource { return v.keys }

// Close releases what the Verifier owns: the JWKS cache it built when
// VerifierConfig.Keys was nil. A Verifier given its Keys does not close them.
func (v *Verifier) Close() error {
	if v.closer != nil {
		return v.closer()
	}
	return nil
}

// Verify checks a compact JWS token and returns its claims. The order of
// checks is: size, structure and strict base64url, header (alg ES256 only,
// no key-reference or critical parameters, typ, kid), claims (issuer
// allow-list, exp, nbf, iat, jti, sub, cnf, audience, service, env,
// payment claims, then the [Profile]), and only then the key lookup and
// the signature, so a token that fails a cheap check never causes a key
// fetch.
//
// A token verified before is answered from the verified-token cache after
// two checks: its exp (with the leeway), and that its signing key is still
// published by the key source. If the key is gone or changed, the token is
// verified again from scratch, which refuses it.
//
// Every error is a *[Error]; its Message is safe to show the caller.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if token == "" {
		return nil, ErrTokenMissing
	}
	if len(token) > v.maxTokenBytes {
		return nil, ErrTokenTooLarge
	}
	now := v.now()
	if v.cache == nil {
		return v.verify(ctx, token, now)
	}
	k := v.cache.key(token)
	if c, ok := v.cache.get(k); ok {
		if now.After(c.Expiry.Add(v.leeway)) {
			v.cache.remove(k)
			return nil, ErrTokenExpired
		}
		if v.keyStillPublished(ctx, c) {
			return c, nil
		}
		v.cache.remove(k)
	}
	c, err := v.verify(ctx, token, now)
	if err != nil {
		return nil, err
	}
	v.cache.add(k, c)
	return c, nil
}

// keyStillPublished reports whether the key source still holds, for the
// token's issuer and kid, the key c was verified with.
func (v *Verifier) keyStillPublished(ctx context.Context, c *Claims) bool {
	iss := v.rules[c.rule].keyIssuer
	var cur *ecdsa.PublicKey
	if v.peek != nil {
		k, ok := v.peek.PeekKey(iss, c.KeyID)
		if !ok {
			return false
		}
		cur = k
	} else {
		k, err := v.keys.Key(ctx, iss, c.KeyID)
		if err != nil {
			return false
		}
		cur = k
	}
	// Sources hand out the same pointer for an unchanged key (the jwks
	// cache keeps it across refreshes), so Equal, which allocates, is rare.
	return cur == c.pub || (cur != nil && cur.Equal(c.pub))
}

var b64 = base64.RawURLEncoding.Strict()

func (v *Verifier) verify(ctx context.Context, token string, now time.Time) (*Claims, error) {
	dot1 := strings.IndexByte(token, '.')
	if dot1 < 0 {
		return nil, malformed("not three dot-separated parts")
	}
	rest := token[dot1+1:]
	dot2 := strings.IndexByte(rest, '.')
	if dot2 < 0 {
		return nil, malformed("not three dot-separated parts")
	}
	dot2 += dot1 + 1
	hdrB64, payB64, sigB64 := token[:dot1], token[dot1+1:dot2], token[dot2+1:]
	if strings.IndexByte(sigB64, '.') >= 0 {
		return nil, malformed("not three dot-separated parts (JWE is not accepted)")
	}
	if hdrB64 == "" || payB64 == "" || sigB64 == "" {
		return nil, malformed("empty part")
	}

	// Header: decoded into a stack buffer; it is not kept.
	var hbuf [512]byte
	hdrBytes, err := decodeInto(hbuf[:], hdrB64)
	if err != nil {
		return nil, malformed("header is not strict base64url")
	}
	h, err := parseHeader(unsafe.String(unsafe.SliceData(hdrBytes), len(hdrBytes)))
	if err != nil {
		return nil, malformed("header is not a JSON object")
	}
	// Strings from the header point into hbuf: an error quoting one takes
	// a copy (clipQuote), so hbuf stays on the stack.
	if h.alg != "ES256" {
		return nil, NewError(CodeAlgorithmNotAllowed, "", errors.New("alg "+clipQuote(h.alg)))
	}
	if h.forbidden != "" {
		return nil, NewError(CodeHeaderNotAllowed, "token header parameter "+h.forbidden+" is not allowed", nil)
	}
	typ, gen, ok := parseTyp(h.typ)
	if !ok {
		if h.typ == "" {
			return nil, malformed("typ header missing")
		}
		return nil, NewError(CodeTypeNotAccepted, "token typ is not a KYAPay type", errors.New("typ "+clipQuote(h.typ)))
	}
	if !v.types.Contains(typ) {
		return nil, ErrTypeNotAccepted
	}
	if h.kid == "" {
		return nil, malformed("kid header missing")
	}

	// Signature: exactly 64 bytes, r || s.
	var sig [64]byte
	if b64.DecodedLen(len(sigB64)) != len(sig) {
		return nil, ErrSignatureInvalid
	}
	if n, err := b64.Decode(sig[:], unsafe.Slice(unsafe.StringData(sigB64), len(sigB64))); err != nil || n != len(sig) {
		return nil, ErrSignatureInvalid
	}

	// Payload: kept by the returned Claims, whose strings point into it.
	payload := make([]byte, b64.DecodedLen(len(payB64)))
	n, err := b64.Decode(payload, unsafe.Slice(unsafe.StringData(payB64), len(payB64)))
	if err != nil {
		return nil, malformed("payload is not strict base64url")
	}
	payload = payload[:n]
	// The header was decoded into a stack buffer: copy the kid so the
	// buffer is not kept alive by the Claims.
	c := &Claims{Type: typ, Generation: gen, KeyID: strings.Clone(h.kid)}
	var st payloadState
	if err := parsePayload(payload, c, &st); err != nil {
		var ce *claimError
		if errors.As(err, &ce) {
			return nil, NewError(CodeClaimInvalid, "token claim "+ce.claim+" is invalid", err)
		}
		return nil, malformed("payload is not a JSON object with unique claims")
	}
	if st.legacy {
		c.Generation = GenerationLegacy
	}
	if err := v.checkClaims(c, &st, now); err != nil {
		return nil, err
	}

	// Key and signature last.
	pub, err := v.keys.Key(ctx, v.rules[c.rule].keyIssuer, c.KeyID)
	if err != nil {
		return nil, keyError(v.rules[c.rule].keyIssuer, err)
	}
	if !verifyES256(pub, token[:dot2], &sig) {
		return nil, ErrSignatureInvalid
	}
	c.pub = pub
	return c, nil
}

func (v *Verifier) checkClaims(c *Claims, st *payloadState, now time.Time) error {
	if c.Issuer == "" {
		return NewError(CodeClaimMissing, "token lacks the iss claim", nil)
	}
	rule, ok := v.issuers[c.Issuer]
	if !ok {
		return NewError(CodeIssuerUntrusted, "", errors.New("iss "+clipQuote(c.Issuer)))
	}
	c.rule = rule
	if !st.hasExp {
		return NewError(CodeClaimMissing, "token lacks the exp claim", nil)
	}
	if now.After(c.Expiry.Add(v.leeway)) {
		return ErrTokenExpired
	}
	if !c.NotBefore.IsZero() && c.NotBefore.After(now.Add(v.leeway)) {
		return ErrTokenNotYetValid
	}
	if st.hasIat && c.IssuedAt.After(now.Add(v.leeway)) {
		return NewError(CodeTokenNotYetValid, "token was issued in the future", nil)
	}
	if c.ID == "" {
		return NewError(CodeClaimMissing, "token lacks the jti claim", nil)
	}
	if c.Subject == "" {
		return NewError(CodeClaimMissing, "token lacks the sub claim", nil)
	}
	if st.hasCnf {
		return ErrConfirmationNotSupported
	}
	if !v.skipAudience && !c.hasAudience(v.audience) {
		return ErrAudienceMismatch
	}
	if (v.serviceID != "" || v.sellerDomain != "") && !v.targetsUs(c) {
		return ErrServiceMismatch
	}
	if env := v.rules[rule].env; env != "" && c.Env != env {
		return ErrEnvMismatch
	}
	if c.Type.HasPayment() {
		if !c.HasAmount {
			return NewError(CodeClaimMissing, "pay token lacks the amt claim", nil)
		}
		if c.Currency != "" && c.Currency != "USD" {
			return NewError(CodeClaimInvalid, "token currency is not USD", nil)
		}
	}
	return v.profile.check(c, st)
}

func (c *Claims) hasAudience(aud string) bool {
	if c.Audiences == nil {
		return c.Audience == aud
	}
	for _, a := range c.Audiences {
		if a == aud {
			return true
		}
	}
	return false
}

// targetsUs applies Skyfire's rule: ssi equals our service ID, or sdm
// equals our domain and srl, if present, is on it.
func (v *Verifier) targetsUs(c *Claims) bool {
	if v.serviceID != "" && c.ServiceID == v.serviceID {
		return true
	}
	if v.sellerDomain == "" || !strings.EqualFold(strings.TrimSuffix(c.SellerDomain, "."), v.sellerDomain) {
		return false
	}
	if c.SellerURL == "" {
		return true
	}
	u, err := url.Parse(c.SellerURL)
	if err != nil {
		return false
	}
	host := strings.ToLower(u.Hostname())
	return host == v.sellerDomain || strings.HasSuffix(host, "."+v.sellerDomain)
}

// keyError maps a KeySource error to a refusal: an unknown kid is the
// token's problem; anything else (keys not loadable, cache closed, issuer
// not configured in the key source) is the server's.
func keyError(issuer string, err error) error {
	err = &KeyError{Issuer: issuer, Err: err}
	if errors.Is(err, ErrKeyUnknown) || errors.Is(err, jwks.ErrKeyNotFound) {
		return NewError(CodeKeyUnknown, "", err)
	}
	return NewError(CodeKeysUnavailable, "", err)
}

// KeyError is the internal cause of key_unknown and keys_unavailable
// refusals: which trusted issuer's keys the lookup was for. Reach it with
// errors.As on the refusal; its Issuer is one of the configured issuers
// (bounded, safe as a metric label), never a value taken from an
// unverified token.
type KeyError struct {
	// Issuer is the trusted issuer whose key set was consulted.
	Issuer string
	// Err is the key source's error.
	Err error
}

// Error returns the key source's error with the issuer.
func (e *KeyError) Error() string { return "keys of " + e.Issuer + ": " + e.Err.Error() }

// Unwrap returns the key source's error.
func (e *KeyError) Unwrap() error { return e.Err }

func malformed(why string) error {
	return NewError(CodeTokenMalformed, "", errors.New(why))
}

// decodeInto decodes strict base64url s into buf if it fits, allocating
// otherwise.
func decodeInto(buf []byte, s string) ([]byte, error) {
	n := b64.DecodedLen(len(s))
	if n > len(buf) {
		buf = make([]byte, n)
	}
	m, err := b64.Decode(buf[:n], unsafe.Slice(unsafe.StringData(s), len(s)))
	return buf[:m], err
}

// verifyES256 checks sig (r || s) over signingInput with pub. It encodes
// the signature as ASN.1 DER on the stack and uses ecdsa.VerifyASN1, which
// allocates about half as much as ecdsa.Verify with big.Ints.
func verifyES256(pub *ecdsa.PublicKey, signingInput string, sig *[64]byte) bool {
	if pub == nil || pub.Curve != elliptic.P256() {
		return false
	}
	digest := sha256.Sum256(unsafe.Slice(unsafe.StringData(signingInput), len(signingInput)))
	var der [72]byte
	n := encodeDERSignature(der[:], sig[:32], sig[32:])
	if n == 0 {
		return false
	}
	return ecdsa.VerifyASN1(pub, digest[:], der[:n])
}

// encodeDERSignature writes SEQUENCE { INTEGER r, INTEGER s } into dst (at
// least 72 bytes) and returns its length, or 0 if r or s is zero.
func encodeDERSignature(dst, r, s []byte) int {
	ri := derInt(dst[2:], r)
	if ri == 0 {
		return 0
	}
	si := derInt(dst[2+ri:], s)
	if si == 0 {
		return 0
	}
	dst[0] = 0x30
	dst[1] = byte(ri + si)
	return 2 + ri + si
}

// derInt writes a minimal DER INTEGER for the unsigned big-endian x.
func derInt(dst, x []byte) int {
	for len(x) > 0 && x[0] == 0 {
		x = x[1:]
	}
	if len(x) == 0 {
		return 0
	}
	pad := 0
	if x[0]&0x80 != 0 {
		pad = 1
	}
	dst[0] = 0x02
	dst[1] = byte(len(x) + pad)
	if pad == 1 {
		dst[2] = 0
	}
	copy(dst[2+pad:], x)
	return 2 + pad + len(x)
}
