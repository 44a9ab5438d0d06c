package storetest

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
)

// LoadConfig describes a fault load on replicas sharing a Store.
type LoadConfig struct {
	// Store is the Store the replicas share. Required.
	Store middleware.Store
	// Open, when set, returns a new handle on the shared state (for Redis:
	// a Store on a new client): each replica gets its own, as separate
	// processes would. nil: every replica uses Store.
	Open func() middleware.Store
	// Kill, when set, closes a dead replica's handle (for Redis: its
	// client), so that the work it left unfinished fails.
	Kill func(middleware.Store)
	// Replicas is the number of seller replicas. Default 3.
	Replicas int
	// Agents is the number of concurrent agents, each with its own token.
	// Default 6.
	Agents int
	// KeysPerAgent is how many purchases each agent makes, each under its
	// own idempotency key. Default 6.
	KeysPerAgent int
	// Restart restarts one replica in the middle of the load.
	Restart bool
	// Seed seeds the fault schedule and the agents' choices. Default 1.
	Seed uint64
}

// LoadResult is what a fault load did.
type LoadResult struct {
	// Keys is the number of purchases (idempotency keys).
	Keys int
	// LedgerCharges is the number of charges the issuer's ledger holds.
	LedgerCharges int
	// MaxChargesPerKey is the most charges any one key got (at most 1).
	MaxChargesPerKey int
	// Delivered is the number of keys whose paid content an agent got.
	Delivered int
	// ResolvedCharged is the number of pending charges the reconciler
	// found made; ResolvedChargedDelivered of them were delivered on a
	// later retry. ResolvedNotCharged were found never made.
	ResolvedCharged, ResolvedChargedDelivered, ResolvedNotCharged int
	// Abandoned is the number of keys an agent gave up after a 502.
	Abandoned int
	// Answers counts the answers agents got: 200, replays (200 marked as
	// replay), 409, 502, 503 (charge_unavailable, retried in the next
	// round), other, and connection errors.
	OK, Replays, Conflicts, Unknown, Unavailable, Other, ConnErrors int
	// Faults counts the charge requests per injected fault.
	Faults map[string]int
	// Restarts is how many replicas were restarted.
	Restarts int
	// LeftoverReconcilers counts reconciliation loops still running after
	// every replica's Close (0).
	LeftoverReconcilers int
	// Elapsed is the load's wall time.
	Elapsed time.Duration
}

// String prints the figures and the invariants.
func (r LoadResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "keys %d, ledger charges %d, max charges per key %d\n", r.Keys, r.LedgerCharges, r.MaxChargesPerKey)
	fmt.Fprintf(&b, "paid responses delivered %d; pending resolved as charged %d (delivered on retry %d), as not charged %d\n",
		r.Delivered, r.ResolvedCharged, r.ResolvedChargedDelivered, r.ResolvedNotCharged)
	fmt.Fprintf(&b, "ledger charges %d == delivered %d + resolved charged and not delivered %d\n",
		r.LedgerCharges, r.Delivered, r.ResolvedCharged-r.ResolvedChargedDelivered)
	fmt.Fprintf(&b, "abandoned after 502 %d; answers: 200 %d (replays %d), 409 %d, 502 %d, 503 %d, other %d, connection errors %d\n",
		r.Abandoned, r.OK, r.Replays, r.Conflicts, r.Unknown, r.Unavailable, r.Other, r.ConnErrors)
	names := make([]string, 0, len(r.Faults))
	for k := range r.Faults {
		names = append(names, k)
	}
	sort.Strings(names)
	b.WriteString("charge requests by fault:")
	for _, k := range names {
		fmt.Fprintf(&b, " %s %d", k, r.Faults[k])
	}
	fmt.Fprintf(&b, "\nreplicas restarted %d; reconcilers left after Close %d; elapsed %v", r.Restarts, r.LeftoverReconcilers, r.Elapsed.Round(time.Millisecond))
	return b.String()
}

