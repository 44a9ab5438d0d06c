package kyapay

import (
	"hash/maphash"

	lru "github.com/hashicorp/golang-lru/v2"
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

// verifiedCache remembers verified tokens: an LRU keyed by cacheKey. It
// keeps only the *Claims a hit returns; the Claims carry what the hit
// checks (exp, the issuer's rule, kid and the key it was verified with).
type verifiedCache struct {
	seed maphash.Seed
	lru  *lru.Cache[cacheKey, *Claims]
}

func newVerifiedCache(size int) *verifiedCache {
	l, err := lru.New[cacheKey, *Claims](size)
	if err != nil {
		panic("kyapay: " + err.Error()) // size > 0 always
	}
	return &verifiedCache{seed: maphash.MakeSeed(), lru: l}
}

// key returns the cache key of token.
func (c *verifiedCache) key(token string) cacheKey {
	k := cacheKey{hash: maphash.Comparable(c.seed, token)}
	copy(k.tail[:], token[max(len(token)-len(k.tail), 0):])
	return k
}

func (c *verifiedCache) get(k cacheKey) (*Claims, bool) { return c.lru.Get(k) }
func (c *verifiedCache) add(k cacheKey, v *Claims)      { c.lru.Add(k, v) }
func (c *verifiedCache) remove(k cacheKey)              { c.lru.Remove(k) }

// len returns the number of entries, for tests.
func (c *verifiedCache) len() int { return c.lru.Len() }
