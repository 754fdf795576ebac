package sessioncap

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestREADMESnippetsAreCompiledExamples: every Go block in the README and
// in docs/ must appear, line for line, in an Example that go test compiles
// (and runs, checking its Output, unless it needs servers the test does not
// have: Sentinel, Cluster), so the documentation cannot show code that does
// not build or does not do what it says.
func TestREADMESnippetsAreCompiledExamples(t *testing.T) {
	docs, err := filepath.Glob("docs/*.md")
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs: %v", err)
	}
	var examples strings.Builder
	for _, f := range []string{"example_test.go", "httpsession/example_test.go"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		examples.Write(src)
	}
	norm := func(s string) []string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
		return out
	}
	haystack := "\n" + strings.Join(norm(examples.String()), "\n") + "\n"
	for _, f := range append([]string{"README.md"}, docs...) {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(text), -1)
		if f == "README.md" && len(blocks) == 0 {
			t.Fatal("no Go blocks in the README")
		}
		for _, b := range blocks {
			lines := norm(b[1])
			if !strings.Contains(haystack, "\n"+strings.Join(lines, "\n")+"\n") {
				t.Errorf("%s: this block is not the body of a compiled Example:\n%s", f, b[1])
			}
		}
	}
}