// Load runs the fault load and checks its invariants: every key was
// charged at most once; the ledger's charges equal the paid responses
// delivered plus the pending charges resolved as charged and not
// delivered; no paid response was delivered without a charge; nothing is
// left pending; no reconciliation loop is left after Close.
//
// Replicas are HTTP servers on loopback, each with its own Middleware,
// verifier and charge client, sharing cfg.Store and the fake issuer, whose
// charge endpoint meets faults: 5xx, timeouts, timeout after a charge,
// connection closed or reset after a charge. Agents buy with an Idempotency-Key and
// retry on 502 and connection errors at once, and on 409 in the next
// round; between rounds the clock moves past the idempotency lease and
// ReconcileAfter and the replicas reconcile. The last rounds run without
// faults. Load must not run in parallel with tests that count goroutines.
func Load(t *testing.T, cfg LoadConfig) LoadResult {
	t.Helper()
	if cfg.Replicas == 0 {
		cfg.Replicas = 3
	}
	if cfg.Agents == 0 {
		cfg.Agents = 6
	}
	if cfg.KeysPerAgent == 0 {
		cfg.KeysPerAgent = 6
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	l := newLoad(t, cfg)
	return l.run()
}

const (
	loadLease  = time.Minute
	loadSettle = 10 * time.Second
	loadRounds = 12
	loadDrain  = 3 // last rounds without faults
)

type load struct {
	t      *testing.T
	cfg    LoadConfig
	clock  atomic.Int64
	iss    *kyapaytest.Issuer
	rng    *rand.Rand
	rngMu  sync.Mutex
	baseGo int

	mu       sync.Mutex // guards replicas, res and the maps below
	replicas []*replica
	closing  sync.WaitGroup // servers of dead replicas
	restarts sync.WaitGroup // replica restarts under way
	res      LoadResult
	resolved map[string]bool     // key -> found charged
	trace    map[string][]string // key -> what happened, for failure messages
	faultsOn atomic.Bool
	restart  sync.Once
	served   atomic.Int64
}

type replica struct {
	m     *middleware.Middleware
	v     *kyapay.Verifier
	srv   *httptest.Server
	store middleware.Store
}

// loadKey is one purchase.
type loadKey struct {
	name, token, jti, path string
	n                      int // price is 0.01 + n micro-dollars
	amount                 kyapay.Amount
}

func (k loadKey) id() string { return k.jti + "/" + k.amount.String() }

func (l *load) now() time.Time { return time.Unix(0, l.clock.Load()) }

func newLoad(t *testing.T, cfg LoadConfig) *load {
	l := &load{t: t, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 7)), resolved: map[string]bool{}, trace: map[string][]string{}}
	l.res.Faults = map[string]int{}
	l.clock.Store(T0.UnixNano())
	l.baseGo = countReconcilers()
	l.iss = kyapaytest.NewIssuer(kyapaytest.WithAudience("seller-load"), kyapaytest.WithClock(l.now))
	t.Cleanup(l.iss.Close)
	for range cfg.Replicas {
		l.replicas = append(l.replicas, l.newReplica(l.open()))
	}
	return l
}

func (l *load) open() middleware.Store {
	if l.cfg.Open != nil {
		return l.cfg.Open()
	}
	return l.cfg.Store
}

func (l *load) newReplica(store middleware.Store) *replica {
	t := l.t
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Clock: l.now, Issuers: []string{l.iss.Issuer()}, JWKSURLs: map[string]string{l.iss.Issuer(): l.iss.JWKSURL()},
		HTTPClient: l.iss.Client(), Audience: "seller-load",
	})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := charge.New(charge.Config{BaseURL: l.iss.APIBaseURL(), APIKey: charge.APIKey(l.iss.APIKey()),
		HTTPClient: l.iss.Client(), RetryBackoff: func(int) time.Duration { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	m, err := middleware.New(middleware.Config{
		Verifier: v, Charger: cc, Clock: l.now, Store: store,
		ChargeTimeout: 100 * time.Millisecond, IdempotencyLease: loadLease, ReconcileAfter: loadSettle,
		ReconcileInterval: 20 * time.Millisecond,
		Observer:          middleware.ObserverFunc(l.observe),
	})
	if err != nil {
		t.Fatal(err)
	}
	price := middleware.PriceFunc(func(r *http.Request) (kyapay.Amount, error) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil {
			return kyapay.Amount{}, err
		}
		base := kyapay.MustParseAmount("0.01")
		extra, _ := kyapay.AmountFromMicros(int64(n))
		return base.Add(extra)
	})
	content := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l.cfg.Restart && l.served.Add(1) == int64(l.cfg.Agents*l.cfg.KeysPerAgent/3) {
			l.restart.Do(func() { l.restarts.Go(func() { l.restartReplica(0) }) })
		}
		io.WriteString(w, "content "+r.URL.RawQuery)
	})
	before := middleware.Pay(price)
	after := before
	after.Timing = middleware.ChargeAfter
	mux := http.NewServeMux()
	mux.Handle("GET /before", m.MustWrap(content, before))
	mux.Handle("GET /after", m.MustWrap(content, after))
	return &replica{m: m, v: v, srv: httptest.NewServer(mux), store: store}
}

