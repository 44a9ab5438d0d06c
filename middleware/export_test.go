package middleware

// MemoryStoreSize reports how many tokens, records and response bytes s
// holds.
func MemoryStoreSize(s *MemoryStore) (tokens, records, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tokens), len(s.records), s.bytes
}
