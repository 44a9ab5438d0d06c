package kyapay

import (
	"crypto/ecdsa"
	"encoding/json"
	"time"
)

// Claims is the verified content of a KYAPay token, in one shape for both
// claim generations: where the legacy and current vocabularies differ
// (bid/hid, amount/amt, value/val) or the IETF draft renames a claim
// (tsi, tdm, itg, tpr, tps), the field is filled from whichever is present.
//
// Claims values returned by a [Verifier] may be shared between requests
// (the verified-token cache hands out the same pointer); treat them as
// read-only.
type Claims struct {
	// Type is the token type from the typ header.
	Type TokenType
	// Generation is the claim vocabulary the token was written in.
	Generation Generation
	// rule indexes Verifier.rules: the issuer as the key source knows it.
	// It sits in what would be padding.
	rule uint8
	// pub is the key the signature was verified with, compared on every
	// verified-token cache hit with the key source's current one. It sits
	// on the Claims' first cache line with rule and KeyID, which a hit
	// reads too.
	pub *ecdsa.PublicKey
	// KeyID is the kid header that selected the verification key.
	KeyID string

	// Issuer (iss) is the token issuer URL.
	Issuer string
	// Subject (sub) is the buyer agent's account ID.
	Subject string
	// Audience (aud) is the seller agent's account ID. A JSON array of
	// audiences is kept in Audiences; Audience is then its first member.
	Audience  string
	Audiences []string
	// IssuedAt (iat), Expiry (exp) and NotBefore (nbf); zero when absent.
	IssuedAt  time.Time
	Expiry    time.Time
	NotBefore time.Time
	// ID (jti) identifies the token; it is the key for charges and replay.
	ID string
	// Env (env) is "production" or "sandbox".
	Env string
	// ServiceID (ssi, alias tsi) is the seller service the token targets.
	ServiceID string
	// SellerDomain (sdm, alias tdm) and SellerURL (srl) target an external
	// seller by domain.
	SellerDomain string
	SellerURL    string
	// BuyerTag (btg, alias itg) is an opaque tag set by the buyer.
	BuyerTag string
	// Originator (ori) is the originator URL.
	Originator string
	// Scopes holds the space-separated scope claim or the legacy scopes array.
	Scopes []string
	// Version (ver) is "1" in legacy tokens.
	Version string

	// Human (hid, legacy bid) is the verified human or organisation behind
	// the agent; nil when absent.
	Human *HumanIdentity
	// Platform (apd) is the agent platform; nil when absent.
	Platform *AgentPlatform
	// Agent (aid) is the agent's own identity; nil when absent.
	Agent *AgentIdentity

	// Amount (amt, legacy amount) is the token's total value in Currency.
	// HasAmount tells whether the claim was present.
	Amount    Amount
	HasAmount bool
	// Value (val, legacy value) is the amount in settlement-network units,
	// kept as the decimal string it was sent as.
	Value string
	// Currency (cur) is an ISO 4217 code, "USD" in practice.
	Currency string
	// ServicePrice (spr, alias tpr) is the seller service's price as the
	// buyer saw it; HasServicePrice tells whether it was present.
	ServicePrice    Amount
	HasServicePrice bool
	// PricingScheme (sps, alias tps) is lower-cased: "pay_per_use",
	// "subscription", "pay_per_mb" or "custom".
	PricingScheme string
	// MaxRequests (mnr) is the request allowance for pay_per_use tokens; 0
	// when absent. A string or a number in the token.
	MaxRequests int64
	// SettlementType (stp) is "coin", "card" or "bank" (lower-cased).
	SettlementType string
	// Settlement (sti) describes the settlement instrument; nil when absent.
	Settlement *SettlementInfo

	// raw is the payload JSON exactly as signed.
	raw string
}

// Raw returns the payload JSON exactly as it was signed, so claims this
// package does not model stay reachable.
func (c *Claims) Raw() []byte { return []byte(c.raw) }

