package middleware

import (
	"container/list"
	"context"
	"sort"
	"strings"
	"sync"
	"time"
)

// Defaults for [MemoryStoreConfig].
const (
	DefaultMemoryStoreTokens  = 10_000
	DefaultMemoryStoreRecords = 10_000
	DefaultMemoryStoreBytes   = 64 << 20
	// MaxChargeIDsPerToken bounds how many accounted-for charge IDs a
	// store keeps per token; the oldest go first. Reconciliation only
	// looks at charges made around a pending charge, so older ones no
	// longer matter.
	MaxChargeIDsPerToken = 256
)

// MemoryStoreConfig bounds a [MemoryStore]. Zero values mean the defaults.
type MemoryStoreConfig struct {
	// MaxTokens bounds the tokens whose balance is remembered. Default:
	// DefaultMemoryStoreTokens.
	MaxTokens int
	// MaxRecords bounds the idempotency records and pending charges.
	// Default: DefaultMemoryStoreRecords.
	MaxRecords int
	// MaxBytes bounds the stored responses' total size. Default:
	// DefaultMemoryStoreBytes (64 MiB).
	MaxBytes int
}

// MemoryStore is the in-memory [Store]: the default, private to one
// Middleware, or shared by several Middlewares in one process. It is
// bounded: past its limits the least recently used entries go first, and
// every entry goes at its token's Until. An evicted idempotency record can
// no longer stop a duplicate charge, so size it for the traffic, or use a
// shared store such as kyapayredis.
//
// A MemoryStore is safe for concurrent use by multiple goroutines.
type MemoryStore struct {
	maxTokens, maxRecords, maxBytes int

	mu      sync.Mutex // guards everything below
	tokens  map[tokenKey]*list.Element
	tokLRU  list.List // of *memToken, most recent first
	records map[recordKey]*list.Element
	recLRU  list.List // of *memRecord, most recent first
	bytes   int       // stored response bytes
}

// NewMemoryStore returns an empty MemoryStore with the given bounds.
func NewMemoryStore(cfg MemoryStoreConfig) *MemoryStore {
	s := &MemoryStore{
		maxTokens:  cfg.MaxTokens,
		maxRecords: cfg.MaxRecords,
		maxBytes:   cfg.MaxBytes,
		tokens:     make(map[tokenKey]*list.Element),
		records:    make(map[recordKey]*list.Element),
	}
	if s.maxTokens <= 0 {
		s.maxTokens = DefaultMemoryStoreTokens
	}
	if s.maxRecords <= 0 {
		s.maxRecords = DefaultMemoryStoreRecords
	}
	if s.maxBytes <= 0 {
		s.maxBytes = DefaultMemoryStoreBytes
	}
	return s
}

// memToken is what the store knows about one token.
type memToken struct {
	key     tokenKey
	until   time.Time
	balance Balance
	used    []string // accounted-for charge IDs, oldest first
}

// recordKey names an idempotency record, or (route and key empty, id set)
// a pending charge made without a key.
type recordKey struct {
	iss, jti, route, key, id string
}

// Record states.
const (
	recInFlight = 'f' // held by attempt until leaseUntil
	recPending  = 'p' // the charge of attempt has an unknown outcome
	recDone     = 'd' // completed; response stored (or nil)
	recCharged  = 'c' // charged, nothing stored: deliver without charging
)

// memRecord is one idempotency record or keyless pending charge.
type memRecord struct {
	key        recordKey
	tok        TokenRef
	fp         [32]byte
	state      byte
	attempt    string
	leaseUntil time.Time
	due        time.Time // reconciliation due (inflight: leaseUntil; pending)
	amount     ChargeRef // Amount is the price asked (hasAmount)
	hasAmount  bool
	started    time.Time
	unknown    time.Time
	charged    bool
	charge     ChargeRef
	response   []byte
}

func (r *memRecord) pending() PendingCharge {
	return PendingCharge{
		ID: r.attempt, Token: r.tok, Route: r.key.route, Key: r.key.key,
		Amount: r.amount.Amount, HasAmount: r.hasAmount, Started: r.started, Unknown: r.unknown,
	}
}

// view is what Begin and Resolve report about r.
func (r *memRecord) view() Begun {
	b := Begun{Charged: r.charged, Charge: r.charge}
	switch r.state {
	case recInFlight:
		b.State, b.LeaseUntil = BeginInFlight, r.leaseUntil
	case recPending:
		b.State, b.Pending = BeginPending, r.pending()
	case recDone:
		b.State, b.Response = BeginDone, r.response
	}
	return b
}

func recKey(tok TokenRef, route, key, id string) recordKey {
	return recordKey{iss: tok.Issuer, jti: tok.JTI, route: route, key: key, id: id}
}

