package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/jwks"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// HTTP server limits. WriteTimeout leaves room for the charge call
// (middleware.DefaultChargeTimeout) on top of the handler.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	// shutdownTimeout bounds the graceful shutdown; it covers a charge in
	// flight (15 s by default).
	shutdownTimeout = 20 * time.Second
)

// Exit statuses of run.
const (
	exitOK     = 0
	exitFailed = 1 // runtime failure: listen, serve, unclean shutdown
	exitConfig = 2 // bad configuration
)

// run loads the configuration through getenv, serves until ctx is done or
// SIGINT/SIGTERM arrives, shuts down gracefully and returns the exit
// status. Logs go to stderr.
func run(ctx context.Context, getenv func(string) string, stderr io.Writer) int {
	cfg, err := loadConfig(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "kyapay example server: %v\n", err)
		return exitConfig
	}
	// The charge client reads SKYFIRE_API_KEY_FILE, the likeliest mistake
	// loadConfig cannot see, so it is built before anything is logged:
	// a bad key file is one line on stderr like any other bad variable.
	charger, err := newCharger(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "kyapay example server: invalid configuration: %v\n", err)
		return exitConfig
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	logger.Info("starting", slog.Any("config", cfg))

	var obs middleware.Observer
	var metricsHandler http.Handler
	if cfg.MetricsAddr != "" {
		if obs, metricsHandler, err = newMetrics(logger.With(slog.String("component", "metrics"))); err != nil {
			logger.Error("metrics setup failed", slog.Any("error", err))
			return exitFailed
		}
	}
	handler, closeServer, err := newServer(cfg, logger, charger, obs)
	if err != nil {
		// The configuration passed loadConfig, so this is a library-level
		// rejection of it.
		fmt.Fprintf(stderr, "kyapay example server: invalid configuration: %v\n", err)
		return exitConfig
	}
	defer func() {
		if err := closeServer(); err != nil {
			logger.Warn("close", slog.Any("error", err))
		}
	}()

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The API listener and, with KYAPAY_METRICS_ADDR, the metrics listener:
	// metrics are never served on the API's address.
	servers := []*server{{name: "listening", addr: cfg.Addr, handler: handler}}
	if metricsHandler != nil {
		servers = append(servers, &server{name: "metrics listening", addr: cfg.MetricsAddr, handler: metricsHandler})
	}
	for _, s := range servers {
		if err := s.listen(logger); err != nil {
			logger.Error("listen failed", slog.String("addr", s.addr), slog.Any("error", err))
			for _, s := range servers {
				s.close()
			}
			return exitFailed
		}
	}
	serveErr := make(chan error, len(servers))
	for _, s := range servers {
		logger.Info(s.name, slog.String("addr", s.ln.Addr().String()),
			slog.String("url", "http://"+s.ln.Addr().String()))
		go func() { serveErr <- s.srv.Serve(s.ln) }()
	}

	select {
	case err := <-serveErr:
		logger.Error("serve failed", slog.Any("error", err))
		for _, s := range servers {
			_ = s.srv.Close()
		}
		return exitFailed
	case <-ctx.Done():
	}
	stop() // a second signal kills the process the default way
	logger.Info("shutting down", slog.String("timeout", shutdownTimeout.String()))
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// The API first, so its in-flight charges show on a last scrape
	// while the metrics listener is still up.
	status := exitOK
	for _, s := range servers {
		if err := s.srv.Shutdown(sctx); err != nil {
			logger.Error("graceful shutdown failed; closing connections", slog.String("addr", s.addr), slog.Any("error", err))
			_ = s.srv.Close()
			status = exitFailed
		}
	}
	for range servers {
		if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
			logger.Error("serve failed", slog.Any("error", err))
			status = exitFailed
		}
	}
	if status == exitOK {
		logger.Info("stopped")
	}
	return status
}

// server is one listener of the program and its HTTP server.
type server struct {
	name    string // the log message announcing it
	addr    string
	handler http.Handler
	ln      net.Listener
	srv     *http.Server
}

// listen opens the listener and builds the HTTP server with the program's
// limits.
func (s *server) listen(logger *slog.Logger) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return err
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return nil
}

// close closes the listener, if open, when serving never started.
func (s *server) close() {
	if s.ln != nil {
		_ = s.ln.Close()
	}
}

