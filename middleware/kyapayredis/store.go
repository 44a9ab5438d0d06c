package kyapayredis

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// Client is what the Store needs of a go-redis client: running Lua
// scripts. *redis.Client, *redis.ClusterClient and redis.UniversalClient
// satisfy it.
type Client interface {
	Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd
	EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd
}

var (
	_ Client = (*redis.Client)(nil)
	_ Client = (*redis.ClusterClient)(nil)
	_ Client = redis.UniversalClient(nil)
)

// Defaults for [Options].
const (
	DefaultPrefix = "kyapay"
	DefaultShards = 64
)

// Options configure a [Store]. Zero values mean the defaults.
type Options struct {
	// Prefix starts every key, so that several sellers (or environments)
	// can share one Redis. Default: DefaultPrefix ("kyapay").
	Prefix string
	// Shards is how many hash slots the records spread over. Each token's
	// records, and the queue of pending charges they may join, share one
	// shard (a hash tag), so that every transition is one script on one
	// node; the reconciler visits every shard. Default: DefaultShards (64).
	// Changing it orphans the records written before (they still expire).
	Shards int
}

// Store is a [middleware.Store] on Redis. Each transition is one Lua
// script, atomic on the node that owns its keys: a paid request costs at
// most two round trips (balance read and charge record; or, with an
// idempotency key, Begin and Finish). Every key expires at its token's exp
// plus the post-expiry charge window.
//
// A Store is safe for concurrent use by multiple goroutines.
type Store struct {
	c      Client
	prefix string
	shards int
	next   atomic.Uint32 // the shard Due starts at, rotating
}

var _ middleware.Store = (*Store)(nil)

// New returns a Store on the given client. The client's lifetime is the
// caller's: the Store never closes it.
func New(c Client, opts Options) (*Store, error) {
	if c == nil {
		return nil, errors.New("kyapayredis: nil client")
	}
	s := &Store{c: c, prefix: opts.Prefix, shards: opts.Shards}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if strings.ContainsAny(s.prefix, "{}") {
		return nil, errors.New("kyapayredis: Prefix must not contain braces")
	}
	if s.shards == 0 {
		s.shards = DefaultShards
	}
	if s.shards < 1 || s.shards > 16384 {
		return nil, errors.New("kyapayredis: Shards must be between 1 and 16384")
	}
	return s, nil
}

// script is a Lua script and its SHA-1.
type script struct{ src, sha string }

func newScript(src string) *script {
	h := sha1.Sum([]byte(src))
	return &script{src: src, sha: hex.EncodeToString(h[:])}
}

var (
	balanceScript    = newScript(scriptBalance)
	noteScript       = newScript(scriptNote)
	beginScript      = newScript(scriptBegin)
	finishScript     = newScript(scriptFinish)
	addPendingScript = newScript(scriptAddPending)
	dueScript        = newScript(scriptDue)
	resolveScript    = newScript(scriptResolve)
)

// run runs sc: EVALSHA, and EVAL once when the node does not know it yet.
func (s *Store) run(ctx context.Context, sc *script, keys []string, args ...any) (any, error) {
	v, err := s.c.EvalSha(ctx, sc.sha, keys, args...).Result()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		v, err = s.c.Eval(ctx, sc.src, keys, args...).Result()
	}
	if err != nil {
		return nil, fmt.Errorf("kyapayredis: %w", err)
	}
	return v, nil
}

// keys of one token: its shard's tag and its hash.
type tokenKeys struct{ tag, th string }

func (s *Store) token(tok middleware.TokenRef) tokenKeys {
	sum := sha256.Sum256([]byte(tok.Issuer + "\x00" + tok.JTI))
	shard := int(binary.BigEndian.Uint32(sum[:4]) % uint32(s.shards))
	return tokenKeys{tag: s.tag(shard), th: hex.EncodeToString(sum[:16])}
}

func (s *Store) tag(shard int) string {
	return s.prefix + ":{" + s.prefix + "-" + strconv.Itoa(shard) + "}"
}

func (k tokenKeys) balance() string { return k.tag + ":b:" + k.th }
func (k tokenKeys) used() string    { return k.tag + ":u:" + k.th }
func (k tokenKeys) queue() string   { return k.tag + ":q" }

func (k tokenKeys) record(route, key string) string {
	sum := sha256.Sum256([]byte(route + "\x00" + key))
	return k.tag + ":r:" + k.th + ":" + hex.EncodeToString(sum[:16])
}

func (k tokenKeys) pending(id string) string {
	sum := sha256.Sum256([]byte(id))
	return k.tag + ":p:" + k.th + ":" + hex.EncodeToString(sum[:16])
}

