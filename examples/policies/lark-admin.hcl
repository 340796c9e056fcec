# lark-admin: the people who run the Lark secrets engine mounted at lark/.
#
# They register apps and their secrets, change mount settings, manage user grants
# (list their status, import, delete, hand a slot to another user), run the sweep and
# read any token when debugging. Everything on the mount, because whoever may write
# apps/ is trusted with the app secrets anyway: base_url decides where the secret is sent.
#
#   vault policy write lark-admin examples/policies/lark-admin.hcl

path "lark/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# Mount tuning: the plugin version (upgrades) and the audit keys left un-HMAC'd.
path "sys/mounts/lark/tune" {
  capabilities = ["read", "update"]
}
