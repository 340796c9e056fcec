package larksecrets

import (
	"bytes"
	"html/template"

	"github.com/hashicorp/vault/sdk/logical"
)

// The callback answers a browser, not an API client, so it renders a page. html/template escapes
// everything that came from the request or from Lark. The page is often opened on a phone (the link
// arrives in a Lark chat): it declares a viewport, so that a phone lays it out at its own width
// instead of 980 px shrunk to a third, and long words it echoes (a parameter name, an app id) wrap
// instead of making it scroll sideways. It has no script and needs none.
var callbackTemplate = template.Must(template.New("callback").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} – Vault</title>
<style>body{font-family:system-ui,sans-serif;font-size:1rem;line-height:1.5;max-width:40em;margin:3em auto;padding:0 1em;color:#1f2328;overflow-wrap:anywhere}
h1{font-size:1.4em;line-height:1.25}.ok{color:#1a7f37}.fail{color:#cf222e}</style></head>
<body><h1 class="{{if .OK}}ok{{else}}fail{{end}}">{{.Title}}</h1><p>{{.Message}}</p></body></html>
`))

func callbackPage(status int, title, message string) *logical.Response {
	var buf bytes.Buffer
	_ = callbackTemplate.Execute(&buf, struct {
		OK             bool
		Title, Message string
	}{status == 200, title, message})
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPStatusCode:  status,
		logical.HTTPContentType: "text/html; charset=utf-8",
		logical.HTTPRawBody:     buf.Bytes(),
	}}
}