// pendingKey is the key of p's record: its idempotency record, or its own.
func (k tokenKeys) pendingKey(p middleware.PendingCharge) string {
	if p.Key != "" {
		return k.record(p.Route, p.Key)
	}
	return k.pending(p.ID)
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// ttl is how long records about tok live, seen from now.
func ttl(tok middleware.TokenRef, now time.Time) string {
	return strconv.FormatInt(max(tok.Until.Sub(now).Milliseconds(), 1), 10)
}

func micros(a kyapay.Amount) string { return strconv.FormatInt(a.Micros(), 10) }

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func noteArgs(n middleware.Note) []any {
	du := "0"
	if !n.Balance.DeclineUntil.IsZero() {
		du = ms(n.Balance.DeclineUntil)
	}
	return []any{flag(n.Balance.Known), micros(n.Balance.Remaining), micros(n.Balance.DeclinedAt),
		flag(n.Balance.ServiceDeclined), du, n.ChargeID}
}

// Balance implements [middleware.Store].
func (s *Store) Balance(ctx context.Context, tok middleware.TokenRef) (middleware.Balance, error) {
	k := s.token(tok)
	v, err := s.run(ctx, balanceScript, []string{k.balance()})
	if err != nil {
		return middleware.Balance{}, err
	}
	r := reply{v: v}
	b := r.balance()
	return b, r.err
}

// Note implements [middleware.Store].
func (s *Store) Note(ctx context.Context, tok middleware.TokenRef, n middleware.Note, now time.Time) error {
	if n.IsZero() || !now.Before(tok.Until) {
		return nil
	}
	k := s.token(tok)
	args := append([]any{ms(now), ttl(tok, now)}, noteArgs(n)...)
	args = append(args, middleware.MaxChargeIDsPerToken)
	_, err := s.run(ctx, noteScript, []string{k.balance(), k.used()}, args...)
	return err
}

// Begin implements [middleware.Store].
func (s *Store) Begin(ctx context.Context, r middleware.Reservation) (middleware.Begun, error) {
	k := s.token(r.Token)
	v, err := s.run(ctx, beginScript, []string{k.record(r.Route, r.Key), k.balance(), k.queue()},
		ms(r.Now), ttl(r.Token, r.Now), string(r.Fingerprint[:]), r.Attempt, ms(r.Now.Add(r.Lease)),
		micros(r.Amount), flag(r.HasAmount), r.Token.Issuer, r.Token.JTI, ms(r.Token.Until), r.Route, r.Key)
	if err != nil {
		return middleware.Begun{}, err
	}
	rp := reply{v: v}
	code := rp.str()
	bal := rp.balance()
	var b middleware.Begun
	switch code {
	case "R":
		b.State = middleware.BeginReserved
		if rp.more() {
			vw := rp.view()
			b.Charged, b.Charge = vw.charged, vw.charge
		}
	case "M":
		b.State = middleware.BeginMismatch
	case "F", "D", "P":
		b = rp.view().begun("")
	default:
		rp.fail("unknown Begin answer %q", code)
	}
	b.Balance = bal
	return b, rp.err
}

// Finish implements [middleware.Store].
func (s *Store) Finish(ctx context.Context, r middleware.Reservation, o middleware.Outcome) error {
	k := s.token(r.Token)
	kind := map[middleware.OutcomeKind]string{middleware.OutcomeReleased: "R", middleware.OutcomeCharged: "C", middleware.OutcomeUnknown: "U"}[o.Kind]
	if kind == "" {
		return fmt.Errorf("kyapayredis: unknown outcome kind %d", o.Kind)
	}
	args := []any{ms(o.Now), ttl(r.Token, o.Now), r.Attempt, kind, o.Charge.ID, micros(o.Charge.Amount),
		flag(o.Response != nil), string(o.Response), ms(o.Started), ms(o.Unknown)}
	args = append(args, noteArgs(o.Note)...)
	args = append(args, middleware.MaxChargeIDsPerToken)
	v, err := s.run(ctx, finishScript, []string{k.record(r.Route, r.Key), k.balance(), k.used(), k.queue()}, args...)
	if err != nil {
		return err
	}
	if v == "N" {
		return middleware.ErrNotHolder
	}
	return nil
}

// AddPending implements [middleware.Store].
func (s *Store) AddPending(ctx context.Context, p middleware.PendingCharge) error {
	k := s.token(p.Token)
	_, err := s.run(ctx, addPendingScript, []string{k.pending(p.ID), k.queue()},
		ms(p.Unknown), ttl(p.Token, p.Unknown), p.ID, micros(p.Amount), flag(p.HasAmount),
		ms(p.Started), ms(p.Unknown), p.Token.Issuer, p.Token.JTI, ms(p.Token.Until), p.Route)
	return err
}

// Due implements [middleware.Store]. It visits the shards in turn, one
// script each, starting where the last call left off.
func (s *Store) Due(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]middleware.PendingCharge, error) {
	if limit <= 0 {
		return nil, nil
	}
	start := int(s.next.Add(1)) % s.shards
	var out []middleware.PendingCharge
	for i := 0; i < s.shards && len(out) < limit; i++ {
		shard := (start + i) % s.shards
		v, err := s.run(ctx, dueScript, []string{s.tag(shard) + ":q"}, ms(now), lease.Milliseconds(), limit-len(out))
		if err != nil {
			return out, err
		}
		list, _ := v.([]any)
		for _, item := range list {
			rp := reply{v: item}
			vw := rp.view()
			if rp.err != nil {
				return out, rp.err
			}
			out = append(out, vw.pending())
		}
	}
	return out, nil
}

