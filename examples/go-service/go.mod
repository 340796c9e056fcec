module github.com/lark-vault/vault-plugin-secrets-lark/examples/go-service

go 1.26.0

require github.com/larksuite/oapi-sdk-go/v3 v3.13.0
