package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

// larkIdentity is who a Lark user is: open_id (differs per app) and/or union_id (the same across
// one developer's apps). Either may be unknown; every known part must match.
type larkIdentity struct {
	OpenID  string `json:"open_id,omitempty"`
	UnionID string `json:"union_id,omitempty"`
}

var (
	openIDPattern  = regexp.MustCompile(`^ou_[A-Za-z0-9]{1,64}$`)
	unionIDPattern = regexp.MustCompile(`^on_[A-Za-z0-9]{1,64}$`)
)

// parseIdentity reads an identity from a single value: "ou_…" is an open_id, "on_…" a union_id.
func parseIdentity(v string) (larkIdentity, error) {
	v = strings.TrimSpace(v)
	switch {
	case openIDPattern.MatchString(v):
		return larkIdentity{OpenID: v}, nil
	case unionIDPattern.MatchString(v):
		return larkIdentity{UnionID: v}, nil
	}
	return larkIdentity{}, fmt.Errorf("%q is neither a Lark open_id (ou_...) nor a union_id (on_...)", truncateForMessage(v))
}

func (i larkIdentity) known() bool { return i.OpenID != "" || i.UnionID != "" }

func (i larkIdentity) String() string {
	switch {
	case i.OpenID != "" && i.UnionID != "":
		return i.OpenID + " (" + i.UnionID + ")"
	case i.OpenID != "":
		return i.OpenID
	}
	return i.UnionID
}

// matches reports whether Lark's user is this identity: every known part equal.
func (i larkIdentity) matches(u *lark.UserInfo) bool {
	if !i.known() || u == nil {
		return false
	}
	return (i.OpenID == "" || i.OpenID == u.OpenID) && (i.UnionID == "" || i.UnionID == u.UnionID)
}

// merge combines two descriptions of the same person; ok is false when they name different people.
func (i larkIdentity) merge(o larkIdentity) (larkIdentity, bool) {
	if i.OpenID != "" && o.OpenID != "" && i.OpenID != o.OpenID {
		return i, false
	}
	if i.UnionID != "" && o.UnionID != "" && i.UnionID != o.UnionID {
		return i, false
	}
	if i.OpenID == "" {
		i.OpenID = o.OpenID
	}
	if i.UnionID == "" {
		i.UnionID = o.UnionID
	}
	return i, true
}

var errNoEntity = errors.New("the request carries no Vault identity entity")

// requesterIdentity is the requester's own Lark identity for app, from their Vault entity: the
// metadata key or the alias of the auth mount the app names. Zero when the app names neither or the
// entity carries no value; an error when the value is there but malformed.
func requesterIdentity(sys logical.SystemView, req *logical.Request, app *appEntry) (larkIdentity, string, error) {
	if app.IdentityMetadataKey == "" && app.IdentityAliasMount == "" {
		return larkIdentity{}, "", nil
	}
	if req.EntityID == "" {
		return larkIdentity{}, "", errNoEntity
	}
	entity, err := sys.EntityInfo(req.EntityID)
	if err != nil {
		return larkIdentity{}, "", fmt.Errorf("looking up the requester's entity: %w", err)
	}
	if entity == nil {
		return larkIdentity{}, "", errNoEntity
	}
	var found larkIdentity
	var source []string
	if k := app.IdentityMetadataKey; k != "" {
		if v := entity.Metadata[k]; v != "" {
			id, err := parseIdentity(v)
			if err != nil {
				return larkIdentity{}, "", fmt.Errorf("entity metadata %s: %w", k, err)
			}
			found, source = id, append(source, "entity metadata "+k)
		}
	}
	if m := app.IdentityAliasMount; m != "" {
		for _, a := range entity.Aliases {
			if a == nil || a.MountAccessor != m {
				continue
			}
			id, err := parseIdentity(a.Name)
			if err != nil {
				return larkIdentity{}, "", fmt.Errorf("alias on %s: %w", m, err)
			}
			merged, ok := found.merge(id)
			if !ok {
				return larkIdentity{}, "", fmt.Errorf("entity metadata and the alias on %s name different Lark users", m)
			}
			found, source = merged, append(source, "alias on "+m)
		}
	}
	return found, strings.Join(source, " and "), nil
}

// slotBinding pins a slot to one Lark user before any grant exists, so a self-service authorization
// for it can only be completed by that user. Admins write it (slots/:app_id/:user).
type slotBinding struct {
	Version  int          `json:"version"`
	Identity larkIdentity `json:"identity"`
	BoundBy  string       `json:"bound_by,omitempty"`
	BoundAt  time.Time    `json:"bound_at"`
}

const (
	slotStoragePrefix  = "slots/"
	slotBindingVersion = 1
	// slotMemoryLimit bounds the bindings (and known absences) kept in memory: slots are as many
	// as an app's users.
	slotMemoryLimit = 10000
)

func slotStorageKey(id grantID) string { return slotStoragePrefix + slotKey(id) }

func slotKey(id grantID) string { return id.App + "/" + id.Slot }

// slotStore owns slot bindings. Every authorization and identity check reads its slot's binding,
// so bindings (and their absence) are kept in memory (cachedStore, keyed "<app>/<slot>"). Its zero
// value is ready.
type slotStore struct {
	mem cachedStore[slotBinding, slotLayout]
}

type slotLayout struct{}

var slotSpec = &storeSpec[slotBinding]{
	prefix:     slotStoragePrefix,
	what:       func(key string) string { return "slot binding " + key },
	version:    slotBindingVersion,
	versionOf:  func(b *slotBinding) *int { return &b.Version },
	limit:      slotMemoryLimit,
	keepAbsent: true,
}

func (slotLayout) spec() *storeSpec[slotBinding] { return slotSpec }

func (ss *slotStore) get(ctx context.Context, s logical.Storage, id grantID) (*slotBinding, error) {
	return ss.mem.get(ctx, s, slotKey(id))
}

// put stores the binding; the next read loads it (callers keep using b).
func (ss *slotStore) put(ctx context.Context, s logical.Storage, id grantID, b *slotBinding) error {
	return ss.mem.store(ctx, s, slotKey(id), b)
}

func (ss *slotStore) delete(ctx context.Context, s logical.Storage, id grantID) error {
	return ss.mem.delete(ctx, s, slotKey(id))
}

func (ss *slotStore) list(ctx context.Context, s logical.Storage, appID string) ([]string, error) {
	return ss.mem.list(ctx, s, appID+"/")
}

func (ss *slotStore) dropApp(ctx context.Context, s logical.Storage, appID string) error {
	slots, err := ss.list(ctx, s, appID)
	if err != nil {
		return err
	}
	for _, slot := range slots {
		if err := ss.delete(ctx, s, grantID{appID, slot}); err != nil {
			return err
		}
		ss.invalidate(slotKey(grantID{appID, slot})) // the app is gone: nothing to remember
	}
	return nil
}

// invalidate forgets a binding ("<app>/<slot>") after storage changed elsewhere.
func (ss *slotStore) invalidate(key string) { ss.mem.invalidate(key) }
