package jwks

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"hash/maphash"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Bounds on how long the background refresh loop sleeps between checks.
const (
	minLoopWait = time.Second
	maxLoopWait = time.Hour
)

// Cache holds the ES256 verification keys of a fixed set of trusted issuers
// and keeps them fresh. Create it with [New] and stop it with [Cache.Close].
//
// A Cache is safe for concurrent use by multiple goroutines. [Cache.Key] for
// a known kid of fresh keys is lock-free and does not allocate.
type Cache struct {
	s       *settings
	issuers map[string]*issuer // immutable after New
	sf      singleflight.Group // one fetch per issuer (key: issuer name) in flight

	ctx    context.Context    // parent of every fetch; done on Close or when New's ctx is done
	cancel context.CancelFunc // cancels ctx
	wake   chan struct{}      // capacity 1: nudges the refresh loop after a fetch

	// lifeMu guards stopAfter, and orders every "closed? no: wg.Add" pair
	// (under RLock) before Close's closed.Store(true) (under Lock), hence
	// before Close's wg.Wait.
	lifeMu    sync.RWMutex
	stopAfter func() bool    // unregisters the Close hook on New's ctx
	closed    atomic.Bool    // set by Close while holding lifeMu; read lock-free by Key
	wg        sync.WaitGroup // the refresh loop and running fetches
	closeOnce sync.Once
	done      chan struct{} // closed when Close has stopped every goroutine

	// listeners are the functions added with AddRefreshListener, swapped
	// whole under listenMu and read without locks.
	listenMu  sync.Mutex
	listeners atomic.Pointer[[]*refreshListener]
}

// refreshListener is one AddRefreshListener registration; its address
// identifies it for removal.
type refreshListener struct{ fn func(RefreshEvent) }

// AddRefreshListener registers fn to be called after every fetch attempt,
// like Config.OnRefresh (after it), and returns a function that removes
// it. Components built after the Cache (a middleware reporting key
// refreshes to its metrics) use it; the same rules as OnRefresh apply: fn
// must return quickly and must not call Close.
func (c *Cache) AddRefreshListener(fn func(RefreshEvent)) (remove func()) {
	if fn == nil {
		return func() {}
	}
	l := &refreshListener{fn: fn}
	c.listenMu.Lock()
	var cur []*refreshListener
	if p := c.listeners.Load(); p != nil {
		cur = *p
	}
	next := append(append([]*refreshListener(nil), cur...), l)
	c.listeners.Store(&next)
	c.listenMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.listenMu.Lock()
			defer c.listenMu.Unlock()
			var cur []*refreshListener
			if p := c.listeners.Load(); p != nil {
				cur = *p
			}
			next := make([]*refreshListener, 0, len(cur))
			for _, x := range cur {
				if x != l {
					next = append(next, x)
				}
			}
			c.listeners.Store(&next)
		})
	}
}

// issuer is the per-issuer state.
type issuer struct {
	name  string
	url   string // what is fetched
	shown string // url with any password redacted, for errors, logs and events

	// keys is the last good set; nil until a fetch succeeds. Swapped
	// atomically, read without locks.
	keys atomic.Pointer[keySet]
	// nextAuto is the Clock time (UnixNano) before which no automatic fetch
	// may start. It mirrors lastAttempt+UnknownKIDInterval so the hot path
	// can skip taking mu.
	nextAuto atomic.Int64

	mu          sync.Mutex // guards the fields below
	inflight    bool       // a fetch is running; while true, Cache.sf holds the key name
	attempted   bool       // an attempt has started at least once
	lastAttempt time.Time  // Clock time the latest attempt started
	lastErr     error      // outcome of the latest completed attempt; nil on success
	// starts is a ring of the Clock times the latest fetch attempts
	// started (len MaxFetchesPerMinute); starts[next] is the oldest.
	starts []time.Time
	next   int
	// missed holds hashes of kids that a successful fetch, started after
	// they were asked for, came back without. Such a kid waits
	// UnknownKIDInterval; any other unknown kid only NewKIDInterval. It is
	// emptied when it reaches maxMissed entries.
	missed map[uint64]struct{}
}

// maxMissed bounds issuer.missed. Kids beyond it are forgotten, which
// only shortens their wait to NewKIDInterval; MaxFetchesPerMinute still
// holds.
const maxMissed = 256

// keySet is an immutable snapshot of one successful fetch.
type keySet struct {
	keys      map[string]*ecdsa.PublicKey
	refreshAt time.Time // fetch time + 80% of the effective TTL
	staleAt   time.Time // fetch time + max(MaxStale, effective TTL); unusable from then on
}

// errJoin is returned only if the in-flight invariant were broken (a join
// that found no running fetch); it is never expected.
var errJoin = errors.New("jwks: internal error: no fetch in flight to join")

