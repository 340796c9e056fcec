package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionFlag: the binary built with a version stamped in prints exactly that version for
// -version, which is how make dev and the end-to-end tests learn what to register.
func TestVersionFlag(t *testing.T) {
	for _, args := range [][]string{{"-version"}, {"--version"}} {
		if !versionRequested(args) {
			t.Fatalf("%v does not ask for the version", args)
		}
	}
	for _, args := range [][]string{nil, {"-version", "x"}, {"version"}, {"-tls-skip-verify"}} {
		if versionRequested(args) {
			t.Fatalf("%v asks for the version", args)
		}
	}
	bin := filepath.Join(t.TempDir(), "plugin")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-X github.com/lark-vault/vault-plugin-secrets-lark.Version=v9.8.7-dev.1.gabc", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "v9.8.7-dev.1.gabc" {
		t.Fatalf("plugin -version = %q (%v), want v9.8.7-dev.1.gabc", out, err)
	}
}
