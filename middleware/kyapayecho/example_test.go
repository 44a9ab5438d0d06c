package kyapayecho_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapayecho"
)

// A paid echo route: the agent's pay token is verified and charged 0.01 USD
// before the handler runs; a request without a token gets the 402 refusal
// and the handler does not run. The fake issuer from kyapaytest stands in
// for Skyfire.
func Example() {
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience("seller-1"))
	defer iss.Close()
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Issuers:    []string{iss.Issuer()}, // in production: kyapay.ProductionIssuer
		JWKSURLs:   map[string]string{iss.Issuer(): iss.JWKSURL()},
		HTTPClient: iss.Client(),
		Audience:   "seller-1", // the seller agent's account ID
	})
	if err != nil {
		panic(err)
	}
	defer v.Close()
	cc, err := charge.New(charge.Config{BaseURL: iss.APIBaseURL(), APIKey: charge.APIKey(iss.APIKey()), HTTPClient: iss.Client()})
	if err != nil {
		panic(err)
	}
	m, err := middleware.New(middleware.Config{Verifier: v, Charger: cc})
	if err != nil {
		panic(err)
	}

	e := echo.New()
	e.GET("/report", func(c echo.Context) error {
		claims, _ := kyapayecho.Claims(c)
		receipt, _ := kyapayecho.Receipt(c)
		return c.String(http.StatusOK, "report for "+claims.Subject+", paid "+receipt.AmountCharged.String())
	}, kyapayecho.MustMiddleware(m, middleware.Pay(middleware.FixedPrice("0.01"))))

	for _, token := range []string{iss.Mint(kyapay.TypePay, kyapaytest.Subject("agent-42")), ""} {
		req := httptest.NewRequest(http.MethodGet, "/report", nil)
		if token != "" {
			req.Header.Set(kyapay.HeaderName, token)
		}
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		fmt.Println(w.Code, firstSentence(w.Body.String()))
	}
	fmt.Println("charges:", iss.ChargeCount())
	// Output:
	// 200 report for agent-42, paid 0.01
	// 402 ERROR: Missing pay token in the skyfire-pay-id header.
	// charges: 1
}

// An identity route: the handler reads the verified claims from the echo
// context.
func ExampleClaims() {
	s := newSeller()
	defer s.Close()

	e := echo.New()
	e.GET("/profile", func(c echo.Context) error {
		claims, _ := kyapayecho.Claims(c)
		email, _ := claims.Human.Field("email")
		return c.String(http.StatusOK, claims.Subject+" acts for "+email)
	}, kyapayecho.MustMiddleware(s.m, middleware.Identity("email")))

	tok := s.iss.Mint(kyapay.TypeKYA, kyapaytest.Subject("agent-42"), kyapaytest.Email("ada@example.com"))
	fmt.Println(serve(e, "/profile", tok))
	// Output:
	// 200 agent-42 acts for ada@example.com
}

// In ChargeAfter mode the handler runs first and its response, flushed or
// not, is held until the charge is confirmed. An error the handler returns
// is rendered inside the held response and nothing is charged; a token
// without the balance gets the 402 and none of the handler's output.
func ExampleMiddleware_chargeAfter() {
	s := newSeller()
	defer s.Close()

	req := middleware.Pay(middleware.FixedPrice("0.01"))
	req.Timing = middleware.ChargeAfter
	e := echo.New()
	e.GET("/events", func(c echo.Context) error {
		if c.QueryParam("fail") != "" {
			return echo.NewHTTPError(http.StatusServiceUnavailable, "try later")
		}
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(c.Response(), "event %d;", i)
			c.Response().Flush()
		}
		return nil
	}, kyapayecho.MustMiddleware(s.m, req))

	fmt.Println(serve(e, "/events", s.iss.Mint(kyapay.TypePay)))
	fmt.Println(serve(e, "/events?fail=1", s.iss.Mint(kyapay.TypePay)))
	fmt.Println(serve(e, "/events", s.iss.Mint(kyapay.TypePay, kyapaytest.Balance("0"))))
	fmt.Println("charges:", s.iss.ChargeCount())
	// Output:
	// 200 event 1;event 2;event 3;
	// 503 {"message":"try later"}
	// 402 ERROR: The given pay token is depleted.
	// charges: 1
}

// Middleware reports an invalid requirement at start-up; MustMiddleware
// panics instead.
func ExampleMiddleware() {
	s := newSeller()
	defer s.Close()

	_, err := kyapayecho.Middleware(s.m, middleware.Pay(middleware.FixedPrice("0")))
	fmt.Println(err)
	// Output:
	// kyapay/middleware: fixed price must be greater than zero (use a zero Price for a free route)
}

// seller is the fake issuer and a core middleware trusting it.
type seller struct {
	iss *kyapaytest.Issuer
	v   *kyapay.Verifier
	m   *middleware.Middleware
}

func newSeller() *seller {
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience("seller-1"))
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Issuers:    []string{iss.Issuer()},
		JWKSURLs:   map[string]string{iss.Issuer(): iss.JWKSURL()},
		HTTPClient: iss.Client(),
		Audience:   "seller-1",
	})
	if err != nil {
		panic(err)
	}
	cc, err := charge.New(charge.Config{BaseURL: iss.APIBaseURL(), APIKey: charge.APIKey(iss.APIKey()), HTTPClient: iss.Client()})
	if err != nil {
		panic(err)
	}
	m, err := middleware.New(middleware.Config{Verifier: v, Charger: cc})
	if err != nil {
		panic(err)
	}
	return &seller{iss: iss, v: v, m: m}
}

func (s *seller) Close() {
	s.v.Close()
	s.iss.Close()
}

// serve sends GET path with the token to h and returns the status and the
// body's first sentence.
func serve(h http.Handler, path, token string) string {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set(kyapay.HeaderName, token)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return fmt.Sprint(w.Code, " ", firstSentence(strings.TrimSuffix(w.Body.String(), "\n")))
}

// firstSentence shortens the long refusal texts.
func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return s
}
