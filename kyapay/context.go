package kyapay

import "context"

// claimsKey is the context key for verified claims. Its type is unexported
// so no other package can collide with it.
type claimsKey struct{}

// NewContext returns a copy of ctx carrying the verified claims c.
func NewContext(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// FromContext returns the verified claims stored in ctx by [NewContext], and
// whether there were any.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}
