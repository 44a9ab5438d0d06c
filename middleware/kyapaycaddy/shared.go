package kyapaycaddy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/caddyserver/caddy/v2"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
)

// The Verifiers and charge clients in use, shared by every handler with the
// same settings and reference counted: a config reload provisions the new
// handlers (taking a reference) before it cleans up the old ones
// (releasing theirs), so an unchanged Verifier keeps its cached keys across
// reloads, and the last release stops it.
var (
	verifiers = caddy.NewUsagePool()
	chargers  = caddy.NewUsagePool()
)

// verifierSettings are the resolved settings that make a Verifier.
type verifierSettings struct {
	Issuers     []string `json:"issuers"`
	Audience    string   `json:"aud"`
	AnyAudience bool     `json:"any_aud"`
	ServiceID   string   `json:"ssi"`
	Env         string   `json:"env"`
}

// key identifies the settings in the pool: equal settings, whatever the
// order of the issuers, share a Verifier.
func (s verifierSettings) key() string {
	s.Issuers = slices.Clone(s.Issuers)
	slices.Sort(s.Issuers)
	s.Issuers = slices.Compact(s.Issuers)
	b, _ := json.Marshal(s)
	return "verifier:" + string(b)
}

// sharedVerifier is a pooled Verifier; the pool closes it when its last
// user releases it.
type sharedVerifier struct{ *kyapay.Verifier }

// Destruct stops the Verifier's key refresh.
func (v sharedVerifier) Destruct() error { return v.Close() }

// verifierConfig is the Verifier configuration for s.
func (s verifierSettings) verifierConfig() kyapay.VerifierConfig {
	return kyapay.VerifierConfig{
		Issuers:              s.Issuers,
		Audience:             s.Audience,
		InsecureSkipAudience: s.AnyAudience,
		ServiceID:            s.ServiceID,
		Env:                  s.Env,
	}
}

// acquireVerifier returns the Verifier for s, building it if no handler
// holds one; each successful call must be paired with
// verifiers.Delete(s.key()).
func acquireVerifier(s verifierSettings) (*kyapay.Verifier, error) {
	val, _, err := verifiers.LoadOrNew(s.key(), func() (caddy.Destructor, error) {
		v, err := kyapay.NewVerifier(s.verifierConfig())
		if err != nil {
			return nil, fmt.Errorf("issuers: %w", err)
		}
		return sharedVerifier{v}, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(sharedVerifier).Verifier, nil
}

// chargerSettings are the resolved settings that make a charge client.
type chargerSettings struct {
	baseURL string
	apiKey  string
}

// key identifies the settings in the pool by the URL and a hash of the
// key, so the pool never holds the key itself as a map key.
func (s chargerSettings) key() string {
	sum := sha256.Sum256([]byte(s.apiKey))
	return "charger:" + s.baseURL + "\x00" + hex.EncodeToString(sum[:])
}

// sharedCharger is a pooled charge client.
type sharedCharger struct{ *charge.Client }

// Destruct closes the client's idle connections (and so their
// goroutines); nothing else about a charge client needs stopping.
func (c sharedCharger) Destruct() error {
	c.CloseIdleConnections()
	return nil
}

// acquireCharger returns the charge client for s; each successful call
// must be paired with chargers.Delete(s.key()).
func acquireCharger(s chargerSettings) (*charge.Client, error) {
	val, _, err := chargers.LoadOrNew(s.key(), func() (caddy.Destructor, error) {
		cc, err := charge.New(charge.Config{
			BaseURL: s.baseURL,
			APIKey:  charge.APIKey(s.apiKey),
		})
		if err != nil {
			return nil, fmt.Errorf("api_url: %w", err)
		}
		return sharedCharger{Client: cc}, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(sharedCharger).Client, nil
}
