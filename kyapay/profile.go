package kyapay

import (
	"strings"
	"unicode/utf8"
)

// Profile is the set of claim rules a [Verifier] applies on top of the
// signature, the issuer, the time window, the audience, the service and
// the env. Its zero value is the default profile, which refuses what
// Skyfire's reference verifiers (the skyfire-xyz/kyapay code examples)
// refuse:
//
//   - iat is required (and, like exp and nbf, not in the future beyond the
//     leeway);
//   - jti is a UUID;
//   - pay and kya-pay tokens carry amt greater than zero, val greater than
//     zero and cur "USD".
//
// Each Allow field relaxes one of those rules. The Expect and Require
// fields add the checks the reference verifiers leave to configuration,
// off by default: the expected stp, spr and sps, sti.verified, and the
// format of the identity email.
//
// Whatever the profile, claims that are present must be well formed: an
// amt or spr that is not a plain decimal, a val that is neither an
// unsigned integer nor a plain decimal (legacy tokens spell it
// "15.000000"), or a cur other than "USD" is refused.
type Profile struct {
	// AllowMissingIssuedAt accepts tokens without iat. Default: iat is
	// required.
	AllowMissingIssuedAt bool
	// AllowAnyTokenID accepts any non-empty jti. Default: jti must be a
	// UUID (8-4-4-4-12 hexadecimal digits, either case).
	AllowAnyTokenID bool
	// AllowZeroAmount accepts pay and kya-pay tokens whose amt or val is
	// zero. Default: both must be greater than zero.
	AllowZeroAmount bool
	// AllowMissingValue accepts pay and kya-pay tokens without val.
	// Default: val is required.
	AllowMissingValue bool
	// AllowMissingCurrency accepts pay and kya-pay tokens without cur.
	// Default: cur is required (and is "USD").
	AllowMissingCurrency bool

	// ExpectSettlementType, if set, is the stp that pay and kya-pay tokens
	// must carry, compared case-insensitively ("coin", "card", "bank").
	// Default: not checked.
	ExpectSettlementType string
	// ExpectServicePrice, if set, is the spr that pay and kya-pay tokens
	// must carry, compared as an exact amount ("0.01" equals "0.010000").
	// It must parse as an [Amount]. Default: not checked.
	ExpectServicePrice string
	// ExpectPricingScheme, if set, is the sps that pay and kya-pay tokens
	// must carry, compared case-insensitively ("pay_per_use", ...).
	// Default: not checked.
	ExpectPricingScheme string
	// RequireVerifiedSettlement refuses pay and kya-pay tokens unless
	// sti.verified is true. Default: off, as in the reference verifiers'
	// configuration.
	RequireVerifiedSettlement bool
	// RequireEmail refuses kya and kya-pay tokens whose identity (hid, or
	// legacy bid with email or skyfireEmail) lacks an email or carries one
	// that is not a syntactically valid address, as the reference
	// verifiers do. Default: off; a route that needs the email says so
	// (the middleware's identity fields).
	RequireEmail bool
}

// LenientProfile returns the rules of this package's first release: iat
// optional, any non-empty jti, amt zero or more, val and cur optional. Use
// it while moving a seller that accepted such tokens to the default
// profile.
func LenientProfile() Profile {
	return Profile{
		AllowMissingIssuedAt: true,
		AllowAnyTokenID:      true,
		AllowZeroAmount:      true,
		AllowMissingValue:    true,
		AllowMissingCurrency: true,
	}
}

// profileRules is a Profile validated and normalised by NewVerifier.
type profileRules struct {
	Profile
	servicePrice    Amount
	hasServicePrice bool
}

func (p Profile) rules() (profileRules, error) {
	r := profileRules{Profile: p}
	r.ExpectSettlementType = strings.ToLower(p.ExpectSettlementType)
	r.ExpectPricingScheme = strings.ToLower(p.ExpectPricingScheme)
	if p.ExpectServicePrice != "" {
		a, err := ParseAmount(p.ExpectServicePrice)
		if err != nil {
			return r, err
		}
		r.servicePrice, r.hasServicePrice = a, true
	}
	return r, nil
}

// check applies the profile's rules that the generic claim checks do
// not: those on iat, jti, the payment claims and the email.
func (r *profileRules) check(c *Claims, st *payloadState) error {
	if !st.hasIat && !r.AllowMissingIssuedAt {
		return NewError(CodeClaimMissing, "token lacks the iat claim", nil)
	}
	if !r.AllowAnyTokenID && !isUUID(c.ID) {
		return NewError(CodeClaimInvalid, "token claim jti is not a UUID", nil)
	}
	if c.Type.HasPayment() {
		if c.Amount.IsZero() && !r.AllowZeroAmount {
			return NewError(CodeClaimInvalid, "token amount is zero", nil)
		}
		switch {
		case c.Value == "" && !r.AllowMissingValue:
			return NewError(CodeClaimMissing, "pay token lacks the val claim", nil)
		case c.Value != "" && !st.valuePositive && !r.AllowZeroAmount:
			return NewError(CodeClaimInvalid, "token value is zero", nil)
		}
		if c.Currency == "" && !r.AllowMissingCurrency {
			return NewError(CodeClaimMissing, "pay token lacks the cur claim", nil)
		}
		if r.ExpectSettlementType != "" && c.SettlementType != r.ExpectSettlementType {
			return NewError(CodeClaimInvalid, "token settlement type is not the one this seller accepts", nil)
		}
		if r.hasServicePrice && (!c.HasServicePrice || c.ServicePrice != r.servicePrice) {
			return NewError(CodeClaimInvalid, "token service price is not this service's price", nil)
		}
		if r.ExpectPricingScheme != "" && c.PricingScheme != r.ExpectPricingScheme {
			return NewError(CodeClaimInvalid, "token pricing scheme is not this service's", nil)
		}
		if r.RequireVerifiedSettlement && (c.Settlement == nil || !c.Settlement.Verified) {
			return NewError(CodeClaimInvalid, "token settlement instrument is not verified", nil)
		}
	}
	if r.RequireEmail && c.Type.HasIdentity() {
		if c.Human == nil || c.Human.Email == "" {
			return NewError(CodeClaimMissing, "token identity lacks an email", nil)
		}
		if !isEmail(c.Human.Email) {
			return NewError(CodeClaimInvalid, "token identity email is not a valid address", nil)
		}
	}
	return nil
}

// isUUID reports whether s is a UUID in its canonical text form:
// 8-4-4-4-12 hexadecimal digits, either case. Version and variant bits are
// not checked.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// isEmail reports whether s looks like an email address: an unquoted
// local part of RFC 5322 atext characters and single dots, "@", and a
// domain of at least two dot-separated labels of letters, digits and
// inner hyphens (or an internationalised label: any non-ASCII character),
// valid UTF-8, at most 254 bytes in all. It is a syntax check only; quoted local parts
// and address literals are refused.
func isEmail(s string) bool {
	if len(s) > 254 || !utf8.ValidString(s) {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at > 64 || at == len(s)-1 {
		return false
	}
	local, domain := s[:at], s[at+1:]
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	for i := 0; i < len(local); i++ {
		if !isAtext(local[i]) && local[i] != '.' {
			return false
		}
	}
	labels := 0
	for label := range strings.SplitSeq(domain, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 0x80 || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return false
			}
		}
		labels++
	}
	return labels >= 2
}

// isAtext reports whether c is an RFC 5322 atext character.
func isAtext(c byte) bool {
	if '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}
