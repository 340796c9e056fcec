package vso

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
)

// crd is one custom resource definition, reduced to what a manifest is checked against.
type crd struct {
	group, kind string
	versions    map[string]map[string]interface{} // served version -> openAPIV3Schema
}

// crdFrom reads a decoded CustomResourceDefinition document.
func crdFrom(doc map[string]interface{}) (crd, error) {
	spec, _ := doc["spec"].(map[string]interface{})
	names, _ := spec["names"].(map[string]interface{})
	c := crd{versions: map[string]map[string]interface{}{}}
	c.group, _ = spec["group"].(string)
	c.kind, _ = names["kind"].(string)
	versions, _ := spec["versions"].([]interface{})
	for _, v := range versions {
		vm, _ := v.(map[string]interface{})
		if served, _ := vm["served"].(bool); !served {
			continue
		}
		name, _ := vm["name"].(string)
		schema, _ := vm["schema"].(map[string]interface{})
		open, _ := schema["openAPIV3Schema"].(map[string]interface{})
		if name == "" || open == nil {
			return c, fmt.Errorf("CRD %s: version without a name or an openAPIV3Schema", c.kind)
		}
		c.versions[name] = open
	}
	if c.group == "" || c.kind == "" || len(c.versions) == 0 {
		return c, fmt.Errorf("not a CustomResourceDefinition with a served version")
	}
	return c, nil
}

