# lark-tenant: one customer tenant of a store (marketplace) app. The app
# cli_c3d4e5f6a7b8c9d0 on the mount lark/ is installed by many tenants, and each has its
# own tenant token at lark/tenant-token/<app_id>/<tenant_key>.
#
# The service that works for tenant 2ed263bf32cf1651 reads that tenant's token and
# nothing else: not other tenants' tokens, not the app token (which mints any tenant's
# token), not the tenant list, not the app's settings. Copy the file per tenant (or use
# a templated policy with the tenant key in the entity's metadata).
#
#   vault policy write lark-tenant-2ed263bf32cf1651 examples/policies/lark-tenant.hcl

path "lark/tenant-token/cli_c3d4e5f6a7b8c9d0/2ed263bf32cf1651" {
  capabilities = ["read"]
}
