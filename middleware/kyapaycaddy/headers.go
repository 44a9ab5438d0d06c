package kyapaycaddy

import (
	"net/http"
	"strings"

	"github.com/kyapay/kyapay-go/kyapay"
)

// The request headers the handler sets for the upstream on an accepted
// request. Every client-sent header in the Kyapay- namespace (in any case,
// and with '_' or '.' in place of '-') is removed first, so the upstream
// can trust these. A header whose value would contain a control character
// is left out.
const (
	// HeaderSubject is the token's sub claim: the buyer agent's ID.
	HeaderSubject = "Kyapay-Subject"
	// HeaderTokenType is the token's type: "kya", "pay" or "kya-pay".
	HeaderTokenType = "Kyapay-Token-Type"
	// HeaderTokenID is the token's jti claim, the key to reconcile a
	// charge with Skyfire.
	HeaderTokenID = "Kyapay-Token-Id"
	// HeaderEmail is the buyer's email from the token's hid claim, when
	// the token carries one.
	HeaderEmail = "Kyapay-Email"
	// HeaderCharged is the amount Skyfire confirmed charging for this
	// request (decimal USD, such as "0.01"), set when the route charged
	// before calling the upstream.
	HeaderCharged = "Kyapay-Charged"
	// HeaderPrice is the amount that will be charged when the upstream
	// answers with a chargeable status (a 2xx other than 204 and 205, to
	// anything but HEAD), set when the charge comes after the upstream
	// answered: on timing after routes, and for conditional requests
	// (If-None-Match, If-Modified-Since) on any priced route, which may be
	// answered 304 and then cost nothing. It is absent on "service" price
	// routes, whose price only Skyfire knows.
	HeaderPrice = "Kyapay-Price"
)

// namespace is the request header prefix reserved for verified identity.
const namespace = "Kyapay-"

// isDash reports whether c separates words in a header name as some
// upstreams read it (CGI maps '-', '_' and '.' alike).
func isDash(c byte) bool { return c == '-' || c == '_' || c == '.' }

// normHeader lower-cases name and maps '_' and '.' to '-'.
func normHeader(name string) string {
	b := []byte(strings.ToLower(name))
	for i, c := range b {
		if isDash(c) {
			b[i] = '-'
		}
	}
	return string(b)
}

// stripClientHeaders removes every header in the Kyapay- namespace and
// every spelling of the token header other than its canonical one (which
// the gate reads, and which is removed once the request is accepted).
func stripClientHeaders(h http.Header, token, tokenNorm string) {
	for k := range h {
		if inNamespace(k) || (k != token && len(k) == len(tokenNorm) && normHeader(k) == tokenNorm) {
			delete(h, k)
		}
	}
}

// The identity of an accepted request, in the order of the Kyapay-*
// headers and {kyapay.*} placeholders.
const (
	idSubject = iota
	idTokenType
	idTokenID
	idEmail
	idCharged
	idPrice
	idCount
)

var (
	idHeaders      = [idCount]string{HeaderSubject, HeaderTokenType, HeaderTokenID, HeaderEmail, HeaderCharged, HeaderPrice}
	idPlaceholders = map[string]int{
		"kyapay.subject": idSubject, "kyapay.token_type": idTokenType, "kyapay.token_id": idTokenID,
		"kyapay.email": idEmail, "kyapay.charged": idCharged, "kyapay.price": idPrice,
	}
)

// identity holds the values of the Kyapay-* headers of one request; the
// headers share its array, so setting them allocates nothing.
type identity [idCount]string

// set records the identity of an accepted request and passes it upstream
// in the Kyapay-* headers. A value it lacks (no email, no charge) keeps
// what an earlier kyapay handler on the request recorded; values with a
// control character are left out.
func (id *identity) set(h http.Header, c *kyapay.Claims, charged, price string) {
	email, _ := c.Human.Field("email")
	for i, v := range [idCount]string{c.Subject, c.Type.String(), c.ID, email, charged, price} {
		if v != "" && validValue(v) {
			id[i] = v
		}
		if id[i] != "" {
			h[idHeaders[i]] = id[i : i+1 : i+1]
		}
	}
}

// placeholder answers the {kyapay.*} placeholders of the request (empty
// until a kyapay handler accepted it).
func (id *identity) placeholder(key string) (any, bool) {
	i, ok := idPlaceholders[key]
	if !ok {
		return nil, false
	}
	return id[i], true
}

// validValue reports whether v can be sent as a header value: no control
// characters but tab.
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