// New validates cfg and returns a Cache for its issuers.
//
// With cfg.FailFast, New fetches every issuer concurrently before returning
// and fails if any fetch fails. Otherwise New starts those fetches in the
// background and returns at once; a [Cache.Key] call that arrives before an
// issuer's first fetch completes waits for it.
//
// ctx controls the lifetime of the background work: when it is done, the
// Cache behaves as if [Cache.Close] had been called. Pass a long-lived
// context (the server's), not a request's.
func New(ctx context.Context, cfg Config) (*Cache, error) {
	if ctx == nil {
		return nil, errors.New("jwks: nil context")
	}
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	c := &Cache{
		s:       s,
		issuers: make(map[string]*issuer, len(s.issuers)),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	for name, raw := range s.issuers {
		shown := raw
		if u, err := url.Parse(raw); err == nil {
			shown = u.Redacted()
		}
		c.issuers[name] = &issuer{name: name, url: raw, shown: shown,
			starts: make([]time.Time, s.maxPerMinute), missed: make(map[uint64]struct{})}
	}
	// The hook may run at once if ctx is already done; it then waits in
	// Close for lifeMu, so it sees stopAfter set.
	c.lifeMu.Lock()
	c.stopAfter = context.AfterFunc(ctx, func() { c.Close() })
	c.lifeMu.Unlock()

	now := s.clock()
	chans := make(map[string]<-chan singleflight.Result, len(c.issuers))
	for name, is := range c.issuers {
		is.mu.Lock()
		ch, err := c.startLocked(is, ReasonStartup, now)
		is.mu.Unlock()
		if err != nil {
			c.Close()
			return nil, err
		}
		chans[name] = ch
	}
	if s.failFast {
		var errs []error
		for _, ch := range chans {
			if r := <-ch; r.Err != nil {
				errs = append(errs, r.Err)
			}
		}
		if len(errs) > 0 {
			c.Close()
			return nil, fmt.Errorf("jwks: initial fetch failed: %w", errors.Join(errs...))
		}
	}
	if !s.noLoop {
		if !c.enter() {
			return nil, ErrClosed
		}
		go c.loop()
	}
	return c, nil
}

// Key returns the public key with the given kid from issuer's key set.
//
// For a known kid of fresh keys it only reads memory. If the keys are due for
// refresh, Key starts a background refresh and still answers from the current
// keys. It blocks only when it must: the issuer has no keys yet or they are
// older than Config.MaxStale, or the kid is unknown and a fetch is allowed
// (see Config.NewKIDInterval, Config.UnknownKIDInterval and
// Config.MaxFetchesPerMinute) or already running. Such a wait ends when
// that fetch ends or ctx is done, whichever is first, and never lasts longer
// than Config.FetchTimeout.
//
// Errors wrap [ErrUnknownIssuer], [ErrKeyNotFound], [ErrUnavailable] or
// [ErrClosed]. An empty kid is always [ErrKeyNotFound]. The returned key is
// shared: callers must not modify it. A key that a refresh finds unchanged
// keeps its pointer.
func (c *Cache) Key(ctx context.Context, issuer, kid string) (*ecdsa.PublicKey, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	is := c.issuers[issuer]
	if is == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownIssuer, clip(issuer))
	}
	if kid == "" {
		// ParseSet never yields a key without kid: do not fetch for it.
		return nil, fmt.Errorf("%w: token has no kid (issuer %q)", ErrKeyNotFound, clip(is.name))
	}
	now := c.s.clock()
	ks := is.keys.Load()
	if ks != nil && now.Before(ks.staleAt) {
		if !now.Before(ks.refreshAt) {
			c.refreshSoon(is, now)
		}
		if k, ok := ks.keys[kid]; ok {
			return k, nil
		}
		return c.fetchAndLook(ctx, is, kid, ReasonUnknownKID, now)
	}
	if ks == nil {
		return c.fetchAndLook(ctx, is, kid, ReasonStartup, now)
	}
	return c.fetchAndLook(ctx, is, kid, ReasonTTL, now) // older than MaxStale
}

// PeekKey returns the key with the given kid from the issuer's most
// recently fetched key set, and whether there is one. Unlike [Cache.Key]
// it never fetches, waits, locks or allocates, and it does not look at
// the clock: it answers from the last successful fetch however old (Key
// is the one that fails closed past Config.MaxStale). It answers false
// for an unknown issuer, before the first successful fetch and after
// Close. A verifier uses it to check, on every use of a token it
// verified earlier, that the token's key is still published.
func (c *Cache) PeekKey(issuer, kid string) (*ecdsa.PublicKey, bool) {
	if c.closed.Load() {
		return nil, false
	}
	is := c.issuers[issuer]
	if is == nil {
		return nil, false
	}
	ks := is.keys.Load()
	if ks == nil {
		return nil, false
	}
	k, ok := ks.keys[kid]
	return k, ok
}

