package kyapay

import (
	"fmt"
	"strings"
)

// Issuers and their well-known JWKS locations.
const (
	// ProductionIssuer is the iss of tokens Skyfire issues in production.
	// Issuers are compared exactly, except that a Verifier trusting this
	// preset also accepts the spelling with a trailing slash
	// ("https://app.skyfire.xyz/") seen in 2025 tokens; both share this
	// issuer's keys. Its tokens must say env "production" unless
	// VerifierConfig.Env says otherwise.
	ProductionIssuer = "https://app.skyfire.xyz"
	// SandboxIssuer is the iss of tokens Skyfire issues in its sandbox. As
	// for ProductionIssuer, the trailing-slash spelling is accepted too,
	// and its tokens must say env "sandbox" unless VerifierConfig.Env says
	// otherwise.
	SandboxIssuer = "https://app-sandbox.skyfire.xyz"
	// JWKSPath is where an issuer publishes its signing keys.
	JWKSPath = "/.well-known/jwks.json"
	// HeaderName is the request header that carries the token, as Skyfire
	// recommends.
	HeaderName = "skyfire-pay-id"
)

// Values of the env claim.
const (
	EnvProduction = "production"
	EnvSandbox    = "sandbox"
)

// JWKSURL returns the JWKS location of an issuer: the issuer URL, without a
// trailing slash, followed by [JWKSPath].
func JWKSURL(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + JWKSPath
}

// TokenType is the kind of a KYAPay token, taken from its typ header.
type TokenType uint8

// The three token types. They are distinct bits so a set of accepted types
// is a [TokenTypes] mask.
const (
	// TypeKYA is a "know your agent" token: who the buyer is.
	TypeKYA TokenType = 1 << iota
	// TypePay is a payment token: a prepaid balance the seller may charge.
	TypePay
	// TypeKYAPay carries both identity and payment.
	TypeKYAPay
)

// TokenTypes is a set of token types, built by or-ing [TokenType] values.
type TokenTypes = TokenType

// AnyType accepts every token type.
const AnyType TokenTypes = TypeKYA | TypePay | TypeKYAPay

// String returns "kya", "pay" or "kya-pay"; a set prints as its members
// joined by " | ".
func (t TokenType) String() string {
	switch t {
	case TypeKYA:
		return "kya"
	case TypePay:
		return "pay"
	case TypeKYAPay:
		return "kya-pay"
	case 0:
		return "none"
	}
	parts := t.Names()
	if t&^AnyType != 0 {
		parts = append(parts, fmt.Sprintf("TokenType(%#x)", uint8(t&^AnyType)))
	}
	return strings.Join(parts, " | ")
}

// Names returns the names of the known types in the set t, in the order
// kya, pay, kya-pay: ["pay", "kya-pay"] for TypePay|TypeKYAPay. Unknown
// bits are left out; an empty set gives nil.
func (t TokenTypes) Names() []string {
	var names []string
	for _, one := range [...]TokenType{TypeKYA, TypePay, TypeKYAPay} {
		if t&one != 0 {
			names = append(names, one.String())
		}
	}
	return names
}

// HasIdentity reports whether tokens of this type carry buyer identity
// (kya and kya-pay).
func (t TokenType) HasIdentity() bool { return t == TypeKYA || t == TypeKYAPay }

// HasPayment reports whether tokens of this type can be charged (pay and
// kya-pay).
func (t TokenType) HasPayment() bool { return t == TypePay || t == TypeKYAPay }

// Contains reports whether the set t includes the type u.
func (t TokenTypes) Contains(u TokenType) bool { return u != 0 && t&u == u }

// ParseTokenType parses a token type name as used in configuration and
// Skyfire's APIs: "kya", "pay", "kya-pay" (also "kya+pay"), case-insensitive.
func ParseTokenType(s string) (TokenType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "kya":
		return TypeKYA, nil
	case "pay":
		return TypePay, nil
	case "kya-pay", "kya+pay", "kyapay":
		return TypeKYAPay, nil
	}
	return 0, fmt.Errorf("kyapay: unknown token type %q (want kya, pay or kya-pay)", clip(s))
}

// Generation tells which claim vocabulary a token was written in.
type Generation uint8

const (
	// GenerationCurrent is the 2026 vocabulary: typ kya+jwt, pay+jwt,
	// kya-pay+jwt; hid, amt, val.
	GenerationCurrent Generation = iota
	// GenerationLegacy is the 2025 vocabulary: typ kya+JWT, pay+JWT,
	// kya+pay+JWT; bid, amount, value, ver "1".
	GenerationLegacy
)

// String returns "current" or "legacy".
func (g Generation) String() string {
	if g == GenerationLegacy {
		return "legacy"
	}
	return "current"
}

// parseTyp classifies a JWS typ header value. It compares
// case-insensitively and accepts an optional "application/" media-type
// prefix. The generation is a hint from the spelling only (legacy spelled
// the suffix "JWT" and joined kya+pay with a plus); claims decide the rest.
func parseTyp(typ string) (TokenType, Generation, bool) {
	if len(typ) > len("application/") && strings.EqualFold(typ[:len("application/")], "application/") {
		typ = typ[len("application/"):]
	}
	gen := GenerationCurrent
	if strings.HasSuffix(typ, "+JWT") {
		gen = GenerationLegacy
	}
	switch {
	case strings.EqualFold(typ, "kya+jwt"):
		return TypeKYA, gen, true
	case strings.EqualFold(typ, "pay+jwt"):
		return TypePay, gen, true
	case strings.EqualFold(typ, "kya-pay+jwt"):
		return TypeKYAPay, gen, true
	case strings.EqualFold(typ, "kya+pay+jwt"):
		return TypeKYAPay, GenerationLegacy, true
	}
	return 0, 0, false
}
