package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// findBrowser returns a Chromium to drive, or "" when there is none.
// SESSIONCAP_CHROMIUM overrides the search.
func findBrowser() string {
	if p := os.Getenv("SESSIONCAP_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artifactsDir is where screenshots go: $SESSIONCAP_ARTIFACTS, or a fresh
// temporary directory that outlives the test so a person can look.
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("SESSIONCAP_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "sessioncap-artifacts-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	fmt.Fprintf(os.Stderr, "sessioncap browser test: screenshots in %s\n", dir)
	return dir
}

// profile is one browser with its own user-data-dir: its own cookies, so
// three profiles are three devices.
type profile struct {
	name string
	ctx  context.Context
	ua   string
}

func newProfile(t *testing.T, parent context.Context, browser, name string) *profile {
	t.Helper()
	// A recognisable User-Agent per profile, so the test can check that a
	// banner names the right device.
	ua := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Device" + name
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.UserAgent(ua),
		chromedp.WindowSize(1100, 760),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(parent, opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v", name, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Logf("starting browser %s took %v", name, d)
	}
	return &profile{name: name, ctx: ctx, ua: ua}
}

func (p *profile) run(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("profile %s: %s: %v", p.name, what, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Logf("profile %s: %s took %v", p.name, what, d)
	}
}

// value runs one action that returns something.
func value[T any](t *testing.T, p *profile, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("profile %s: %s: %v", p.name, what, err)
	}
	return v
}

func css(s string) chromedp.CSS { return chromedp.CSS(s) }

// submit runs steps that submit a form and waits until the page they lead
// to has loaded, so that no later query runs against the old document.
func (p *profile) submit(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		t.Fatalf("profile %s: %s: %v", p.name, what, err)
	}
	if resp.Status >= 400 {
		t.Fatalf("profile %s: %s: HTTP %d", p.name, what, resp.Status)
	}
}

// signIn signs in through the form and waits for "your devices", where
// every successful sign-in lands.
func (p *profile) signIn(t *testing.T, base, user, password string) {
	t.Helper()
	p.run(t, "open the sign-in page",
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(css(`input[name=user]`)),
		chromedp.SendKeys(css(`input[name=user]`), user),
		chromedp.SendKeys(css(`input[name=password]`), password),
	)
	p.submit(t, "sign in as "+user, chromedp.Submit(css(`input[name=password]`)))
	p.run(t, "devices page after sign-in", chromedp.WaitVisible(css(`table.devices tr.current`)))
}

