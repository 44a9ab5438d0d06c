package charge

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
)

const (
	oldKey = "sk_old_1f2e3d4c5b6a79880716253443526170"
	newKey = "sk_new_8a9b0c1d2e3f40516273849506172839"
)

// keyAPI is a fake charge API that accepts the keys in accept (changeable)
// and records the key of every request.
type keyAPI struct {
	*fakeAPI
	accept atomic.Value // map[string]bool
	mu     sync.Mutex
	seen   []string // guarded by mu
}

func newKeyAPI(t *testing.T, accept ...string) *keyAPI {
	k := &keyAPI{}
	k.setAccepted(accept...)
	k.fakeAPI = newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		key := r.Header.Get("skyfire-api-key")
		k.mu.Lock()
		k.seen = append(k.seen, key)
		k.mu.Unlock()
		if !k.accept.Load().(map[string]bool)[key] {
			reply(401, `{"code":"NOT_AUTHORIZED","message":"invalid API key `+key+`"}`)(w, r, nil)
			return
		}
		reply(200, `{"amountCharged":"0.01"}`)(w, r, nil)
	})
	return k
}

func (k *keyAPI) setAccepted(keys ...string) {
	m := make(map[string]bool)
	for _, key := range keys {
		m[key] = true
	}
	k.accept.Store(m)
}

func (k *keyAPI) keysSeen() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.seen...)
}

// keySeq is a KeySource that gives the keys in turn (the last one
// forever) and counts its calls.
type keySeq struct {
	mu    sync.Mutex
	keys  []APIKey
	err   error // returned instead of a key after the first call, if set
	calls int
}

func (s *keySeq) source(context.Context) (APIKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls > 1 && s.err != nil {
		return "", s.err
	}
	k := s.keys[min(s.calls, len(s.keys))-1]
	return k, nil
}

func (s *keySeq) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func TestRotatedKeyIsPickedUpOn401(t *testing.T) {
	t.Parallel()
	api := newKeyAPI(t, newKey) // the old key has been deleted
	seq := &keySeq{keys: []APIKey{oldKey, newKey}}
	c := newTestClient(t, api.URL, func(cfg *Config) { cfg.APIKey, cfg.KeySource = "", seq.source })
	if _, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01")); err != nil {
		t.Fatalf("Charge: %v; want it retried with the new key", err)
	}
	if got := api.keysSeen(); len(got) != 2 || got[0] != oldKey || got[1] != newKey {
		t.Errorf("server saw keys %q; want old then new", got)
	}
	// From now on the new key is used straight away.
	if _, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01")); err != nil {
		t.Fatal(err)
	}
	if got := api.keysSeen(); len(got) != 3 || got[2] != newKey || seq.count() != 2 {
		t.Errorf("server saw %q, source called %d times; want a third request with the new key, 2 calls", got, seq.count())
	}
}

func TestKeyRejectedAfterReread(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		source   *keySeq // nil: a static APIKey
		requests int
		errText  string
	}{
		{"static key", nil, 1, ""},
		{"source gives the same key", &keySeq{keys: []APIKey{oldKey}}, 1, ""},
		{"new key refused too", &keySeq{keys: []APIKey{oldKey, newKey}}, 2, ""},
		{"source fails", &keySeq{keys: []APIKey{oldKey}, err: errors.New("secret store unreachable")}, 1, "secret store unreachable"},
		{"source gives a malformed key", &keySeq{keys: []APIKey{oldKey, newKey + "\n"}}, 1, "invalid API key: contains whitespace"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newKeyAPI(t) // accepts nothing
			c := newTestClient(t, api.URL, func(cfg *Config) {
				if tt.source != nil {
					cfg.APIKey, cfg.KeySource = "", tt.source.source
				} else {
					cfg.APIKey = oldKey
				}
			})
			_, err := c.Charge(context.Background(), longToken, kyapay.MustParseAmount("0.01"))
			e := asError(t, err)
			wantOutcome(t, err, OutcomeDeclined)
			if e.Reason != ReasonAPIKeyRejected || e.Status != 401 {
				t.Errorf("got reason %v status %d; want api_key_rejected 401", e.Reason, e.Status)
			}
			if n := len(api.keysSeen()); n != tt.requests {
				t.Errorf("server got %d requests; want %d", n, tt.requests)
			}
			if tt.errText != "" && (e.Err == nil || !strings.Contains(e.Err.Error(), tt.errText)) {
				t.Errorf("Err = %v; want it to say %q", e.Err, tt.errText)
			}
			if p := leakedPiece(err.Error()+e.GoString(), oldKey, newKey, longToken); p != "" {
				t.Errorf("error %q leaks %q", err, p)
			}
		})
	}
}

