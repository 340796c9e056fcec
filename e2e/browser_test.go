//go:build e2e

package e2e

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// The pages a person sees in a browser, opened in a real one: headless Chromium (Debian's chromium
// package; `make chromium` installs it, `make test-e2e` depends on that), driven over the DevTools
// protocol with github.com/chromedp/chromedp. Each page is opened three ways: on a desktop-sized
// window, on a phone-sized one (390x844, mobile emulation) and on the phone with JavaScript
// switched off. Screenshots go to the directory the test logs ($E2E_ARTIFACTS/browser when set);
// nothing is compared pixel by pixel.

// browserView is one way of opening a page.
type browserView struct {
	name          string
	width, height int64
	mobile        bool
	javascript    bool
}

var browserViews = []browserView{
	{"desktop", 800, 260, false, true},
	{"phone", 390, 844, true, true},
	{"phone-nojs", 390, 844, true, false},
}

// A crafted value the pages echo: an element that would run script if it were not escaped.
const craftedMarkup = `<img src=x onerror=window.__pwned=1>`

// chromiumBin finds Chromium: CHROMIUM_BIN, then chromium, chromium-browser or google-chrome on
// PATH. Without one the test is skipped, unless CI is set: there it fails, so that a CI run that
// lost its browser does not pass quietly.
func chromiumBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no Chromium: set CHROMIUM_BIN or put chromium on PATH (`make chromium` installs Debian's chromium package)"
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatal(msg + "; CI is set, so this is a failure, not a skip")
	}
	t.Skip(msg)
	return ""
}

// artifactsDir is where the screenshots go: $E2E_ARTIFACTS/<name> when E2E_ARTIFACTS is set, else a
// new directory under the system's temporary directory that outlives the test.
func artifactsDir(t *testing.T, name string) string {
	t.Helper()
	var dir string
	if root := os.Getenv("E2E_ARTIFACTS"); root != "" {
		dir = filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		var err error
		if dir, err = os.MkdirTemp("", "lark-e2e-"+name+"-"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots: %s", dir)
	return dir
}

// startBrowser starts headless Chromium with a fresh profile and the flags this machine's closed
// network needs (no background connections, no QUIC, no component or sync updates), and returns a
// context for opening tabs in it.
func startBrowser(t *testing.T, bin, logDir string) context.Context {
	t.Helper()
	logFile, err := os.Create(filepath.Join(logDir, "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logFile.Close() })
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // as root (CI) Chromium refuses to start with its sandbox
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(logFile),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	// The first Run starts the browser; it must not run under a timeout, which would end it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium (%s): %v; its output is in %s", bin, err, logFile.Name())
	}
	return ctx
}

// openTab opens a tab set up for the view, and checks that JavaScript runs in it exactly when the
// view says so.
func openTab(t *testing.T, browserCtx context.Context, v browserView) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(browserCtx)
	t.Cleanup(cancel)
	steps := []chromedp.Action[chromedp.Void]{chromedp.EmulateViewport(v.width, v.height, func(p *emulation.SetDeviceMetricsOverrideParams, touch *emulation.SetTouchEmulationEnabledParams) {
		if v.mobile {
			chromedp.EmulateMobile(p, touch)
			chromedp.EmulatePortrait(p, touch)
		}
	})}
	if !v.javascript {
		steps = append(steps, chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
			_, err := cdp.Call(ctx, target, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}))
	}
	if err := chromedp.Do(tab, steps...); err != nil {
		t.Fatalf("%s: setting up the tab: %v", v.name, err)
	}
	wantScripts(t, tab, v)
	return tab
}

// wantScripts loads a page whose only script renames it, and checks whether it ran.
func wantScripts(t *testing.T, tab context.Context, v browserView) {
	t.Helper()
	probe := "data:text/html," + url.PathEscape(`<!doctype html><title>static</title><script>document.title="scripted"</script>`)
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(probe)); err != nil {
		t.Fatalf("%s: probe page: %v", v.name, err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatalf("%s: probe page title: %v", v.name, err)
	}
	if want := map[bool]string{true: "scripted", false: "static"}[v.javascript]; title != want {
		t.Fatalf("%s: a page script ran=%v, want JavaScript on=%v", v.name, title == "scripted", v.javascript)
	}
}

// shownPage is what the browser shows, read from the rendered page.
type shownPage struct {
	status   int
	location string
	facts    pageFacts
	png      []byte
}

type pageFacts struct {
	Title       string   `json:"title"`
	H1          string   `json:"h1"`
	Text        string   `json:"text"`
	HTML        string   `json:"html"`
	ScrollWidth float64  `json:"scrollWidth"`
	InnerWidth  float64  `json:"innerWidth"`
	Scale       float64  `json:"scale"`
	FontPx      float64  `json:"fontPx"`
	Elements    []string `json:"elements"`
	Pwned       bool     `json:"pwned"`
}

// Read through the DevTools protocol, which evaluates even where the page's own scripts are off.
const pageFactsJS = `(() => {
	const d = document.documentElement;
	const p = document.querySelector("p") || document.body;
	const h1 = document.querySelector("h1");
	return {
		title: document.title,
		h1: h1 ? h1.innerText : "",
		text: document.body.innerText,
		html: d.outerHTML,
		scrollWidth: Math.max(d.scrollWidth, document.body.scrollWidth),
		innerWidth: window.innerWidth,
		scale: window.visualViewport ? window.visualViewport.scale : 1,
		fontPx: parseFloat(getComputedStyle(p).fontSize),
		elements: Array.from(document.body.querySelectorAll("*"), e => e.tagName.toLowerCase()),
		pwned: window.__pwned !== undefined,
	};
})()`

// show opens a URL in the tab the way a person clicks a link, follows every redirect, and reads the
// page it lands on.
func show(t *testing.T, tab context.Context, v browserView, rawURL string) shownPage {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 60*time.Second)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(rawURL))
	if err != nil {
		t.Fatalf("%s: opening the page: %v", v.name, err)
	}
	var p shownPage
	p.status = int(resp.Status)
	if p.location, err = chromedp.Run(ctx, chromedp.Location()); err != nil {
		t.Fatalf("%s: location: %v", v.name, err)
	}
	if p.facts, err = chromedp.Run(ctx, chromedp.Evaluate[pageFacts](pageFactsJS)); err != nil {
		t.Fatalf("%s: reading the page: %v", v.name, err)
	}
	if p.png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Fatalf("%s: screenshot: %v", v.name, err)
	}
	return p
}

