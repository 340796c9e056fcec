package larksecrets

import "github.com/lark-vault/vault-plugin-secrets-lark/lark"

// This file is the one admission policy for slots: who may put a grant into a slot. The browser
// callback and the exchange, the import of a refresh token, the identity check after a refresh of an
// imported grant, and slotOwner all ask it, so the rule is stated once (README, "Who may fill a
// slot").

// slotClaim is everything the policy looks at when a grant arrives in a slot.
type slotClaim struct {
	// Binding is the slot's binding (slots/<app>/<slot>), written by administrators; zero: none.
	Binding larkIdentity
	// Holder is the user whose grant the slot holds now; zero: none, or a grant whose user Lark has
	// not named yet.
	Holder larkIdentity
	// Expected is who the authorization link was made for; zero: anyone (replace, import).
	Expected larkIdentity
	// Incoming is who Lark says the arriving grant belongs to; nil when Lark could not say (an import
	// while user_info failed): the grant is then kept with the slot's owner and checked at its next
	// refresh.
	Incoming *lark.UserInfo
	// Replace: an administrator hands the slot to whoever the arriving grant belongs to.
	Replace bool
}

// slotRefusal says why a grant may not enter a slot; "" admits it.
type slotRefusal string

const (
	admitted          slotRefusal = ""
	refusedExpected   slotRefusal = "not_expected_user" // someone other than the link's user signed in
	refusedBinding    slotRefusal = "slot_bound"        // the slot is bound to another Lark user
	refusedOtherGrant slotRefusal = "slot_taken"        // the slot holds another Lark user's grant
)

// slotDecision is the policy's answer.
type slotDecision struct {
	Refusal slotRefusal
	// Owner is who the slot belongs to before the grant arrives (for messages); zero: nobody known.
	Owner larkIdentity
	// RevokeHolder: the slot passes to another user, so the previous user's tokens are revoked at
	// Lark. The same user authorizing again keeps theirs (Lark may end the whole authorization on a
	// revoke, the new tokens with it).
	RevokeHolder bool
	// Rebind: the binding is rewritten to the incoming user (only with Replace).
	Rebind bool
	// IdentityPending: Lark could not say whose grant it is; it is kept and checked later.
	IdentityPending bool
}

// slotOwnerOf is who a slot belongs to: its binding, completed by the identity of the grant it holds.
// When the two name different people, an administrator has bound the slot to someone new since the
// grant was stored, and the binding decides.
func slotOwnerOf(binding, holder larkIdentity) larkIdentity {
	if merged, ok := binding.merge(holder); ok {
		return merged
	}
	return binding
}

// decideSlot is the admission policy. A refused grant is revoked at Lark by the caller; nothing of it
// is stored.
func decideSlot(c slotClaim) slotDecision {
	d := slotDecision{Owner: slotOwnerOf(c.Binding, c.Holder)}
	if c.Incoming == nil {
		// Nobody can check whose it is yet: the slot keeps its owner, the grant is checked at its next
		// refresh (decideSlot again, with Incoming set), and nobody's tokens are revoked on a guess.
		d.IdentityPending = true
		return d
	}
	if c.Expected.known() && !c.Expected.matches(c.Incoming) {
		d.Refusal = refusedExpected
		return d
	}
	if !c.Replace && d.Owner.known() && !d.Owner.matches(c.Incoming) {
		if c.Binding.known() && !c.Binding.matches(c.Incoming) {
			d.Refusal = refusedBinding
		} else {
			d.Refusal = refusedOtherGrant
		}
		return d
	}
	d.RevokeHolder = c.Holder.known() && !c.Holder.matches(c.Incoming)
	d.Rebind = c.Replace && c.Binding.known() && !c.Binding.matches(c.Incoming)
	return d
}
