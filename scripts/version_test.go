// Package scripts holds the tests of the shell scripts behind `make release`: the version a
// release is stamped with is a pure decision from the git history, so it gets a table test on
// scratch repositories.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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

func (r *scratchRepo) write(name, content string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// version runs scripts/version.sh on dir and returns its output and whether it succeeded.
func version(t *testing.T, dir string, env []string) (string, bool) {
	t.Helper()
	script, err := filepath.Abs("version.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script, dir)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err == nil
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
			// Sorts above v0.3.0-rc.1 (more identifiers) and below v0.3.0.
			return "v0.3.0-rc.1.dev.1.g" + c, ""
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
	got, ok := version(t, dir, append(os.Environ(), "GIT_CEILING_DIRECTORIES="+filepath.Dir(dir)))
	if !ok || got != "v0.0.0-dev" {
		t.Fatalf("version.sh outside a checkout = %q (ok=%v), want v0.0.0-dev", got, ok)
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
