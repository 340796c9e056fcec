package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pinnedVault is the Vault version tools/vault/go.mod requires, read the way build-vault.sh reads it.
func pinnedVault(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../tools/vault/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "require" && f[1] == "github.com/hashicorp/vault" {
			return f[2]
		}
		if len(f) >= 2 && f[0] == "github.com/hashicorp/vault" {
			return f[1]
		}
	}
	t.Fatal("tools/vault/go.mod pins no github.com/hashicorp/vault")
	return ""
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakeVault writes a `vault` that reports the given version the way Vault does.
func fakeVault(t *testing.T, dir, version string) string {
	t.Helper()
	return writeScript(t, filepath.Join(dir, "vault"),
		`[ "$1" = version ] && echo "Vault `+version+` ('0123456789abcdef'), built 2025-10-21T00:00:00Z" && exit 0
echo "fake vault: $*" >&2; exit 3
`)
}

// buildVaultEnv is an environment for build-vault.sh: PATH has a fake `go` that records that it
// was called (any build fails the test unless the test expects one), the cache is empty, and
// neither VAULT_BIN nor a real `vault` is seen.
type buildVaultEnv struct {
	t                    *testing.T
	bin, cache, goCalled string
	extra                []string
}

func newBuildVaultEnv(t *testing.T) *buildVaultEnv {
	t.Helper()
	dir := t.TempDir()
	e := &buildVaultEnv{t: t, bin: filepath.Join(dir, "bin"), cache: filepath.Join(dir, "cache"), goCalled: filepath.Join(dir, "go-called")}
	writeScript(t, filepath.Join(e.bin, "go"), `echo "$*" >>`+e.goCalled+`; exit 1`+"\n")
	return e
}

func (e *buildVaultEnv) run(vars ...string) (stdout, stderr string, ok bool) {
	e.t.Helper()
	script, err := filepath.Abs("build-vault.sh")
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(script)
	env := []string{"PATH=" + e.bin + ":/usr/bin:/bin", "HOME=" + e.t.TempDir(), "VAULT_CACHE_DIR=" + e.cache}
	cmd.Env = append(append(env, e.extra...), vars...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return strings.TrimSpace(out.String()), errb.String(), err == nil
}

func (e *buildVaultEnv) assertNoBuild() {
	e.t.Helper()
	if b, err := os.ReadFile(e.goCalled); err == nil {
		e.t.Fatalf("build-vault.sh ran go (%s), want no build", strings.TrimSpace(string(b)))
	}
}

func TestBuildVaultUsesVaultBinOfThePinnedVersion(t *testing.T) {
	t.Parallel()
	pinned := pinnedVault(t)
	e := newBuildVaultEnv(t)
	good := fakeVault(t, t.TempDir(), pinned)
	out, errOut, ok := e.run("VAULT_BIN=" + good)
	if !ok || out != good {
		t.Fatalf("VAULT_BIN of %s: ok=%v stdout=%q stderr=%q, want its path", pinned, ok, out, errOut)
	}
	e.assertNoBuild()
	// A Vault built from source says "Vault v1.21.0, built …".
	fromSource := writeScript(t, filepath.Join(t.TempDir(), "vault"), `echo "Vault `+pinned+`, built 2026-12-06T11:23:19Z (cgo)"`+"\n")
	if out, errOut, ok := e.run("VAULT_BIN=" + fromSource); !ok || out != fromSource {
		t.Fatalf("VAULT_BIN of %s built from source: ok=%v stdout=%q stderr=%q, want its path", pinned, ok, out, errOut)
	}
	e.assertNoBuild()
}

func TestBuildVaultRefusesVaultBinOfAnotherVersion(t *testing.T) {
	t.Parallel()
	pinned := pinnedVault(t)
	for _, other := range []string{"v1.21.4", "v1.20.0", "v1.21.0-rc1"} {
		if other == pinned {
			continue
		}
		e := newBuildVaultEnv(t)
		bad := fakeVault(t, t.TempDir(), other)
		out, errOut, ok := e.run("VAULT_BIN=" + bad)
		if ok || out != "" {
			t.Fatalf("VAULT_BIN of %s: ok=%v stdout=%q, want a refusal", other, ok, out)
		}
		for _, want := range []string{"VAULT_BIN=" + bad + " is Vault " + other, "pins Vault " + pinned, "tools/vault/go.mod", "v1.21.4 does not"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("VAULT_BIN of %s: the refusal lacks %q:\n%s", other, want, errOut)
			}
		}
		e.assertNoBuild()
	}
	// Not a Vault at all.
	e := newBuildVaultEnv(t)
	notVault := writeScript(t, filepath.Join(t.TempDir(), "vault"), "exit 1\n")
	if out, errOut, ok := e.run("VAULT_BIN=" + notVault); ok || !strings.Contains(errOut, "unknown version") {
		t.Fatalf("VAULT_BIN that is no Vault: ok=%v stdout=%q stderr=%q", ok, out, errOut)
	}
	if out, errOut, ok := e.run("VAULT_BIN=" + filepath.Join(t.TempDir(), "missing")); ok || !strings.Contains(errOut, "not an executable file") {
		t.Fatalf("VAULT_BIN that does not exist: ok=%v stdout=%q stderr=%q", ok, out, errOut)
	}
	e.assertNoBuild()
}

