# lark-team: one team (here "payments") and its services, which own the Lark app
# cli_a1b2c3d4e5f6a7b8 on the mount lark/.
#
# The team reads its own app's tokens and the user tokens of its service accounts
# (slots named svc-*, such as svc-release-bot), and nothing else: not the app's
# settings, not other apps' tokens, not people's user tokens, not config. Copy the file
# per team and app.
#
#   vault policy write lark-team examples/policies/lark-team.hcl
#   vault write auth/approle/role/payments-agent token_policies=lark-team …

path "lark/app-token/cli_a1b2c3d4e5f6a7b8" {
  capabilities = ["read"]
}

path "lark/tenant-token/cli_a1b2c3d4e5f6a7b8" {
  capabilities = ["read"]
}

# Reserve the svc- prefix for service accounts: a person whose slot name started with
# svc- would have their token readable by the team.
path "lark/user-token/cli_a1b2c3d4e5f6a7b8/svc-*" {
  capabilities = ["read"]
}
