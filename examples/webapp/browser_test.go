package main

import (
	"context"
	"errors"
	"flag"
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

	"github.com/sessioncap/sessioncap"
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

func newProfile(t *testing.T, parent context.Context, browser, name, ua string) *profile {
	t.Helper()
	// A real User-Agent per profile, so that each is a device people can
	// tell apart by name ("Firefox on Windows"), and the test can check
	// that a banner names the right one.
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
		chromedp.Evaluate[chromedp.Void](`document.querySelector('input[name=user]').value = ""`), // an ended device's form is prefilled
		chromedp.SendKeys(css(`input[name=user]`), user),
		chromedp.SendKeys(css(`form[action="/login"] input[name=password]`), password),
	)
	p.submit(t, "sign in as "+user, chromedp.Submit(css(`form[action="/login"] input[name=password]`)))
	p.run(t, "devices page after sign-in", chromedp.WaitVisible(css(`table.devices tr.current`)))
}

func (p *profile) screenshot(t *testing.T, dir, name string) string {
	t.Helper()
	png := value(t, p, "screenshot", chromedp.FullScreenshot(100))
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if *updateDocs {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// updateDocs makes the browser test write its screenshots into docs/ too:
// go test -run TestBrowser -update-docs.
var updateDocs = flag.Bool("update-docs", false, "write the browser test's screenshots into docs/")

// submitAllowing is submit for a form whose answer may be an error status
// that still renders a page (the chooser's 409, a wrong password's 401);
// it returns the status.
func (p *profile) submitAllowing(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		t.Fatalf("profile %s: %s: %v", p.name, what, err)
	}
	return resp.Status
}

// waitLive waits until the page's event stream is up.
func (p *profile) waitLive(t *testing.T) {
	t.Helper()
	p.run(t, "event stream up", chromedp.Poll[chromedp.Void](`window.sessioncapLive && window.sessioncapLive.isReady()`,
		chromedp.WithPollingTimeout(10*time.Second)))
}

// ended checks the banner at sel on a signed-out device: its reason, and
// that its text says every one of wants (the acting device's name, the
// kind of ending).
func (p *profile) ended(t *testing.T, sel, reason string, wants ...string) string {
	t.Helper()
	p.run(t, "banner "+sel, chromedp.WaitVisible(css(sel)))
	got := value(t, p, "banner reason", chromedp.Evaluate[string](`document.querySelector('`+sel+`').getAttribute("data-reason") || ""`))
	text := p.text(t, sel)
	if got != reason {
		t.Fatalf("profile %s: %s says reason %q, want %q: %q", p.name, sel, got, reason, text)
	}
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Fatalf("profile %s: %s lacks %q: %q", p.name, sel, w, text)
		}
	}
	return text
}

// serve runs an app on addr for the test.
func serve(t *testing.T, addr string, cfg appConfig) string {
	t.Helper()
	a, err := newApp(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: a.handler()}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Log(err)
		}
		srv.Close()
	})
	// 127.0.0.0/8 is a secure context for Chromium, so the default Secure
	// __Host- cookie works over plain HTTP here, as it does on localhost.
	return "http://" + ln.Addr().String()
}

func (p *profile) text(t *testing.T, sel string) string {
	t.Helper()
	return value(t, p, "read "+sel, chromedp.Text(css(sel)))
}