// Claim returns the raw JSON value of a top-level claim by name, and
// whether it was present. Unknown claims are reachable this way.
func (c *Claims) Claim(name string) (json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(c.raw), &m) != nil {
		return nil, false
	}
	v, ok := m[name]
	return v, ok
}

// HumanIdentity is the hid claim (legacy bid). Fields absent in the token
// are empty. Legacy spellings (skyfireEmail, nameFirst, nameLast,
// businessName, ...) are mapped onto the current fields; every key stays
// reachable through [HumanIdentity.Field] and Raw.
type HumanIdentity struct {
	// Email is the buyer's email address (legacy skyfireEmail).
	Email string `json:"email,omitempty"`
	// GivenName is the first name (legacy nameFirst).
	GivenName string `json:"given_name,omitempty"`
	// MiddleName is the middle name.
	MiddleName string `json:"middle_name,omitempty"`
	// FamilyName is the last name (legacy nameLast).
	FamilyName string `json:"family_name,omitempty"`
	// Birthdate is the date of birth as sent, e.g. "1990-01-31".
	Birthdate string `json:"birthdate,omitempty"`
	// PhoneNumber is the phone number as sent.
	PhoneNumber string `json:"phone_number,omitempty"`
	// OrganizationName is the business name (legacy businessName).
	OrganizationName string `json:"organization_name,omitempty"`
	// Verifier is the URL of the party that verified the identity.
	Verifier string `json:"verifier,omitempty"`
	// Verified reports whether the identity was verified.
	Verified bool `json:"verified,omitempty"`
	// VerificationID identifies the verification at the verifier.
	VerificationID string `json:"verification_id,omitempty"`
	// Raw is the object exactly as it appeared in the token.
	Raw json.RawMessage `json:"-"`
}

// AgentPlatform is the apd claim.
type AgentPlatform struct {
	// ID is the platform's account ID.
	ID string `json:"id,omitempty"`
	// Name is the platform's name.
	Name string `json:"name,omitempty"`
	// Email is the platform's contact email.
	Email string `json:"email,omitempty"`
	// PhoneNumber is the platform's phone number.
	PhoneNumber string `json:"phone_number,omitempty"`
	// OrganizationName is the company behind the platform.
	OrganizationName string `json:"organization_name,omitempty"`
	// Verifier is the URL of the party that verified the platform.
	Verifier string `json:"verifier,omitempty"`
	// Verified reports whether the platform was verified.
	Verified bool `json:"verified,omitempty"`
	// VerificationID identifies the verification at the verifier.
	VerificationID string `json:"verification_id,omitempty"`
	// Raw is the object exactly as it appeared in the token.
	Raw json.RawMessage `json:"-"`
}

// AgentIdentity is the aid claim.
type AgentIdentity struct {
	// Name is the agent's name.
	Name string `json:"name,omitempty"`
	// CreationIP is the IP address the agent was created from.
	CreationIP string `json:"creation_ip,omitempty"`
	// SourceIPs lists IPs, CIDRs, "a-b" ranges or DNS names, as sent.
	SourceIPs []string `json:"source_ips,omitempty"`
	// Raw is the object exactly as it appeared in the token.
	Raw json.RawMessage `json:"-"`
}

// SettlementInfo is the sti claim. Card instrument details (payment token,
// expiry, security code) are deliberately not copied into typed fields so
// they are not logged or echoed by accident; they remain in Raw.
type SettlementInfo struct {
	// Type is "usdc" for coin, "visa_vic" or "mastercard_scof" for card.
	Type string `json:"type,omitempty"`
	// Verifier is the URL of the party that verified the instrument.
	Verifier string `json:"verifier,omitempty"`
	// Verified reports whether the instrument was verified.
	Verified bool `json:"verified,omitempty"`
	// VerificationID identifies the verification at the verifier.
	VerificationID string `json:"verification_id,omitempty"`
	// Raw is the object exactly as it appeared in the token, card details included.
	Raw json.RawMessage `json:"-"`
}