// pageWant is what one page must show.
type pageWant struct {
	status int
	words  []string // in the visible text
	shown  []string // crafted input that must appear as text, never as markup
	// elements the page may contain; anything else is markup that came from the request
	elements []string
	// phone: on the phone views the page must be laid out at the phone's width (a declared
	// viewport, content that wraps) with legible text
	phone bool
}

var callbackElements = []string{"h1", "p"}

// checkPage applies every check to a shown page and saves its screenshot.
func checkPage(t *testing.T, v browserView, dir, name string, p shownPage, want pageWant, secrets ...string) {
	t.Helper()
	f := p.facts
	if err := os.WriteFile(filepath.Join(dir, name+"-"+v.name+".png"), p.png, 0o644); err != nil {
		t.Fatal(err)
	}
	if p.status != want.status {
		t.Errorf("%s/%s: HTTP %d, want %d; text: %q", name, v.name, p.status, want.status, f.Text)
	}
	if f.H1 == "" || f.Title == "" {
		t.Errorf("%s/%s: no heading or title: %q / %q", name, v.name, f.H1, f.Title)
	}
	for _, w := range want.words {
		if !strings.Contains(f.Text, w) {
			t.Errorf("%s/%s: the page does not say %q; it says %q", name, v.name, w, f.Text)
		}
	}
	for _, s := range want.shown {
		if !strings.Contains(f.Text, s) {
			t.Errorf("%s/%s: the crafted %q is not shown as text; the page says %q", name, v.name, s, f.Text)
		}
	}
	for _, e := range f.Elements {
		if !slices.Contains(want.elements, e) {
			t.Errorf("%s/%s: the page holds a <%s> element, which only markup from the request could have made: %s", name, v.name, e, f.HTML)
		}
	}
	if f.Pwned {
		t.Errorf("%s/%s: a script from the request ran", name, v.name)
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if strings.Contains(f.Text, s) || strings.Contains(f.HTML, s) {
			t.Errorf("%s/%s: the page shows a secret value (%s…)", name, v.name, s[:min(len(s), 8)])
		}
	}
	for _, s := range []string{"access_token", "refresh_token", "eyJ", "code="} {
		if strings.Contains(f.Text, s) || strings.Contains(f.HTML, s) {
			t.Errorf("%s/%s: the page mentions %q", name, v.name, s)
		}
	}
	if f.ScrollWidth > f.InnerWidth {
		t.Errorf("%s/%s: the page scrolls sideways: %v px wide in a %v px window", name, v.name, f.ScrollWidth, f.InnerWidth)
	}
	if v.mobile && want.phone {
		// Without <meta name="viewport"> a phone lays the page out 980 px wide and shrinks it to
		// fit, so its text ends up a third of its size; and a phone widens the layout to fit a word
		// that does not wrap (innerWidth grows with it, so scrollWidth alone does not tell).
		if f.InnerWidth != float64(v.width) {
			t.Errorf("%s/%s: the page is laid out %v px wide on a %d px phone (no viewport declared, or content that does not wrap)", name, v.name, f.InnerWidth, v.width)
		}
		if px := f.FontPx * f.Scale; px < 14 {
			t.Errorf("%s/%s: the text is %.1f px on the phone's screen (%.0f px at scale %.2f), want at least 14", name, v.name, px, f.FontPx, f.Scale)
		}
	}
}

