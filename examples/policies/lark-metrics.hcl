# lark-metrics: Prometheus scraping the plugin's metrics through Vault
# (examples/prometheus/prometheus.yml). Reading lark/metrics and nothing else: no token, no
# grant, no setting. Prometheus reads the token file at every scrape, so keep a live token
# there: a Vault Agent auto_auth file sink, or a periodic token renewed by a timer:
#
#   vault policy write lark-metrics examples/policies/lark-metrics.hcl
#   vault token create -policy=lark-metrics -period=24h -orphan -field=token > /etc/prometheus/vault-token
#   vault token renew "$(cat /etc/prometheus/vault-token)"   # daily

path "lark/metrics" {
  capabilities = ["read"]
}
