module vault-plugin-secrets-lark/tools/vso

go 1.26

require (
	github.com/hashicorp/vault-secrets-operator v0.10.0
	gopkg.in/yaml.v3 v3.0.1
)