func TestBuildVaultUsesVaultOnPathOnlyOfThePinnedVersion(t *testing.T) {
	t.Parallel()
	pinned := pinnedVault(t)

	e := newBuildVaultEnv(t)
	onPath := fakeVault(t, e.bin, pinned)
	if out, errOut, ok := e.run(); !ok || out != onPath {
		t.Fatalf("vault %s on PATH: ok=%v stdout=%q stderr=%q, want its path", pinned, ok, out, errOut)
	}
	e.assertNoBuild()

	// Another version on PATH is passed over for the cached binary, with a note.
	e = newBuildVaultEnv(t)
	fakeVault(t, e.bin, "v1.19.3")
	cached := fakeVault(t, filepath.Join(e.cache, "vault-"+pinned), pinned)
	out, errOut, ok := e.run()
	if !ok || out != cached {
		t.Fatalf("vault v1.19.3 on PATH and %s cached: ok=%v stdout=%q stderr=%q, want the cached one", pinned, ok, out, errOut)
	}
	if !strings.Contains(errOut, "not using "+filepath.Join(e.bin, "vault")+" (Vault v1.19.3)") {
		t.Fatalf("no note about the vault on PATH:\n%s", errOut)
	}
	e.assertNoBuild()
}

// TestBuildVaultShowsProgress: a build reports what it is doing while it runs. The `go` here
// stands in for the toolchain: it downloads modules and compiles packages slowly, the way the
// real one logs them with -x and -v.
func TestBuildVaultShowsProgress(t *testing.T) {
	t.Parallel()
	pinned := pinnedVault(t)
	e := newBuildVaultEnv(t)
	writeScript(t, filepath.Join(e.bin, "go"), `case "$1" in
list)
  for m in a b c; do
    echo "# get https://proxy.example/example.com/$m/@v/v1.0.0.zip" >&2; sleep 1
    echo "# get https://proxy.example/example.com/$m/@v/v1.0.0.zip: 200 OK (0.1s)" >&2
  done
  printf 'example.com/a\nexample.com/b\nexample.com/c\nexample.com/d\n' ;;
build)
  while [ "$1" != -o ]; do shift; done
  for p in a b c; do echo "example.com/$p" >&2; sleep 1; done
  printf '#!/bin/sh\necho "Vault `+pinned+` (fake), built now"\n' >"$2"; chmod +x "$2" ;;
*) exit 1 ;;
esac
`)
	out, errOut, ok := e.run("BUILD_VAULT_PROGRESS=1")
	t.Logf("build-vault.sh reported:\n%s", errOut)
	want := filepath.Join(e.cache, "vault-"+pinned, "vault")
	if !ok || out != want {
		t.Fatalf("build: ok=%v stdout=%q, want %s\n%s", ok, out, want, errOut)
	}
	for _, line := range []string{
		"building Vault " + pinned,
		"VAULT_BIN=/path/to/vault",
		"downloading modules: ",
		"modules ready (3 downloaded",
		"compiling 4 packages",
		" of 4 packages done",
		"built Vault " + pinned,
	} {
		if !strings.Contains(errOut, line) {
			t.Errorf("the build's report lacks %q:\n%s", line, errOut)
		}
	}
	// Each progress line carries the time spent.
	if !strings.Contains(errOut, "build-vault: 0m0") {
		t.Errorf("no elapsed time in the report:\n%s", errOut)
	}
	// The second time the cached binary is used, without building.
	e.goCalled = filepath.Join(t.TempDir(), "go-called")
	writeScript(t, filepath.Join(e.bin, "go"), `echo "$*" >>`+e.goCalled+`; exit 1`+"\n")
	if out, _, ok := e.run(); !ok || out != want {
		t.Fatalf("second run: ok=%v stdout=%q, want the cached %s", ok, out, want)
	}
	e.assertNoBuild()
}
