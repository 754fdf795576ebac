package sessioncapprom_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/extra/sessioncapprom"
)

func newEngine(t *testing.T, obs sessioncap.Observer) *sessioncap.Engine {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	e, err := sessioncap.New(rdb, sessioncap.Config{MaxSessions: 1, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestMetrics signs alice in twice, so the second sign-in evicts the first,
// validates the evicted session, and checks every metric.
func TestMetrics(t *testing.T) {
	c := sessioncapprom.NewCollector()
	e := newEngine(t, c)
	ctx := t.Context()
	a, err := e.Login(ctx, "alice", sessioncap.Meta{UserAgent: "A/1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Login(ctx, "alice", sessioncap.Meta{UserAgent: "B/1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Validate(ctx, a.Token); !errors.Is(err, sessioncap.ErrEvicted) {
		t.Fatalf("validate of the evicted session: %v", err)
	}
	// The first Login found the script cache empty.
	want := `
# HELP sessioncap_evictions_total Sessions evicted by newer sign-ins.
# TYPE sessioncap_evictions_total counter
sessioncap_evictions_total 1
# HELP sessioncap_logins_total Successful sign-ins.
# TYPE sessioncap_logins_total counter
sessioncap_logins_total 2
# HELP sessioncap_redis_errors_total Engine calls that failed because Redis was unavailable.
# TYPE sessioncap_redis_errors_total counter
sessioncap_redis_errors_total 0
# HELP sessioncap_rejections_total Sign-ins refused at the cap (overflow reject).
# TYPE sessioncap_rejections_total counter
sessioncap_rejections_total 0
# HELP sessioncap_script_retries_total Lua script cache misses (EVALSHA fell back to EVAL).
# TYPE sessioncap_script_retries_total counter
sessioncap_script_retries_total 1
# HELP sessioncap_validations_total Session validations by outcome.
# TYPE sessioncap_validations_total counter
sessioncap_validations_total{outcome="conflict"} 0
sessioncap_validations_total{outcome="error"} 0
sessioncap_validations_total{outcome="evicted"} 1
sessioncap_validations_total{outcome="expired"} 0
sessioncap_validations_total{outcome="invalid"} 0
sessioncap_validations_total{outcome="not_found"} 0
sessioncap_validations_total{outcome="ok"} 0
sessioncap_validations_total{outcome="redis_error"} 0
sessioncap_validations_total{outcome="rejected"} 0
sessioncap_validations_total{outcome="revoked"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

// TestLint runs Prometheus's metric linter over the collector's output.
func TestLint(t *testing.T) {
	c := sessioncapprom.NewCollector()
	c.Observe(sessioncap.Observation{Op: sessioncap.OpValidate, Outcome: sessioncap.OutcomeOK})
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestStatsCollector checks that a Collector made from an application's
// Stats exports what the Stats counted, and that its Observe counts there.
func TestStatsCollector(t *testing.T) {
	var s sessioncap.Stats
	s.Observe(sessioncap.Observation{Op: sessioncap.OpLogin, Outcome: sessioncap.OutcomeRejected})
	c := sessioncapprom.NewStatsCollector(&s)
	c.Observe(sessioncap.Observation{Op: sessioncap.OpLogin, Outcome: sessioncap.OutcomeRedisError})
	if c.Stats() != &s {
		t.Fatal("Stats is not the Stats given")
	}
	want := `
# HELP sessioncap_rejections_total Sign-ins refused at the cap (overflow reject).
# TYPE sessioncap_rejections_total counter
sessioncap_rejections_total 1
# HELP sessioncap_redis_errors_total Engine calls that failed because Redis was unavailable.
# TYPE sessioncap_redis_errors_total counter
sessioncap_redis_errors_total 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"sessioncap_rejections_total", "sessioncap_redis_errors_total"); err != nil {
		t.Fatal(err)
	}
}

// TestTwoEngines registers two collectors in one registry, told apart by a
// label as the package documentation suggests.
func TestTwoEngines(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	web, api := sessioncapprom.NewCollector(), sessioncapprom.NewCollector()
	prometheus.WrapRegistererWith(prometheus.Labels{"engine": "web"}, reg).MustRegister(web)
	prometheus.WrapRegistererWith(prometheus.Labels{"engine": "api"}, reg).MustRegister(api)
	web.Observe(sessioncap.Observation{Op: sessioncap.OpLogin, Outcome: sessioncap.OutcomeOK, Evicted: 2})
	want := `
# HELP sessioncap_evictions_total Sessions evicted by newer sign-ins.
# TYPE sessioncap_evictions_total counter
sessioncap_evictions_total{engine="api"} 0
sessioncap_evictions_total{engine="web"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sessioncap_evictions_total"); err != nil {
		t.Fatal(err)
	}
}