// TestConcurrent401sReadSourceOnce checks that a burst of 401s after a
// rotation re-reads the key once, whatever the interleaving.
func TestConcurrent401sReadSourceOnce(t *testing.T) {
	t.Parallel()
	api := newKeyAPI(t, newKey)
	seq := &keySeq{keys: []APIKey{oldKey, newKey}}
	c := newTestClient(t, api.URL, func(cfg *Config) { cfg.APIKey, cfg.KeySource = "", seq.source })
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 16 {
		wg.Go(func() {
			if _, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01")); err != nil {
				failed.Add(1)
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 || seq.count() != 2 {
		t.Errorf("%d failures, source called %d times; want 0 and 2 (New and one re-read)", failed.Load(), seq.count())
	}
}

func TestFileKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "api-key")
	src := FileKey(path)
	for _, tt := range []struct{ content, want string }{
		{oldKey, oldKey},
		{oldKey + "\n", oldKey},
		{oldKey + "\r\n", oldKey},
		{oldKey + "\n\n", oldKey + "\n"}, // only one line break is ignored
	} {
		if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := src(context.Background())
		if err != nil || got.Reveal() != tt.want {
			t.Errorf("FileKey(%q) = %q, %v; want %q", tt.content, got.Reveal(), err, tt.want)
		}
	}
	// A key with a space inside is refused by New, without quoting it.
	if err := os.WriteFile(path, []byte("sk_live secret_part\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{BaseURL: ProductionBaseURL, KeySource: src})
	if !errors.Is(err, ErrInvalidAPIKey) || !errors.Is(err, ErrInvalidConfig) || strings.Contains(err.Error(), "secret_part") {
		t.Errorf("New with a malformed key file: %v", err)
	}
	// A missing file names the path.
	_, err = FileKey(filepath.Join(dir, "missing"))(context.Background())
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
	// An oversized file is refused without being echoed.
	if err := os.WriteFile(path, []byte(strings.Repeat("k", maxKeyFileBytes+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := src(context.Background()); !errors.Is(err, ErrInvalidAPIKey) || strings.Contains(err.Error(), "kkkk") {
		t.Errorf("oversized file: %v", err)
	}
}

// rateLimitedAPI answers 429 with retryAfter to the first n requests,
// then charges.
func rateLimitedAPI(t *testing.T, n int32, retryAfter string) *fakeAPI {
	var calls atomic.Int32
	return newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if calls.Add(1) <= n {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			reply(429, `{"code":"RATE_LIMITED","message":"slow down"}`)(w, r, nil)
			return
		}
		reply(200, `{"amountCharged":"0.01"}`)(w, r, nil)
	})
}

func TestRateLimitRetryAfter(t *testing.T) {
	t.Parallel()
	// A whole second, so that HTTP dates are exact, no later than the real
	// clock that the per-call deadline is set from.
	now := time.Now().Truncate(time.Second)
	for _, tt := range []struct {
		name       string
		limited    int32
		retryAfter string
		timeout    time.Duration
		wantWaits  []time.Duration
		wantErr    bool
		wantRA     time.Duration
		requests   int32
	}{
		{"waits and retries", 1, "2", 10 * time.Second, []time.Duration{2 * time.Second}, false, 0, 2},
		{"HTTP date", 1, now.Add(3 * time.Second).Format(http.TimeFormat), 10 * time.Second, []time.Duration{3 * time.Second}, false, 0, 2},
		{"date in the past", 1, now.Add(-time.Minute).Format(http.TimeFormat), 10 * time.Second, []time.Duration{0}, false, 0, 2},
		{"longer than the timeout", 1, "30", 10 * time.Second, nil, true, 30 * time.Second, 1},
		{"no Retry-After", 1, "", 10 * time.Second, nil, true, 0, 1},
		{"unparsable Retry-After", 1, "soon", 10 * time.Second, nil, true, 0, 1},
		{"huge Retry-After", 1, "99999999999999999999", 10 * time.Second, nil, true, maxRetryAfter, 1},
		{"bounded waits", 100, "0", 10 * time.Second, []time.Duration{0, 0, 0}, true, 0, maxRateLimitWaits + 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := rateLimitedAPI(t, tt.limited, tt.retryAfter)
			c := newTestClient(t, api.URL, func(cfg *Config) { cfg.Timeout = tt.timeout })
			var waits []time.Duration
			c.now = func() time.Time { return now }
			c.sleep = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }
			_, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01"))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Charge: %v; want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				e := asError(t, err)
				wantOutcome(t, err, OutcomeDeclined)
				if e.Reason != ReasonRateLimited || e.RetryAfter != tt.wantRA {
					t.Errorf("got reason %v RetryAfter %v; want rate_limited %v", e.Reason, e.RetryAfter, tt.wantRA)
				}
				if tt.wantRA > 0 && !strings.Contains(err.Error(), "retry after "+tt.wantRA.String()) {
					t.Errorf("Error() = %q; want it to give the Retry-After", err)
				}
			}
			if len(waits) != len(tt.wantWaits) {
				t.Fatalf("waited %v; want %v", waits, tt.wantWaits)
			}
			for i := range waits {
				if waits[i] != tt.wantWaits[i] {
					t.Errorf("wait %d = %v; want %v", i, waits[i], tt.wantWaits[i])
				}
			}
			if n := api.hits.Load(); n != tt.requests {
				t.Errorf("server got %d requests; want %d", n, tt.requests)
			}
		})
	}
}

func TestRateLimitWaitEndsWithContext(t *testing.T) {
	t.Parallel()
	api := rateLimitedAPI(t, 1, "2")
	c := newTestClient(t, api.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	c.sleep = func(ctx context.Context, d time.Duration) error { cancel(); <-ctx.Done(); return ctx.Err() }
	_, err := c.Charge(ctx, testToken, kyapay.MustParseAmount("0.01"))
	e := asError(t, err)
	if e.Reason != ReasonRateLimited || e.RetryAfter != 2*time.Second || api.hits.Load() != 1 {
		t.Errorf("got %v, %d requests; want the 429 with its Retry-After, 1 request", err, api.hits.Load())
	}
}

func TestServiceUnavailableRetryAfterNotRetried(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(503)
	})
	c := newTestClient(t, api.URL, nil)
	c.sleep = func(context.Context, time.Duration) error { t.Error("waited on a 503"); return nil }
	_, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01"))
	e := asError(t, err)
	wantOutcome(t, err, OutcomeUnknown)
	if e.RetryAfter != time.Second || api.hits.Load() != 1 {
		t.Errorf("got %v after %d requests; want RetryAfter 1s and no retry", err, api.hits.Load())
	}
}
