# lark-person: every person, for their own Lark user token of app cli_a1b2c3d4e5f6a7b8.
#
# A person's slot is their Vault entity name, so one policy serves everybody: carol reads
# lark/user-token/cli_a1b2c3d4e5f6a7b8/carol and nobody else's. She starts her own
# authorization (the slot is in the path, so she cannot start one for someone else's
# slot) and may delete her grant, which also revokes it at Lark. Only her own Lark user can
# complete her authorization: the plugin takes it from her entity's metadata (the app's
# identity_metadata_key), the slot's binding or the grant the slot holds.
#
# Entities must be named after the person (see "Team access" in docs/operator-guide.md).
# A token without an entity (root, or tokens created with vault token create) matches
# nothing here. Do not grant lark/oauth/<app>/authorize without a slot in the path.
#
#   vault policy write lark-person examples/policies/lark-person.hcl

path "lark/user-token/cli_a1b2c3d4e5f6a7b8/{{identity.entity.name}}" {
  capabilities = ["read", "delete"]
}

path "lark/oauth/cli_a1b2c3d4e5f6a7b8/authorize/{{identity.entity.name}}" {
  capabilities = ["update"]
}
