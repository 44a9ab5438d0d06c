package kyapay

import (
	"strconv"
	"sync"
	"testing"
)

func TestVerifiedCacheClock(t *testing.T) {
	t.Parallel()
	c := newVerifiedCache(4)
	keys := make([]cacheKey, 6)
	claims := make([]*Claims, 6)
	for i := range keys {
		keys[i] = c.key("token-" + strconv.Itoa(i))
		claims[i] = &Claims{ID: strconv.Itoa(i)}
	}
	for i := range 4 {
		c.add(keys[i], claims[i])
	}
	if c.len() != 4 {
		t.Fatalf("len = %d; want 4", c.len())
	}
	// Tokens 0 and 1 are used; adding 4 evicts 2, the first unused one
	// the sweep reaches.
	for _, i := range []int{0, 1} {
		if got, ok := c.get(keys[i]); !ok || got != claims[i] {
			t.Fatalf("get(%d) = %v, %v", i, got, ok)
		}
	}
	c.add(keys[4], claims[4])
	present := func() (out []int) {
		for i, k := range keys {
			if got, ok := c.get(k); ok {
				if got != claims[i] {
					t.Fatalf("get(%d) returned claims %s", i, got.ID)
				}
				out = append(out, i)
			}
		}
		return out
	}
	if got := present(); len(got) != 4 || got[0] != 0 || got[1] != 1 || got[2] != 3 || got[3] != 4 {
		t.Fatalf("after adding 4 to a full cache, present = %v; want [0 1 3 4]", got)
	}
	// A removed token's slot is reused without evicting a live one.
	c.remove(keys[0])
	if _, ok := c.get(keys[0]); ok || c.len() != 3 {
		t.Fatalf("removed token still cached (len %d)", c.len())
	}
	for range 2 { // clear every used bit set by present()
		c.add(keys[5], claims[5])
	}
	if got := present(); len(got) != 4 || got[0] != 1 || got[3] != 5 {
		t.Fatalf("after remove and add, present = %v; want [1 3 4 5]", got)
	}
	// Adding a cached key again replaces its claims in place.
	again := &Claims{ID: "again"}
	c.add(keys[1], again)
	if got, _ := c.get(keys[1]); got != again || c.len() != 4 {
		t.Errorf("re-adding a key: got %v, len %d", got, c.len())
	}
}

// TestVerifiedCacheConcurrent: under concurrent gets, adds and removes the
// cache never holds more than its size and never answers a key with
// another key's claims.
func TestVerifiedCacheConcurrent(t *testing.T) {
	t.Parallel()
	const size, tokens, workers = 64, 256, 8
	c := newVerifiedCache(size)
	keys := make([]cacheKey, tokens)
	for i := range keys {
		keys[i] = c.key("token-" + strconv.Itoa(i))
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for n := range 20_000 {
				i := (n*31 + w*7) % tokens
				switch n % 5 {
				case 0:
					c.add(keys[i], &Claims{ID: strconv.Itoa(i)})
				case 1:
					c.remove(keys[i])
				default:
					if got, ok := c.get(keys[i]); ok && got.ID != strconv.Itoa(i) {
						t.Errorf("get(%d) returned the claims of %s", i, got.ID)
						return
					}
				}
				if l := c.len(); l > size {
					t.Errorf("len = %d; want <= %d", l, size)
					return
				}
			}
		})
	}
	wg.Wait()
}
