package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// row is one contender operation across concurrency levels and runs.
type row struct {
	Name  string         `json:"name"`
	Group string         `json:"group"`
	Kind  string         `json:"kind"`
	Cells map[int][]cell `json:"cells"` // by concurrency, one per run
}

type report struct {
	Command     string   `json:"command"`
	When        string   `json:"when"`
	Redis       string   `json:"redis_version"`
	GoVersion   string   `json:"go_version"`
	CPUs        int      `json:"cpus"`
	Concurrency []int    `json:"concurrency"`
	CellSeconds float64  `json:"cell_seconds"`
	Runs        int      `json:"runs"`
	Users       int      `json:"users_per_cell"`
	RecordBytes int      `json:"record_bytes"`
	Rows        []*row   `json:"rows"`
	Ratios      []ratio  `json:"ratios"`
	Memory      []memRow `json:"memory"`
	EvictMisses int64    `json:"timed_logins_not_evicting_exactly_one"`
}

// ratio is a target figure computed run by run (both sides measured in the
// same run), then summarised.
type ratio struct {
	Name   string    `json:"name"`
	Target string    `json:"target"`
	Values []float64 `json:"values"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
}

type summary struct{ med, lo, hi float64 }

func summarize(v []float64) summary {
	if len(v) == 0 {
		return summary{math.NaN(), math.NaN(), math.NaN()}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summary{m, s[0], s[len(s)-1]}
}

func (r *row) field(c int, f func(cell) float64) summary {
	var v []float64
	for _, cl := range r.Cells[c] {
		v = append(v, f(cl))
	}
	return summarize(v)
}

func (rep *report) row(name string) *row {
	for _, r := range rep.Rows {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// computeRatios pairs cells of the same run, so a noisy moment of the
// shared machine hits numerator and denominator alike.
func (rep *report) computeRatios() {
	rep.Ratios = nil
	opsRatio := func(name, target, a, b string, c int) {
		ra, rb := rep.row(a), rep.row(b)
		if ra == nil || rb == nil {
			return
		}
		var v []float64
		for i := 0; i < min(len(ra.Cells[c]), len(rb.Cells[c])); i++ {
			v = append(v, ra.Cells[c][i].OpsPerSec/rb.Cells[c][i].OpsPerSec)
		}
		if len(v) == 0 {
			return
		}
		s := summarize(v)
		rep.Ratios = append(rep.Ratios, ratio{name, target, v, s.med, s.lo, s.hi})
	}
	for _, c := range rep.Concurrency {
		if c == 1 {
			continue
		}
		opsRatio(fmt.Sprintf("Validate / raw GET, c=%d", c), "≥ 0.95", "sessioncap Validate", "raw GET (floor)", c)
		// For scale: what a Validate that runs the script (no touch cache)
		// would score.
		opsRatio(fmt.Sprintf("Validate, script / raw GET, c=%d", c), "(none)", "sessioncap Validate, script", "raw GET (floor)", c)
		opsRatio(fmt.Sprintf("Validate, cached / raw GET, c=%d", c), "≥ 5 at c=16", "sessioncap Validate, cached", "raw GET (floor)", c)
		opsRatio(fmt.Sprintf("Validate, autopipelined / raw GET, c=%d", c), "≥ 1.5", "sessioncap Validate, autopipelined", "raw GET (floor)", c)
		opsRatio(fmt.Sprintf("Validate, autopipelined, full duplex / raw GET, c=%d", c), "≥ 1.5", "sessioncap Validate, autopipelined, full duplex", "raw GET (floor)", c)
		opsRatio(fmt.Sprintf("Login cap 1, autopipelined / Login cap 1, c=%d", c), "≥ 1.5 at c=64", "sessioncap Login cap 1, autopipelined", "sessioncap Login cap 1", c)
		opsRatio(fmt.Sprintf("Login cap 1, autopipelined, full duplex / Login cap 1, c=%d", c), "≥ 1.5 at c=64", "sessioncap Login cap 1, autopipelined, full duplex", "sessioncap Login cap 1", c)
	}
	// The cached Validate's own targets: latency, and Redis commands per
	// call (the server's count, misses and refreshes included).
	if r := rep.row("sessioncap Validate, cached"); r != nil {
		for _, c := range rep.Concurrency {
			if c != 16 {
				continue
			}
			var p50 []float64
			for _, cl := range r.Cells[c] {
				p50 = append(p50, cl.P50us)
			}
			s := summarize(p50)
			rep.Ratios = append(rep.Ratios, ratio{"Validate, cached: p50 µs, c=16", "< 10", p50, s.med, s.lo, s.hi})
		}
		var run []float64
		for _, c := range rep.Concurrency {
			for _, cl := range r.Cells[c] {
				run = append(run, cl.RunPerOp)
			}
		}
		s := summarize(run)
		rep.Ratios = append(rep.Ratios, ratio{"Validate, cached: Redis commands per call (all cells)", "≤ 0.05", run, s.med, s.lo, s.hi})
	}
	for _, c := range rep.Concurrency {
		if c != 16 {
			continue
		}
		opsRatio("Login cap 1 / naive login, c=16", "≥ 2", "sessioncap Login cap 1", "naive Login", c)
		opsRatio("Login cap 3 / naive login, c=16", "≥ 2", "sessioncap Login cap 3", "naive Login", c)
		opsRatio("Login cap 1 / scs login, c=16", "≥ 0.8", "sessioncap Login cap 1", "scs Login", c)
		opsRatio("Login cap 3 / scs login, c=16", "≥ 0.8", "sessioncap Login cap 3", "scs Login", c)
		// What the function library buys: the same sign-in by EVALSHA.
		opsRatio("Login cap 1 / Login cap 1, EVAL, c=16", "(none)", "sessioncap Login cap 1", "sessioncap Login cap 1, EVAL", c)
	}
	for _, s := range []struct{ row, name, target string }{
		{"sessioncap Login cap 3", "login script µs/call, cap 3, evicting (all cells)", "≤ 20"},
		{"sessioncap Login cap 1", "login script µs/call, cap 1, evicting (all cells)", "≤ 20"},
		{"sessioncap Login cap 1, EVAL", "login script µs/call, cap 1, EVAL form (all cells)", "(none)"},
		{"sign-in floor: FCALL of its commands", "sign-in floor µs/call: the login's commands, no logic (all cells)", "(none)"},
	} {
		r := rep.row(s.row)
		if r == nil {
			continue
		}
		var v []float64
		for _, c := range rep.Concurrency {
			for _, cl := range r.Cells[c] {
				v = append(v, cl.ScriptUs)
			}
		}
		sum := summarize(v)
		rep.Ratios = append(rep.Ratios, ratio{s.name, s.target, v, sum.med, sum.lo, sum.hi})
	}
}

func fmtRange(s summary, format string) string {
	if math.IsNaN(s.med) {
		return "–"
	}
	if s.lo == s.hi {
		return fmt.Sprintf(format, s.med)
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", s.med, s.lo, s.hi)
}

func fmtK(s summary) string {
	if math.IsNaN(s.med) {
		return "–"
	}
	k := func(v float64) string { return fmt.Sprintf("%.1fk", v/1000) }
	if s.lo == s.hi {
		return k(s.med)
	}
	return k(s.med) + " (" + k(s.lo) + "–" + k(s.hi) + ")"
}

func (rep *report) write(w io.Writer, o options) error {
	rep.computeRatios()
	var b strings.Builder
	if len(rep.Rows) > 0 {
		fmt.Fprintf(&b, "Redis %s, %s, %d CPUs shared by client and server; %d run(s) of %.1fs per cell; %d users per cell; record %d bytes.\n",
			rep.Redis, rep.GoVersion, rep.CPUs, rep.Runs, rep.CellSeconds, rep.Users, rep.RecordBytes)
		b.WriteString("Figures are medians, with min–max over runs in brackets.\n\n")
		b.WriteString("| operation | c | ops/s | p50 µs | p99 µs | trips/op | cmds sent/op | cmds run/op | local cache hits/op | server CPU µs/op | script µs/call |\n")
		b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, kind := range []string{"validate", "login"} {
			for _, c := range rep.Concurrency {
				for _, r := range rep.Rows {
					if r.Kind != kind || len(r.Cells[c]) == 0 {
						continue
					}
					script := "–"
					// A Validate the touch cache turned into an HGET runs no
					// script at all: "–", not 0.
					if us := r.field(c, func(x cell) float64 { return x.ScriptUs }); us.hi > 0 {
						script = fmtRange(us, "%.1f")
					}
					hits := "–"
					if h := r.field(c, func(x cell) float64 { return x.CacheHits }); h.hi > 0 {
						hits = fmt.Sprintf("%.3f", h.med)
					}
					fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %.2f | %.2f | %.3f | %s | %s | %s |\n", r.Name, c,
						fmtK(r.field(c, func(x cell) float64 { return x.OpsPerSec })),
						fmtRange(r.field(c, func(x cell) float64 { return x.P50us }), "%.0f"),
						fmtRange(r.field(c, func(x cell) float64 { return x.P99us }), "%.0f"),
						r.field(c, func(x cell) float64 { return x.TripsPerOp }).med,
						r.field(c, func(x cell) float64 { return x.SentPerOp }).med,
						r.field(c, func(x cell) float64 { return x.RunPerOp }).med,
						hits,
						fmtRange(r.field(c, func(x cell) float64 { return x.CPUusPerOp }), "%.1f"),
						script)
				}
			}
		}
		if len(rep.Ratios) > 0 {
			b.WriteString("\n| target (same-run pairs) | target | median | min–max |\n|---|---|--:|--:|\n")
			for _, r := range rep.Ratios {
				fmt.Fprintf(&b, "| %s | %s | %.2f | %.2f–%.2f |\n", r.Name, r.Target, r.Median, r.Min, r.Max)
			}
		}
		if rep.EvictMisses > 0 {
			fmt.Fprintf(&b, "\n%d timed cap logins did not evict exactly one session (two workers on one user).\n", rep.EvictMisses)
		}
	}
	if len(rep.Memory) > 0 {
		b.WriteString("\n| memory per live session | users × sessions | bytes/session |\n|---|--:|--:|\n")
		for _, m := range rep.Memory {
			name := m.Name
			if m.Tuned != "" {
				name += " — **tuned**: `" + m.Tuned + "`"
			}
			fmt.Fprintf(&b, "| %s | %d × %d | %.0f |\n", name, m.Users, m.SessionsPerUser, m.BytesPerSession)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// svg draws median throughput by concurrency, one line per row, validate
// and login side by side. Hand-written so the bench needs no plotting
// library.
func (rep *report) svg() string {
	const W, H, pad, panelW = 980, 560, 60, 420
	colors := map[string]string{"raw": "#888888", "sessioncap": "#1f77b4", "scs": "#2ca02c", "naive": "#d62728",
		"cached": "#9467bd", "pipelined": "#ff7f0e", "duplex": "#8c564b"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">sessioncap vs floor and peers: median ops/s by client concurrency (Redis %s, %d runs × %.1fs)</text>`+"\n", pad, rep.Redis, rep.Runs, rep.CellSeconds)
	for p, kind := range []string{"validate", "login"} {
		x0 := pad + p*(panelW+pad)
		y0, y1 := 50, H-220
		maxV := 1.0
		for _, r := range rep.Rows {
			if r.Kind != kind {
				continue
			}
			for _, c := range rep.Concurrency {
				maxV = max(maxV, r.field(c, func(x cell) float64 { return x.OpsPerSec }).med)
			}
		}
		maxV = niceCeil(maxV)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", x0, y0-8, map[string]string{"validate": "Per-request check", "login": "Sign-in"}[kind])
		for t := 0; t <= 4; t++ {
			v := maxV * float64(t) / 4
			y := float64(y1) - float64(y1-y0)*float64(t)/4
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", x0, y, x0+panelW, y)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%sk</text>`+"\n", x0-4, y+4, strconv.FormatFloat(v/1000, 'f', -1, 64))
		}
		n := len(rep.Concurrency)
		xs := func(i int) float64 {
			if n == 1 {
				return float64(x0 + panelW/2)
			}
			return float64(x0+20) + float64(panelW-40)*float64(i)/float64(n-1)
		}
		for i, c := range rep.Concurrency {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">c=%d</text>`+"\n", xs(i), y1+16, c)
		}
		ly := y1 + 36
		for _, r := range rep.Rows {
			if r.Kind != kind {
				continue
			}
			col, ok := colors[r.Group]
			if !ok {
				col = "#000000"
			}
			dash := ""
			if strings.Contains(r.Name, "cap 3") || strings.Contains(r.Name, "script") {
				dash = ` stroke-dasharray="6 3"`
			}
			var pts []string
			for i, c := range rep.Concurrency {
				s := r.field(c, func(x cell) float64 { return x.OpsPerSec })
				if math.IsNaN(s.med) {
					continue
				}
				y := func(v float64) float64 { return float64(y1) - float64(y1-y0)*v/maxV }
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", xs(i), y(s.med)))
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", xs(i), y(s.lo), xs(i), y(s.hi), col)
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", xs(i), y(s.med), col)
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), col, dash)
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/><text x="%d" y="%d">%s</text>`+"\n",
				x0, ly-4, x0+24, ly-4, col, dash, x0+30, ly, r.Name)
			ly += 15
		}
	}
	fmt.Fprintf(&b, `<text x="60" y="%d" fill="#555">Bars: min–max over runs. Client and server share 2 CPU cores, so these are relative figures.</text>`+"\n", H-8)
	b.WriteString("</svg>\n")
	return b.String()
}

func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
