package larksecrets

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// The callback page is opened on phones (the link arrives in a Lark chat). The browser test
// (e2e/browser_test.go, TestBrowserCallbackPages) measures the rendered page in Chromium; this
// checks, without a browser, what makes it fit: a declared viewport, wrapping of long echoed words,
// no script, and escaping of what it echoes.
func TestCallbackPageFitsPhonesAndEscapes(t *testing.T) {
	const crafted = `<img src=x onerror=alert(1)>` + "averyveryverylongwordwithoutanyplacetobreak"
	resp := callbackPage(http.StatusBadRequest, "Lark reported an error", "Lark answered "+crafted)
	if got := resp.Data[logical.HTTPStatusCode]; got != http.StatusBadRequest {
		t.Fatalf("status %v", got)
	}
	if ct := resp.Data[logical.HTTPContentType]; ct != "text/html; charset=utf-8" {
		t.Fatalf("content type %v", ct)
	}
	page := string(resp.Data[logical.HTTPRawBody].([]byte))
	for _, want := range []string{
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`overflow-wrap:anywhere`,
		`&lt;img src=x onerror=alert(1)&gt;averyvery`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s:\n%s", want, page)
		}
	}
	for _, bad := range []string{"<img", "<script", "onerror=alert(1)>"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page contains %s:\n%s", bad, page)
		}
	}
}
