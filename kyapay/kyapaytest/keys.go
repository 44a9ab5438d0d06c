package kyapaytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// keyEntry is one of the issuer's keys. Fields other than kid and priv are
// guarded by Issuer.keysMu.
type keyEntry struct {
	kid       string
	priv      *ecdsa.PrivateKey
	published bool // listed in the JWKS
	retired   bool // never chosen as the signer again
}

func newKeyEntry(kid string) *keyEntry {
	return &keyEntry{kid: kid, priv: NewKey(), published: true}
}

// NewKey returns a fresh P-256 private key, for [SignWith] in tests of
// tokens signed by a key the issuer does not publish.
func NewKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic("kyapaytest: generating a P-256 key: " + err.Error())
	}
	return k
}

// findKeyLocked returns the key with the given kid, published or not.
// keysMu must be held.
func (i *Issuer) findKeyLocked(kid string) *keyEntry {
	for _, k := range i.keys {
		if k.kid == kid {
			return k
		}
	}
	return nil
}

// mustFindKeyLocked is findKeyLocked that panics on an unknown kid.
func (i *Issuer) mustFindKeyLocked(kid string) *keyEntry {
	k := i.findKeyLocked(kid)
	if k == nil {
		panic(fmt.Sprintf("kyapaytest: unknown key ID %q", kid))
	}
	return k
}

// addKeyLocked creates, stores and publishes a new key. keysMu must be held
// for writing.
func (i *Issuer) addKeyLocked() *keyEntry {
	for {
		kid := "key-" + strconv.Itoa(i.nextKey)
		i.nextKey++
		if i.findKeyLocked(kid) == nil {
			k := newKeyEntry(kid)
			i.keys = append(i.keys, k)
			return k
		}
	}
}

// AddKey creates a new key ("key-2", "key-3", ...) and publishes it in the
// JWKS without signing with it, as an issuer does before a rotation. It
// returns the new kid.
func (i *Issuer) AddKey() string {
	i.keysMu.Lock()
	defer i.keysMu.Unlock()
	return i.addKeyLocked().kid
}

// RotateKey creates and publishes a new key and makes it the signing key.
// The previous key stays published. It returns the new kid.
func (i *Issuer) RotateKey() string {
	i.keysMu.Lock()
	defer i.keysMu.Unlock()
	k := i.addKeyLocked()
	i.signer = k.kid
	return k.kid
}

// RetireKey stops signing with a key but keeps publishing it, so tokens it
// already signed still verify. If it was the signing key, the newest
// published key that is not retired becomes the signing key; if there is
// none, a new key is created for it. RetireKey panics if kid is unknown.
func (i *Issuer) RetireKey(kid string) {
	i.keysMu.Lock()
	defer i.keysMu.Unlock()
	i.mustFindKeyLocked(kid).retired = true
	i.replaceSignerLocked(kid)
}

// RemoveKey stops publishing a key (and signing with it), so tokens it
// signed no longer verify. The key stays known to [KeyID], so tests can
// still mint tokens with it. The signing key is replaced as by
// [Issuer.RetireKey]. RemoveKey panics if kid is unknown.
func (i *Issuer) RemoveKey(kid string) {
	i.keysMu.Lock()
	defer i.keysMu.Unlock()
	k := i.mustFindKeyLocked(kid)
	k.retired = true
	k.published = false
	i.replaceSignerLocked(kid)
}

// replaceSignerLocked picks a new signer if kid is the current one.
func (i *Issuer) replaceSignerLocked(kid string) {
	if i.signer != kid {
		return
	}
	for j := len(i.keys) - 1; j >= 0; j-- {
		if k := i.keys[j]; k.published && !k.retired {
			i.signer = k.kid
			return
		}
	}
	i.signer = i.addKeyLocked().kid
}

// SigningKeyID returns the kid of the key [Issuer.Mint] signs with by
// default.
func (i *Issuer) SigningKeyID() string {
	i.keysMu.RLock()
	defer i.keysMu.RUnlock()
	return i.signer
}

// KeyIDs returns the kids currently published in the JWKS, oldest first.
func (i *Issuer) KeyIDs() []string {
	i.keysMu.RLock()
	defer i.keysMu.RUnlock()
	var ids []string
	for _, k := range i.keys {
		if k.published {
			ids = append(ids, k.kid)
		}
	}
	return ids
}

// PublicKey returns the public key with the given kid, published or not,
// and whether the issuer has such a key.
func (i *Issuer) PublicKey(kid string) (*ecdsa.PublicKey, bool) {
	i.keysMu.RLock()
	defer i.keysMu.RUnlock()
	k := i.findKeyLocked(kid)
	if k == nil {
		return nil, false
	}
	return &k.priv.PublicKey, true
}

// publishedKey returns the published public key with the given kid.
func (i *Issuer) publishedKey(kid string) (*ecdsa.PublicKey, bool) {
	i.keysMu.RLock()
	defer i.keysMu.RUnlock()
	k := i.findKeyLocked(kid)
	if k == nil || !k.published {
		return nil, false
	}
	return &k.priv.PublicKey, true
}

// jwk is one key of the published JWKS.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKS returns the key set document the issuer currently serves:
// {"keys":[{"kty":"EC","crv":"P-256","x":...,"y":...,"kid":...,"alg":"ES256","use":"sig"}]}.
func (i *Issuer) JWKS() []byte {
	i.keysMu.RLock()
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, k := range i.keys {
		if !k.published {
			continue
		}
		point, err := k.priv.PublicKey.Bytes() // 0x04 || X || Y
		if err != nil {
			panic("kyapaytest: encoding public key: " + err.Error())
		}
		set.Keys = append(set.Keys, jwk{
			Kty: "EC",
			Crv: "P-256",
			X:   b64(point[1:33]),
			Y:   b64(point[33:65]),
			Kid: k.kid,
			Alg: "ES256",
			Use: "sig",
		})
	}
	i.keysMu.RUnlock()
	b, err := json.Marshal(set)
	if err != nil {
		panic("kyapaytest: encoding JWKS: " + err.Error())
	}
	return b
}

// serveJWKS answers GET /.well-known/jwks.json.
func (i *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	maxAge := int64(i.cfg.jwksMaxAge.Seconds())
	if maxAge < 0 {
		maxAge = 0
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age="+strconv.FormatInt(maxAge, 10))
	w.WriteHeader(http.StatusOK)
	w.Write(i.JWKS())
}
