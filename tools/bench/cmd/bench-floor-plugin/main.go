// Command bench-floor-plugin is the floor of `make bench`: the cheapest external secrets engine
// there can be. Its reads return a constant, with a lease (floor/leased) or without one
// (floor/static), so the benchmark can tell what any external plugin pays for the trip from Vault
// through gRPC and back from what the Lark plugin itself costs. It is a benchmark tool, never
// shipped.
package main

import (
	"context"
	"os"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

const (
	secretType = "floor_token"
	// floorLeaseTTL is as long as the Lark plugin's leases of a fresh 2-hour token, so that no lease
	// of either ends during a run.
	floorLeaseTTL = time.Hour
)

// constantData is about the size and shape of a token read's answer.
func constantData() map[string]interface{} {
	return map[string]interface{}{
		"token_type":   "tenant_access_token",
		"access_token": "t-floorfloorfloorfloorfloorfloorfloorfloor",
		"expires_at":   "2099-01-01T00:00:00Z",
		"expires_in":   7200,
	}
}

// userShapedData has the fields and about the sizes of the Lark plugin's user-token read, so that
// the cost of a lease carrying that answer can be told apart from the plugin's own work: Vault keeps
// a leased answer's data in the lease entry it writes to storage.
func userShapedData() map[string]interface{} {
	return map[string]interface{}{
		"app_id":             "cli_benchlease",
		"user":               "bench",
		"token_type":         "user_access_token",
		"access_token":       "u-floorfloorfloorfloorfloorfloorfloorfloorfloorfloo",
		"expires_at":         "2099-01-01T00:00:00Z",
		"expires_in":         7200,
		"open_id":            "ou_0123456789abcdef0123456789abcdef",
		"union_id":           "on_0123456789abcdef0123456789abcdef",
		"name":               "Bench User",
		"scope":              "auth:user.id:read offline_access",
		"authorized_at":      "2098-12-31T00:00:00Z",
		"grant_expires_at":   "2099-12-31T00:00:00Z",
		"refresh_expires_at": "2099-01-08T00:00:00Z",
		"days_left":          364,
		"reauth_required":    false,
	}
}

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	var b *framework.Backend
	b = &framework.Backend{
		Help:        "A constant, leased (leased, and leased-user shaped like a user-token read) or not (static): the floor of `make bench`.",
		BackendType: logical.TypeLogical,
		Paths: []*framework.Path{
			{
				Pattern: "leased",
				Operations: map[logical.Operation]framework.OperationHandler{
					logical.ReadOperation: &framework.PathOperation{
						Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
							resp := b.Secret(secretType).Response(constantData(), nil)
							resp.Secret.TTL = floorLeaseTTL
							resp.Secret.MaxTTL = floorLeaseTTL
							return resp, nil
						},
					},
				},
			},
			{
				Pattern: "leased-user",
				Operations: map[logical.Operation]framework.OperationHandler{
					logical.ReadOperation: &framework.PathOperation{
						Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
							resp := b.Secret(secretType).Response(userShapedData(), map[string]interface{}{"app_id": "cli_benchlease", "user": "bench"})
							resp.Secret.TTL = floorLeaseTTL
							resp.Secret.MaxTTL = floorLeaseTTL
							return resp, nil
						},
					},
				},
			},
			{
				Pattern: "static",
				Operations: map[logical.Operation]framework.OperationHandler{
					logical.ReadOperation: &framework.PathOperation{
						Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
							return &logical.Response{Data: constantData()}, nil
						},
					},
				},
			},
		},
		Secrets: []*framework.Secret{{
			Type: secretType,
			// Revoking a lease of a constant has nothing to undo.
			Revoke: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
				return nil, nil
			},
		}},
	}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

func main() {
	// Served the way the Lark plugin is served (multiplexed), so the two differ only in what they do.
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{BackendFactoryFunc: factory}); err != nil {
		hclog.New(&hclog.LoggerOptions{JSONFormat: true, Output: os.Stderr}).Error("plugin shutting down", "error", err)
		os.Exit(1)
	}
}
