package kyapay

import (
	"errors"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// header is what the verifier reads from a JWS protected header.
type header struct {
	alg, kid, typ string
	forbidden     string // name of a parameter that must not appear, if one did
}

// forbiddenHeaders are header parameters that make a token unacceptable:
// key references the verifier must never follow (jku, x5u, jwk, x5c, x5t,
// x5t#S256), extensions it does not implement (crit, b64), and JWE or
// compression parameters that have no place in a KYAPay JWS (zip, enc).
var forbiddenHeaders = map[string]bool{
	"jku": true, "x5u": true, "jwk": true, "x5c": true, "x5t": true, "x5t#S256": true,
	"crit": true, "b64": true, "zip": true, "enc": true,
}

// parseHeader reads the protected header JSON.
func parseHeader(js string) (header, error) {
	var h header
	p := scanner{s: js}
	if err := p.objStart(); err != nil {
		return h, err
	}
	var seen [3]bool
	first := true
	for {
		key, more, err := p.objNext(&first)
		if err != nil {
			return h, err
		}
		if !more {
			break
		}
		var slot int
		switch key {
		case "alg":
			slot = 0
		case "kid":
			slot = 1
		case "typ":
			slot = 2
		default:
			if forbiddenHeaders[key] && h.forbidden == "" {
				h.forbidden = key
			}
			if _, _, err := p.skip(1); err != nil {
				return h, err
			}
			continue
		}
		if seen[slot] {
			return h, errDuplicate
		}
		seen[slot] = true
		v, err := p.str()
		if err != nil {
			return h, errSyntax
		}
		// Assigned field by field, not through a pointer, so that escape
		// analysis sees js stay with h: the verifier decodes the header
		// into a stack buffer.
		switch slot {
		case 0:
			h.alg = v
		case 1:
			h.kid = v
		default:
			h.typ = v
		}
	}
	return h, p.end()
}

var errDuplicate = errors.New("duplicate member")

// claimError is a claims-level problem found while decoding: a claim with
// the wrong JSON type or an unparseable value. It becomes claim_invalid.
type claimError struct {
	claim string
	err   error
}

func (e *claimError) Error() string { return "claim " + e.claim + ": " + e.err.Error() }
func (e *claimError) Unwrap() error { return e.err }

// payloadState tracks what parsePayload saw that the verifier needs but
// Claims does not expose.
type payloadState struct {
	hasCnf        bool
	hasExp        bool
	hasIat        bool
	valuePositive bool // val is present and greater than zero
	legacy        bool // a claim only the legacy vocabulary uses was present
}

// claim identifiers for duplicate and alias detection.
const (
	cIss = iota
	cSub
	cAud
	cIat
	cExp
	cNbf
	cJti
	cEnv
	cSsi
	cSdm
	cSrl
	cBtg
	cOri
	cScope
	cScopes
	cVer
	cHid
	cApd
	cAid
	cAmt
	cVal
	cCur
	cSpr
	cSps
	cMnr
	cStp
	cSti
	cCnf
	numClaims
)

// claimIDs maps each claim name, current, legacy or IETF alias, to its slot.
var claimIDs = map[string]int{
	"iss": cIss, "sub": cSub, "aud": cAud, "iat": cIat, "exp": cExp, "nbf": cNbf,
	"jti": cJti, "env": cEnv, "ssi": cSsi, "tsi": cSsi, "sdm": cSdm, "tdm": cSdm,
	"srl": cSrl, "btg": cBtg, "itg": cBtg, "ori": cOri, "scope": cScope, "scopes": cScopes,
	"ver": cVer, "hid": cHid, "bid": cHid, "apd": cApd, "aid": cAid,
	"amt": cAmt, "amount": cAmt, "val": cVal, "value": cVal, "cur": cCur,
	"spr": cSpr, "tpr": cSpr, "sps": cSps, "tps": cSps, "mnr": cMnr,
	"stp": cStp, "sti": cSti, "cnf": cCnf,
}

// parsePayload decodes the claims JSON in payload into c. payload must not
// be modified afterwards: c keeps substrings of it. A claim that appears
// twice, under one name or under two aliases (amt and amount, ssi and tsi),
// makes the token malformed: which one the issuer meant is ambiguous.
func parsePayload(payload []byte, c *Claims, st *payloadState) error {
	raw := unsafe.String(unsafe.SliceData(payload), len(payload))
	c.raw = raw
	p := scanner{s: raw}
	if err := p.objStart(); err != nil {
		return err
	}
	var seen [numClaims]bool
	var others [16]string // unknown keys seen, for duplicate detection
	nOthers := 0
	var otherMap map[string]bool
	first := true
	for {
		key, more, err := p.objNext(&first)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		id, known := claimIDs[key]
		if !known {
			if nOthers < len(others) {
				for _, o := range others[:nOthers] {
					if o == key {
						return errDuplicate
					}
				}
				others[nOthers] = key
				nOthers++
			} else {
				if otherMap == nil {
					otherMap = make(map[string]bool)
					for _, o := range others {
						otherMap[o] = true
					}
				}
				if otherMap[key] {
					return errDuplicate
				}
				otherMap[key] = true
			}
			if _, _, err := p.skip(1); err != nil {
				return err
			}
			continue
		}
		if seen[id] {
			return errDuplicate
		}
		seen[id] = true
		if err := parseClaim(&p, id, key, payload, c, st); err != nil {
			return err
		}
	}
	return p.end()
}

// parseClaim decodes the value of one known claim.
func parseClaim(p *scanner, id int, key string, payload []byte, c *Claims, st *payloadState) error {
	if id != cCnf && p.isNull() {
		return nil // null means absent
	}
	switch key {
	case "bid", "amount", "value", "ver", "scopes":
		st.legacy = true
	}
	var err error
	switch id {
	case cIss:
		c.Issuer, err = p.str()
	case cSub:
		c.Subject, err = p.str()
	case cAud:
		if p.peek() == '[' {
			c.Audiences, err = strList(p)
			if err == nil && len(c.Audiences) > 0 {
				c.Audience = c.Audiences[0]
			}
		} else {
			c.Audience, err = p.str()
		}
	case cIat:
		c.IssuedAt, err = numericDate(p)
		st.hasIat = err == nil
	case cExp:
		c.Expiry, err = numericDate(p)
		st.hasExp = err == nil
	case cNbf:
		c.NotBefore, err = numericDate(p)
	case cJti:
		c.ID, err = p.str()
	case cEnv:
		c.Env, err = p.str()
	case cSsi:
		c.ServiceID, err = p.str()
	case cSdm:
		c.SellerDomain, err = p.str()
	case cSrl:
		c.SellerURL, err = p.str()
	case cBtg:
		c.BuyerTag, err = p.str()
	case cOri:
		c.Originator, err = p.str()
	case cScope:
		var s string
		if s, err = p.str(); err == nil {
			c.Scopes = append(c.Scopes, strings.Fields(s)...)
		}
	case cScopes:
		var l []string
		if l, err = strList(p); err == nil {
			c.Scopes = append(c.Scopes, l...)
		}
	case cVer:
		c.Version, err = p.strOrNum()
	case cHid:
		c.Human, err = parseHuman(p, payload)
	case cApd:
		c.Platform, err = parsePlatform(p, payload)
	case cAid:
		c.Agent, err = parseAgent(p, payload)
	case cAmt:
		c.Amount, err = amountValue(p)
		c.HasAmount = err == nil
	case cVal:
		if c.Value, err = p.strOrNum(); err == nil {
			st.valuePositive, err = parseValue(c.Value)
		}
	case cCur:
		c.Currency, err = p.str()
	case cSpr:
		c.ServicePrice, err = amountValue(p)
		c.HasServicePrice = err == nil
	case cSps:
		var s string
		if s, err = p.str(); err == nil {
			c.PricingScheme = strings.ToLower(s)
		}
	case cMnr:
		c.MaxRequests, err = p.int64Value()
		if err == nil && c.MaxRequests < 0 {
			err = errNotCount
		}
	case cStp:
		var s string
		if s, err = p.str(); err == nil {
			c.SettlementType = strings.ToLower(s)
		}
	case cSti:
		c.Settlement, err = parseSettlement(p, payload)
	case cCnf:
		st.hasCnf = true
		_, _, err = p.skip(1)
	}
	if err != nil {
		// A value of the wrong JSON type and broken JSON inside a claim are
		// not told apart: either way the claim is unusable.
		return &claimError{claim: key, err: err}
	}
	return nil
}

// Errors of claim values. They never quote the value: it comes from the
// token, and an unverified token can put anything there.
var (
	errNotValue = errors.New("not an unsigned integer or a plain decimal")
	errNotCount = errors.New("not a non-negative integer")
)

// parseValue checks a val (legacy value) claim: an unsigned integer in
// settlement units, as current tokens send it ("15000000"), or a plain
// decimal in currency units, as some legacy tokens do ("15.000000"). It
// reports whether the value is greater than zero.
func parseValue(s string) (positive bool, err error) {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return n > 0, nil
	}
	if strings.IndexByte(s, '.') < 0 {
		return false, errNotValue
	}
	a, err := ParseAmount(s)
	if err != nil {
		return false, errNotValue
	}
	return !a.IsZero(), nil
}

