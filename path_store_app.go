package larksecrets

import (
	"context"
	"fmt"
	"unicode"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Paths of store (marketplace) apps: the list of tenants, and the app_ticket for organisations
// whose own event receiver gets Lark's events (docs/lark-api.md §3). One tenant's token is read
// beside the other access tokens (path_app_token.go).

// maxTicketBytes bounds a forwarded app_ticket; Lark's are a few dozen characters.
const maxTicketBytes = 1024

func pathStoreApps(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "tenants/(?P<app_id>[^/]+)/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "tenants"},
			Fields: map[string]*framework.FieldSchema{
				"app_id": {Type: framework.TypeString, Description: "The store app whose tenants to list.", Required: true},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathTenantsList,
					Summary:  "List the tenants known to use a store app.",
				},
			},
			HelpSynopsis: "The tenants of a store app: from app_open events and from tenant tokens Lark issued.",
			HelpDescription: `Lists tenant keys. "vault list -detailed" also shows where each came from
(source "app_open": the tenant installed the app and Lark's app_open event said so;
"read": Lark issued a tenant token for it), when, and who installed the app. A tenant
that removes the app (app_uninstalled event) leaves the list.`,
		},
		{
			Pattern:      "apps/(?P<app_id>[^/]+)/ticket$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "app-ticket"},
			Fields: map[string]*framework.FieldSchema{
				"app_id": {Type: framework.TypeString, Description: "The store app the ticket belongs to.", Required: true},
				"app_ticket": {
					Type:         framework.TypeString,
					Description:  "The app_ticket from Lark's latest app_ticket event (event.app_ticket). Write-only: reads show when it arrived and a fingerprint.",
					DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathTicketWrite,
					Summary:  "Store an app_ticket that your own event receiver got from Lark.",
				},
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathTicketRead,
					Summary:  "Show whether an app_ticket is held, where it came from and when (never the ticket).",
				},
			},
			HelpSynopsis: "The app_ticket of a store app.",
			HelpDescription: `Lark pushes a store app's app_ticket every hour to the app's event Request URL.
Point that URL at Vault (events/<app_id>) and the ticket arrives by itself. If Lark
cannot reach Vault, have the event receiver you already run forward each ticket:

    vault write lark/apps/cli_a1b2c3d4e5f6a7b8/ticket app_ticket=-

(the "-" reads it from standard input). The ticket is write-only; a read shows
"ticket_set", "source" (event or write), "issued_at", "received_at" and a fingerprint.`,
		},
	}
}

func (b *backend) pathTenantsList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	appID := d.Get("app_id").(string)
	if err := validateAppID(appID); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	keys, info, err := b.tenants.list(ctx, req.Storage, appID)
	if err != nil {
		return nil, err
	}
	return logical.ListResponseWithInfo(keys, info), nil
}

// storeApp loads an app that must be a store app; resp explains when it is not.
func (b *backend) storeApp(ctx context.Context, req *logical.Request, appID string) (*appEntry, *logical.Response, error) {
	if err := validateAppID(appID); err != nil {
		return nil, logical.ErrorResponse(err.Error()), nil
	}
	app, err := b.apps.get(ctx, req.Storage, appID)
	r := remediesFor(req)
	switch {
	case err != nil:
		return nil, nil, err
	case app == nil:
		return nil, nil, r.httpError(appID, errAppNotConfigured)
	case !app.isStore():
		return nil, logical.ErrorResponse("app %s is self-built: only store apps use an app_ticket (set app_type=store if it is a marketplace app)", appID), nil
	}
	return app, nil, nil
}

func (b *backend) pathTicketWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	appID := d.Get("app_id").(string)
	_, resp, err := b.storeApp(ctx, req, appID)
	if resp != nil || err != nil {
		return resp, err
	}
	ticket := d.Get("app_ticket").(string)
	if err := validateTicket(ticket); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	now := b.clock.Now().UTC()
	// An operator's ticket is the newest by definition: it replaces whatever is held.
	e := &ticketEntry{Ticket: ticket, IssuedAt: now, ReceivedAt: now, Source: ticketSourceWrite}
	if _, err := b.tickets.offer(ctx, req.Storage, appID, e); err != nil {
		return nil, err
	}
	return &logical.Response{Data: ticketStatus(e)}, nil
}

func (b *backend) pathTicketRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	appID := d.Get("app_id").(string)
	_, resp, err := b.storeApp(ctx, req, appID)
	if resp != nil || err != nil {
		return resp, err
	}
	e, err := b.tickets.load(ctx, req.Storage, appID)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: ticketStatus(e)}, nil
}

// ticketStatus says what is held, never the ticket itself.
func ticketStatus(e *ticketEntry) map[string]interface{} {
	if e == nil {
		return map[string]interface{}{"ticket_set": false}
	}
	return map[string]interface{}{
		"ticket_set":         true,
		"ticket_fingerprint": secretFingerprint(e.Ticket),
		"source":             e.Source,
		"issued_at":          formatTime(e.IssuedAt),
		"received_at":        formatTime(e.ReceivedAt),
	}
}

func validateTicket(t string) error {
	if t == "" {
		return fmt.Errorf("app_ticket is required: the app_ticket value of Lark's latest app_ticket event")
	}
	if len(t) > maxTicketBytes {
		return fmt.Errorf("app_ticket is too long (%d bytes, at most %d)", len(t), maxTicketBytes)
	}
	for _, r := range t {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("app_ticket contains whitespace or non-printable characters (check for a trailing newline)")
		}
	}
	return nil
}
