package main

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapayprom"
)

// metricsPath is where the metrics listener serves the Prometheus text
// exposition; nothing else is served there.
const metricsPath = "/metrics"

// newMetrics creates a registry of its own (never the global default, so
// nothing another package registers leaks onto the page) holding the
// middleware's metrics, from the returned Observer, and the Go runtime
// and process collectors. The handler serves it at /metrics, for the
// separate KYAPAY_METRICS_ADDR listener only.
func newMetrics(logger *slog.Logger) (middleware.Observer, http.Handler, error) {
	reg := prometheus.NewRegistry()
	obs, err := kyapayprom.New(reg)
	if err != nil {
		return nil, nil, err
	}
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, nil, err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+metricsPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		// Scrapes are light; a handful at once is plenty.
		MaxRequestsInFlight: 4,
		Timeout:             writeTimeout / 2,
	}))
	return obs, mux, nil
}