var (
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

// checkObject checks one manifest against the CRDs by kind: its apiVersion must name a served
// version of the CRD's group, its metadata a valid name and namespace, and everything else must
// satisfy the version's schema. Fields the schema does not define are errors (the API server would
// drop them silently, or refuse them under strict field validation, kubectl's default).
func checkObject(obj map[string]interface{}, crds map[string]crd) []string {
	kind, _ := obj["kind"].(string)
	c, ok := crds[kind]
	if !ok {
		return []string{fmt.Sprintf("kind %q is not one of Vault Secrets Operator's", kind)}
	}
	apiVersion, _ := obj["apiVersion"].(string)
	group, version, _ := strings.Cut(apiVersion, "/")
	schema, ok := c.versions[version]
	if group != c.group || !ok {
		return []string{fmt.Sprintf("%s: apiVersion %q is not a served version of %s", kind, apiVersion, c.group)}
	}
	var errs []string
	meta, _ := obj["metadata"].(map[string]interface{})
	name, _ := meta["name"].(string)
	if len(name) > 253 || !dnsSubdomain.MatchString(name) {
		errs = append(errs, fmt.Sprintf("%s: metadata.name %q is not a valid name", kind, name))
	}
	if ns, ok := meta["namespace"]; ok {
		if s, _ := ns.(string); len(s) > 63 || !dnsLabel.MatchString(s) {
			errs = append(errs, fmt.Sprintf("%s %s: metadata.namespace %v is not a valid namespace", kind, name, ns))
		}
	}
	if _, ok := obj["status"]; ok {
		errs = append(errs, fmt.Sprintf("%s %s: a manifest does not set status", kind, name))
	}
	return append(errs, validate(kind+" "+name, schema, obj)...)
}

// validate checks value against an OpenAPI v3 schema as CRDs use it (structural schemas): type,
// properties, required, additionalProperties, items, enum, pattern, bounds, and the Kubernetes
// extensions int-or-string and preserve-unknown-fields. It returns one message per problem.
func validate(at string, schema map[string]interface{}, value interface{}) []string {
	if value == nil {
		if b, _ := schema["nullable"].(bool); b {
			return nil
		}
		return []string{at + ": null is not allowed"}
	}
	if b, _ := schema["x-kubernetes-int-or-string"].(bool); b {
		switch value.(type) {
		case int, string:
			return nil
		}
		return []string{fmt.Sprintf("%s: want an integer or a string, got %T", at, value)}
	}
	typ, _ := schema["type"].(string)
	var errs []string
	switch typ {
	case "object":
		obj, ok := value.(map[string]interface{})
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %T", at, value)}
		}
		errs = append(errs, validateObject(at, schema, obj)...)
	case "array":
		list, ok := value.([]interface{})
		if !ok {
			return []string{fmt.Sprintf("%s: want an array, got %T", at, value)}
		}
		if n, ok := number(schema["maxItems"]); ok && float64(len(list)) > n {
			errs = append(errs, fmt.Sprintf("%s: more than %v items", at, n))
		}
		if n, ok := number(schema["minItems"]); ok && float64(len(list)) < n {
			errs = append(errs, fmt.Sprintf("%s: fewer than %v items", at, n))
		}
		items, _ := schema["items"].(map[string]interface{})
		for i, item := range list {
			if items != nil {
				errs = append(errs, validate(fmt.Sprintf("%s[%d]", at, i), items, item)...)
			}
		}
	case "string":
		s, ok := value.(string)
		if !ok {
			return []string{fmt.Sprintf("%s: want a string, got %T", at, value)}
		}
		if p, ok := schema["pattern"].(string); ok {
			re, err := regexp.Compile(p)
			if err != nil {
				return []string{fmt.Sprintf("%s: the schema's pattern %q does not compile: %v", at, p, err)}
			}
			if !re.MatchString(s) {
				errs = append(errs, fmt.Sprintf("%s: %q does not match %s", at, s, p))
			}
		}
		if n, ok := number(schema["maxLength"]); ok && float64(len([]rune(s))) > n {
			errs = append(errs, fmt.Sprintf("%s: longer than %v", at, n))
		}
		if n, ok := number(schema["minLength"]); ok && float64(len([]rune(s))) < n {
			errs = append(errs, fmt.Sprintf("%s: shorter than %v", at, n))
		}
	case "integer", "number":
		n, ok := number(value)
		if !ok || (typ == "integer" && reflect.TypeOf(value).Kind() != reflect.Int) {
			return []string{fmt.Sprintf("%s: want %s, got %T", at, typ, value)}
		}
		if max, ok := number(schema["maximum"]); ok && n > max {
			errs = append(errs, fmt.Sprintf("%s: %v is above the maximum %v", at, n, max))
		}
		if min, ok := number(schema["minimum"]); ok && n < min {
			errs = append(errs, fmt.Sprintf("%s: %v is below the minimum %v", at, n, min))
		}
	case "boolean":
		if _, ok := value.(bool); !ok {
			return []string{fmt.Sprintf("%s: want true or false, got %T", at, value)}
		}
	case "":
		if b, _ := schema["x-kubernetes-preserve-unknown-fields"].(bool); !b {
			return []string{at + ": the schema gives no type"}
		}
	default:
		return []string{fmt.Sprintf("%s: the schema's type %q is not supported here", at, typ)}
	}
	if enum, ok := schema["enum"].([]interface{}); ok {
		found := false
		for _, e := range enum {
			if reflect.DeepEqual(e, value) {
				found = true
			}
		}
		if !found {
			errs = append(errs, fmt.Sprintf("%s: %v is not one of %v", at, value, enum))
		}
	}
	return errs
}

func validateObject(at string, schema, obj map[string]interface{}) []string {
	var errs []string
	props, _ := schema["properties"].(map[string]interface{})
	if req, ok := schema["required"].([]interface{}); ok {
		for _, r := range req {
			if _, ok := obj[r.(string)]; !ok {
				errs = append(errs, fmt.Sprintf("%s: %s is required", at, r))
			}
		}
	}
	preserve, _ := schema["x-kubernetes-preserve-unknown-fields"].(bool)
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sub := at + "." + k
		if p, ok := props[k].(map[string]interface{}); ok {
			errs = append(errs, validate(sub, p, obj[k])...)
			continue
		}
		switch extra := schema["additionalProperties"].(type) {
		case map[string]interface{}:
			errs = append(errs, validate(sub, extra, obj[k])...)
			continue
		case bool:
			if extra {
				continue
			}
		}
		if preserve || (props == nil && schema["additionalProperties"] == nil && isMetadata(at)) {
			continue
		}
		errs = append(errs, sub+": unknown field")
	}
	return errs
}

// isMetadata says whether at is a manifest's metadata, which CRD schemas leave open (the API server
// checks it against ObjectMeta; checkObject checks name and namespace).
func isMetadata(at string) bool { return strings.HasSuffix(at, ".metadata") }

func number(v interface{}) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}
