package vso

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const vsoModule = "github.com/hashicorp/vault-secrets-operator"

// loadCRDs reads the CRDs of the VSO version go.mod requires, from the Go module cache, or those
// in VSO_CRD_DIR when set (e.g. config/crd/bases of a newer VSO checkout, which the module proxy
// may not serve).
func loadCRDs(t *testing.T) map[string]crd {
	t.Helper()
	if dir := os.Getenv("VSO_CRD_DIR"); dir != "" {
		return crdsIn(t, dir, "from "+dir)
	}
	out, err := exec.Command("go", "list", "-m", "-json", vsoModule).Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", vsoModule, err)
	}
	var mod struct{ Version, Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go list -m %s gave no module directory (%v): %s", vsoModule, err, out)
	}
	return crdsIn(t, filepath.Join(mod.Dir, "config", "crd", "bases"), mod.Version)
}

func crdsIn(t *testing.T, dir, version string) map[string]crd {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %s", dir)
	}
	crds := map[string]crd{}
	for _, f := range files {
		for _, doc := range readYAML(t, f) {
			c, err := crdFrom(doc)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			crds[c.kind] = c
		}
	}
	for _, kind := range []string{"VaultConnection", "VaultAuth", "VaultDynamicSecret"} {
		if _, ok := crds[kind]; !ok {
			t.Fatalf("VSO %s publishes no CRD for %s", version, kind)
		}
	}
	t.Logf("checking against the CRDs of %s %s", vsoModule, version)
	return crds
}

func readYAML(t *testing.T, file string) []map[string]interface{} {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return decodeYAML(t, file, raw)
}

func decodeYAML(t *testing.T, name string, raw []byte) []map[string]interface{} {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var docs []map[string]interface{}
	for {
		var doc map[string]interface{}
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	return docs
}

const examples = "../../examples"

// manifests are the example files by directory: the shared ones, then each mode's.
func manifests(t *testing.T) map[string][]map[string]interface{} {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examples, "kubernetes", "*", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	top, _ := filepath.Glob(filepath.Join(examples, "kubernetes", "*.yaml"))
	byDir := map[string][]map[string]interface{}{}
	for _, f := range append(top, files...) {
		dir := filepath.Base(filepath.Dir(f))
		byDir[dir] = append(byDir[dir], readYAML(t, f)...)
	}
	if len(byDir["kubernetes"]) == 0 || len(byDir["leased"]) == 0 || len(byDir["lease-free"]) == 0 {
		t.Fatalf("examples/kubernetes/ lacks the shared, leased or lease-free manifests: %v", byDir)
	}
	return byDir
}

func TestManifestsMatchVSOSchemas(t *testing.T) {
	crds := loadCRDs(t)
	for dir, docs := range manifests(t) {
		for _, doc := range docs {
			for _, e := range checkObject(doc, crds) {
				t.Errorf("%s: %s", dir, e)
			}
			meta, _ := doc["metadata"].(map[string]interface{})
			for k := range meta {
				if !slices.Contains([]string{"name", "namespace", "labels", "annotations"}, k) {
					t.Errorf("%s: metadata.%s is not set in a manifest", dir, k)
				}
			}
		}
	}
}

// TestManifestsFitTogether checks what the schemas cannot: references resolve, each mode sets what
// it needs, and the policy lets VSO read every path the manifests name.
func TestManifestsFitTogether(t *testing.T) {
	byDir := manifests(t)
	shared := map[string]map[string]interface{}{}
	for _, doc := range byDir["kubernetes"] {
		shared[doc["kind"].(string)+"/"+name(doc)] = doc
	}
	for key, doc := range shared {
		if strings.HasPrefix(key, "VaultAuth/") {
			spec := doc["spec"].(map[string]interface{})
			if !slices.Contains(authMethods, spec["method"].(string)) {
				t.Errorf("%s: method %v is not one VSO implements (%v)", key, spec["method"], authMethods)
			}
			if _, ok := shared["VaultConnection/"+spec["vaultConnectionRef"].(string)]; !ok {
				t.Errorf("%s: vaultConnectionRef %v names no VaultConnection of the examples", key, spec["vaultConnectionRef"])
			}
		}
	}
	readable := policyPaths(t, filepath.Join(examples, "policies", "lark-vso.hcl"))
	for _, mode := range []string{"leased", "lease-free"} {
		paths := 0
		for _, doc := range byDir[mode] {
			if doc["kind"] != "VaultDynamicSecret" {
				continue
			}
			spec := doc["spec"].(map[string]interface{})
			at := mode + " " + name(doc)
			if _, ok := shared["VaultAuth/"+spec["vaultAuthRef"].(string)]; !ok {
				t.Errorf("%s: vaultAuthRef %v names no VaultAuth of the examples", at, spec["vaultAuthRef"])
			}
			static, _ := spec["allowStaticCreds"].(bool)
			_, renewal := spec["renewalPercent"]
			if mode == "lease-free" && (!static || renewal) {
				t.Errorf("%s: lease-free answers need allowStaticCreds: true (and renewalPercent has no use)", at)
			}
			if mode == "leased" && (static || !renewal) {
				t.Errorf("%s: leased answers need renewalPercent and no allowStaticCreds", at)
			}
			if _, ok := spec["params"]; ok {
				t.Errorf("%s: token reads take no parameters (VSO would send a PUT)", at)
			}
			path := spec["mount"].(string) + "/" + spec["path"].(string)
			if !policyAllows(readable, path) {
				t.Errorf("%s: examples/policies/lark-vso.hcl does not let VSO read %s", at, path)
			}
			paths++
		}
		if paths == 0 {
			t.Errorf("%s: no VaultDynamicSecret", mode)
		}
	}
}

func name(doc map[string]interface{}) string {
	meta, _ := doc["metadata"].(map[string]interface{})
	n, _ := meta["name"].(string)
	return n
}

var policyBlock = regexp.MustCompile(`(?s)path\s+"([^"]+)"\s*\{\s*capabilities\s*=\s*\[([^\]]*)\]\s*\}`)

// policyPaths are the paths an HCL policy of the examples' simple form grants read on.
func policyPaths(t *testing.T, file string) []string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, m := range policyBlock.FindAllStringSubmatch(string(raw), -1) {
		if strings.Contains(m[2], `"read"`) {
			paths = append(paths, m[1])
		}
	}
	if len(paths) == 0 {
		t.Fatalf("%s grants read on nothing", file)
	}
	return paths
}

