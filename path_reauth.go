package larksecrets

import (
	"context"
	"sort"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathReauth(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      "reauth/?$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "reauth"},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.pathReauthRead, Summary: "Every user grant at warning level or worse."},
			logical.ListOperation: &framework.PathOperation{Callback: b.pathReauthList, Summary: "Every user grant at warning level or worse, as a list with details."},
		},
		HelpSynopsis: "User grants that need, or will soon need, re-authorization.",
		HelpDescription: `Lists every grant whose level is warning (at most warning_days left), critical (at
most critical_days left), expired or reauth_required, with its deadline and reason. Each
also comes as a response warning, which Vault's audit log keeps in plain text; days_left
and reauth_required are numbers and booleans, also readable there. App and tenant tokens
are never listed: they renew themselves. The path takes no parameters.`,
	}}
}

type reauthItem struct {
	g *grantEntry
	h grantHealth
}

func (b *backend) reauthItems(ctx context.Context, s logical.Storage) ([]reauthItem, error) {
	cfg, err := b.config.get(ctx, s)
	if err != nil {
		return nil, err
	}
	ids, err := b.grants.listAll(ctx, s)
	if err != nil {
		return nil, err
	}
	now := b.clock.Now()
	var items []reauthItem
	for _, id := range ids {
		g, err := b.grants.get(ctx, s, id)
		if err != nil {
			return nil, err
		}
		if g == nil {
			continue
		}
		h := g.healthNow(now, cfg)
		if h.Level != levelOK {
			items = append(items, reauthItem{g, h})
		}
	}
	// Worst first, then soonest.
	sort.SliceStable(items, func(i, j int) bool {
		if levelRank[items[i].h.Level] != levelRank[items[j].h.Level] {
			return levelRank[items[i].h.Level] > levelRank[items[j].h.Level]
		}
		return items[i].h.Deadline.Before(items[j].h.Deadline)
	})
	return items, nil
}

func (it reauthItem) info() map[string]interface{} {
	m := map[string]interface{}{
		"app_id":          it.g.AppID,
		"user":            it.g.Slot,
		"open_id":         it.g.OpenID,
		"name":            it.g.Name,
		"level":           it.h.Level,
		"deadline":        formatTime(it.h.Deadline),
		"days_left":       it.h.DaysLeft,
		"reauth_required": it.h.reauthRequired(),
		"reason":          it.h.Reason,
	}
	if it.g.ReauthEnd != "" {
		// Why the grant ended (lark.GrantEnd): "storage_rollback" marks the grants a restored
		// snapshot or backup ended ("Backup and restore" in the operator guide).
		m["reauth_end"] = it.g.ReauthEnd
	}
	return m
}

func (b *backend) pathReauthRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	items, err := b.reauthItems(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	r := remediesFor(req)
	resp := &logical.Response{Data: map[string]interface{}{}}
	grants := map[string]interface{}{}
	counts := map[string]int{levelWarning: 0, levelCritical: 0, levelExpired: 0, levelReauthRequired: 0}
	for _, it := range items {
		grants[it.g.id().String()] = it.info()
		counts[it.h.Level]++
		resp.AddWarning(it.h.warning(it.g.id(), r))
	}
	resp.Data["grants"] = grants
	resp.Data["count"] = len(items)
	for level, n := range counts {
		resp.Data["count_"+level] = n
	}
	return resp, nil
}

func (b *backend) pathReauthList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	items, err := b.reauthItems(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	r := remediesFor(req)
	keys := make([]string, 0, len(items))
	info := make(map[string]interface{}, len(items))
	for _, it := range items {
		keys = append(keys, it.g.id().String())
		info[it.g.id().String()] = it.info()
	}
	resp := logical.ListResponseWithInfo(keys, info)
	for _, it := range items {
		resp.AddWarning(it.h.warning(it.g.id(), r))
	}
	return resp, nil
}