var spaces = regexp.MustCompile(`\s+`)

// sameText checks that the page shows the same words with and without JavaScript.
func sameText(t *testing.T, name string, texts map[string]string) {
	t.Helper()
	with, without := spaces.ReplaceAllString(texts["phone"], " "), spaces.ReplaceAllString(texts["phone-nojs"], " ")
	if with == "" || with != without {
		t.Errorf("%s: the page says something else without JavaScript:\n with:    %q\n without: %q", name, with, without)
	}
}

// redirectSecrets are the code and state a callback URL carries.
func redirectSecrets(t *testing.T, rawURL string) (code, state string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	code, state = u.Query().Get("code"), u.Query().Get("state")
	rememberRedirectValue(code, "authorization code")
	rememberRedirectValue(state, "OAuth state")
	return code, state
}

// TestBrowserCallbackPages opens, in Chromium, the authorization link Vault hands out; Lark's (the
// emulator's) authorize page approves or declines and redirects to Vault's OAuth callback, whose page
// the browser shows: success, declined, another Lark user than the slot's, the same link opened
// again, and pages that echo crafted input (Lark's error, a parameter's name, the user's name).
// Each must render, show no code, state or token, show crafted input as text, show the same words
// without JavaScript, and fit a phone's screen with legible text.
func TestBrowserCallbackPages(t *testing.T) {
	bin := chromiumBin(t)
	dir := artifactsDir(t, "browser")
	browserCtx := startBrowser(t, bin, dir)

	const app = "cli_e2ebrowser"
	newOAuthApp(t, app)
	authorizePath := mountPath + "/oauth/" + app + "/authorize"
	setMode := func(mode string) {
		emulator(t, "POST", "/_emulator/authorize-mode", map[string]string{"mode": mode})
	}
	t.Cleanup(func() { setMode("approve") })
	crafted := "Mallory " + craftedMarkup
	// A parameter name of the longest length the callback echoes, which no phone fits on one line.
	longKey := craftedMarkup + strings.Repeat("W", 64-len(craftedMarkup))

	texts := map[string]map[string]string{}
	record := func(name string, v browserView, p shownPage) {
		if texts[name] == nil {
			texts[name] = map[string]string{}
		}
		texts[name][v.name] = p.facts.Text
	}

	for _, v := range browserViews {
		tab := openTab(t, browserCtx, v)

		// Success: Ada authorizes her own slot.
		larkUser(t, "e2e_browser_ada", "Ada Lovelace")
		authURL, _ := authorizeURL(t, rootToken, authorizePath, "user=ada")
		p := show(t, tab, v, authURL)
		if !strings.HasPrefix(p.location, callbackURL()+"?") {
			t.Fatalf("%s: the browser ended at %q, want Vault's callback", v.name, p.location)
		}
		successURL := p.location
		code, state := redirectSecrets(t, successURL)
		checkPage(t, v, dir, "success", p, pageWant{status: 200, phone: true, elements: callbackElements,
			words: []string{"Authorized", "Ada Lovelace", `slot "ada"`, app}}, code, state)
		record("success", v, p)
		_, data := readUserToken(t, rootToken, app, "ada")
		if tok, _ := data["access_token"].(string); strings.Contains(p.facts.HTML, tok) {
			t.Errorf("%s: the success page shows the user access token", v.name)
		}

		// Replayed: the same callback link, opened again.
		p = show(t, tab, v, successURL)
		checkPage(t, v, dir, "replayed", p, pageWant{status: 400, phone: true, elements: callbackElements,
			words: []string{"unknown or already used", "Nothing was stored"}}, code, state)
		record("replayed", v, p)

		// Declined at Lark.
		setMode("deny")
		authURL, _ = authorizeURL(t, rootToken, authorizePath, "user=ada")
		p = show(t, tab, v, authURL)
		setMode("approve")
		_, state = redirectSecrets(t, p.location)
		if u, _ := url.Parse(p.location); u.Query().Get("error") != "access_denied" {
			t.Fatalf("%s: declined, yet Lark sent the browser to %q", v.name, p.location)
		}
		checkPage(t, v, dir, "declined", p, pageWant{status: 400, phone: true, elements: callbackElements,
			words: []string{"Authorization declined", "no grant"}}, state)
		record("declined", v, p)

		// Wrong user: a link for Ada's slot, approved by Mallory, whose name is crafted.
		larkUser(t, "e2e_browser_mallory", crafted)
		authURL, _ = authorizeURL(t, rootToken, authorizePath, "user=ada")
		p = show(t, tab, v, authURL)
		code, state = redirectSecrets(t, p.location)
		checkPage(t, v, dir, "wrong-user", p, pageWant{status: 403, phone: true, elements: callbackElements,
			words: []string{"Authorization failed", "different Lark user than this link was made for", "Nothing was stored"}}, code, state)
		record("wrong-user", v, p)

		// Success for Mallory's own slot: the page echoes the crafted name as text.
		authURL, _ = authorizeURL(t, rootToken, authorizePath, "user=mallory")
		p = show(t, tab, v, authURL)
		code, state = redirectSecrets(t, p.location)
		checkPage(t, v, dir, "crafted-name", p, pageWant{status: 200, phone: true, elements: callbackElements,
			words: []string{"Authorized"}, shown: []string{crafted}}, code, state)
		record("crafted-name", v, p)

		// Lark's error, crafted: the page quotes it as text.
		_, state = authorizeURL(t, rootToken, authorizePath, "user=ada")
		p = show(t, tab, v, callbackWith(url.Values{"state": {state}, "error": {craftedMarkup},
			"error_description": {"<script>window.__pwned=1</script>"}}))
		checkPage(t, v, dir, "crafted-error", p, pageWant{status: 400, phone: true, elements: callbackElements,
			words: []string{"Lark reported an error", "Nothing was stored"}, shown: []string{craftedMarkup}}, state)
		record("crafted-error", v, p)

		// A parameter given twice, whose long crafted name the page quotes.
		p = show(t, tab, v, callbackURL()+"?state=x&"+url.QueryEscape(longKey)+"=1&"+url.QueryEscape(longKey)+"=2")
		checkPage(t, v, dir, "crafted-parameter", p, pageWant{status: 400, phone: true, elements: callbackElements,
			words: []string{"This link is not valid", "appears more than once"}, shown: []string{longKey}})
		record("crafted-parameter", v, p)

		if v.name == "desktop" {
			t.Logf("success page (%s): %q", v.name, texts["success"][v.name])
		}
		wantScripts(t, tab, v) // still on (or off) after every page above
	}
	for name, byView := range texts {
		sameText(t, name, byView)
	}
	if got := slots(t, app); len(got) != 2 {
		t.Errorf("slots after the browser runs: %v, want ada and mallory", got)
	}
}

// TestBrowserDeviceVerifyPage opens the emulator's device-login verification page (the
// verification_uri it hands out) with a crafted user_code: the page shows it as text, with or
// without JavaScript, and fits a phone.
func TestBrowserDeviceVerifyPage(t *testing.T) {
	bin := chromiumBin(t)
	dir := artifactsDir(t, "browser-device")
	browserCtx := startBrowser(t, bin, dir)
	code := "ABCD-" + craftedMarkup
	texts := map[string]string{}
	for _, v := range browserViews {
		tab := openTab(t, browserCtx, v)
		p := show(t, tab, v, env.emuURL+"/_emulator/device/verify?user_code="+url.QueryEscape(code))
		checkPage(t, v, dir, "device-verify", p, pageWant{status: 200, phone: true, elements: []string{"h1", "p", "code"},
			words: []string{"Device login", "device/approve"}, shown: []string{"User code: " + code}})
		texts[v.name] = p.facts.Text
		wantScripts(t, tab, v)
	}
	sameText(t, "device-verify", texts)
}
