package jwks

import (
	"context"
	"crypto/ecdsa"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// fetch downloads and installs is's key set, records the outcome, and
// reports it. It runs on the singleflight goroutine started by startLocked;
// at is when the attempt started (Config.Clock).
func (c *Cache) fetch(is *issuer, reason string, at time.Time) error {
	began := time.Now()
	keys, skipped, ttl, err := c.download(is)
	elapsed := time.Since(began)

	now := c.s.clock()
	is.mu.Lock()
	if err == nil {
		// A key unchanged since the previous set keeps its pointer, so a
		// caller holding it can tell it is still published by comparing
		// pointers.
		if old := is.keys.Load(); old != nil {
			for kid, k := range keys {
				if o, ok := old.keys[kid]; ok && o.Equal(k) {
					keys[kid] = o
				}
			}
		}
		is.keys.Store(&keySet{
			keys:      keys,
			refreshAt: now.Add(ttl / 5 * 4),
			staleAt:   now.Add(max(c.s.maxStale, ttl)),
		})
	} else {
		ttl = 0
	}
	is.lastErr = err
	is.inflight = false
	// From here on a new DoChan for is.name starts a new fetch instead of
	// joining this one, which has finished.
	c.sf.Forget(is.name)
	is.mu.Unlock()

	if l := c.s.logger; l != nil {
		attrs := []slog.Attr{
			slog.String("issuer", is.name),
			slog.String("url", is.shown),
			slog.String("reason", reason),
			slog.Duration("duration", elapsed),
		}
		if err != nil {
			level := slog.LevelWarn
			if c.ctx.Err() != nil {
				level = slog.LevelDebug // cancelled by Close: not worth a warning
			}
			l.LogAttrs(context.Background(), level, "jwks: refresh failed",
				append(attrs, slog.Any("error", err), slog.Bool("serving_previous_keys", is.keys.Load() != nil))...)
		} else {
			l.LogAttrs(context.Background(), slog.LevelDebug, "jwks: refreshed",
				append(attrs, slog.Int("keys", len(keys)), slog.Int("skipped", skipped), slog.Duration("ttl", ttl))...)
		}
	}
	listeners := c.listeners.Load()
	if c.s.onRefresh != nil || (listeners != nil && len(*listeners) > 0) {
		ev := RefreshEvent{
			Issuer:   is.name,
			URL:      is.shown,
			Reason:   reason,
			Keys:     len(keys),
			Skipped:  skipped,
			TTL:      ttl,
			Err:      err,
			Duration: elapsed,
			At:       at,
		}
		if c.s.onRefresh != nil {
			c.s.onRefresh(ev)
		}
		if listeners != nil {
			for _, l := range *listeners {
				l.fn(ev)
			}
		}
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return err
}

// download performs one GET of is.url and parses the body. On error, keys is
// nil and err is a *FetchError; skipped is still reported for a set with no
// usable key.
func (c *Cache) download(is *issuer) (keys map[string]*ecdsa.PublicKey, skipped int, ttl time.Duration, err error) {
	fail := func(status int, cause error) (map[string]*ecdsa.PublicKey, int, time.Duration, error) {
		return nil, skipped, 0, &FetchError{Issuer: is.name, URL: is.shown, StatusCode: status, Err: cause}
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.s.fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, is.url, nil)
	if err != nil {
		return fail(0, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.s.client.Do(req)
	if err != nil {
		return fail(0, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused; never report it.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return fail(resp.StatusCode, nil)
	}
	limit := c.s.maxBodyBytes
	if resp.ContentLength > limit {
		return fail(resp.StatusCode, ErrBodyTooLarge)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fail(resp.StatusCode, err)
	}
	if int64(len(body)) > limit {
		return fail(resp.StatusCode, ErrBodyTooLarge)
	}
	keys, skipped, err = ParseSet(body)
	if err != nil {
		return fail(resp.StatusCode, err)
	}
	return keys, skipped, c.effectiveTTL(resp.Header), nil
}

// effectiveTTL derives the freshness lifetime of a response: Cache-Control
// max-age minus Age, clamped to [MinTTL, MaxTTL]; MinTTL for no-store or
// no-cache; Config.TTL when there is no usable max-age. Several max-age
// directives resolve to the smallest.
func (c *Cache) effectiveTTL(h http.Header) time.Duration {
	maxAge := int64(-1)
	for _, line := range h.Values("Cache-Control") {
		for _, dir := range strings.Split(line, ",") {
			name, val, _ := strings.Cut(dir, "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return c.s.minTTL
			case "max-age":
				n, ok := deltaSeconds(val)
				if ok && (maxAge < 0 || n < maxAge) {
					maxAge = n
				}
			}
		}
	}
	if maxAge < 0 {
		return c.s.ttl
	}
	if age, ok := deltaSeconds(h.Get("Age")); ok {
		maxAge = max(maxAge-age, 0)
	}
	maxSecs := int64(c.s.maxTTL / time.Second)
	if maxAge >= maxSecs {
		return c.s.maxTTL
	}
	return max(time.Duration(maxAge)*time.Second, c.s.minTTL)
}

// deltaSeconds parses an RFC 9111 delta-seconds value (optionally quoted).
func deltaSeconds(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// All digits but too large: RFC 9111 says treat as "infinite".
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 1<<63 - 1, true
		}
		return 0, false
	}
	return n, true
}
