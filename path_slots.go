package larksecrets

import (
	"context"
	"fmt"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathSlots(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "slots/(?P<app_id>[^/]+)/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "slots"},
			Fields:       map[string]*framework.FieldSchema{"app_id": appIDField},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{Callback: b.pathSlotList, Summary: "List an app's slots that are bound to a Lark user."},
			},
			HelpSynopsis:    "The slot bindings of one app.",
			HelpDescription: "Lists the slots of the app that an administrator bound to a Lark user, with the identity each is bound to.",
		},
		{
			Pattern:      "slots/(?P<app_id>[^/]+)/(?P<user>[^/]+)$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "slot"},
			Fields: map[string]*framework.FieldSchema{
				"app_id":   appIDField,
				"user":     userSlotField,
				"open_id":  {Type: framework.TypeString, Description: "The Lark open_id (ou_...) of the person this slot belongs to. open_ids differ per app."},
				"union_id": {Type: framework.TypeString, Description: "The Lark union_id (on_...) of the person this slot belongs to, the same across one developer's apps. Give open_id, union_id or both."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation:   &framework.PathOperation{Callback: b.pathSlotRead, Summary: "Show whom the slot is bound to."},
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathSlotWrite, Summary: "Bind the slot to one Lark user (administrators)."},
				logical.CreateOperation: &framework.PathOperation{Callback: b.pathSlotWrite, Summary: "Bind the slot to one Lark user (administrators)."},
				logical.DeleteOperation: &framework.PathOperation{Callback: b.pathSlotDelete, Summary: "Remove the slot's binding (its grant, if any, stays)."},
			},
			ExistenceCheck: b.slotExists,
			HelpSynopsis:   "Bind a user slot to one Lark user before anyone authorizes it.",
			HelpDescription: `A bound slot can be filled through oauth/<app_id>/authorize only by that Lark user:
an authorization link forwarded to anyone else is refused at the callback. Bind slots
when the app does not take people's Lark identity from their Vault entity
(identity_metadata_key, identity_alias_mount). Grant this path to administrators only.

A slot that already holds a grant of another Lark user cannot be bound to someone else;
delete the grant first, or hand the slot over with oauth/<app_id>/replace. Reading or
deleting a slot that is not bound answers 404.`,
		},
	}
}

func (b *backend) slotExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	id, errResp := grantIDFrom(d)
	if errResp != nil {
		return false, nil
	}
	binding, err := b.slots.get(ctx, req.Storage, id)
	return binding != nil, err
}

func (b *backend) pathSlotList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	appID := d.Get("app_id").(string)
	if err := validateAppID(appID); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	slots, err := b.slots.list(ctx, req.Storage, appID)
	if err != nil {
		return nil, err
	}
	info := map[string]interface{}{}
	for _, slot := range slots {
		if binding, err := b.slots.get(ctx, req.Storage, grantID{appID, slot}); err == nil && binding != nil {
			info[slot] = map[string]interface{}{"open_id": binding.Identity.OpenID, "union_id": binding.Identity.UnionID}
		}
	}
	return logical.ListResponseWithInfo(slots, info), nil
}

func (b *backend) pathSlotRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id, errResp := grantIDFrom(d)
	if errResp != nil {
		return errResp, nil
	}
	binding, err := b.slots.get(ctx, req.Storage, id)
	if err != nil {
		return nil, err
	}
	if binding == nil {
		return nil, slotNotBound(remediesFor(req), id)
	}
	data := map[string]interface{}{
		"open_id":  binding.Identity.OpenID,
		"union_id": binding.Identity.UnionID,
		"bound_at": formatTime(binding.BoundAt),
		"bound_by": binding.BoundBy,
	}
	if g, err := b.grants.get(ctx, req.Storage, id); err == nil && g != nil {
		data["grant_open_id"] = g.OpenID
	}
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathSlotWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id, errResp := grantIDFrom(d)
	if errResp != nil {
		return errResp, nil
	}
	var who larkIdentity
	if v := d.Get("open_id").(string); v != "" {
		if !openIDPattern.MatchString(v) {
			return logical.ErrorResponse("open_id %q is not a Lark open_id (ou_...)", truncateForMessage(v)), nil
		}
		who.OpenID = v
	}
	if v := d.Get("union_id").(string); v != "" {
		if !unionIDPattern.MatchString(v) {
			return logical.ErrorResponse("union_id %q is not a Lark union_id (on_...)", truncateForMessage(v)), nil
		}
		who.UnionID = v
	}
	if !who.known() {
		return logical.ErrorResponse("give open_id (ou_...), union_id (on_...) or both"), nil
	}
	g, err := b.grants.get(ctx, req.Storage, id)
	if err != nil {
		return nil, err
	}
	if g != nil && !g.IdentityPending && g.identity().known() {
		if _, ok := g.identity().merge(who); !ok {
			return logical.ErrorResponse("slot %q of %s holds a grant of Lark user %s; delete it first (vault delete %suser-token/%s/%s) or hand the slot over with %s",
				id.Slot, id.App, g.identity(), remediesFor(req).mount, id.App, id.Slot, remediesFor(req).replaceCommand(id)), nil
		}
	}
	if err := b.slots.put(ctx, req.Storage, id, &slotBinding{Identity: who, BoundBy: req.EntityID, BoundAt: b.clock.Now().UTC()}); err != nil {
		return nil, fmt.Errorf("storing the slot binding: %w", err)
	}
	return nil, nil
}

func (b *backend) pathSlotDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id, errResp := grantIDFrom(d)
	if errResp != nil {
		return errResp, nil
	}
	binding, err := b.slots.get(ctx, req.Storage, id)
	if err != nil {
		return nil, err
	}
	if binding == nil {
		return nil, slotNotBound(remediesFor(req), id)
	}
	return nil, b.slots.delete(ctx, req.Storage, id)
}

// slotNotBound is the answer for a slot without a binding: 404, and how to bind it.
func slotNotBound(r remedies, id grantID) error {
	return logical.CodedError(http.StatusNotFound, fmt.Sprintf("slot %q of %s has no binding; bind it with: %s", id.Slot, id.App, r.bindSlot(id)))
}