// strList reads an array of strings.
func strList(p *scanner) ([]string, error) {
	if err := p.arrStart(); err != nil {
		return nil, err
	}
	var out []string
	first := true
	for {
		more, err := p.arrNext(&first)
		if err != nil {
			return nil, err
		}
		if !more {
			return out, nil
		}
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
}

// numericDate reads a JWT NumericDate: seconds since the epoch as a
// non-negative JSON number. A fraction is truncated; exponents and values
// past year 9999 are refused.
func numericDate(p *scanner) (time.Time, error) {
	text, err := p.num()
	if err != nil {
		return time.Time{}, err
	}
	if strings.ContainsAny(text, "eE-") {
		return time.Time{}, errors.New("not a plain non-negative number")
	}
	if dot := strings.IndexByte(text, '.'); dot >= 0 {
		text = text[:dot]
	}
	secs, err := strconv.ParseInt(text, 10, 64)
	if err != nil || secs > 253402300799 {
		return time.Time{}, errors.New("out of range")
	}
	return time.Unix(secs, 0), nil
}

// amountValue reads an amount given as a decimal string or a plain number.
func amountValue(p *scanner) (Amount, error) {
	text, err := p.strOrNum()
	if err != nil {
		return Amount{}, err
	}
	return ParseAmount(text)
}

// rawSpan returns payload[start:end] as a RawMessage sharing its memory.
func rawSpan(payload []byte, start, end int) []byte {
	return payload[start:end:end]
}

// object reads a JSON object, calling member for each key with the scanner
// positioned at the member's value (member must consume it), and returns
// the object's text as a slice of payload. member is only called, never
// kept, so the closures passed here stay on the stack.
func object(p *scanner, payload []byte, member func(key string) error) ([]byte, error) {
	if p.peek() != '{' {
		return nil, errSyntax
	}
	start := p.i
	p.i++
	first := true
	for {
		key, more, err := p.objNext(&first)
		if err != nil {
			return nil, err
		}
		if !more {
			return rawSpan(payload, start, p.i), nil
		}
		if err := member(key); err != nil {
			return nil, err
		}
	}
}

// skipMember discards a member value the decoder does not model.
func skipMember(p *scanner) error {
	_, _, err := p.skip(2)
	return err
}

func parseHuman(p *scanner, payload []byte) (*HumanIdentity, error) {
	h := new(HumanIdentity)
	raw, err := object(p, payload, func(key string) error {
		switch key {
		case "email", "skyfireEmail":
			return optString(p, &h.Email)
		case "given_name", "nameFirst", "firstName":
			return optString(p, &h.GivenName)
		case "middle_name", "nameMiddle", "middleName":
			return optString(p, &h.MiddleName)
		case "family_name", "nameLast", "lastName":
			return optString(p, &h.FamilyName)
		case "birthdate", "dateOfBirth":
			return optString(p, &h.Birthdate)
		case "phone_number", "phoneNumber":
			return optString(p, &h.PhoneNumber)
		case "organization_name", "businessName", "organizationName":
			return optString(p, &h.OrganizationName)
		case "verifier":
			return optString(p, &h.Verifier)
		case "verification_id", "verificationId":
			return optString(p, &h.VerificationID)
		case "verified":
			return optBool(p, &h.Verified)
		}
		return skipMember(p)
	})
	if err != nil {
		return nil, err
	}
	h.Raw = raw
	return h, nil
}

// optString reads a string or null into *dst. When a current and a legacy
// key both appear the first non-empty value wins.
func optString(p *scanner, dst *string) error {
	if p.isNull() {
		return nil
	}
	s, err := p.str()
	if err != nil {
		return err
	}
	if *dst == "" {
		*dst = s
	}
	return nil
}

// optBool reads a boolean or null into *dst.
func optBool(p *scanner, dst *bool) error {
	if p.isNull() {
		return nil
	}
	v, err := p.boolean()
	if err != nil {
		return err
	}
	*dst = v
	return nil
}

func parsePlatform(p *scanner, payload []byte) (*AgentPlatform, error) {
	a := new(AgentPlatform)
	raw, err := object(p, payload, func(key string) error {
		switch key {
		case "id":
			return optString(p, &a.ID)
		case "name":
			return optString(p, &a.Name)
		case "email":
			return optString(p, &a.Email)
		case "phone_number":
			return optString(p, &a.PhoneNumber)
		case "organization_name":
			return optString(p, &a.OrganizationName)
		case "verifier":
			return optString(p, &a.Verifier)
		case "verification_id":
			return optString(p, &a.VerificationID)
		case "verified":
			return optBool(p, &a.Verified)
		}
		return skipMember(p)
	})
	if err != nil {
		return nil, err
	}
	a.Raw = raw
	return a, nil
}

func parseAgent(p *scanner, payload []byte) (*AgentIdentity, error) {
	a := new(AgentIdentity)
	raw, err := object(p, payload, func(key string) error {
		switch key {
		case "name":
			return optString(p, &a.Name)
		case "creation_ip":
			return optString(p, &a.CreationIP)
		case "source_ips":
			if p.isNull() {
				return nil
			}
			var err error
			a.SourceIPs, err = strList(p)
			return err
		}
		return skipMember(p)
	})
	if err != nil {
		return nil, err
	}
	a.Raw = raw
	return a, nil
}

func parseSettlement(p *scanner, payload []byte) (*SettlementInfo, error) {
	s := new(SettlementInfo)
	raw, err := object(p, payload, func(key string) error {
		switch key {
		case "type":
			return optString(p, &s.Type)
		case "verifier":
			return optString(p, &s.Verifier)
		case "verification_id", "verificationId":
			return optString(p, &s.VerificationID)
		case "verified":
			return optBool(p, &s.Verified)
		}
		return skipMember(p)
	})
	if err != nil {
		return nil, err
	}
	s.Raw = raw
	return s, nil
}

// Field returns an identity field by its Skyfire name ("email",
// "given_name", ..., "verified" as "true"/"false") and whether it is present
// and non-empty. Names not modelled by HumanIdentity, such as legacy keys,
// are looked up in Raw.
func (h *HumanIdentity) Field(name string) (string, bool) {
	if h == nil {
		return "", false
	}
	var v string
	switch name {
	case "email":
		v = h.Email
	case "given_name":
		v = h.GivenName
	case "middle_name":
		v = h.MiddleName
	case "family_name":
		v = h.FamilyName
	case "birthdate":
		v = h.Birthdate
	case "phone_number":
		v = h.PhoneNumber
	case "organization_name":
		v = h.OrganizationName
	case "verifier":
		v = h.Verifier
	case "verification_id":
		v = h.VerificationID
	case "verified":
		if h.Verified {
			return "true", true
		}
		return "false", hasMember(h.Raw, "verified")
	default:
		return rawStringMember(h.Raw, name)
	}
	return v, v != ""
}

// hasMember reports whether the JSON object obj has a member name.
func hasMember(obj []byte, name string) bool {
	_, ok := member(obj, name)
	return ok
}

// rawStringMember returns the string member name of obj, or its raw JSON
// text if it is not a string.
func rawStringMember(obj []byte, name string) (string, bool) {
	v, ok := member(obj, name)
	if !ok {
		return "", false
	}
	p := scanner{s: v}
	if p.peek() == '"' {
		s, err := p.str()
		return s, err == nil && s != ""
	}
	return v, v != "null"
}

// member returns the raw text of member name in the JSON object obj.
func member(obj []byte, name string) (string, bool) {
	p := scanner{s: string(obj)}
	if p.objStart() != nil {
		return "", false
	}
	first := true
	for {
		key, more, err := p.objNext(&first)
		if err != nil || !more {
			return "", false
		}
		start, end, err := p.skip(1)
		if err != nil {
			return "", false
		}
		if key == name {
			return p.s[start:end], true
		}
	}
}