func (p *profile) screenshot(t *testing.T, dir, name string) string {
	t.Helper()
	png := value(t, p, "screenshot", chromedp.FullScreenshot(100))
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (p *profile) text(t *testing.T, sel string) string {
	t.Helper()
	return value(t, p, "read "+sel, chromedp.Text(css(sel)))
}

// TestBrowserEviction drives the demo app in real headless Chromium: two
// devices sign in as alice under a cap of one, the first sees the eviction
// live over Server-Sent Events and again on its next page, the second lists
// one session, and an admin in a third profile signs the second out.
func TestBrowserEviction(t *testing.T) {
	report.FullTier(t, redistest.BackendChromium)
	browser := findBrowser()
	if browser == "" {
		report.Missing(t, redistest.BackendChromium, "no Chromium found (apt-get install chromium chromium-driver, or set SESSIONCAP_CHROMIUM)")
	}
	report.Use(t, redistest.BackendChromium)
	dir := artifactsDir(t)

	a, err := newApp(appConfig{MaxSessions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: a.handler()}
	go srv.Serve(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Log(err)
		}
		srv.Close()
	}()
	// 127.0.0.1 is a secure context for Chromium, so the default Secure
	// __Host- cookie works over plain HTTP here, as it does on localhost.
	base := "http://" + ln.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	began := time.Now()
	defer func() { t.Logf("browser test took %v", time.Since(began)) }()
	pa := newProfile(t, ctx, browser, "A")
	pb := newProfile(t, ctx, browser, "B")

	// A signs in and stays on "your devices", its event stream open.
	pa.signIn(t, base, "alice", "demo")
	pa.run(t, "devices page with the stream up",
		chromedp.WaitVisible(css(`table.devices tr.current`)),
		chromedp.Poll[chromedp.Void](`window.sessioncapLive && window.sessioncapLive.isReady()`, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`),
	)
	pa.screenshot(t, dir, "1-a-devices.png")

	// B signs in as alice too; A's page must show the banner by itself.
	start := time.Now()
	pb.signIn(t, base, "alice", "demo")
	pb.run(t, "B on its devices page", chromedp.WaitVisible(css(`table.devices tr.current`)))
	pa.run(t, "live banner on A", chromedp.WaitVisible(css(`#live-banner`)))
	shownAt := value(t, pa, "banner time", chromedp.Evaluate[float64](`window.sessioncapLive.shownAt()`))
	sameDoc := value(t, pa, "same document", chromedp.Evaluate[bool](`window.__sameDocument === true`))
	latency := time.UnixMilli(int64(shownAt)).Sub(start)
	t.Logf("live banner appeared %v after B submitted its sign-in (B's whole sign-in and page load included)", latency)
	fmt.Fprintf(os.Stderr, "sessioncap browser test: live eviction banner latency %v\n", latency)
	if !sameDoc {
		t.Fatal("the page reloaded: the banner must appear without one")
	}
	if latency > 3*time.Second {
		t.Fatalf("live banner took %v, want well under a second (bound 3s)", latency)
	}
	if live := pa.text(t, `#live-banner`); !strings.Contains(live, "DeviceB") || !strings.Contains(live, "signed in on another device") {
		t.Fatalf("live banner does not name device B: %q", live)
	}
	pa.screenshot(t, dir, "2-a-live-banner.png")

	// A's next page says the same, rendered by the server.
	pa.run(t, "A's next page", chromedp.Navigate(base+"/devices"), chromedp.WaitVisible(css(`#banner`)))
	if b := pa.text(t, `#banner`); !strings.Contains(b, "DeviceB") || !strings.Contains(b, "This wasn't me") {
		t.Fatalf("A's banner: %q", b)
	}
	pa.screenshot(t, dir, "3-a-evicted-page.png")

	// B lists exactly one session: its own.
	pb.run(t, "B's devices", chromedp.Navigate(base+"/devices"), chromedp.WaitVisible(css(`table.devices`)))
	rows := value(t, pb, "count rows", chromedp.Evaluate[int](`document.querySelectorAll("table.devices tbody tr").length`))
	if rows != 1 {
		t.Fatalf("B lists %d sessions, want 1", rows)
	}
	pb.run(t, "B's stream up", chromedp.Poll[chromedp.Void](`window.sessioncapLive && window.sessioncapLive.isReady()`,
		chromedp.WithPollingTimeout(10*time.Second)))
	devicesShot := pb.screenshot(t, dir, "4-b-devices.png")
	t.Logf("devices page: %s", devicesShot)

	// A third profile, the admin, signs alice out; B learns it live.
	pc := newProfile(t, ctx, browser, "C")
	pc.signIn(t, base, "admin", "admin")
	pc.run(t, "admin page",
		chromedp.Navigate(base+"/admin"),
		chromedp.WaitVisible(css(`input[value=alice]`)),
		chromedp.Click(css(`input[value=alice]`)),
	)
	pc.submit(t, "admin signs alice out", chromedp.Submit(css(`input[value=alice]`)))
	pc.run(t, "admin sees the result", chromedp.WaitVisible(css(`p.flash[role=status]`)))
	pc.screenshot(t, dir, "5-c-admin.png")
	pb.run(t, "B's live banner", chromedp.WaitVisible(css(`#live-banner`)))
	if live := pb.text(t, `#live-banner`); !strings.Contains(live, "administrator") {
		t.Fatalf("B's live banner: %q", live)
	}
	pb.run(t, "B's next page", chromedp.Navigate(base+"/devices"), chromedp.WaitVisible(css(`#banner`)))
	if b := pb.text(t, `#banner`); !strings.Contains(b, "administrator") {
		t.Fatalf("B's banner: %q", b)
	}
	hasForm := value(t, pb, "sign-in form", chromedp.Evaluate[bool](`!!document.querySelector('form[action="/login"]')`))
	if !hasForm {
		t.Fatal("signed-out B is not offered the sign-in form")
	}
	pb.screenshot(t, dir, "6-b-signed-out.png")
}
