package sessioncapprom_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/extra/sessioncapprom"
)

// One Collector is the engine's Observer and a registered Prometheus
// collector; /metrics then serves the counters. Here a second sign-in
// evicts the first, whose next request learns it was evicted.
func Example() {
	ctx := context.Background()
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})

	metrics := sessioncapprom.NewCollector()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics)
	engine, err := sessioncap.New(rdb, sessioncap.Config{MaxSessions: 1, Observer: metrics})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	laptop, _ := engine.Login(ctx, "alice", sessioncap.Meta{UserAgent: "laptop"})
	engine.Login(ctx, "alice", sessioncap.Meta{UserAgent: "phone"}) // evicts the laptop
	engine.Validate(ctx, laptop.Token)

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() { // the counters that moved
		if l := lines.Text(); !strings.HasPrefix(l, "#") && !strings.HasSuffix(l, " 0") {
			fmt.Println(l)
		}
	}
	// Output:
	// sessioncap_evictions_total 1
	// sessioncap_logins_total 2
	// sessioncap_script_retries_total 1
	// sessioncap_validations_total{outcome="evicted"} 1
}