// newServer builds the seller's handler from a validated configuration and
// the charge client built from it by newCharger. obs, if not nil, receives
// the Middleware's events (the metrics). The returned close function stops
// the Middleware's reconciler and the JWKS cache's background refresh, and
// closes the Redis client, if any.
func newServer(cfg config, logger *slog.Logger, charger *charge.Client, obs middleware.Observer) (http.Handler, func() error, error) {
	// The JWKS cache is built here rather than by kyapay.NewVerifier (which
	// would build one when Keys is nil) only to give it the logger, so a
	// wrong KYAPAY_JWKS_URL shows up in the log as refresh failures.
	keys, err := jwks.New(context.Background(), jwks.Config{
		Issuers: map[string]string{cfg.Issuer: cfg.JWKSURL},
		Logger:  logger.With(slog.String("component", "jwks")),
	})
	if err != nil {
		return nil, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			keys.Close()
		}
	}()
	verifier, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Issuers:              []string{cfg.Issuer},
		Keys:                 keys,
		Audience:             cfg.SellerID,
		InsecureSkipAudience: cfg.SkipAud,
		ServiceID:            cfg.ServiceID,
		Env:                  cfg.Env,
	})
	if err != nil {
		return nil, nil, err
	}
	store, closeStore, err := openStore(context.Background(), cfg.RedisURL)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if !ok {
			closeStore()
		}
	}()
	refuse := middleware.DefaultErrorHandler(middleware.PolicySeed)
	m, err := middleware.New(middleware.Config{
		Verifier: verifier,
		Charger:  charger,
		Store:    store, // nil: in memory
		Logger:   logger.With(slog.String("component", "kyapay")),
		Observer: obs, // nil: none
		Policy:   middleware.PolicySeed,
		// Note the refusal code for the request log line, then answer as
		// usual.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
				info.refusal = kyapay.CodeOf(err)
			}
			refuse(w, r, err)
		},
	})
	if err != nil {
		return nil, nil, err
	}

	price := middleware.FixedPrice(cfg.Price.String())
	kyaReq := middleware.Identity()
	payReq := middleware.Pay(price)
	payReq.Timing = cfg.Mode

	kyaRoute, err := m.Require(kyaReq)
	if err != nil {
		return nil, nil, err
	}
	payRoute, err := m.Require(payReq)
	if err != nil {
		return nil, nil, err
	}
	llms, err := middleware.LLMsTxt(middleware.ServiceInfo{
		Name:        "KYAPay example seller",
		Description: "An example API that sells to AI agents paying with Skyfire KYAPay tokens.",
		SellerID:    cfg.SellerID,
		ServiceID:   cfg.ServiceID,
		Environment: cfg.Env,
		Policy:      middleware.PolicySeed,
		Routes: []middleware.RouteInfo{
			{Method: http.MethodGet, Path: "/kya", Description: "returns the identity claims of your token", Requirement: kyaReq},
			{Method: http.MethodGet, Path: "/pay", Description: "a paid call; returns the charge receipt", Requirement: payReq},
		},
	})
	if err != nil {
		return nil, nil, err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", serveHealthz)
	mux.Handle("GET /llms.txt", llms)
	mux.Handle("GET /kya", kyaRoute(http.HandlerFunc(serveKYA)))
	mux.Handle("GET /pay", payRoute(payHandler{price: cfg.Price, mode: cfg.Mode}))
	mcpHandler, err := newMCPHandler(cfg, m)
	if err != nil {
		return nil, nil, err
	}
	mux.Handle("POST /mcp", mcpHandler)

	ok = true
	closeAll := func() error {
		m.Close() // the reconciler, which uses the store
		return errors.Join(closeStore(), keys.Close())
	}
	return logRequests(logger, mux), closeAll, nil
}

// newCharger builds the charge client. With SKYFIRE_API_KEY_FILE the key
// comes from charge.FileKey: read now (the file must exist and hold a
// valid key) and again whenever the charge API answers 401, so a rotated
// key is picked up without a restart. Errors name the variable and the
// file, never the key.
func newCharger(cfg config) (*charge.Client, error) {
	if cfg.APIKeyFile == "" {
		return charge.New(charge.Config{BaseURL: cfg.APIBase, APIKey: cfg.APIKey})
	}
	// charge.New reads and checks the key too, but its error would not
	// name the variable; reading it here first gives the operator a line
	// saying which variable and file are wrong. FileKey's and Check's
	// errors name the path and the problem, never the contents.
	source := charge.FileKey(cfg.APIKeyFile)
	key, err := source(context.Background())
	if err != nil {
		return nil, fmt.Errorf("%s: %v", envAPIKeyFile, err)
	}
	if err := key.Check(); err != nil {
		return nil, fmt.Errorf("%s: %s does not hold a valid key: %v", envAPIKeyFile, strconv.Quote(cfg.APIKeyFile), err)
	}
	return charge.New(charge.Config{BaseURL: cfg.APIBase, KeySource: source})
}

func serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok")
}

// identityResponse is the body of GET /kya: the buyer's identity claims.
type identityResponse struct {
	Subject  string                `json:"sub"`
	Type     string                `json:"type"`
	Env      string                `json:"env,omitempty"`
	Human    *kyapay.HumanIdentity `json:"hid,omitempty"`
	Platform *kyapay.AgentPlatform `json:"apd,omitempty"`
	Agent    *kyapay.AgentIdentity `json:"aid,omitempty"`
	ID       string                `json:"jti"`
	Expiry   int64                 `json:"exp"` // Unix seconds, as in the token
}

// identityOf is the answer of GET /kya and of the whoami tool.
func identityOf(c *kyapay.Claims) identityResponse {
	return identityResponse{
		Subject:  c.Subject,
		Type:     c.Type.String(),
		Env:      c.Env,
		Human:    c.Human,
		Platform: c.Platform,
		Agent:    c.Agent,
		ID:       c.ID,
		Expiry:   c.Expiry.Unix(),
	}
}

func serveKYA(w http.ResponseWriter, r *http.Request) {
	c, ok := kyapay.FromContext(r.Context())
	if !ok {
		http.Error(w, "no verified token", http.StatusInternalServerError)
		return
	}
	writeJSON(w, identityOf(c))
}

// payResponse is the body of GET /pay.
//
// In charge-before mode the charge is confirmed before the handler runs, so
// Charged is true and AmountCharged and RemainingBalance (if Skyfire
// reported it) come from the receipt. In charge-after mode the handler runs
// first and the charge happens once it has returned successfully: the
// handler has no receipt, so Charged is false, the receipt fields are
// absent, and Price says what will be charged before this very body is
// released to the client (a refused charge replaces it with the refusal).
type payResponse struct {
	Subject          string         `json:"sub"`
	ID               string         `json:"jti"`
	ChargeMode       string         `json:"chargeMode"`
	Price            kyapay.Amount  `json:"price"`
	Charged          bool           `json:"charged"`
	AmountCharged    *kyapay.Amount `json:"amountCharged,omitempty"`
	RemainingBalance *kyapay.Amount `json:"remainingBalance,omitempty"`
	TransactionID    string         `json:"transactionId,omitempty"`
}

type payHandler struct {
	price kyapay.Amount
	mode  middleware.ChargeTiming
}

func (h payHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, ok := kyapay.FromContext(r.Context())
	if !ok {
		http.Error(w, "no verified token", http.StatusInternalServerError)
		return
	}
	resp := payResponse{Subject: c.Subject, ID: c.ID, ChargeMode: h.mode.String(), Price: h.price}
	if rc, ok := middleware.ReceiptFromContext(r.Context()); ok {
		resp.Charged = true
		resp.AmountCharged = &rc.AmountCharged
		if rc.HasRemainingBalance {
			resp.RemainingBalance = &rc.RemainingBalance
		}
		resp.TransactionID = rc.TransactionID
	}
	writeJSON(w, resp)
}

func writeJSON(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store") // personal data and receipts
	_, _ = w.Write(append(body, '\n'))
}

// requestInfo collects what the request log line reports beyond the
// status: the refusal code, set by the middleware's error handler.
type requestInfo struct {
	refusal kyapay.Code
}

type requestInfoKey struct{}

// logRequests logs one line per request: method, path (never the query),
// status, bytes, duration and, for refusals, the code. Headers, and so the
// token, are never logged.
func logRequests(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info)))
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Int64("bytes", rec.bytes),
			slog.Duration("duration", time.Since(start)),
		}
		if info.refusal != "" {
			attrs = append(attrs, slog.String("refusal", string(info.refusal)))
		}
		logger.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}

// statusRecorder remembers the status and counts the body bytes.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
