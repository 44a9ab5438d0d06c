package kyapay

import (
	"context"
	"crypto/ecdsa"
	"errors"
)

// StaticKeys is a fixed kid → public key map, for sellers that pin keys and
// for tests. It serves the same keys for every trusted issuer (the Verifier
// has already checked the issuer against its allow-list).
type StaticKeys map[string]*ecdsa.PublicKey

// Key implements [KeySource].
func (s StaticKeys) Key(_ context.Context, _, kid string) (*ecdsa.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, NewError(CodeKeyUnknown, "", errors.New("kid "+clipQuote(kid)+" not in static keys"))
}

// PeekKey implements [KeyPeeker].
func (s StaticKeys) PeekKey(_, kid string) (*ecdsa.PublicKey, bool) {
	k, ok := s[kid]
	return k, ok
}
