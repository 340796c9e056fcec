package larksecrets

import (
	"context"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/prometheus/common/expfmt"
)

func pathMetrics(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      "metrics$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "metrics"},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.pathMetricsRead, Summary: "Prometheus exposition of this mount's metrics."},
		},
		HelpSynopsis: "This mount's metrics in Prometheus format (authenticated).",
		HelpDescription: `Counters of user-token refreshes by result and reason, Lark API calls and latency by
endpoint, notifications sent and failed, sweeps, a gauge of grants by level and one of apps
whose setup Lark refuses. No label names an app, a user or a tenant. Each mount has its own
registry; the plugin's Go runtime and process metrics are not included.

Scrape with a Vault token allowed to read this path, e.g. Prometheus' authorization header
"X-Vault-Token". The answer is the Prometheus text format (version 0.0.4). Vault passes the
scraper's Accept header to the plugin only when the mount is tuned with
"-passthrough-request-headers=Accept"; the format is then negotiated as the Prometheus
client library's own handler does by default (delimited protobuf or text).

Counters and histograms live in the plugin process and restart from zero with it (a plugin
reload, a Vault restart or an upgrade); Prometheus' rate() and increase() take such resets in
their stride. The grants gauge counts grants this process has read or swept since it started.`,
	}}
}

func (b *backend) pathMetricsRead(_ context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	accept := http.Header{}
	for name, values := range req.Headers {
		for _, v := range values {
			accept.Add(name, v)
		}
	}
	// The formats the library's own handler offers by default: delimited protobuf or text.
	format := expfmt.NegotiateAccept(accept, expfmt.DefaultAcceptedFormats()...)
	body, err := b.metrics.expose(format)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPStatusCode:  http.StatusOK,
		logical.HTTPContentType: string(format),
		logical.HTTPRawBody:     body,
	}}, nil
}
