package redistest

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The backends a test package can run on, in the order a report lists them.
const (
	BackendMiniredis = "miniredis"
	BackendRedis     = "redis-server"
	BackendCluster   = "cluster"
	BackendSentinel  = "sentinel"
	BackendChromium  = "chromium"
)

// shortTier holds the backends that go test -short runs: the quick tier is
// miniredis plus one real redis-server.
var shortTier = map[string]bool{BackendMiniredis: true, BackendRedis: true}

// requireEnv names the variable that turns a missing backend from a skip
// into a failure (.ci/run sets both).
var requireEnv = map[string]string{
	BackendRedis:    "SESSIONCAP_REQUIRE_REDIS",
	BackendCluster:  "SESSIONCAP_REQUIRE_REDIS",
	BackendSentinel: "SESSIONCAP_REQUIRE_REDIS",
	BackendChromium: "SESSIONCAP_REQUIRE_BROWSER",
}

// Report counts, for one test package, the tests that ran on each backend
// and those that skipped it, because go test shows nothing but "ok" for a
// passing package. TestMain ends with os.Exit(report.Finish(m.Run())), which
// writes a one-line summary to a file (see Finish) and fails the run when a
// backend that is installed went unused.
type Report struct {
	pkg      string
	backends []string

	mu        sync.Mutex
	installed map[string]bool
	used      map[testing.TB]map[string]bool
	ran       map[string]int
	skipped   map[string]int
	why       map[string]string
}

// NewReport starts the report of package pkg (a short name such as
// "sessioncap" or "httpsession"), whose tests can run on backends. Miniredis
// counts as installed, the Redis backends when redis-server is on PATH;
// Installed overrides that.
func NewReport(pkg string, backends ...string) *Report {
	r := &Report{pkg: pkg, backends: backends, installed: map[string]bool{},
		used: map[testing.TB]map[string]bool{}, ran: map[string]int{}, skipped: map[string]int{}, why: map[string]string{}}
	for _, b := range backends {
		r.installed[b] = b == BackendMiniredis || (b != BackendChromium && Available())
	}
	return r
}

// Installed says whether backend is on this machine (for Chromium, which
// only the package that drives it knows how to find).
func (r *Report) Installed(backend string, ok bool) {
	r.mu.Lock()
	r.installed[backend] = ok
	r.mu.Unlock()
}

// Use records that t runs on backend: when t ends, it counts as a test run
// there, or as a skip if t skipped. Calling it again for the same t and
// backend changes nothing.
func (r *Report) Use(t testing.TB, backend string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.used[t] == nil {
		r.used[t] = map[string]bool{}
	}
	if r.used[t][backend] {
		return
	}
	r.used[t][backend] = true
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if t.Skipped() {
			r.skipped[backend]++
		} else {
			r.ran[backend]++
		}
	})
}

// Skip records why t does not run on backend and skips t. The first reason
// given for a backend is the one the summary shows.
func (r *Report) Skip(t testing.TB, backend, why string) {
	t.Helper()
	r.Use(t, backend)
	r.mu.Lock()
	if r.why[backend] == "" {
		r.why[backend] = why
	}
	r.mu.Unlock()
	t.Skip(why)
}

// Missing handles a backend that is not installed: it fails t when the
// backend's SESSIONCAP_REQUIRE_* variable is 1 (as in CI), and skips t
// otherwise, saying what to install.
func (r *Report) Missing(t testing.TB, backend, why string) {
	t.Helper()
	if env := requireEnv[backend]; env != "" && os.Getenv(env) == "1" {
		r.Use(t, backend)
		t.Fatalf("%s, and %s=1 makes that a failure", why, env)
	}
	r.Skip(t, backend, "!!! SKIPPED: "+why)
}

// FullTier skips t under -short, for a backend that only the full run uses.
func (r *Report) FullTier(t testing.TB, backend string) {
	t.Helper()
	if testing.Short() && !shortTier[backend] {
		r.Skip(t, backend, "-short: "+backend+" is in the full tier only")
	}
}

// Summary is the report's one line: the package, the time, the tier (with
// any -run or -skip filter), and per backend how many tests ran on it or skipped it, and why.
func (r *Report) Summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	tier := "go test"
	if testing.Short() {
		tier += " -short"
	}
	// A filtered run says so, lest its line read as the whole suite's.
	for _, name := range []string{"run", "skip"} {
		if f := flag.Lookup("test." + name); f != nil && f.Value.String() != "" {
			tier += fmt.Sprintf(" -%s %q", name, f.Value.String())
		}
	}
	var ran, skipped, none []string
	for _, b := range r.backends {
		if n := r.ran[b]; n > 0 {
			ran = append(ran, fmt.Sprintf("%s (%s)", b, tests(n)))
		}
		if n := r.skipped[b]; n > 0 {
			why := ""
			if r.why[b] != "" {
				why = ": " + r.why[b]
			}
			skipped = append(skipped, fmt.Sprintf("%s (%s%s)", b, tests(n), why))
		}
		if r.ran[b]+r.skipped[b] == 0 {
			none = append(none, b)
		}
	}
	line := fmt.Sprintf("%s %s %s: ran on %s", time.Now().UTC().Format(time.RFC3339), r.pkg, tier, list(ran))
	if len(skipped) > 0 {
		line += "; skipped " + strings.Join(skipped, ", ")
	}
	if len(none) > 0 {
		line += "; no test used " + strings.Join(none, ", ")
	}
	return line
}

func tests(n int) string {
	if n == 1 {
		return "1 test"
	}
	return fmt.Sprintf("%d tests", n)
}

func list(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}

// Dir is where Finish writes the summaries: $SESSIONCAP_ARTIFACTS, else
// sessioncap-tests in the system's temporary directory.
func Dir() string {
	if d := os.Getenv("SESSIONCAP_ARTIFACTS"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "sessioncap-tests")
}

// Finish ends a TestMain: given m.Run's exit code, it writes the summary to
// Dir()/backends-<pkg>.txt (replacing the last run's) and, with -v, prints
// it as a line starting "backends:". When every test of the package ran
// (no -run, -skip or -list) and passed, but a backend that is installed and
// belongs to this tier ran no test, it says so and returns 1: an installed
// redis-server that the suite never used is a broken harness, not a pass.
func (r *Report) Finish(code int) int {
	line := r.Summary()
	if testing.Verbose() {
		fmt.Println("backends: " + line)
	}
	dir := Dir()
	path := filepath.Join(dir, "backends-"+r.pkg+".txt")
	err := os.MkdirAll(dir, 0o755)
	if err == nil {
		err = os.WriteFile(path, []byte(line+"\n"), 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: writing the backend summary: %v\n", r.pkg, err)
	}
	if code != 0 || !wholeRun() {
		return code
	}
	for _, b := range r.Unused() {
		fmt.Fprintf(os.Stderr, "FAIL: %s is installed, but no test in %s ran on it: the harness lost a backend.\n%s\n", b, r.pkg, line)
		code = 1
	}
	return code
}

// Unused lists the backends that are installed and belong to this tier
// (-short: miniredis and redis-server) but ran no test.
func (r *Report) Unused() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.backends {
		if r.installed[b] && r.ran[b] == 0 && (shortTier[b] || !testing.Short()) {
			out = append(out, b)
		}
	}
	return out
}

// wholeRun reports whether go test ran every test: no -run, -skip or -list.
func wholeRun() bool {
	for _, name := range []string{"test.run", "test.skip", "test.list"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return true
}