// policyAllows matches a request path against policy paths: exact, a trailing * for any suffix, or
// + for one path segment.
func policyAllows(policy []string, path string) bool {
	for _, p := range policy {
		re := "^" + strings.ReplaceAll(regexp.QuoteMeta(p), `\+`, `[^/]+`)
		if strings.HasSuffix(re, `\*`) {
			re = strings.TrimSuffix(re, `\*`) + ".*"
		}
		if regexp.MustCompile(re + "$").MatchString(path) {
			return true
		}
	}
	return false
}

// TestSchemaCheckRefusesBadManifests shows the check can fail: each case breaks a valid
// VaultDynamicSecret in one way the API server would refuse.
func TestSchemaCheckRefusesBadManifests(t *testing.T) {
	crds := loadCRDs(t)
	const good = `
apiVersion: secrets.hashicorp.com/v1beta1
kind: VaultDynamicSecret
metadata: {name: t, namespace: payments}
spec:
  mount: lark
  path: tenant-token/cli_a1b2c3d4e5f6a7b8
  renewalPercent: 60
  destination: {name: t, create: true}
`
	if errs := checkObject(decodeYAML(t, "good", []byte(good))[0], crds); len(errs) != 0 {
		t.Fatalf("the valid manifest is refused: %v", errs)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"misspelt field", "renewalPercent: 60", "renewalPercentage: 60", "spec.renewalPercentage: unknown field"},
		{"above the maximum", "renewalPercent: 60", "renewalPercent: 95", "above the maximum"},
		{"wrong type", "renewalPercent: 60", "allowStaticCreds: \"yes\"", "want true or false"},
		{"not in the enum", "renewalPercent: 60", "requestHTTPMethod: DELETE", "is not one of"},
		{"pattern", "renewalPercent: 60", "refreshAfter: 1d", "does not match"},
		{"required field", "destination: {name: t, create: true}", "destination: {create: true}", "spec.destination: name is required"},
		{"unserved version", "v1beta1", "v1alpha1", "not a served version"},
		{"unknown kind", "VaultDynamicSecret", "VaultDynamicSecrets", "is not one of Vault Secrets Operator's"},
		{"bad name", "name: t,", "name: T_1,", "not a valid name"},
	} {
		bad := strings.Replace(good, tc.from, tc.to, 1)
		errs := checkObject(decodeYAML(t, tc.name, []byte(bad))[0], crds)
		if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
			t.Errorf("%s: want an error containing %q, got %v", tc.name, tc.want, errs)
		}
	}
	if policyAllows([]string{"lark/tenant-token/cli_a1b2c3d4e5f6a7b8"}, "lark/user-token/cli_a1b2c3d4e5f6a7b8/x") {
		t.Error("policyAllows lets an unrelated path through")
	}
	if !policyAllows([]string{"lark/user-token/+/svc-*"}, "lark/user-token/cli_a1b2c3d4e5f6a7b8/svc-x") {
		t.Error("policyAllows misses + and *")
	}
}
