// Package sessioncapprom exports sessioncap's counters to Prometheus.
//
// A Collector is both a sessioncap.Observer, to pass as
// sessioncap.Config.Observer, and a prometheus.Collector, to register. It
// counts into a sessioncap.Stats and reads it at scrape time, so the
// engine's hot path only adds to atomic counters. The metrics:
//
//	sessioncap_logins_total                  successful sign-ins
//	sessioncap_evictions_total               sessions evicted by newer sign-ins
//	sessioncap_rejections_total              sign-ins refused at the cap (RejectNew)
//	sessioncap_validations_total{outcome}    Validate calls by sessioncap.Outcome
//	sessioncap_script_retries_total          Lua script cache misses (EVALSHA fell back to EVAL)
//	sessioncap_redis_errors_total            calls that failed with ErrUnavailable
//
// To export several engines from one registry, register each Collector
// through prometheus.WrapRegistererWith with a label that tells them apart.
package sessioncapprom

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessioncap/sessioncap"
)

var (
	descLogins      = prometheus.NewDesc("sessioncap_logins_total", "Successful sign-ins.", nil, nil)
	descEvictions   = prometheus.NewDesc("sessioncap_evictions_total", "Sessions evicted by newer sign-ins.", nil, nil)
	descRejections  = prometheus.NewDesc("sessioncap_rejections_total", "Sign-ins refused at the cap (overflow reject).", nil, nil)
	descValidations = prometheus.NewDesc("sessioncap_validations_total", "Session validations by outcome.", []string{"outcome"}, nil)
	descRetries     = prometheus.NewDesc("sessioncap_script_retries_total", "Lua script cache misses (EVALSHA fell back to EVAL).", nil, nil)
	descRedisErrors = prometheus.NewDesc("sessioncap_redis_errors_total", "Engine calls that failed because Redis was unavailable.", nil, nil)
)

// Collector counts Engine calls as a sessioncap.Observer and exports the
// counts as a prometheus.Collector. Create it with NewCollector or
// NewStatsCollector; it is safe for concurrent use.
type Collector struct {
	stats *sessioncap.Stats
}

// NewCollector returns a Collector with counters of its own. Pass it as
// sessioncap.Config.Observer and register it with a prometheus.Registerer.
func NewCollector() *Collector {
	return &Collector{stats: &sessioncap.Stats{}}
}

// NewStatsCollector returns a Collector that exports s, for an application
// that already counts with a sessioncap.Stats (as Config.Observer, or
// inside an Observer of its own that calls s.Observe). Observe on the
// Collector adds to s too.
func NewStatsCollector(s *sessioncap.Stats) *Collector {
	return &Collector{stats: s}
}

// Observe implements sessioncap.Observer: it adds o to the counters.
func (c *Collector) Observe(o sessioncap.Observation) {
	c.stats.Observe(o)
}

// Stats returns the counters the Collector exports, for an application
// that also reads them with Snapshot.
func (c *Collector) Stats() *sessioncap.Stats {
	return c.stats
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLogins, descEvictions, descRejections, descValidations, descRetries, descRedisErrors} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. It reads the counters once per
// scrape; sessioncap_validations_total has a series for every outcome,
// zero or not, so rates never start from a missing series.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats.Snapshot()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descLogins, s.Logins)
	counter(descEvictions, s.Evictions)
	counter(descRejections, s.Rejections)
	counter(descRetries, s.ScriptRetries)
	counter(descRedisErrors, s.RedisErrors)
	outcomes := make([]string, 0, len(s.Validations))
	for o := range s.Validations {
		outcomes = append(outcomes, string(o))
	}
	slices.Sort(outcomes)
	for _, o := range outcomes {
		counter(descValidations, s.Validations[sessioncap.Outcome(o)], o)
	}
}
