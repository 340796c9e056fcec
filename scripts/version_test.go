// Package scripts holds the tests of the shell scripts behind the Makefile: the version every build
// is stamped with is a pure decision from the git history and CHANGELOG.md, so it gets a table test
// on scratch repositories; build-vault.sh and dev.sh are run with stand-ins for Vault and Go.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	goversion "github.com/hashicorp/go-version"
)

// scratchRepo is a git repository in a temporary directory, isolated from the user's git
// configuration.
type scratchRepo struct {
	t   *testing.T
	dir string
	env []string
}

func newScratchRepo(t *testing.T) *scratchRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed to test scripts/version.sh")
	}
	home := t.TempDir()
	r := &scratchRepo{t: t, dir: t.TempDir(), env: append(os.Environ(),
		"HOME="+home, "XDG_CONFIG_HOME="+home, "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@example.com")}
	r.git("init", "-q")
	return r
}

func (r *scratchRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = r.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit changes the tracked file and commits; it returns the abbreviated commit id version.sh uses.
func (r *scratchRepo) commit(content string) string {
	r.t.Helper()
	r.write("file.txt", content)
	r.git("add", "file.txt")
	r.git("commit", "-q", "-m", content)
	return r.git("rev-parse", "--short=12", "HEAD")
}

// release commits a CHANGELOG.md whose newest release heading is version (what a release commit
// does when there are no tags) and returns the abbreviated commit id.
func (r *scratchRepo) release(version string) string {
	r.t.Helper()
	r.write("CHANGELOG.md", "# Changelog\n\n## [Unreleased]\n\n## ["+version+"] - 2026-11-28\n\n- Something.\n")
	r.git("add", "CHANGELOG.md")
	r.git("commit", "-q", "-m", "release "+version)
	return r.git("rev-parse", "--short=12", "HEAD")
}

func (r *scratchRepo) write(name, content string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// version runs scripts/version.sh on dir and returns what it printed (standard output, or, when it
// failed, standard error too) and whether it succeeded.
func version(t *testing.T, dir string, env []string) (string, bool) {
	t.Helper()
	out, errOut, ok := versionWithNotes(t, dir, env)
	if !ok {
		return strings.TrimSpace(out + errOut), false
	}
	return out, true
}

func versionWithNotes(t *testing.T, dir string, env []string) (stdout, stderr string, ok bool) {
	t.Helper()
	script, err := filepath.Abs("version.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script, dir)
	cmd.Env = env
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return strings.TrimSpace(o.String()), e.String(), err == nil
}

func TestVersionFromGitHistory(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// setup builds the history and returns the version version.sh must print ("" when it must
		// fail) and, for a failure, a part of the message.
		setup func(r *scratchRepo) (want, failure string)
	}{
		{"a checkout without commits", func(r *scratchRepo) (string, string) {
			return "v0.0.0-dev", ""
		}},
		{"no tag yet", func(r *scratchRepo) (string, string) {
			r.commit("one")
			c := r.commit("two")
			return "v0.0.0-dev.2.g" + c, ""
		}},
		{"no tag, uncommitted change", func(r *scratchRepo) (string, string) {
			c := r.commit("one")
			r.write("file.txt", "changed")
			return "v0.0.0-dev.1.g" + c + ".dirty", ""
		}},
		{"on a release tag", func(r *scratchRepo) (string, string) {
			r.commit("one")
			r.git("tag", "v0.2.0")
			return "v0.2.0", ""
		}},
		{"on an annotated release tag, untracked files around", func(r *scratchRepo) (string, string) {
			r.commit("one")
			r.git("tag", "-a", "-m", "release", "v1.4.12")
			r.write("notes.txt", "not tracked, not part of the build")
			return "v1.4.12", ""
		}},
		{"on a release tag with an uncommitted change", func(r *scratchRepo) (string, string) {
			c := r.commit("one")
			r.git("tag", "v0.2.0")
			r.write("file.txt", "changed")
			// Not the tag's code: a pre-release of the next patch, which sorts above v0.2.0.
			return "v0.2.1-dev.0.g" + c + ".dirty", ""
		}},
		{"commits after a release tag", func(r *scratchRepo) (string, string) {
			r.commit("one")
			r.git("tag", "v0.2.0")
			r.commit("two")
			c := r.commit("three")
			return "v0.2.1-dev.2.g" + c, ""
		}},
		{"the nearest tag counts", func(r *scratchRepo) (string, string) {
			r.commit("one")
			r.git("tag", "v0.1.0")
			r.commit("two")
			r.git("tag", "v0.2.0")
			c := r.commit("three")
			return "v0.2.1-dev.1.g" + c, ""
		}},
		{"on a pre-release tag", func(r *scratchRepo) (string, string) {
			r.commit("one")
			r.git("tag", "v0.3.0-rc.1")
			return "v0.3.0-rc.1", ""
		}},
		{"commits after a pre-release tag", func(r *scratchRepo) (string, string) {
			r.commit("one")
			r.git("tag", "v0.3.0-rc.1")
			c := r.commit("two")
			// Sorts above v0.3.0-rc.1 (one more identifier, a number) and below v0.3.0.
			return "v0.3.0-rc.1.1.g" + c, ""
		}},
		{"tags that are not v+semver are not versions", func(r *scratchRepo) (string, string) {
			r.commit("one")
			r.git("tag", "v0.1.0")
			c := r.commit("two")
			r.git("tag", "0.2.0")
			r.git("tag", "v0.2")
			r.git("tag", "release-0.2.0")
			return "v0.1.1-dev.1.g" + c, ""
		}},
		{"a tag with a leading zero", func(r *scratchRepo) (string, string) {
			r.commit("one")
			r.git("tag", "v0.02.0")
			return "", "not v+semver"
		}},
		{"a tag with build metadata", func(r *scratchRepo) (string, string) {
			r.commit("one")
			r.git("tag", "v0.2.0+linux")
			return "", "not v+semver"
		}},
		// No tags: CHANGELOG.md's newest release heading, from the commit that added it.
		{"at the changelog's release commit", func(r *scratchRepo) (string, string) {
			r.commit("one")
			r.release("v0.1.0")
			return "v0.1.0", ""
		}},
		{"commits after the changelog's release", func(r *scratchRepo) (string, string) {
			r.commit("one")
			r.release("v0.1.0")
			r.commit("two")
			c := r.commit("three")
			return "v0.1.1-dev.2.g" + c, ""
		}},
		{"the changelog's release with an uncommitted change", func(r *scratchRepo) (string, string) {
			r.commit("one")
			c := r.release("v0.1.0")
			r.write("file.txt", "changed")
			return "v0.1.1-dev.0.g" + c + ".dirty", ""
		}},
		{"edits of the changelog below the heading leave the release commit", func(r *scratchRepo) (string, string) {
			r.release("v0.1.0")
			r.write("CHANGELOG.md", "# Changelog\n\n## [Unreleased]\n\n- New.\n\n## [v0.1.0] - 2026-11-28\n\n- Something.\n")
			r.git("commit", "-q", "-am", "unreleased entry")
			c := r.commit("two")
			return "v0.1.1-dev.2.g" + c, ""
		}},
		{"the newest changelog release counts", func(r *scratchRepo) (string, string) {
			r.release("v0.1.0")
			r.commit("two")
			r.write("CHANGELOG.md", "# Changelog\n\n## [Unreleased]\n\n## [v0.2.0] - 2026-12-01\n\n## [v0.1.0] - 2026-11-28\n")
			r.git("commit", "-q", "-am", "release v0.2.0")
			c := r.commit("three")
			return "v0.2.1-dev.1.g" + c, ""
		}},
		{"commits after a changelog pre-release", func(r *scratchRepo) (string, string) {
			r.release("v0.3.0-rc.1")
			c := r.commit("two")
			return "v0.3.0-rc.1.1.g" + c, ""
		}},
		{"a release heading only in the working tree is not a release yet", func(r *scratchRepo) (string, string) {
			r.release("v0.1.0")
			c := r.commit("two")
			r.write("CHANGELOG.md", "## [v0.2.0] - 2026-12-01\n\n## [v0.1.0] - 2026-11-28\n")
			return "v0.1.1-dev.1.g" + c + ".dirty", ""
		}},
		{"a tag wins over the changelog", func(r *scratchRepo) (string, string) {
			r.release("v0.1.0")
			r.commit("two")
			r.git("tag", "v0.4.0")
			return "v0.4.0", ""
		}},
		{"a changelog heading that is not v+semver", func(r *scratchRepo) (string, string) {
			r.release("0.1.0")
			return "", "CHANGELOG.md's newest release 0.1.0 is not v+semver"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newScratchRepo(t)
			want, failure := tc.setup(r)
			got, ok := version(t, r.dir, r.env)
			switch {
			case want == "" && ok:
				t.Fatalf("version.sh printed %q, want a failure mentioning %q", got, failure)
			case want == "" && !strings.Contains(got, failure):
				t.Fatalf("version.sh failed with %q, want it to mention %q", got, failure)
			case want != "" && (!ok || got != want):
				t.Fatalf("version.sh = %q (ok=%v), want %q", got, ok, want)
			}
		})
	}
}

func TestVersionOutsideGit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() // under the system's temporary directory, not inside a checkout
	env := append(os.Environ(), "GIT_CEILING_DIRECTORIES="+filepath.Dir(dir))
	got, ok := version(t, dir, env)
	if !ok || got != "v0.0.0-dev" {
		t.Fatalf("version.sh outside a checkout = %q (ok=%v), want v0.0.0-dev", got, ok)
	}
	// A source tree with its changelog: after the newest release, how far unknown.
	if err := os.WriteFile(filepath.Join(dir, "CHANGELOG.md"), []byte("## [Unreleased]\n\n## [v0.1.0] - 2026-11-28\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, ok := version(t, dir, env); !ok || got != "v0.1.1-dev" {
		t.Fatalf("version.sh outside a checkout, with a changelog = %q (ok=%v), want v0.1.1-dev", got, ok)
	}
}

// TestVersionInShallowClone: a clone without the release commit cannot count the commits since;
// it must not claim to be the release, and it says why the count is short.
func TestVersionInShallowClone(t *testing.T) {
	t.Parallel()
	r := newScratchRepo(t)
	r.release("v0.1.0")
	r.commit("two")
	c := r.commit("three")
	clone := filepath.Join(t.TempDir(), "clone")
	r.git("clone", "-q", "--depth", "1", "file://"+r.dir, clone)
	got, notes, ok := versionWithNotes(t, clone, r.env)
	if !ok || got != "v0.1.1-dev.0.g"+c || !strings.Contains(notes, "shallow clone") {
		t.Fatalf("version.sh in a shallow clone = %q (ok=%v, notes %q), want v0.1.1-dev.0.g%s and a note", got, ok, notes, c)
	}
}

// TestVersionsSortAsVaultSortsThem: Vault parses plugin versions with hashicorp/go-version and
// orders its catalog by them. Every shape version.sh prints must parse, carry no build metadata
// and sort after the release it follows and before the next one.
func TestVersionsSortAsVaultSortsThem(t *testing.T) {
	t.Parallel()
	ordered := []string{
		"v0.0.0-dev",
		"v0.0.0-dev.3.g0123456789ab",
		"v0.1.0",
		"v0.1.1-dev",
		"v0.1.1-dev.0.g0123456789ab.dirty",
		"v0.1.1-dev.2.gfedcba987654",
		"v0.1.1-dev.9.g0123456789ab",
		"v0.1.1-dev.10.g0123456789ab",
		"v0.1.1",
		"v0.3.0-rc.1",
		"v0.3.0-rc.1.1.g0123456789ab",
		"v0.3.0",
	}
	var prev *goversion.Version
	for _, s := range ordered {
		v, err := goversion.NewSemver(s)
		if err != nil {
			t.Fatalf("%s does not parse as Vault parses plugin versions: %v", s, err)
		}
		if v.Metadata() != "" {
			t.Fatalf("%s carries build metadata", s)
		}
		if prev != nil && !prev.LessThan(v) {
			t.Fatalf("%s does not sort after %s", s, prev.Original())
		}
		prev = v
	}
}

// TestReleaseRefusesVersionsVaultCannotUse: release.sh checks the version before it builds
// anything, so a wrong VERSION costs nothing and leaves no artifacts.
func TestReleaseRefusesVersionsVaultCannotUse(t *testing.T) {
	t.Parallel()
	script, err := filepath.Abs("release.sh")
	if err != nil {
		t.Fatal(err)
	}
	const module = "github.com/lark-vault/vault-plugin-secrets-lark"
	cases := []struct {
		version, ldflags, want string
	}{
		{"0.2.0", "-X " + module + ".Version=0.2.0", "not v+semver"},
		{"v0.2", "-X " + module + ".Version=v0.2", "not v+semver"},
		{"v0.2.0+linux", "-X " + module + ".Version=v0.2.0+linux", "not v+semver"},
		{"v0.2.0", "-X " + module + ".Version=v0.1.0", "do not stamp in version v0.2.0"},
		{"", "-X " + module + ".Version=", "no version"},
	}
	for _, tc := range cases {
		dist := filepath.Join(t.TempDir(), "dist")
		cmd := exec.Command(script)
		cmd.Env = append(os.Environ(), "VERSION="+tc.version, "LDFLAGS="+tc.ldflags, "DIST="+dist)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("release.sh with VERSION=%q LDFLAGS=%q: err=%v, want a refusal mentioning %q:\n%s", tc.version, tc.ldflags, err, tc.want, out)
		}
		if _, err := os.Stat(dist); !os.IsNotExist(err) {
			t.Errorf("release.sh with VERSION=%q created %s", tc.version, dist)
		}
	}
}

// TestOneVersionForEveryBuild: `make build`, `make dev`, `make release` and the benchmarks stamp and
// register the version scripts/version.sh gives for this checkout, and no other.
func TestOneVersionForEveryBuild(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	want, ok := version(t, "..", os.Environ())
	if !ok {
		t.Fatalf("version.sh failed: %s", want)
	}
	mk := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("make", append([]string{"-s", "--no-print-directory", "-C", ".."}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if got := strings.TrimSpace(mk("version")); got != want {
		t.Fatalf("make version = %q, version.sh = %q", got, want)
	}
	stamped := regexp.MustCompile(`(?:\.Version=|VERSION=')([^\s'"]*)`)
	for _, target := range []string{"build", "dev", "release", "bench"} {
		// -n prints the commands without running them; -B as if every file were out of date.
		out := mk("-n", "-B", target)
		found := stamped.FindAllStringSubmatch(out, -1)
		if len(found) == 0 {
			t.Fatalf("make -n %s stamps no version:\n%s", target, out)
		}
		for _, m := range found {
			if m[1] != want {
				t.Fatalf("make %s uses version %q, want %q (scripts/version.sh):\n%s", target, m[1], want, out)
			}
		}
	}
}
