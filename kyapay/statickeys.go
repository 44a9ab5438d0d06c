package kyapay

import (
	"context"
	"crypto/ecdsa"
	"fmt"
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
	return nil, NewError(CodeKeyUnknown, "", fmt.Errorf("kid %q not in static keys", clip(kid)))
}
