package kyapaytest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// newUUID returns a random version-4 UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails, per crypto/rand
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// signES256 returns the compact JWS of the given encoded header and
// payload, signed with ES256 (signature r||s, 32 bytes each).
func signES256(priv *ecdsa.PrivateKey, header, payload []byte) string {
	signingInput := b64(header) + "." + b64(payload)
	digest := sha256.Sum256([]byte(signingInput))
	r, s, err := ecdsa.Sign(rand.Reader, priv, digest[:])
	if err != nil {
		panic("kyapaytest: signing token: " + err.Error())
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signingInput + "." + b64(sig)
}

// parsedToken is a compact JWS split and decoded, not yet verified.
type parsedToken struct {
	signingInput string
	header       map[string]any
	claims       map[string]any
	sig          []byte
}

var errMalformed = errors.New("token is not a well-formed compact JWS")

// parseToken splits and decodes a compact JWS. JSON numbers are kept as
// json.Number.
func parseToken(tok string) (*parsedToken, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errMalformed
	}
	p := &parsedToken{signingInput: parts[0] + "." + parts[1]}
	var err error
	if p.header, err = decodeSegment(parts[0]); err != nil {
		return nil, errMalformed
	}
	if p.claims, err = decodeSegment(parts[1]); err != nil {
		return nil, errMalformed
	}
	if p.sig, err = base64.RawURLEncoding.DecodeString(parts[2]); err != nil {
		return nil, errMalformed
	}
	return p, nil
}

func decodeSegment(seg string) (map[string]any, error) {
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// verify checks an ES256 signature (r||s) over the signing input.
func (p *parsedToken) verify(pub *ecdsa.PublicKey) bool {
	if len(p.sig) != 64 {
		return false
	}
	digest := sha256.Sum256([]byte(p.signingInput))
	r := new(big.Int).SetBytes(p.sig[:32])
	s := new(big.Int).SetBytes(p.sig[32:])
	return ecdsa.Verify(pub, digest[:], r, s)
}

// stringClaim returns a string claim or "".
func (p *parsedToken) stringClaim(name string) string {
	s, _ := p.claims[name].(string)
	return s
}

// Decode splits a compact JWS and returns its header and claims without
// verifying anything. JSON numbers are returned as [json.Number], so no
// amount or time passes through float64.
func Decode(token string) (header, claims map[string]any, err error) {
	p, err := parseToken(token)
	if err != nil {
		return nil, nil, fmt.Errorf("kyapaytest: %w", err)
	}
	return p.header, p.claims, nil
}

// TokenID returns the jti claim of a token without verifying it, or "" if
// the token cannot be decoded or has no string jti. It is the key of
// [Issuer.Balance] and [Issuer.ChargesFor].
func TokenID(token string) string {
	p, err := parseToken(token)
	if err != nil {
		return ""
	}
	return p.stringClaim("jti")
}