// token returns the live entry of tok, creating it if create.
func (s *MemoryStore) token(tok TokenRef, now time.Time, create bool) *memToken {
	k := tokenKey{tok.Issuer, tok.JTI}
	if e, ok := s.tokens[k]; ok {
		t := e.Value.(*memToken)
		if now.Before(t.until) {
			s.tokLRU.MoveToFront(e)
			if tok.Until.After(t.until) {
				t.until = tok.Until
			}
			return t
		}
		s.tokLRU.Remove(e)
		delete(s.tokens, k)
	}
	if !create || !now.Before(tok.Until) {
		return nil
	}
	t := &memToken{key: tokenKey{strings.Clone(k.iss), strings.Clone(k.jti)}, until: tok.Until}
	s.tokens[t.key] = s.tokLRU.PushFront(t)
	for len(s.tokens) > s.maxTokens {
		old := s.tokLRU.Back()
		s.tokLRU.Remove(old)
		delete(s.tokens, old.Value.(*memToken).key)
	}
	return t
}

// record returns the live record k.
func (s *MemoryStore) record(k recordKey, now time.Time) *memRecord {
	e, ok := s.records[k]
	if !ok {
		return nil
	}
	r := e.Value.(*memRecord)
	if !now.Before(r.tok.Until) {
		s.drop(r)
		return nil
	}
	s.recLRU.MoveToFront(e)
	return r
}

func (s *MemoryStore) add(r *memRecord) {
	r.key = recordKey{strings.Clone(r.key.iss), strings.Clone(r.key.jti), strings.Clone(r.key.route), strings.Clone(r.key.key), r.key.id}
	s.records[r.key] = s.recLRU.PushFront(r)
	s.bytes += len(r.response)
	s.evict()
}

func (s *MemoryStore) setResponse(r *memRecord, resp []byte) {
	s.bytes += len(resp) - len(r.response)
	r.response = resp
	s.evict()
}

func (s *MemoryStore) drop(r *memRecord) {
	if e, ok := s.records[r.key]; ok {
		s.recLRU.Remove(e)
		delete(s.records, r.key)
		s.bytes -= len(r.response)
	}
}

func (s *MemoryStore) evict() {
	for len(s.records) > s.maxRecords || (s.bytes > s.maxBytes && len(s.records) > 1) {
		s.drop(s.recLRU.Back().Value.(*memRecord))
	}
}

// use marks id as accounted for on t and reports whether it was new.
func (t *memToken) use(id string) bool {
	for _, u := range t.used {
		if u == id {
			return false
		}
	}
	if len(t.used) == MaxChargeIDsPerToken {
		copy(t.used, t.used[1:])
		t.used = t.used[:len(t.used)-1]
	}
	t.used = append(t.used, strings.Clone(id))
	return true
}

func (s *MemoryStore) note(tok TokenRef, n Note, now time.Time) {
	if n.IsZero() {
		return
	}
	t := s.token(tok, now, true)
	if t == nil {
		return
	}
	t.balance.Merge(n.Balance)
	if n.ChargeID != "" {
		t.use(n.ChargeID)
	}
}

// Balance implements [Store].
func (s *MemoryStore) Balance(_ context.Context, tok TokenRef) (Balance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Expiry is checked against Until only: the balance of a token is
	// useless past Until, and nothing about it is kept longer.
	if t := s.token(tok, time.Time{}, false); t != nil {
		return t.balance, nil
	}
	return Balance{}, nil
}

// Note implements [Store].
func (s *MemoryStore) Note(_ context.Context, tok TokenRef, n Note, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.note(tok, n, now)
	return nil
}

// Begin implements [Store].
func (s *MemoryStore) Begin(_ context.Context, r Reservation) (Begun, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var bal Balance
	if t := s.token(r.Token, r.Now, false); t != nil {
		bal = t.balance
	}
	k := recKey(r.Token, r.Route, r.Key, "")
	rec := s.record(k, r.Now)
	if rec == nil {
		if !r.Now.Before(r.Token.Until) {
			// Nothing may be kept about an expired token; the caller
			// refuses it anyway.
			return Begun{State: BeginReserved, Balance: bal}, nil
		}
		rec = &memRecord{key: k, tok: r.Token, fp: r.Fingerprint}
		s.hold(rec, r.Attempt, r.Now, r.Lease)
		rec.amount.Amount, rec.hasAmount = r.Amount, r.HasAmount
		s.add(rec)
		return Begun{State: BeginReserved, Balance: bal}, nil
	}
	if rec.fp != r.Fingerprint {
		return Begun{State: BeginMismatch, Balance: bal}, nil
	}
	s.expireLease(rec, r.Now)
	b := rec.view()
	b.Balance = bal
	switch rec.state {
	case recCharged:
		s.hold(rec, r.Attempt, r.Now, r.Lease)
		b.State = BeginReserved
	case recPending:
		b.State = BeginPending
	}
	return b, nil
}

