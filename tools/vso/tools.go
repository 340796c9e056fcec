// Package vso checks the Kubernetes examples (examples/kubernetes/) against the custom resource
// definitions that Vault Secrets Operator publishes in its Go module, at the version go.mod
// requires. No cluster runs here: the manifests are validated against each CRD's openAPIV3Schema
// as the API server would, and refused if they carry a field the schema does not define.
//
// Vault Secrets Operator is BUSL-licensed; it is a test dependency of this separate module only,
// never of the plugin. Only the small constants package below is compiled; the CRD YAML files are
// read from the module's directory.
package vso

import vaultconsts "github.com/hashicorp/vault-secrets-operator/credentials/vault/consts"

// authMethods are the VaultAuth methods VSO implements a credential provider for.
var authMethods = []string{
	vaultconsts.ProviderMethodKubernetes,
	vaultconsts.ProviderMethodJWT,
	vaultconsts.ProviderMethodAppRole,
	vaultconsts.ProviderMethodAWS,
	vaultconsts.ProviderMethodGCP,
}
