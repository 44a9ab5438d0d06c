package kyapay

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// cacheKey is the fixed-size key of a verified token: a 64-bit hash of the
// whole token under a per-Verifier random seed, and the token's last 8
// bytes, which are part of its signature. Two different tokens share a key
// only if both halves collide. The seed never leaves the process, so a
// colliding token cannot be computed from outside; and to collide with a
// particular cached token one must know that token, which opens the same
// door anyway. The key costs 16 bytes however long the token.
type cacheKey struct {
	hash uint64
	tail [8]byte
}

// verifiedCache remembers up to size verified tokens. It keeps only the
// *Claims a hit returns; the Claims carry what the hit checks (exp, the
// issuer's rule, the kid and the key the token was verified with).
//
// Eviction is CLOCK, an approximation of least-recently-used: a hit only
// sets its slot's used bit, under the read lock, instead of relinking a
// list under an exclusive lock as an LRU does; a miss that adds a token
// sweeps the slots from the hand, clearing used bits, and reuses the first
// slot whose bit was clear. Hits on different tokens therefore run in
// parallel and touch one slot each, which matters when tens of thousands
// of tokens are cached and every hit is a cache miss in the CPU.
type verifiedCache struct {
	seed maphash.Seed
	size int

	mu    sync.RWMutex       // guards index, slots (but not their used bits), hand
	index map[cacheKey]int32 // key -> position in slots
	slots []cacheSlot        // grows up to size
	hand  int                // next slot the sweep looks at
}

type cacheSlot struct {
	key    cacheKey
	claims *Claims     // nil: the slot is free
	used   atomic.Bool // set by hits (under mu.RLock), cleared by the sweep
}

func newVerifiedCache(size int) *verifiedCache {
	return &verifiedCache{seed: maphash.MakeSeed(), size: size, index: make(map[cacheKey]int32)}
}

// key returns the cache key of token.
func (c *verifiedCache) key(token string) cacheKey {
	k := cacheKey{hash: maphash.Comparable(c.seed, token)}
	copy(k.tail[:], token[max(len(token)-len(k.tail), 0):])
	return k
}

// get returns the claims cached under k and marks them used.
func (c *verifiedCache) get(k cacheKey) (*Claims, bool) {
	c.mu.RLock()
	i, ok := c.index[k]
	if !ok {
		c.mu.RUnlock()
		return nil, false
	}
	s := &c.slots[i]
	cl := s.claims
	if !s.used.Load() { // a plain load first: most hits need no write
		s.used.Store(true)
	}
	c.mu.RUnlock()
	return cl, true
}

// add caches cl under k, evicting a token not used since the sweep last
// passed it if the cache is full.
func (c *verifiedCache) add(k cacheKey, cl *Claims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.index[k]; ok { // verified twice concurrently
		c.slots[i].claims = cl
		return
	}
	if len(c.slots) < c.size {
		c.slots = append(c.slots, cacheSlot{key: k, claims: cl})
		c.index[k] = int32(len(c.slots) - 1)
		return
	}
	// At most two turns: the first clears every used bit it passes.
	for {
		s := &c.slots[c.hand]
		i := c.hand
		c.hand++
		if c.hand == len(c.slots) {
			c.hand = 0
		}
		if s.claims != nil && s.used.Load() {
			s.used.Store(false)
			continue
		}
		if s.claims != nil {
			delete(c.index, s.key)
		}
		s.key, s.claims = k, cl
		s.used.Store(false)
		c.index[k] = int32(i)
		return
	}
}

// remove forgets k. Its slot is free for the next add that reaches it.
func (c *verifiedCache) remove(k cacheKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.index[k]; ok {
		delete(c.index, k)
		c.slots[i] = cacheSlot{}
	}
}

// len returns the number of cached tokens.
func (c *verifiedCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.index)
}
