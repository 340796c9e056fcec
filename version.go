package larksecrets

// Version is the plugin's semantic version. The Makefile injects the release value with
// -ldflags "-X github.com/lark-vault/vault-plugin-secrets-lark.Version=vX.Y.Z".
// Vault compares `vault plugin register -version` with the running version as strings after
// prefixing "v", so the value must always carry the leading "v".
var Version = "v0.0.0-dev"