// Refresh fetches issuer's key set now and waits for the result, or joins a
// fetch of that issuer already in flight. It is not rate-limited. On failure
// the previous keys are kept and the error (a [*FetchError], or an
// [ErrUnavailable] error if ctx ended the wait) is returned.
func (c *Cache) Refresh(ctx context.Context, issuer string) error {
	if c.closed.Load() {
		return ErrClosed
	}
	is := c.issuers[issuer]
	if is == nil {
		return fmt.Errorf("%w: %q", ErrUnknownIssuer, clip(issuer))
	}
	is.mu.Lock()
	var ch <-chan singleflight.Result
	if is.inflight {
		ch = c.joinLocked(is)
	} else {
		var err error
		if ch, err = c.startLocked(is, ReasonManual, c.s.clock()); err != nil {
			is.mu.Unlock()
			return err
		}
	}
	is.mu.Unlock()
	r, err := c.wait(ctx, is, ch)
	if err != nil {
		return err
	}
	return r.Err
}

// Close stops the background refresh loop, cancels fetches in flight and
// waits for every goroutine the Cache started to finish. After Close, Key
// and Refresh return [ErrClosed]. Close is idempotent and always returns
// nil. It must not be called from Config.OnRefresh.
func (c *Cache) Close() error {
	c.closeOnce.Do(func() {
		c.lifeMu.Lock()
		c.closed.Store(true)
		stop := c.stopAfter
		c.lifeMu.Unlock()
		if stop != nil {
			stop()
		}
		c.cancel()
		c.wg.Wait()
		if c.s.ownClient {
			c.s.client.CloseIdleConnections()
		}
		close(c.done)
	})
	return nil
}

// enter registers a goroutine with c.wg unless the Cache is closed. Because
// Close sets closed while holding lifeMu exclusively, every successful enter
// happens before Close's wg.Wait.
func (c *Cache) enter() bool {
	c.lifeMu.RLock()
	defer c.lifeMu.RUnlock()
	if c.closed.Load() {
		return false
	}
	c.wg.Add(1)
	return true
}

// fetchAndLook handles the slow path of Key: the kid is absent from fresh
// keys, or there are no fresh keys. It joins the fetch in flight, or starts
// one for reason if the rate limit allows, and looks again; otherwise it
// looks again at once, since a fetch may have finished in the meantime.
//
// An unknown kid that no fetch has come back without yet (see
// issuer.missed) may start a fetch after NewKIDInterval; one that a fetch
// already missed waits UnknownKIDInterval like every other automatic
// fetch.
func (c *Cache) fetchAndLook(ctx context.Context, is *issuer, kid, reason string, now time.Time) (*ecdsa.PublicKey, error) {
	h := kidHash(kid)
	is.mu.Lock()
	var ch <-chan singleflight.Result
	interval := c.s.unknownKIDInterval
	if _, missed := is.missed[h]; !missed && reason == ReasonUnknownKID {
		interval = c.s.newKIDInterval
	}
	switch {
	case is.inflight:
		ch = c.joinLocked(is)
	case c.allowedLocked(is, now, interval):
		var err error
		if ch, err = c.startLocked(is, reason, now); err != nil {
			is.mu.Unlock()
			return nil, err
		}
	default:
		lastErr := is.lastErr
		is.mu.Unlock()
		return c.lookup(is, kid, lastErr)
	}
	is.mu.Unlock()
	r, err := c.wait(ctx, is, ch)
	if err != nil {
		return nil, err
	}
	k, err := c.lookup(is, kid, r.Err)
	if r.Err == nil && errors.Is(err, ErrKeyNotFound) {
		is.mu.Lock()
		if len(is.missed) >= maxMissed {
			clear(is.missed)
		}
		is.missed[h] = struct{}{}
		is.mu.Unlock()
	}
	return k, err
}

// kidSeed keys kidHash; it never leaves the process, so which kids share a
// hash cannot be chosen from outside.
var kidSeed = maphash.MakeSeed()

// kidHash returns a fixed-size stand-in for an attacker-chosen kid, so
// remembering it costs the same whatever its length.
func kidHash(kid string) uint64 { return maphash.String(kidSeed, kid) }

// lookup answers from the current keys after a fetch (or a decision not to
// fetch). fetchErr is the outcome of the latest attempt.
func (c *Cache) lookup(is *issuer, kid string, fetchErr error) (*ecdsa.PublicKey, error) {
	if ks := is.keys.Load(); ks != nil && c.s.clock().Before(ks.staleAt) {
		if k, ok := ks.keys[kid]; ok {
			return k, nil
		}
		if fetchErr == nil {
			return nil, fmt.Errorf("%w: kid %q for issuer %q", ErrKeyNotFound, clip(kid), clip(is.name))
		}
	}
	if fetchErr != nil {
		return nil, fmt.Errorf("%w for issuer %q: %w", ErrUnavailable, clip(is.name), fetchErr)
	}
	return nil, fmt.Errorf("%w for issuer %q: no fresh keys", ErrUnavailable, clip(is.name))
}

