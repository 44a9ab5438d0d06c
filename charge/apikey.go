package charge

import (
	"errors"
	"fmt"
	"log/slog"
)

// redacted is what an [APIKey] prints as, whatever the verb or encoder.
const redacted = "[REDACTED]"

// APIKey is a Skyfire seller agent API key. It never prints itself: String,
// every fmt verb (%v %+v %#v %s %q %x %X %d ...), GoString, slog (LogValue),
// MarshalJSON and MarshalText all give "[REDACTED]". Call [APIKey.Reveal]
// to get the secret.
//
// Limits: string(key) reveals it, and so do printers that bypass methods:
// fmt on a struct that holds an APIKey in an unexported field, and
// encoding/json on a map keyed by APIKey (string-kinded keys are written
// as is). Keep keys in exported fields or in a [Config].
type APIKey string

// ErrInvalidAPIKey is wrapped by the errors of [APIKey.Check].
var ErrInvalidAPIKey = errors.New("charge: invalid API key")

// maxAPIKeyBytes bounds an API key; Skyfire's are far shorter.
const maxAPIKeyBytes = 4 << 10

// Check reports whether the key is well formed: not empty, at most 4 KiB,
// and only printable ASCII without whitespace (so it fits an HTTP header
// as is, and a stray line break or space from a file or an environment
// variable is caught when the key is loaded, not at the first charge).
// Skyfire documents no finer format. The error wraps [ErrInvalidAPIKey]
// and never quotes the key.
func (k APIKey) Check() error {
	switch {
	case k == "":
		return fmt.Errorf("%w: empty", ErrInvalidAPIKey)
	case len(k) > maxAPIKeyBytes:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidAPIKey, maxAPIKeyBytes)
	}
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			return fmt.Errorf("%w: contains whitespace (byte %d of %d)", ErrInvalidAPIKey, i+1, len(k))
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("%w: contains a control character (byte %d of %d)", ErrInvalidAPIKey, i+1, len(k))
		case c > 0x7f:
			return fmt.Errorf("%w: contains a non-ASCII byte (byte %d of %d)", ErrInvalidAPIKey, i+1, len(k))
		}
	}
	return nil
}

// Reveal returns the secret key.
func (k APIKey) Reveal() string { return string(k) }

// String returns "[REDACTED]".
func (k APIKey) String() string { return redacted }

// GoString returns "[REDACTED]".
func (k APIKey) GoString() string { return redacted }

// Format writes "[REDACTED]" for every verb and flag, so no fmt verb
// (including %x, %q and %#v) can reveal the key.
func (k APIKey) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue makes log/slog print "[REDACTED]".
func (k APIKey) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON returns the JSON string "[REDACTED]".
func (k APIKey) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "[REDACTED]", for encoders that honour
// encoding.TextMarshaler (encoding/xml, most YAML and TOML encoders).
func (k APIKey) MarshalText() ([]byte, error) { return []byte(redacted), nil }
