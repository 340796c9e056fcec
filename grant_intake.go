package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

// This file is how a grant enters a slot: the code exchange of the browser flow and the import of a
// refresh token. Both spend a single-use credential at Lark, so both are calls of the refresher
// (admitted and waited for at stop), and both end in the slot admission policy (admission.go).

// exchangeBudget bounds an authorization at Lark: the code exchange and user_info (the client
// retries what it may).
func exchangeBudget(cfg *configEntry) time.Duration {
	return 3*cfg.LarkRequestTimeout + 5*time.Second
}

// importBudget bounds an import at Lark: the refresh and user_info.
func importBudget(cfg *configEntry) time.Duration {
	return refreshCallBudget(cfg) + cfg.LarkRequestTimeout
}

// slotOwner is the Lark user slot id belongs to, by the slot admission policy (admission.go): its
// binding in slots, completed by the identity of the grant it holds in grants. A self-service
// authorization asks it before a link is made (path_oauth.go).
func slotOwner(ctx context.Context, s logical.Storage, slots *slotStore, grants *grantStore, id grantID) (larkIdentity, error) {
	binding, err := slots.get(ctx, s, id)
	if err != nil {
		return larkIdentity{}, err
	}
	var bound, holder larkIdentity
	if binding != nil {
		bound = binding.Identity
	}
	g, err := grants.get(ctx, s, id)
	if err != nil {
		return larkIdentity{}, err
	}
	if g != nil && !g.IdentityPending {
		holder = g.identity()
	}
	return slotOwnerOf(bound, holder), nil
}

// authorize exchanges an authorization code, learns who the user is, applies the slot admission
// policy and stores the grant. Any grant obtained but refused is revoked at Lark. Failures meant for
// the person at the browser are *authError.
func (rf *refresher) authorize(ctx context.Context, s logical.Storage, st *oauthState, code string) (*grantEntry, error) {
	id := st.id()
	sess, err := rf.sessions.open(ctx, s, id.App)
	if errors.Is(err, errAppNotConfigured) {
		return nil, &authError{http.StatusBadRequest, fmt.Sprintf("App %s is no longer configured in Vault. Nothing was stored.", id.App)}
	} else if err != nil {
		return nil, err
	}
	end, err := rf.calls.begin("code exchange", id, exchangeBudget(sess.cfg))
	if err != nil {
		return nil, &authError{http.StatusServiceUnavailable, "Vault is restarting this plugin right now, so it did not complete the authorization. Nothing was stored; ask for a new link and open it again in a minute."}
	}
	defer end()
	// Once Lark has issued tokens, storing them must not depend on the browser waiting.
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), exchangeBudget(sess.cfg))
	defer cancel()

	tok, err := sess.lark.ExchangeCode(callCtx, code, st.RedirectURI, st.Verifier)
	if err != nil {
		return nil, exchangeAuthError(err)
	}
	g, out, err := rf.intake(callCtx, s, sess, intakeRequest{id: id, tok: tok, expected: st.expected(), replace: st.Replace, entityID: st.EntityID})
	switch out {
	case intakeNoRefreshToken:
		return nil, &authError{http.StatusBadRequest, "Lark issued no refresh token, so Vault could not keep this authorization alive. The app must have the offline_access scope enabled (and token refresh switched on) in the developer console. Nothing was stored."}
	case intakeWhoUnknown:
		return nil, &authError{http.StatusBadGateway, "Vault could not ask Lark who you are, so it stored nothing. Try again with a new link."}
	case intakeSlotUnreadable:
		return nil, &authError{http.StatusInternalServerError, "Vault could not read the slot. Nothing was stored."}
	case intakeRefused + slotOutcome(refusedExpected):
		return nil, &authError{http.StatusForbidden, "You signed in as a different Lark user than this link was made for: only the slot's own user can complete it. Nothing was stored; the authorization was revoked."}
	case intakeRefused + slotOutcome(refusedOtherGrant):
		return nil, &authError{http.StatusForbidden, fmt.Sprintf("Slot %q already holds another Lark user's grant. Only an administrator can hand it to someone else (oauth/%s/replace). Nothing was stored; the authorization was revoked.", id.Slot, id.App)}
	case intakeRefused + slotOutcome(refusedBinding):
		return nil, &authError{http.StatusForbidden, fmt.Sprintf("Slot %q is bound to another Lark user. Nothing was stored; the authorization was revoked.", id.Slot)}
	}
	if err != nil {
		var ns *notStoredError
		if errors.As(err, &ns) {
			return nil, &authError{http.StatusServiceUnavailable, "Lark issued your grant but Vault's storage refused it; Vault keeps it in memory and stores it as soon as it can. If Vault restarts before that, authorize again."}
		}
		return nil, err
	}
	rf.events(ctx, "lark/user-authorized", id, "authorize")
	return g, nil
}