// wait waits for a fetch result, bounded by ctx and FetchTimeout.
func (c *Cache) wait(ctx context.Context, is *issuer, ch <-chan singleflight.Result) (singleflight.Result, error) {
	t := time.NewTimer(c.s.fetchTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if c.closed.Load() {
			return r, ErrClosed
		}
		return r, nil
	case <-ctx.Done():
		return singleflight.Result{}, fmt.Errorf("%w for issuer %q: stopped waiting for fetch: %w", ErrUnavailable, clip(is.name), ctx.Err())
	case <-t.C:
		return singleflight.Result{}, fmt.Errorf("%w for issuer %q: fetch did not finish within %v", ErrUnavailable, clip(is.name), c.s.fetchTimeout)
	}
}

// refreshSoon starts a background refresh of keys past their refresh time,
// unless one is running or the rate limit forbids it. It never waits.
func (c *Cache) refreshSoon(is *issuer, now time.Time) {
	if now.UnixNano() < is.nextAuto.Load() {
		return
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.inflight || !c.allowedLocked(is, now, c.s.unknownKIDInterval) {
		return
	}
	_, _ = c.startLocked(is, ReasonTTL, now) // only fails when closed
}

// allowedLocked reports whether an automatic (non-manual) fetch may start
// at now: the previous attempt started at least interval ago, and fewer
// than MaxFetchesPerMinute attempts started in the last minute. is.mu
// must be held.
func (c *Cache) allowedLocked(is *issuer, now time.Time, interval time.Duration) bool {
	if !is.attempted {
		return true
	}
	if now.Sub(is.lastAttempt) < interval {
		return false
	}
	oldest := is.starts[is.next]
	return oldest.IsZero() || now.Sub(oldest) >= time.Minute
}

// startLocked starts a fetch of is. is.mu must be held and no fetch of is may
// be in flight. The fetch runs on a goroutine owned by c.sf and tracked by
// c.wg; its context is c.ctx (not a caller's), so a caller giving up does not
// cancel it for the others.
func (c *Cache) startLocked(is *issuer, reason string, now time.Time) (<-chan singleflight.Result, error) {
	if !c.enter() {
		return nil, ErrClosed
	}
	is.inflight = true
	is.attempted = true
	is.lastAttempt = now
	is.starts[is.next] = now
	is.next = (is.next + 1) % len(is.starts)
	is.nextAuto.Store(now.Add(c.s.unknownKIDInterval).UnixNano())
	// The fetch clears is.inflight and calls c.sf.Forget under is.mu, so a
	// DoChan made here with is.inflight false always starts a new call.
	return c.sf.DoChan(is.name, func() (any, error) {
		defer c.wg.Done()
		return nil, c.fetch(is, reason, now)
	}), nil
}

// joinLocked joins the fetch of is in flight. is.mu must be held and
// is.inflight true, which guarantees c.sf has a call for is.name, so fn below
// never runs.
func (c *Cache) joinLocked(is *issuer) <-chan singleflight.Result {
	return c.sf.DoChan(is.name, func() (any, error) { return nil, errJoin })
}

// loop refreshes issuers whose keys are due, including idle ones, and
// retries failed issuers, until the Cache is closed. It sleeps on a real
// timer; the due times themselves come from Config.Clock.
func (c *Cache) loop() {
	defer c.wg.Done()
	t := time.NewTimer(maxLoopWait)
	defer t.Stop()
	for {
		d, ok := c.startDue()
		if !ok {
			return
		}
		t.Reset(d)
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-c.wake:
		}
	}
}

// startDue starts the fetches that are due and returns how long to sleep
// until the next one. ok is false once the Cache is closed.
func (c *Cache) startDue() (d time.Duration, ok bool) {
	now := c.s.clock()
	next := maxLoopWait
	for _, is := range c.issuers {
		is.mu.Lock()
		if !is.inflight {
			ks := is.keys.Load()
			due := is.lastAttempt.Add(c.s.unknownKIDInterval)
			if ks != nil && ks.refreshAt.After(due) {
				due = ks.refreshAt
			}
			if !now.Before(due) {
				reason := ReasonTTL
				if ks == nil {
					reason = ReasonStartup
				}
				if _, err := c.startLocked(is, reason, now); err != nil {
					is.mu.Unlock()
					return 0, false
				}
			} else if wait := due.Sub(now); wait < next {
				next = wait
			}
		}
		is.mu.Unlock()
	}
	return max(next, minLoopWait), true
}
