package jwks

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// p256CoordSize is the length in bytes of a P-256 field element. RFC 7518
// section 6.2.1.2 requires x and y to be encoded at exactly this length.
const p256CoordSize = 32

// ParseSet parses a JWK Set (RFC 7517 section 5) and returns its usable
// ES256 verification keys by kid, together with the number of elements of
// the "keys" array it skipped. len(keys)+skipped always equals the length of
// that array.
//
// An element is usable when all of these hold:
//   - it is a JSON object;
//   - "kty" is "EC" and "crv" is "P-256";
//   - "alg" is absent or "ES256";
//   - "use" is absent or "sig", and "key_ops", if present, is an array of
//     strings that contains "verify";
//   - "kid" is a non-empty string that no other element of the set uses
//     (a kid that appears more than once, even on an unusable element, is
//     ambiguous and every element carrying it is skipped);
//   - "x" and "y" are base64url (padding optional) of exactly 32 bytes each
//     and together form a point on the P-256 curve.
//
// Other members ("d", "x5c", "x5t", ...) are ignored: only the public point
// is used, and certificate chains are not verified. Member names are matched
// exactly (case-sensitively), as RFC 7517 requires.
//
// An element that is not usable is skipped; it never makes the whole set
// fail. ParseSet returns an error wrapping [ErrInvalidSet] when data is not a
// JSON object whose "keys" member is an array, or when the set has no usable
// key at all; in the latter case skipped is still reported.
//
// ParseSet is pure and safe for concurrent use. The returned keys are fresh
// values owned by the caller.
func ParseSet(data []byte) (keys map[string]*ecdsa.PublicKey, skipped int, err error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, 0, fmt.Errorf("%w: not a JSON object: %v", ErrInvalidSet, err)
	}
	if top == nil {
		return nil, 0, fmt.Errorf("%w: not a JSON object", ErrInvalidSet)
	}
	rawKeys, ok := top["keys"]
	if !ok {
		return nil, 0, fmt.Errorf("%w: no \"keys\" member", ErrInvalidSet)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(rawKeys, &elems); err != nil || elems == nil {
		return nil, 0, fmt.Errorf("%w: \"keys\" is not an array", ErrInvalidSet)
	}

	type candidate struct {
		kid string
		key *ecdsa.PublicKey
	}
	kidCount := make(map[string]int, len(elems))
	candidates := make([]candidate, 0, len(elems))
	for _, raw := range elems {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			continue
		}
		kid, present, isString := member(m, "kid")
		if !present || !isString || kid == "" {
			continue
		}
		kidCount[kid]++
		if key := parseEC(m); key != nil {
			candidates = append(candidates, candidate{kid, key})
		}
	}

	keys = make(map[string]*ecdsa.PublicKey, len(candidates))
	for _, c := range candidates {
		if kidCount[c.kid] == 1 {
			keys[c.kid] = c.key
		}
	}
	skipped = len(elems) - len(keys)
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("%w: no usable ES256 P-256 key (%d skipped)", ErrInvalidSet, skipped)
	}
	return keys, skipped, nil
}

// parseEC returns the P-256 verification key described by the JWK members m,
// or nil if m is not a usable ES256 verification key. The kid is checked by
// the caller.
func parseEC(m map[string]json.RawMessage) *ecdsa.PublicKey {
	if v, present, ok := member(m, "kty"); !present || !ok || v != "EC" {
		return nil
	}
	if v, present, ok := member(m, "crv"); !present || !ok || v != "P-256" {
		return nil
	}
	if v, present, ok := member(m, "alg"); present && (!ok || v != "ES256") {
		return nil
	}
	if v, present, ok := member(m, "use"); present && (!ok || v != "sig") {
		return nil
	}
	if raw, present := m["key_ops"]; present {
		var ops []string
		if err := json.Unmarshal(raw, &ops); err != nil || !slices.Contains(ops, "verify") {
			return nil
		}
	}
	var point [1 + 2*p256CoordSize]byte
	point[0] = 4 // SEC 1 uncompressed point
	if !coord(m, "x", point[1:1+p256CoordSize]) || !coord(m, "y", point[1+p256CoordSize:]) {
		return nil
	}
	// ParseUncompressedPublicKey rejects points not on the curve and the
	// point at infinity.
	key, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point[:])
	if err != nil {
		return nil
	}
	return key
}

// member reads the JWK member name. present reports whether it exists;
// isString whether its value is a JSON string (then v is that string).
func member(m map[string]json.RawMessage, name string) (v string, present, isString bool) {
	raw, present := m[name]
	if !present {
		return "", false, false
	}
	if err := json.Unmarshal(raw, &v); err != nil || len(raw) == 0 || raw[0] != '"' {
		return "", true, false
	}
	return v, true, true
}

// coord decodes the base64url member name into dst, which it must fill
// exactly.
func coord(m map[string]json.RawMessage, name string, dst []byte) bool {
	s, present, ok := member(m, name)
	if !present || !ok {
		return false
	}
	s = strings.TrimSuffix(s, "=")
	if base64.RawURLEncoding.DecodedLen(len(s)) != len(dst) {
		return false
	}
	n, err := base64.RawURLEncoding.Decode(dst, []byte(s))
	return err == nil && n == len(dst)
}