// Resolve implements [middleware.Store].
func (s *Store) Resolve(ctx context.Context, p middleware.PendingCharge, r middleware.Resolution) (middleware.Resolved, error) {
	k := s.token(p.Token)
	lu := "0"
	if r.Attempt != "" {
		lu = ms(r.Now.Add(r.Lease))
	}
	args := []any{ms(r.Now), ttl(p.Token, r.Now), p.ID, flag(p.Key != ""), flag(r.Settled), r.Attempt, lu, middleware.MaxChargeIDsPerToken}
	for _, c := range r.Candidates {
		if c.ID != "" {
			args = append(args, c.ID, micros(c.Amount))
		}
	}
	v, err := s.run(ctx, resolveScript, []string{k.pendingKey(p), k.used(), k.queue()}, args...)
	if err != nil {
		return middleware.Resolved{}, err
	}
	rp := reply{v: v}
	code, ci, ca := rp.str(), rp.str(), rp.amount()
	var res middleware.Resolved
	switch code {
	case "G":
	case "S":
	case "C":
		res.Done, res.Charged, res.Charge = true, true, middleware.ChargeRef{ID: ci, Amount: ca}
	case "N":
		res.Done = true
	default:
		rp.fail("unknown Resolve answer %q", code)
	}
	if rp.more() {
		res.Record = rp.view().begun(r.Attempt)
	}
	return res, rp.err
}

// reply reads a script's answer: a flat list of strings.
type reply struct {
	v   any
	i   int
	err error
}

func (r *reply) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("kyapayredis: malformed script answer: "+format, args...)
	}
}

func (r *reply) more() bool {
	list, _ := r.v.([]any)
	return r.i < len(list)
}

func (r *reply) str() string {
	list, ok := r.v.([]any)
	if !ok || r.i >= len(list) {
		r.fail("want more than %d items", r.i)
		return ""
	}
	s, ok := list[r.i].(string)
	if !ok {
		r.fail("item %d is %T", r.i, list[r.i])
	}
	r.i++
	return s
}

func (r *reply) int() int64 {
	s := r.str()
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		r.fail("item %d: %v", r.i-1, err)
	}
	return n
}

func (r *reply) time() time.Time {
	n := r.int()
	if n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

func (r *reply) amount() kyapay.Amount {
	a, err := kyapay.AmountFromMicros(r.int())
	if err != nil {
		r.fail("amount: %v", err)
	}
	return a
}

func (r *reply) balance() middleware.Balance {
	var b middleware.Balance
	b.Known = r.str() == "1"
	b.Remaining = r.amount()
	b.DeclinedAt = r.amount()
	b.ServiceDeclined = r.str() == "1"
	b.DeclineUntil = r.time()
	if !b.Known {
		b.Remaining = kyapay.Amount{}
	}
	return b
}

// record is a record as a script's view returns it.
type record struct {
	state      string
	leaseUntil time.Time
	charged    bool
	charge     middleware.ChargeRef
	response   []byte
	p          middleware.PendingCharge
}

func (r *reply) view() record {
	var v record
	v.state = r.str()
	v.leaseUntil = r.time()
	v.charged = r.str() == "1"
	v.charge.ID = r.str()
	v.charge.Amount = r.amount()
	resp := r.str()
	v.p.ID = r.str()
	v.p.Started = r.time()
	v.p.Unknown = r.time()
	v.p.Amount = r.amount()
	v.p.HasAmount = r.str() == "1"
	v.p.Token.Issuer = r.str()
	v.p.Token.JTI = r.str()
	v.p.Token.Until = r.time()
	v.p.Route = r.str()
	v.p.Key = r.str()
	if r.str() == "1" {
		v.response = []byte(resp)
	}
	return v
}

func (v record) pending() middleware.PendingCharge { return v.p }

// begun is what the record means to the caller; attempt is the caller's
// attempt, if any.
func (v record) begun(attempt string) middleware.Begun {
	b := middleware.Begun{Charged: v.charged, Charge: v.charge}
	switch v.state {
	case "f":
		if attempt != "" && v.p.ID == attempt {
			b.State = middleware.BeginReserved
		} else {
			b.State, b.LeaseUntil = middleware.BeginInFlight, v.leaseUntil
		}
	case "p":
		b.State, b.Pending = middleware.BeginPending, v.p
	case "d":
		b.State, b.Response = middleware.BeginDone, v.response
	}
	return b
}
