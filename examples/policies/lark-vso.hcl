# lark-vso: what Vault Secrets Operator needs to sync the payments team's Lark tokens into
# Kubernetes Secrets (examples/kubernetes/): read the app's tenant token and the service-account
# user token, nothing else. VSO only reads (GET); it neither renews (the plugin's leases are
# non-renewable) nor, with revoke: false, revokes.
#
#   vault policy write lark-vso examples/policies/lark-vso.hcl

path "lark/tenant-token/cli_a1b2c3d4e5f6a7b8" {
  capabilities = ["read"]
}

path "lark/user-token/cli_a1b2c3d4e5f6a7b8/svc-release-bot" {
  capabilities = ["read"]
}