// restartReplica kills replica i (its connections drop, its Middleware
// closes, its Store handle is killed) and starts a new one in its place.
func (l *load) restartReplica(i int) {
	l.mu.Lock()
	old := l.replicas[i]
	l.mu.Unlock()
	old.srv.CloseClientConnections()
	old.m.Close()
	if l.cfg.Kill != nil {
		l.cfg.Kill(old.store)
	}
	nr := l.newReplica(l.open())
	l.mu.Lock()
	l.replicas[i] = nr
	l.res.Restarts++
	l.mu.Unlock()
	l.closing.Go(func() {
		old.srv.Close()
		old.v.Close()
	})
}

func (l *load) observe(_ context.Context, e middleware.Event) {
	if e.Kind != middleware.EventReconciled {
		return
	}
	id := e.JTI + "/" + e.Price.String()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resolved[id] && e.Code == "" {
		l.t.Errorf("pending charge of %s resolved as charged twice", id)
	}
	l.trace[id] = append(l.trace[id], "reconciled:"+string(e.Code))
	if e.Code == "" {
		l.resolved[id] = true
		l.res.ResolvedCharged++
	} else {
		if !l.resolved[id] {
			l.resolved[id] = false
		}
		l.res.ResolvedNotCharged++
	}
}

var loadFaults = []struct {
	name string
	f    kyapaytest.Fault
}{
	{"5xx-500", kyapaytest.Fault{Status: 500}},
	{"5xx-503", kyapaytest.Fault{Status: 503}},
	{"timeout", kyapaytest.Fault{Hang: true}},
	{"timeout-after-success", kyapaytest.Fault{TimeoutAfterCharge: true}},
	{"close-after-success", kyapaytest.Fault{ChargeFirst: true, CloseConnection: true}},
	{"reset-after-success", kyapaytest.Fault{ChargeFirst: true, ResetConnection: true}},
}

// nextFault injects the fault for the next charge request: one in three
// meets one of loadFaults, the others a no-op. Each, once applied, injects
// the next, so the schedule runs as long as faults are on.
func (l *load) nextFault() {
	if !l.faultsOn.Load() {
		return
	}
	l.rngMu.Lock()
	pick := l.rng.IntN(3 * len(loadFaults))
	l.rngMu.Unlock()
	name, f := "none", kyapaytest.Fault{Latency: time.Nanosecond}
	if pick < len(loadFaults) {
		name, f = loadFaults[pick].name, loadFaults[pick].f
	}
	f.Endpoint, f.Times = kyapaytest.EndpointCharge, 1
	f.OnApply = func() {
		l.mu.Lock()
		l.res.Faults[name]++
		l.mu.Unlock()
		l.nextFault()
	}
	l.iss.InjectFault(f)
}