// TestBrowserEviction drives the demo app in real headless Chromium, with
// four profiles as four devices: Chrome on Linux (A), Firefox on Windows
// (B), Edge on macOS (C) and Safari on iPhone (D, the admin). Every way a
// device is signed out is checked on the ended device, live (the SSE
// banner, without a reload) and on its next page (the server's banner):
// each names the acting device, or the admin, and the right reason; and the
// acting device is told what it ended. It writes a screenshot of every page
// it passes; -update-docs copies them into docs/.
func TestBrowserEviction(t *testing.T) {
	report.FullTier(t, redistest.BackendChromium)
	browser := findBrowser()
	if browser == "" {
		report.Missing(t, redistest.BackendChromium, "no Chromium found (apt-get install chromium chromium-driver, or set SESSIONCAP_CHROMIUM)")
	}
	report.Use(t, redistest.BackendChromium)
	dir := artifactsDir(t)
	// Two apps on two loopback addresses, so each has its own cookies: one
	// evicts at a cap of one, the other refuses (and offers the chooser) at
	// a cap of two.
	evict := serve(t, "127.0.0.1:0", appConfig{MaxSessions: 1})
	reject := serve(t, "127.0.0.2:0", appConfig{MaxSessions: 2, Overflow: sessioncap.RejectNew})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	began := time.Now()
	defer func() { t.Logf("browser test took %v", time.Since(began)) }()
	pa := newProfile(t, ctx, browser, "A", uaLinuxChrome)
	pb := newProfile(t, ctx, browser, "B", uaWinFirefox)

	// Eviction. A signs in and stays on "your devices", its stream open.
	pa.run(t, "sign-in page", chromedp.Navigate(evict+"/login"), chromedp.WaitVisible(css(`input[name=user]`)))
	pa.screenshot(t, dir, "signin.png")
	pa.signIn(t, evict, "alice", "demo")
	pa.waitLive(t)
	pa.run(t, "mark the document", chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`))

	// B signs in as alice too; A's page must show the banner by itself.
	start := time.Now()
	pb.signIn(t, evict, "alice", "demo")
	pa.ended(t, `#live-banner`, "limit", "Firefox on Windows", "signed in on another device", "This wasn't me")
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
	pa.screenshot(t, dir, "evicted-live.png")
	// B is told which device its sign-in signed out.
	if n := pb.text(t, `#notice`); !strings.Contains(n, "Signing in here signed out") || !strings.Contains(n, "Chrome on Linux") {
		t.Fatalf("B's notice: %q", n)
	}
	pb.screenshot(t, dir, "signed-in-notice.png")
	rows := value(t, pb, "count rows", chromedp.Evaluate[int](`document.querySelectorAll("table.devices tbody tr").length`))
	if rows != 1 {
		t.Fatalf("B lists %d sessions, want 1", rows)
	}
	// A's next page says the same, rendered by the server, with the
	// account's name filled in.
	pa.run(t, "A's next page", chromedp.Navigate(evict+"/devices"))
	pa.ended(t, `#banner`, "limit", "Firefox on Windows", "signed in on another device", "This wasn't me")
	if u := value(t, pa, "prefilled user", chromedp.Evaluate[string](`document.querySelector('input[name=user]').value`)); u != "alice" {
		t.Fatalf("A's sign-in form has user %q, want alice", u)
	}
	pa.screenshot(t, dir, "evicted.png")

	// "This wasn't me": A gives the password; B is signed out as a security
	// response by A, live and on its next page; A is told what it ended.
	pb.waitLive(t)
	pa.run(t, "not-me password", chromedp.SendKeys(css(`#banner input[name=password]`), "demo"))
	pa.submit(t, "this wasn't me", chromedp.Submit(css(`#banner input[name=password]`)))
	if n := pa.text(t, `#notice`); !strings.Contains(n, "signed out every other device") || !strings.Contains(n, "Firefox on Windows") {
		t.Fatalf("A's notice after not-me: %q", n)
	}
	pa.screenshot(t, dir, "not-me-done.png")
	pb.ended(t, `#live-banner`, "security", "Chrome on Linux", "This wasn't me", "security")
	pb.screenshot(t, dir, "security-live.png")
	pb.run(t, "B's next page", chromedp.Navigate(evict+"/devices"))
	text := pb.ended(t, `#banner`, "security", "Chrome on Linux", "This wasn't me", "security")
	if strings.Contains(text, "Sign out everywhere") {
		t.Fatal("the device a security response ended is offered to sign out everywhere itself")
	}
	pb.screenshot(t, dir, "security.png")

	// An admin signs alice out: A learns it live, naming the admin.
	pa.run(t, "A's devices", chromedp.Navigate(evict+"/devices"), chromedp.WaitVisible(css(`table.devices tr.current`)))
	pa.waitLive(t)
	pd := newProfile(t, ctx, browser, "D", uaIPhoneSafari)
	pd.signIn(t, evict, "admin", "admin")
	pd.run(t, "admin page", chromedp.Navigate(evict+"/admin"), chromedp.WaitVisible(css(`input[value=alice]`)))
	pd.screenshot(t, dir, "admin.png")
	pd.run(t, "select alice", chromedp.Click(css(`input[value=alice]`)))
	pd.submit(t, "admin signs alice out", chromedp.Submit(css(`input[value=alice]`)))
	if f := pd.text(t, `p.flash[role=status]`); !strings.Contains(f, "Signed out alice") {
		t.Fatalf("admin's flash: %q", f)
	}
	pd.screenshot(t, dir, "admin-done.png")
	pa.ended(t, `#live-banner`, "admin", "administrator", "admin")
	pa.run(t, "A's next page", chromedp.Navigate(evict+"/devices"))
	pa.ended(t, `#banner`, "admin", "An administrator (admin)")
	pa.screenshot(t, dir, "admin-signed-out.png")
	pd.run(t, "a missing page", chromedp.Navigate(evict+"/no/such/page"), chromedp.WaitVisible(css(`.problem`)))
	pd.screenshot(t, dir, "not-found.png")

	// Revoke from the devices page, on the app with a cap of two.
	pa.signIn(t, reject, "bob", "demo")
	pb.signIn(t, reject, "bob", "demo")
	pa.run(t, "A's devices", chromedp.Navigate(reject+"/devices"), chromedp.WaitVisible(css(`table.devices tr.current`)))
	pa.waitLive(t)
	pb.run(t, "B's devices", chromedp.Navigate(reject+"/devices"), chromedp.WaitVisible(css(`table.devices tr:not(.current) button`)))
	pb.screenshot(t, dir, "devices.png")
	pb.submit(t, "B signs A out", chromedp.Click(css(`table.devices tr:not(.current) button`)))
	if n := pb.text(t, `#notice`); !strings.Contains(n, "Chrome on Linux") {
		t.Fatalf("B's notice after the revoke: %q", n)
	}
	pb.screenshot(t, dir, "revoke-done.png")
	pa.ended(t, `#live-banner`, "revoked", "Firefox on Windows", "devices")
	pa.run(t, "A's next page", chromedp.Navigate(reject+"/devices"))
	pa.ended(t, `#banner`, "revoked", "Firefox on Windows", "devices")
	pa.screenshot(t, dir, "revoked.png")

	// The reject-new chooser: C finds bob at the cap, gets the password
	// wrong once (staying on the chooser), then signs A out in its place.
	pa.signIn(t, reject, "bob", "demo")
	pa.waitLive(t)
	pc := newProfile(t, ctx, browser, "C", uaMacEdge)
	pc.run(t, "C's sign-in", chromedp.Navigate(reject+"/login"), chromedp.WaitVisible(css(`input[name=user]`)),
		chromedp.SendKeys(css(`input[name=user]`), "bob"), chromedp.SendKeys(css(`input[name=password]`), "demo"))
	if st := pc.submitAllowing(t, "C signs in at the cap", chromedp.Submit(css(`input[name=password]`))); st != 409 {
		t.Fatalf("C at the cap: HTTP %d, want 409", st)
	}
	pc.run(t, "chooser", chromedp.WaitVisible(css(`#chooser`)))
	pc.screenshot(t, dir, "reject-chooser.png")
	pick := `(function(){var ls=document.querySelectorAll('#chooser label.choice');for(var i=0;i<ls.length;i++){if(ls[i].textContent.indexOf("Chrome on Linux")>=0){ls[i].querySelector("input").checked=true;return true}}return false})()`
	pc.run(t, "wrong password", chromedp.Evaluate[chromedp.Void](pick), chromedp.SendKeys(css(`#chooser input[name=password]`), "wrong"))
	if st := pc.submitAllowing(t, "C's wrong password", chromedp.Submit(css(`#chooser input[name=password]`))); st != 401 {
		t.Fatalf("C's wrong password: HTTP %d, want 401", st)
	}
	pc.run(t, "still the chooser", chromedp.WaitVisible(css(`#chooser`)), chromedp.WaitVisible(css(`#cancel`)))
	if e := pc.text(t, `p.error`); !strings.Contains(e, "Wrong password: no device was signed out") {
		t.Fatalf("chooser error: %q", e)
	}
	pc.screenshot(t, dir, "reject-wrong-password.png")
	if !value(t, pc, "pick A", chromedp.Evaluate[bool](pick)) {
		t.Fatal("the chooser does not list Chrome on Linux")
	}
	pc.run(t, "password", chromedp.SendKeys(css(`#chooser input[name=password]`), "demo"))
	pc.submit(t, "C replaces A", chromedp.Submit(css(`#chooser input[name=password]`)))
	if n := pc.text(t, `#notice`); !strings.Contains(n, "in place of") || !strings.Contains(n, "Chrome on Linux") {
		t.Fatalf("C's notice: %q", n)
	}
	pa.ended(t, `#live-banner`, "replaced", "Edge on macOS", "signed in on another device", "in its place")
	pa.run(t, "A's next page", chromedp.Navigate(reject+"/devices"))
	pa.ended(t, `#banner`, "replaced", "Edge on macOS", "in its place")
	pa.screenshot(t, dir, "replaced.png")

	// A non-admin at /admin: a 403 page, without the form.
	pc.run(t, "C at /admin", chromedp.Navigate(reject+"/admin"), chromedp.WaitVisible(css(`.problem`)))
	if has := value(t, pc, "admin form", chromedp.Evaluate[bool](`!!document.querySelector('form[action="/admin/logout"]')`)); has {
		t.Fatal("a non-admin is shown the admin form")
	}
	pc.screenshot(t, dir, "forbidden.png")
}
