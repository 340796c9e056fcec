package larksecrets

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

// The slot admission policy (admission.go), one row per situation the callback, the exchange, the
// import and the identity check after a refresh can meet.
func TestDecideSlot(t *testing.T) {
	alice := larkIdentity{OpenID: "ou_alice", UnionID: "on_alice"}
	bob := larkIdentity{OpenID: "ou_bob", UnionID: "on_bob"}
	aliceOpen := larkIdentity{OpenID: "ou_alice"}
	aliceUnion := larkIdentity{UnionID: "on_alice"}
	asUser := func(i larkIdentity) *lark.UserInfo { return &lark.UserInfo{OpenID: i.OpenID, UnionID: i.UnionID} }
	none := larkIdentity{}

	tests := []struct {
		name string
		in   slotClaim
		want slotDecision
	}{
		{"empty slot, anyone", slotClaim{Incoming: asUser(alice)},
			slotDecision{}},
		{"empty slot, the link's user", slotClaim{Expected: aliceOpen, Incoming: asUser(alice)},
			slotDecision{}},
		{"empty slot, not the link's user", slotClaim{Expected: aliceOpen, Incoming: asUser(bob)},
			slotDecision{Refusal: refusedExpected}},
		{"not the link's user, even with replace", slotClaim{Expected: aliceOpen, Incoming: asUser(bob), Replace: true},
			slotDecision{Refusal: refusedExpected}},
		{"same user authorizes again: old tokens kept", slotClaim{Holder: alice, Incoming: asUser(alice)},
			slotDecision{Owner: alice}},
		{"another user's grant in the slot", slotClaim{Holder: alice, Incoming: asUser(bob)},
			slotDecision{Refusal: refusedOtherGrant, Owner: alice}},
		{"bound to another user", slotClaim{Binding: aliceOpen, Incoming: asUser(bob)},
			slotDecision{Refusal: refusedBinding, Owner: aliceOpen}},
		{"bound by union_id, the user signs in", slotClaim{Binding: aliceUnion, Incoming: asUser(alice)},
			slotDecision{Owner: aliceUnion}},
		{"binding and holder agree", slotClaim{Binding: aliceOpen, Holder: alice, Incoming: asUser(alice)},
			slotDecision{Owner: alice}},
		{"admin rebound the slot to bob: bob enters, alice's grant revoked", slotClaim{Binding: bob, Holder: alice, Incoming: asUser(bob)},
			slotDecision{Owner: bob, RevokeHolder: true}},
		{"admin rebound the slot to bob: alice is refused", slotClaim{Binding: bob, Holder: alice, Incoming: asUser(alice)},
			slotDecision{Refusal: refusedBinding, Owner: bob}},
		{"replace hands the slot over and rebinds", slotClaim{Binding: aliceOpen, Holder: alice, Incoming: asUser(bob), Replace: true},
			slotDecision{Owner: alice, RevokeHolder: true, Rebind: true}},
		{"replace by the same user changes nothing", slotClaim{Binding: aliceOpen, Holder: alice, Incoming: asUser(alice), Replace: true},
			slotDecision{Owner: alice}},
		{"replace into an unbound empty slot", slotClaim{Incoming: asUser(bob), Replace: true},
			slotDecision{}},
		{"Lark cannot say whose: kept pending, nothing revoked", slotClaim{Binding: aliceOpen, Holder: alice},
			slotDecision{Owner: alice, IdentityPending: true}},
		{"Lark cannot say whose, replace: still pending, no rebind", slotClaim{Binding: aliceOpen, Replace: true},
			slotDecision{Owner: aliceOpen, IdentityPending: true}},
		{"identity check after refresh: the slot's user", slotClaim{Binding: aliceOpen, Holder: aliceOpen, Incoming: asUser(alice)},
			slotDecision{Owner: aliceOpen}},
		{"identity check after refresh: someone else's token", slotClaim{Binding: none, Holder: aliceOpen, Incoming: asUser(bob)},
			slotDecision{Refusal: refusedOtherGrant, Owner: aliceOpen}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, decideSlot(tc.in))
		})
	}
}

func TestSlotOwnerOf(t *testing.T) {
	a := larkIdentity{OpenID: "ou_a"}
	aU := larkIdentity{UnionID: "on_a"}
	b := larkIdentity{OpenID: "ou_b"}
	require.Equal(t, larkIdentity{}, slotOwnerOf(larkIdentity{}, larkIdentity{}))
	require.Equal(t, a, slotOwnerOf(a, larkIdentity{}))
	require.Equal(t, a, slotOwnerOf(larkIdentity{}, a))
	require.Equal(t, larkIdentity{OpenID: "ou_a", UnionID: "on_a"}, slotOwnerOf(a, aU))
	require.Equal(t, b, slotOwnerOf(b, a), "the binding decides when it names someone else")
}
