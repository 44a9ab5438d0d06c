package jwks

import (
	"errors"
	"fmt"
	"net/http"

	textclip "github.com/kyapay/kyapay-go/internal/clip"
)

// Errors returned by this package. Compare with [errors.Is]: the returned
// errors wrap these sentinels and add detail (issuer, kid, cause).
var (
	// ErrUnknownIssuer means the issuer is not a key of Config.Issuers.
	// Nothing is fetched for such an issuer.
	ErrUnknownIssuer = errors.New("jwks: issuer not trusted")

	// ErrKeyNotFound means the issuer's current key set, fetched
	// successfully, has no usable key with the requested kid.
	ErrKeyNotFound = errors.New("jwks: key not found")

	// ErrUnavailable means the issuer's keys could not be obtained: no fetch
	// has succeeded yet, the last good keys are older than Config.MaxStale,
	// the most recent fetch failed while looking for an unknown kid, or
	// the wait for a fetch was cut short by the caller's context. The error
	// also wraps the cause (a [*FetchError] or a context error) when there is
	// one. It is a server-side condition, not the token's fault.
	ErrUnavailable = errors.New("jwks: keys unavailable")

	// ErrClosed is returned by [Cache.Key] and [Cache.Refresh] after
	// [Cache.Close] or after the context given to [New] is done.
	ErrClosed = errors.New("jwks: cache closed")

	// ErrInvalidSet is wrapped by [ParseSet] errors: the document is not a
	// JWK Set, or it has no usable key.
	ErrInvalidSet = errors.New("jwks: invalid JWK set")

	// ErrBodyTooLarge is wrapped by a [*FetchError] when the JWKS response
	// is larger than Config.MaxBodyBytes. Bodies are never truncated.
	ErrBodyTooLarge = errors.New("jwks: response body too large")
)

// FetchError describes a failed JWKS fetch. It is passed to
// Config.OnRefresh (as RefreshEvent.Err), returned by [Cache.Refresh] and
// wrapped by [ErrUnavailable] errors from [Cache.Key].
type FetchError struct {
	// Issuer and URL identify what was fetched. A password in the URL is
	// redacted.
	Issuer, URL string
	// StatusCode is the HTTP status of the response, or 0 when no response
	// was received. The body of a non-200 response is never included.
	StatusCode int
	// Err is the underlying cause: a transport or context error,
	// [ErrBodyTooLarge], or a [ParseSet] error (wrapping [ErrInvalidSet]).
	// It is nil for a plain non-200 status.
	Err error
}

// Error implements error.
func (e *FetchError) Error() string {
	switch {
	case e.Err == nil:
		return fmt.Sprintf("jwks: fetching %s: unexpected status %d %s", e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	case e.StatusCode != 0:
		return fmt.Sprintf("jwks: fetching %s (status %d): %v", e.URL, e.StatusCode, e.Err)
	default:
		return fmt.Sprintf("jwks: fetching %s: %v", e.URL, e.Err)
	}
}

// Unwrap returns e.Err.
func (e *FetchError) Unwrap() error { return e.Err }

// clip shortens attacker-controlled strings (kid, issuer from a token) before
// they go into an error message.
// The result is at most 64 bytes, cut at a UTF-8 boundary, followed by a
// marker giving the full length.
func clip(s string) string { return textclip.Marked(s, 64) }