// intakeOutcome says how a grant Lark issued fared at the slot; intakeStored is the only one that
// keeps it.
type intakeOutcome string

// slotOutcome turns a refusal of the admission policy into the suffix of intakeRefused.
func slotOutcome(r slotRefusal) intakeOutcome { return intakeOutcome(r) }

const (
	intakeStored         intakeOutcome = "stored"
	intakeNoRefreshToken intakeOutcome = "no_refresh_token"
	intakeWhoUnknown     intakeOutcome = "user_unknown"
	intakeSlotUnreadable intakeOutcome = "slot_unreadable"
	intakeFailed         intakeOutcome = "failed"
	// intakeRefused + the admission policy's refusal.
	intakeRefused intakeOutcome = "refused:"
)

// intakeRequest is a grant Lark has just issued (by a code exchange or a device login) for a slot.
type intakeRequest struct {
	id       grantID
	tok      *lark.UserToken
	expected larkIdentity // who the authorization was started for; zero: anyone
	replace  bool
	entityID string
}

// intake learns who a newly issued grant belongs to, puts it to the slot admission policy and stores
// it. Whatever it does not keep is revoked at Lark, so no live grant is left that Vault does not hold.
func (rf *refresher) intake(ctx context.Context, s logical.Storage, sess *appSession, in intakeRequest) (*grantEntry, intakeOutcome, error) {
	id, tok := in.id, in.tok
	drop := func(out intakeOutcome, err error) (*grantEntry, intakeOutcome, error) {
		rf.revoke(sess, tok.RefreshToken, tok.AccessToken)
		return nil, out, err
	}
	if tok.RefreshToken == "" {
		return drop(intakeNoRefreshToken, nil)
	}
	info, err := sess.lark.UserInfo(ctx, tok.AccessToken)
	if err != nil {
		return drop(intakeWhoUnknown, nil)
	}
	binding, err := rf.slots.get(ctx, s, id)
	if err != nil {
		return drop(intakeSlotUnreadable, nil)
	}
	var (
		g       *grantEntry
		refusal slotRefusal
	)
	err = rf.grants.withGrant(ctx, s, id, func(tx *grantTx) error {
		existing := tx.grant()
		claim := slotClaim{Expected: in.expected, Incoming: info, Replace: in.replace}
		if binding != nil {
			claim.Binding = binding.Identity
		}
		if existing != nil && !existing.IdentityPending {
			claim.Holder = existing.identity()
		}
		d := decideSlot(claim)
		if refusal = d.Refusal; refusal != admitted {
			return nil
		}
		now := rf.clock.Now()
		g = newGrant(id, now, in.entityID, tok, info, now)
		if err := tx.replace(g); err != nil {
			return err
		}
		if d.RevokeHolder {
			rf.revoke(sess, existing.RefreshToken, existing.AccessToken)
		}
		if d.Rebind {
			binding.Identity, binding.BoundBy, binding.BoundAt = g.identity(), in.entityID, now
			if err := rf.slots.put(ctx, s, id, binding); err != nil {
				rf.logger().Warn("the slot's binding still names its previous user", "grant", id.String(), "error", err)
			}
		}
		return nil
	})
	if refusal != admitted {
		rf.logger().Warn("refused a grant for a slot that belongs to another Lark user", "grant", id.String(), "refusal", string(refusal))
		return drop(intakeRefused+slotOutcome(refusal), nil)
	}
	if err != nil {
		var ns *notStoredError
		if errors.As(err, &ns) {
			return nil, intakeFailed, err // kept in memory, stored at the next access or at stop
		}
		// Lark issued a grant that Vault could not even hold: take it out of circulation.
		rf.logger().Error("Lark issued a grant that could not be stored; revoking it at Lark", "grant", id.String(), "error", err)
		return drop(intakeFailed, err)
	}
	rf.logger().Info("user authorized", "grant", id.String(), "open_id", g.OpenID)
	return g, intakeStored, nil
}

