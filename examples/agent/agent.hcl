# Vault Agent for a service that calls Lark Open APIs with the tokens of app
# cli_a1b2c3d4e5f6a7b8, mounted at lark/.
#
# It logs in with AppRole and keeps four files fresh under /run/lark/:
#
#   app-token          the app_access_token, nothing else (for "Authorization: Bearer $(cat …)")
#   tenant-token       the tenant_access_token, nothing else
#   tenant-token.json  the whole answer: access_token, expires_at, expires_in, … (for programs
#                      that want to know when the token ends)
#   user-token         the user_access_token of the team's service account slot svc-release-bot
#
# Run it with:  vault agent -config=/etc/vault-agent/agent.hcl
# The exec variant (a token in an environment variable of a supervised process) is
# agent-exec.hcl: Vault Agent refuses "exec" and "template" blocks in the same file.
#
# Every file is rewritten (atomically, by rename) with the new token before the old one
# expires; e2e/agent_test.go checks that against short-lived tokens, in both lease modes.

vault {
  address = "https://vault.example.com:8200"
}

auto_auth {
  method "approle" {
    mount_path = "auth/approle"
    config = {
      role_id_file_path                   = "/etc/vault-agent/role-id"
      secret_id_file_path                 = "/etc/vault-agent/secret-id"
      remove_secret_id_file_after_reading = false
    }
  }
}

template_config {
  # A token read with a lease is read again at 70-80 % of the lease (the default 0.9 means
  # 85-95 %). The plugin's lease already ends lease_safety_margin (5m) before the token does;
  # re-reading earlier leaves a quarter of the lease on top as slack if Vault is briefly
  # unreachable. Each re-read creates one more short lease.
  lease_renewal_threshold = 0.75

  # Only for secrets that carry neither a lease nor "ttl"/"rotation_period". The plugin's
  # lease-free mode (lease_mode=none) returns numeric ttl and rotation_period, and Agent then
  # re-reads exactly ttl+1 seconds later, so this interval is not used for Lark tokens.
  static_secret_render_interval = "5m"

  # Keep retrying (with backoff) when Vault or Lark is unavailable; the files keep the last
  # good token, which stays valid for at least the plugin's lease_safety_margin.
  exit_on_retry_failure = false
}

template {
  source               = "/etc/vault-agent/templates/app-token.ctmpl"
  destination          = "/run/lark/app-token"
  perms                = "0600"
  error_on_missing_key = true
}

template {
  source               = "/etc/vault-agent/templates/tenant-token.ctmpl"
  destination          = "/run/lark/tenant-token"
  perms                = "0600"
  error_on_missing_key = true
}

template {
  source               = "/etc/vault-agent/templates/tenant-token.json.ctmpl"
  destination          = "/run/lark/tenant-token.json"
  perms                = "0600"
  error_on_missing_key = true
}

template {
  source               = "/etc/vault-agent/templates/user-token.ctmpl"
  destination          = "/run/lark/user-token"
  perms                = "0600"
  error_on_missing_key = true
}
