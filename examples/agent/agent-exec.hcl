# Vault Agent as a process supervisor: it starts /usr/local/bin/lark-bot with the app's
# tenant_access_token in the environment variable LARK_TENANT_ACCESS_TOKEN, and restarts the
# bot (SIGTERM, then start again) whenever the token changes, before the old one expires.
#
# Run it with:  vault agent -config=/etc/vault-agent/agent-exec.hcl
# Vault Agent refuses "exec" together with "template" blocks, so file templates live in
# agent.hcl. Prefer files when the program can re-read them: every token change restarts
# the supervised process (about every 1.5 hours with Lark's 2-hour tokens).

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
  lease_renewal_threshold       = 0.75
  static_secret_render_interval = "5m"
  exit_on_retry_failure         = false
}

env_template "LARK_TENANT_ACCESS_TOKEN" {
  contents             = "{{ with secret \"lark/tenant-token/cli_a1b2c3d4e5f6a7b8\" }}{{ .Data.access_token }}{{ end }}"
  error_on_missing_key = true
}

exec {
  command                   = ["/usr/local/bin/lark-bot"]
  restart_on_secret_changes = "always"
  restart_stop_signal       = "SIGTERM"
}
