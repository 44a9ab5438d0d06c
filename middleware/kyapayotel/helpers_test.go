package kyapayotel_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kyapay/kyapay-go/middleware/kyapayotel"
)

// sdk is an SDK MeterProvider with a manual reader and a TracerProvider
// exporting synchronously to memory.
type sdk struct {
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
	spans  *tracetest.InMemoryExporter
	tp     *sdktrace.TracerProvider
}

func newSDK(t *testing.T) *sdk {
	t.Helper()
	s := &sdk{reader: sdkmetric.NewManualReader(), spans: tracetest.NewInMemoryExporter()}
	s.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(s.reader))
	s.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(s.spans))
	t.Cleanup(func() {
		_ = s.mp.Shutdown(context.Background())
		_ = s.tp.Shutdown(context.Background())
	})
	return s
}

// point is one data point: a sum's value, or a histogram's count and sum.
type point struct {
	value  float64
	count  uint64
	bounds []float64
}

// metrics collects the kyapayotel scope's metrics: for each metric name,
// its unit and its points keyed by attributes in "k=v,k=v" form (sorted).
func (s *sdk) metrics(t *testing.T) (map[string]map[string]point, map[string]string) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := s.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	points := map[string]map[string]point{}
	units := map[string]string{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != kyapayotel.ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			units[m.Name] = m.Unit
			ps := map[string]point{}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					ps[attrs(dp.Attributes)] = point{value: float64(dp.Value)}
				}
			case metricdata.Sum[float64]:
				for _, dp := range d.DataPoints {
					ps[attrs(dp.Attributes)] = point{value: dp.Value}
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					ps[attrs(dp.Attributes)] = point{value: float64(dp.Value)}
				}
			case metricdata.Gauge[float64]:
				for _, dp := range d.DataPoints {
					ps[attrs(dp.Attributes)] = point{value: dp.Value}
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					ps[attrs(dp.Attributes)] = point{count: dp.Count, value: dp.Sum, bounds: dp.Bounds}
				}
			default:
				t.Fatalf("%s: unexpected data %T", m.Name, m.Data)
			}
			points[m.Name] = ps
		}
	}
	return points, units
}

// attrs renders an attribute set as sorted "k=v" pairs, with the
// "kyapay." prefix cut for readability.
func attrs(set attribute.Set) string {
	var parts []string
	for _, kv := range set.ToSlice() {
		parts = append(parts, strings.TrimPrefix(string(kv.Key), "kyapay.")+"="+kv.Value.Emit())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// wantValues compares the values of a metric's points with want.
func wantValues(t *testing.T, points map[string]map[string]point, name string, want map[string]float64) {
	t.Helper()
	got := points[name]
	if len(got) != len(want) {
		t.Errorf("%s has %d points; want %d:\n got %v\nwant %v", name, len(got), len(want), got, want)
	}
	for k, v := range want {
		p, ok := got[k]
		if !ok {
			t.Errorf("%s{%s} missing", name, k)
			continue
		}
		if p.value != v {
			t.Errorf("%s{%s} = %v; want %v", name, k, p.value, v)
		}
	}
}

// wantCounts compares a histogram's point counts with want.
func wantCounts(t *testing.T, points map[string]map[string]point, name string, want map[string]uint64) {
	t.Helper()
	got := points[name]
	if len(got) != len(want) {
		t.Errorf("%s has %d points; want %d: %v", name, len(got), len(want), got)
	}
	for k, n := range want {
		if got[k].count != n {
			t.Errorf("%s{%s} count = %d; want %d", name, k, got[k].count, n)
		}
	}
}

// spanAttrs returns a span's attributes as a map of emitted values.
func spanAttrs(s tracetest.SpanStub) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

// describe prints spans for failure messages.
func describe(spans tracetest.SpanStubs) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s span=%s parent=%s status=%v %v\n", s.Name, s.SpanContext.SpanID(), s.Parent.SpanID(), s.Status.Code, spanAttrs(s))
	}
	return b.String()
}