// hold gives rec to attempt until now+lease.
func (s *MemoryStore) hold(rec *memRecord, attempt string, now time.Time, lease time.Duration) {
	rec.state, rec.attempt = recInFlight, attempt
	rec.leaseUntil = now.Add(lease)
	rec.due = rec.leaseUntil
	rec.started = now
}

// expireLease turns an in-flight record whose lease ran out into what its
// vanished holder left: a charge known made (recCharged), or a charge of
// unknown outcome (recPending) since the lease end.
func (s *MemoryStore) expireLease(rec *memRecord, now time.Time) {
	if rec.state != recInFlight || now.Before(rec.leaseUntil) {
		return
	}
	if rec.charged {
		rec.state = recCharged
		return
	}
	rec.state, rec.unknown, rec.due = recPending, rec.leaseUntil, now
}

// Finish implements [Store].
func (s *MemoryStore) Finish(_ context.Context, r Reservation, o Outcome) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.note(r.Token, o.Note, o.Now)
	rec := s.record(recKey(r.Token, r.Route, r.Key, ""), o.Now)
	if rec == nil || rec.state != recInFlight || rec.attempt != r.Attempt {
		return ErrNotHolder
	}
	switch o.Kind {
	case OutcomeReleased:
		if !rec.charged {
			s.drop(rec)
			return nil
		}
		rec.state = recCharged
	case OutcomeCharged:
		rec.charged, rec.charge = true, o.Charge
		rec.state = recCharged
		if o.Response != nil {
			rec.state = recDone
			s.setResponse(rec, o.Response)
		}
	case OutcomeUnknown:
		rec.state = recPending
		rec.started, rec.unknown, rec.due = o.Started, o.Unknown, o.Now
		s.setResponse(rec, o.Response)
	}
	return nil
}

// AddPending implements [Store].
func (s *MemoryStore) AddPending(_ context.Context, p PendingCharge) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !p.Unknown.Before(p.Token.Until) {
		return nil
	}
	rec := &memRecord{
		key: recKey(p.Token, p.Route, "", p.ID), tok: p.Token, state: recPending, attempt: p.ID,
		amount: ChargeRef{Amount: p.Amount}, hasAmount: p.HasAmount, started: p.Started, unknown: p.Unknown, due: p.Unknown,
	}
	if old := s.record(rec.key, p.Unknown); old != nil {
		return nil
	}
	s.add(rec)
	return nil
}

// Due implements [Store].
func (s *MemoryStore) Due(_ context.Context, now time.Time, lease time.Duration, limit int) ([]PendingCharge, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []*memRecord
	for e := s.recLRU.Front(); e != nil; {
		rec := e.Value.(*memRecord)
		e = e.Next()
		if !now.Before(rec.tok.Until) {
			s.drop(rec)
			continue
		}
		s.expireLease(rec, now)
		if rec.state == recPending && !now.Before(rec.due) {
			due = append(due, rec)
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].due.Before(due[j].due) })
	if len(due) > limit {
		due = due[:limit]
	}
	out := make([]PendingCharge, len(due))
	for i, rec := range due {
		rec.due = now.Add(lease)
		out[i] = rec.pending()
	}
	return out, nil
}

// Resolve implements [Store].
func (s *MemoryStore) Resolve(_ context.Context, p PendingCharge, r Resolution) (Resolved, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := p.ID
	if p.Key != "" {
		id = ""
	}
	rec := s.record(recKey(p.Token, p.Route, p.Key, id), r.Now)
	if rec == nil {
		return Resolved{}, nil
	}
	s.expireLease(rec, r.Now)
	if rec.state != recPending || rec.attempt != p.ID {
		return Resolved{Record: rec.view()}, nil
	}
	var res Resolved
	if t := s.token(p.Token, r.Now, true); t != nil {
		for _, c := range r.Candidates {
			if c.ID != "" && t.use(c.ID) {
				res.Charged, res.Charge = true, c
				break
			}
		}
	}
	if !res.Charged && !r.Settled {
		return Resolved{Record: rec.view()}, nil
	}
	res.Done = true
	if p.Key == "" {
		s.drop(rec)
		return res, nil
	}
	switch {
	case res.Charged:
		rec.charged, rec.charge = true, res.Charge
		rec.state = recCharged
		if rec.response != nil {
			rec.state = recDone
		} else if r.Attempt != "" {
			s.hold(rec, r.Attempt, r.Now, r.Lease)
			res.Record = Begun{State: BeginReserved, Charged: true, Charge: rec.charge}
			return res, nil
		}
	case r.Attempt != "":
		s.setResponse(rec, nil)
		s.hold(rec, r.Attempt, r.Now, r.Lease)
		res.Record = Begun{State: BeginReserved}
		return res, nil
	default:
		s.drop(rec)
		return res, nil
	}
	res.Record = rec.view()
	return res, nil
}
