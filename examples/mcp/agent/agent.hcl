# Vault Agent for an AI agent that acts in Lark as the user of slot svc-ai-agent of app
# cli_a1b2c3d4e5f6a7b8 (mount lark/), through Lark's MCP server (../lark-mcp-vault.js).
#
# It logs in with AppRole and keeps one file fresh: /run/lark/mcp/user-token, the slot's
# user_access_token and nothing else. The MCP server reads that file at every tool call, so a
# new token is used from the next call on; nothing restarts and nobody logs in again. The
# refresh token never leaves Vault: the plugin refreshes the grant (single use, serialized) and
# its sweep keeps the grant alive between reads.
#
# Run it with:  vault agent -config=/etc/vault-agent/mcp/agent.hcl
# The AppRole's policy needs read on lark/user-token/cli_a1b2c3d4e5f6a7b8/svc-ai-agent only
# (examples/policies/lark-team.hcl grants the team's svc-* slots).

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
  # Re-read a token at 70-80 % of its lease (the plugin's lease already ends lease_safety_margin
  # before the token does), so the file is rewritten well before the old token expires.
  lease_renewal_threshold = 0.75
  # Keep retrying while Vault or Lark is unavailable; the file keeps the last good token.
  exit_on_retry_failure = false
}

template {
  source               = "/etc/vault-agent/mcp/templates/user-token.ctmpl"
  destination          = "/run/lark/mcp/user-token"
  perms                = "0600"
  error_on_missing_key = true
}