func (l *load) run() LoadResult {
	t := l.t
	start := time.Now()
	var keys [][]loadKey
	for a := range l.cfg.Agents {
		tok := l.iss.Mint(kyapay.TypePay, kyapaytest.Amount("100"), kyapaytest.Balance("100"), kyapaytest.ExpiresIn(24*time.Hour))
		var ks []loadKey
		for i := range l.cfg.KeysPerAgent {
			k := loadKey{name: fmt.Sprintf("agent%d-key%d", a, i), token: tok, jti: kyapaytest.TokenID(tok), n: i + 1, path: "/before"}
			if i%2 == 1 {
				k.path = "/after"
			}
			extra, _ := kyapay.AmountFromMicros(int64(k.n))
			k.amount, _ = kyapay.MustParseAmount("0.01").Add(extra)
			ks = append(ks, k)
		}
		keys = append(keys, ks)
	}
	l.res.Keys = l.cfg.Agents * l.cfg.KeysPerAgent
	delivered := map[string]string{} // key id -> body
	var dmu sync.Mutex
	abandoned := map[string]bool{}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()

	l.faultsOn.Store(true)
	l.nextFault()
	open := keys
	for round := 0; round < loadRounds; round++ {
		if round == loadRounds-loadDrain {
			l.faultsOn.Store(false)
			l.iss.ClearFaults()
		}
		next := make([][]loadKey, len(open))
		var wg sync.WaitGroup
		for a, ks := range open {
			wg.Go(func() {
				for _, k := range ks {
					switch l.buy(client, k, delivered, &dmu) {
					case outcomeRetryLater:
						next[a] = append(next[a], k)
					case outcomeAbandoned:
						dmu.Lock()
						abandoned[k.id()] = true
						dmu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		l.restarts.Wait()
		l.clock.Add(int64(loadLease + loadSettle + time.Second))
		for _, r := range l.snapshot() {
			if _, err := r.m.Reconcile(context.Background()); err != nil {
				t.Errorf("Reconcile: %v", err)
			}
		}
		open = next
		if remaining(open) == 0 && round >= loadRounds-loadDrain {
			break
		}
	}
	if n := remaining(open); n > 0 {
		t.Errorf("%d keys still unanswered after %d rounds", n, loadRounds)
	}
	// Everything pending must be resolved by now.
	if due, err := l.cfg.Store.Due(context.Background(), l.now().Add(time.Hour), time.Minute, 1000); err != nil || len(due) != 0 {
		t.Errorf("pending after the load: %d (%v); want none", len(due), err)
	}
	l.closeAll()
	l.res.Elapsed = time.Since(start)
	l.check(keys, delivered, abandoned)
	return l.res
}

func remaining(open [][]loadKey) int {
	n := 0
	for _, ks := range open {
		n += len(ks)
	}
	return n
}

func (l *load) snapshot() []*replica {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*replica(nil), l.replicas...)
}

type buyOutcome int

const (
	outcomeDone buyOutcome = iota
	outcomeRetryLater
	outcomeAbandoned
)

// buy makes one purchase: retries at once on 502 and connection errors
// (up to a few times), leaves a 409 for the next round, and gives up after
// a 502 one time in ten, as an agent may.
func (l *load) buy(client *http.Client, k loadKey, delivered map[string]string, dmu *sync.Mutex) buyOutcome {
	want := fmt.Sprintf("content n=%d", k.n)
	for try := 0; try < 6; try++ {
		reps := l.snapshot()
		l.rngMu.Lock()
		r := reps[l.rng.IntN(len(reps))]
		giveUp := l.rng.IntN(10) == 0
		l.rngMu.Unlock()
		req, _ := http.NewRequest(http.MethodGet, r.srv.URL+k.path+"?n="+strconv.Itoa(k.n), nil)
		req.Header.Set(kyapay.HeaderName, k.token)
		req.Header.Set(middleware.IdempotencyKeyHeader, k.name)
		resp, err := client.Do(req)
		if err != nil {
			l.count(func(r *LoadResult) { r.ConnErrors++ })
			l.note(k, "conn error")
			continue
		}
		l.note(k, resp.Status+" "+resp.Header.Get(middleware.CodeHeader)+" "+resp.Header.Get(middleware.ReplayedHeader))
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			replay := resp.Header.Get(middleware.ReplayedHeader) == "true"
			l.count(func(r *LoadResult) {
				r.OK++
				if replay {
					r.Replays++
				}
			})
			if string(body) != want {
				l.t.Errorf("%s: body %q; want %q", k.name, body, want)
			}
			dmu.Lock()
			delivered[k.id()] = string(body)
			dmu.Unlock()
			return outcomeDone
		case http.StatusConflict:
			l.count(func(r *LoadResult) { r.Conflicts++ })
			return outcomeRetryLater
		case http.StatusBadGateway:
			l.count(func(r *LoadResult) { r.Unknown++ })
			if giveUp {
				l.count(func(r *LoadResult) { r.Abandoned++ })
				return outcomeAbandoned
			}
		case http.StatusServiceUnavailable:
			// charge_unavailable: nothing was charged; retry later.
			l.count(func(r *LoadResult) { r.Unavailable++ })
			return outcomeRetryLater
		default:
			l.count(func(r *LoadResult) { r.Other++ })
			l.t.Errorf("%s: unexpected answer %d %q", k.name, resp.StatusCode, body)
			return outcomeDone
		}
	}
	return outcomeRetryLater
}

func (l *load) note(k loadKey, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trace[k.id()] = append(l.trace[k.id()], what)
}

func (l *load) count(f func(*LoadResult)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.res)
}

// closeAll closes every replica and checks that no reconciliation loop is
// left.
func (l *load) closeAll() {
	for _, r := range l.snapshot() {
		if err := r.m.Close(); err != nil {
			l.t.Error(err)
		}
	}
	l.res.LeftoverReconcilers = settledReconcilers(l.baseGo) - l.baseGo
	for _, r := range l.snapshot() {
		r.srv.Close()
		r.v.Close()
	}
	l.closing.Wait()
}

func (l *load) check(keys [][]loadKey, delivered map[string]string, abandoned map[string]bool) {
	t := l.t
	byID := map[string]loadKey{}
	for _, ks := range keys {
		for _, k := range ks {
			byID[k.id()] = k
		}
	}
	perKey := map[string]int{}
	ledger := l.iss.Charges()
	l.res.LedgerCharges = len(ledger)
	for _, c := range ledger {
		id := c.TokenID + "/" + c.Amount.String()
		if _, ok := byID[id]; !ok {
			t.Errorf("ledger charge %s %s belongs to no purchase", c.TokenID, c.Amount)
		}
		perKey[id]++
	}
	for id, n := range perKey {
		l.res.MaxChargesPerKey = max(l.res.MaxChargesPerKey, n)
		if n > 1 {
			t.Errorf("key %s charged %d times", byID[id].name, n)
		}
	}
	l.res.Delivered = len(delivered)
	for id := range delivered {
		if perKey[id] != 1 {
			t.Errorf("key %s delivered with %d charges", byID[id].name, perKey[id])
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, charged := range l.resolved {
		if !charged {
			continue
		}
		if perKey[id] != 1 {
			t.Errorf("key %s resolved as charged but has %d charges", byID[id].name, perKey[id])
		}
		if _, ok := delivered[id]; ok {
			l.res.ResolvedChargedDelivered++
		}
	}
	// Every charged key was delivered or is a resolved charge: the ledger
	// holds nothing the seller does not know of.
	for id := range perKey {
		if _, ok := delivered[id]; !ok && !l.resolved[id] {
			t.Errorf("key %s charged (abandoned %v) but neither delivered nor resolved as charged: %q", byID[id].name, abandoned[id], l.trace[id])
		}
	}
	if l.res.LedgerCharges != l.res.Delivered+l.res.ResolvedCharged-l.res.ResolvedChargedDelivered {
		t.Errorf("ledger charges %d != delivered %d + resolved charged and not delivered %d",
			l.res.LedgerCharges, l.res.Delivered, l.res.ResolvedCharged-l.res.ResolvedChargedDelivered)
	}
	if l.res.LeftoverReconcilers != 0 {
		t.Errorf("%d reconciliation loops left after Close", l.res.LeftoverReconcilers)
	}
}

// settledReconcilers counts the reconciliation loops after giving those
// that Close stopped the chance to return: Close waits until a loop has
// finished its work, but the goroutine itself exits a moment later. It
// yields until the count reaches want, a bounded number of times.
func settledReconcilers(want int) int {
	n := countReconcilers()
	for i := 0; i < 10000 && n > want; i++ {
		runtime.Gosched()
		n = countReconcilers()
	}
	return n
}

// SettledReconcilers is settledReconcilers for tests of other packages.
func SettledReconcilers(want int) int { return settledReconcilers(want) }

// CountReconcilers counts the reconciliation loops running in the process
// (including those not yet scheduled).
func CountReconcilers() int { return countReconcilers() }

// countReconcilers counts the reconciliation loops running in the process.
func countReconcilers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			// A loop not yet scheduled shows only its creator.
			return strings.Count(string(buf[:n]), "created by github.com/kyapay/kyapay-go/middleware.(*Middleware).startReconciler")
		}
		buf = make([]byte, 2*len(buf))
	}
}
