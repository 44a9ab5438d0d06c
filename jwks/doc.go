// Package jwks fetches, caches and refreshes the JSON Web Key Sets (JWKS) of
// trusted token issuers, and hands out their ES256 (ECDSA P-256) public keys
// by issuer and key ID, for verifying Skyfire KYAPay tokens.
//
// # Usage
//
// Create one [Cache] per process with the issuers you trust and the URL of
// each one's key set, and give it to the token verifier (a *Cache
// implements kyapay.KeySource):
//
//	keys, err := jwks.New(ctx, jwks.Config{
//		Issuers: map[string]string{
//			"https://app.skyfire.xyz": "https://app.skyfire.xyz/.well-known/jwks.json",
//		},
//	})
//	if err != nil { ... }
//	defer keys.Close()
//	pub, err := keys.Key(ctx, iss, kid) // *ecdsa.PublicKey
//
// The issuer must be one of Config.Issuers: the cache never fetches a URL
// derived from a token. Check the issuer claim against your allow-list before
// asking for a key, as the verifier does.
//
// # Freshness and failures
//
// Each issuer's keys are parsed once per fetch ([ParseSet]) into a kid ->
// key map that is swapped atomically, so a lookup of a known kid takes no
// lock and does not allocate. Keys are refreshed in the background at 80% of
// their TTL: the response's Cache-Control max-age clamped between
// Config.MinTTL and Config.MaxTTL, or Config.TTL (60 minutes, as Skyfire
// advises) without one. Requests never wait for such a refresh.
//
// A failed fetch (network error, non-200 status, oversized body, no usable
// key) never discards keys: the last good set is served for up to
// [Config.MaxStale] after it was fetched. Past that, [Cache.Key] fails closed
// with [ErrUnavailable].
//
// # Unknown key IDs and rotation
//
// When a token names a kid the cached set lacks, Key refetches the set,
// rate-limited per issuer. A kid no fetch has been asked for yet, such as
// the issuer's new key right after a rotation, starts a fetch once
// [Config.NewKIDInterval] (5 s) has passed since the previous fetch
// attempt; a kid that a fetch already came back without waits
// [Config.UnknownKIDInterval] (30 s). Whatever the kids, at most
// [Config.MaxFetchesPerMinute] (6) automatic fetches of one issuer start
// in any minute, so tokens naming ever new random kids cannot make the
// cache hammer the issuer. At most one fetch per issuer runs at a time and
// concurrent callers join it, so a burst of tokens with a new kid causes
// one fetch, and no request waits longer than one fetch (bounded by
// [Config.FetchTimeout] and the request's context). When no fetch is
// allowed, Key answers [ErrKeyNotFound] at once.
//
// [Cache.PeekKey] answers from the current set without fetching, locking
// or allocating; a verifier uses it to check, each time it reuses a token
// it verified earlier, that the token's key is still published.
//
// A JWKS URL that redirects to another host is not followed.
//
// # Startup
//
// By default [New] returns immediately and fetches in the background; Key
// calls that arrive first wait for that fetch. With [Config.FailFast], New
// fetches every issuer first and returns an error if any fetch fails.
//
// # Lifecycle
//
// The context given to New and [Cache.Close] both stop the background
// goroutines; Close also waits for them. Use [Config.OnRefresh] or
// [Config.Logger] to observe fetches, and [Config.Clock] to drive the cache
// with a fake clock in tests.
package jwks