// importRequest is an import of a refresh token issued elsewhere into a slot.
type importRequest struct {
	id           grantID
	refreshToken string
	authorizedAt time.Time
	entityID     string
	replace      bool
	remedies     remedies // for the commands warnings suggest
}

// importRefusal is an import Lark or the admission policy refused; nothing was stored.
type importRefusal struct{ msg string }

func (e *importRefusal) Error() string { return e.msg }

// importGrant spends the imported refresh token once, learns whose grant it is, applies the slot
// admission policy and stores the new pair. It returns the stored grant and warnings; an
// *importRefusal when the grant may not enter the slot (it was revoked at Lark).
func (rf *refresher) importGrant(ctx context.Context, s logical.Storage, sess *appSession, in importRequest) (*grantEntry, []string, error) {
	id := in.id
	binding, err := rf.slots.get(ctx, s, id)
	if err != nil {
		return nil, nil, err
	}
	end, err := rf.calls.begin("import", id, importBudget(sess.cfg))
	if err != nil {
		return nil, nil, err
	}
	defer end()
	var (
		g        *grantEntry
		warnings []string
		refused  error
	)
	err = rf.grants.withGrant(ctx, s, id, func(tx *grantTx) error {
		existing := tx.grant()
		callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), importBudget(sess.cfg))
		defer cancel()
		tok, err := sess.lark.RefreshUserToken(callCtx, in.refreshToken)
		if err != nil {
			var le *lark.Error
			if errors.As(err, &le) && le.Meaning() == lark.MeaningGrantOver {
				refused = &importRefusal{fmt.Sprintf("Lark refused the refresh token: %s (code %d); nothing was stored", le.Reason(), le.Code)}
				return nil
			}
			return err
		}
		fetchedAt := rf.clock.Now()
		claim := slotClaim{Replace: in.replace}
		if binding != nil {
			claim.Binding = binding.Identity
		}
		if existing != nil && !existing.IdentityPending {
			claim.Holder = existing.identity()
		}
		info, ierr := sess.lark.UserInfo(callCtx, tok.AccessToken)
		if ierr == nil {
			claim.Incoming = info
		}
		d := decideSlot(claim)
		if d.Refusal != admitted {
			rf.revoke(sess, tok.RefreshToken, tok.AccessToken)
			refused = &importRefusal{fmt.Sprintf("slot %q of %s belongs to Lark user %s, and the imported token is for %s; pass replace=true to give the slot to the new user (the imported grant was revoked)",
				id.Slot, id.App, d.Owner, info.OpenID)}
			return nil
		}
		if d.IdentityPending {
			// The token is spent; keep the new pair and the slot's owner, and ask Lark again at the
			// next refresh. Never clear who the slot belongs to.
			rf.logger().Warn("imported grant: user_info failed; keeping the slot's binding until Lark can be asked again", "grant", id.String(), "error", ierr)
			info = &lark.UserInfo{OpenID: d.Owner.OpenID, UnionID: d.Owner.UnionID}
			if existing != nil && existing.identity() == d.Owner {
				info.Name = existing.Name
			}
			warnings = append(warnings, fmt.Sprintf("Lark could not say whose grant this is (%v); the slot keeps its binding and the next refresh checks it", ierr))
		}
		g = newGrant(id, in.authorizedAt, in.entityID, tok, info, fetchedAt)
		g.IdentityPending = d.IdentityPending
		if err := tx.replace(g); err != nil {
			return err
		}
		if d.Rebind {
			binding.Identity, binding.BoundBy, binding.BoundAt = g.identity(), in.entityID, fetchedAt
			if err := rf.slots.put(callCtx, s, id, binding); err != nil {
				warnings = append(warnings, fmt.Sprintf("the slot's binding still names the previous user (%v); update it with %s", err, in.remedies.bindSlot(id)))
			}
		}
		if d.RevokeHolder {
			rf.revoke(sess, existing.RefreshToken, existing.AccessToken)
		}
		return nil
	})
	if refused != nil {
		return nil, nil, refused
	}
	if err != nil {
		return nil, nil, err
	}
	return g, warnings, nil
}
