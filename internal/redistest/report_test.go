package redistest

import (
	"strings"
	"testing"
)

// fakeT stands in for a test so that the report's own test neither skips
// (CI fails on any skip) nor registers cleanups on the real test.
type fakeT struct {
	testing.TB
	skipped  bool
	cleanups []func()
}

func (f *fakeT) Helper()           {}
func (f *fakeT) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeT) Skipped() bool     { return f.skipped }
func (f *fakeT) Skip(...any)       { f.skipped = true }

// end runs the cleanups, last first, as the testing package does.
func (f *fakeT) end() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func TestReportCountsRunsAndSkips(t *testing.T) {
	r := NewReport("pkg", BackendMiniredis, BackendRedis, BackendCluster, BackendChromium)
	for range 2 {
		f := &fakeT{}
		r.Use(f, BackendMiniredis)
		r.Use(f, BackendMiniredis) // once per test and backend
		r.Use(f, BackendRedis)
		f.end()
	}
	f := &fakeT{}
	r.Skip(f, BackendCluster, "no cluster here")
	if !f.skipped {
		t.Fatal("Skip did not skip the test")
	}
	f.end()
	f = &fakeT{}
	r.Use(f, BackendCluster)
	f.Skip() // a skip the report was not told the reason of
	f.end()

	got := r.Summary()
	for _, want := range []string{
		" pkg go test",
		": ran on miniredis (2 tests), redis-server (2 tests);",
		"; skipped cluster (2 tests: no cluster here);",
		"; no test used chromium",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
}

func TestReportNamesInstalledBackendsThatRanNothing(t *testing.T) {
	r := NewReport("pkg", BackendMiniredis, BackendChromium)
	r.Installed(BackendChromium, false)
	if got := r.Unused(); len(got) != 1 || got[0] != BackendMiniredis {
		t.Fatalf("Unused = %q, want [miniredis]: it is always installed and no test ran on it", got)
	}
	f := &fakeT{}
	r.Use(f, BackendMiniredis)
	f.end()
	if got := r.Unused(); len(got) != 0 {
		t.Fatalf("Unused = %q after a test ran on miniredis, want none", got)
	}
	r.Installed(BackendChromium, true)
	want := 0
	if !testing.Short() { // -short leaves the browser to the full tier
		want = 1
	}
	if got := r.Unused(); len(got) != want {
		t.Fatalf("Unused = %q with Chromium installed, want %d", got, want)
	}
}
