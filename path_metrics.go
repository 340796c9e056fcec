package larksecrets

import (
	"bytes"
	"context"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathMetrics(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      "metrics$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "metrics"},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.pathMetricsRead, Summary: "Prometheus text exposition of the plugin's counters."},
		},
		HelpSynopsis: "The plugin's metrics in Prometheus text format (authenticated).",
		HelpDescription: `Counters of user-token refreshes by result and reason, Lark API calls and latency by
endpoint, notifications sent and failed, sweeps, and a gauge of grants by level. No label
names an app or a user. Scrape with a Vault token allowed to read this path, e.g.
Prometheus' authorization header "X-Vault-Token". Counters live in the plugin process and
restart from zero with it.`,
	}}
}

func (b *backend) pathMetricsRead(_ context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	var buf bytes.Buffer
	b.metrics.write(&buf)
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPStatusCode:  http.StatusOK,
		logical.HTTPContentType: "text/plain; version=0.0.4; charset=utf-8",
		logical.HTTPRawBody:     buf.Bytes(),
	}}, nil
}
