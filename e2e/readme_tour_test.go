//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The README's tour runs against `make dev` on these addresses; the test's own run is mapped onto them.
const (
	tourVaultAddr = "127.0.0.1:8200"
	tourEmuAddr   = "127.0.0.1:8787"
)

// tourCommand is one "$ command" of a README block and the output the README shows for it.
type tourCommand struct {
	cmd  string
	want []string
}

// tourBlock is one fenced block of the tour.
type tourBlock struct {
	line     int // in README.md, for messages
	commands []tourCommand
}

// tourSections are the README's sections with real output from `make dev`, by heading.
var tourSections = []string{
	"## A tour, with real output from `make dev`",
	"### Authorize → callback → read, with real output from `make dev`",
	// Before the store app's section, whose event counters include this revocation.
	"### Revocations the moment they happen",
	"### A store app with two tenants, real output from `make dev`",
	"### `vault read lark/reauth`, real output",
	// Last: its grant is the demo person's too, and the revocation above would flag it.
	"### Bots, CLIs and agents: device login, with real output from `make dev`",
}

// readmeTour returns the fenced blocks of the README's tour sections (each up to the next heading of
// its level or above) that show commands, in order.
func readmeTour(t *testing.T) []tourBlock {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Split(string(b), "\n")
	var blocks []tourBlock
	for _, heading := range tourSections {
		start := slices.Index(all, heading)
		if start < 0 {
			t.Fatalf("README.md has no section %q", heading)
		}
		level := headingLevel(heading)
		end := len(all)
		for i := start + 1; i < len(all); i++ {
			if l := headingLevel(all[i]); l > 0 && l <= level {
				end = i
				break
			}
		}
		blocks = append(blocks, tourBlocks(all, start, end)...)
	}
	return blocks
}

// headingLevel is 2 for "## …", 3 for "### …", 0 for a line that is no heading.
func headingLevel(line string) int {
	n := len(line) - len(strings.TrimLeft(line, "#"))
	if n == 0 || !strings.HasPrefix(line[n:], " ") {
		return 0
	}
	return n
}

// tourBlocks parses the fenced blocks of lines[start:end].
func tourBlocks(lines []string, start, end int) []tourBlock {
	lines = lines[:end]
	var blocks []tourBlock
	for i := start; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "```") || strings.TrimPrefix(lines[i], "```") != "" && strings.TrimPrefix(lines[i], "```") != "text" {
			if strings.HasPrefix(lines[i], "```") { // a block in another language: skip it whole
				for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
				}
			}
			continue
		}
		block := tourBlock{line: i + 1}
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			l := lines[i]
			switch {
			case strings.HasPrefix(l, "$ "):
				block.commands = append(block.commands, tourCommand{cmd: strings.TrimPrefix(l, "$ ")})
			case l == "^C":
				block.commands = append(block.commands, tourCommand{cmd: "^C"})
			case len(block.commands) > 0:
				c := &block.commands[len(block.commands)-1]
				c.want = append(c.want, l)
			}
		}
		if len(block.commands) > 0 {
			blocks = append(blocks, block)
		}
	}
	return blocks
}

// tourMasks replace what changes from run to run with a placeholder, in the README's output and in
// the real one alike.
var tourMasks = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z`), "<time>"},
	{regexp.MustCompile(`\bt-[0-9a-z]{20,}`), "<token>"},
	{regexp.MustCompile(`\beyJ[A-Za-z0-9_.-]+…?`), "<jwt>"},
	{regexp.MustCompile(`\b(code_challenge|state)=[A-Za-z0-9_-]+`), "${1}=<random>"},
	{regexp.MustCompile(`\bon_[0-9a-f]{32}\b`), "<union_id>"},
	{regexp.MustCompile(`\b[A-Z]{4}-[A-Z]{4}\b`), "<user_code>"},
	{regexp.MustCompile(`(lark/[a-z-]+(?:/[A-Za-z0-9_.-]+)+/)[A-Za-z0-9]{24}\b`), "${1}<lease>"},
	{regexp.MustCompile(`sha256:[0-9a-f]{8}\b`), "sha256:<fingerprint>"},
	{regexp.MustCompile(`\(sha256 [0-9a-f]{8}[0-9a-f]*…?\)`), "(sha256 <sha256>)"},
	{regexp.MustCompile(`log_id [0-9a-zA-Z]+`), "log_id <log_id>"},
	{regexp.MustCompile(`\(pid \d+\)`), "(pid <pid>)"},
	{regexp.MustCompile(`\bv\d+\.\d+\.\d+-dev\.\d+\.g[0-9a-f]{12}(\.dirty)?\b`), "<version>"},
	{regexp.MustCompile(`/tmp/lark-dev\.[A-Za-z0-9]+`), "<work>"},
	{regexp.MustCompile(`(?m)^(lease_duration|expires_in)(\s+)\S+$`), "${1}${2}<ttl>"},
	{regexp.MustCompile(`PATH="\S*/vault-v`), `PATH="<dir>/vault-v`},
}

func tourMask(s string) string {
	for _, m := range tourMasks {
		s = m.re.ReplaceAllString(s, m.with)
	}
	return s
}

// tourLines masks the lines and drops trailing blank ones.
func tourLines(lines []string) []string {
	var out []string
	for _, l := range strings.Split(tourMask(strings.Join(lines, "\n")), "\n") {
		out = append(out, strings.TrimRight(l, " \t"))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// tourMatch reports whether got matches want, where a "..." line of want stands for any lines.
func tourMatch(want, got []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if want[0] == "..." {
		for i := 0; i <= len(got); i++ {
			if tourMatch(want[1:], got[i:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && tourLineMatch(want[0], got[0]) && tourMatch(want[1:], got[1:])
}

// tourLineMatch compares one line, where "…" in the README's line stands for any text.
func tourLineMatch(want, got string) bool {
	if !strings.Contains(want, "…") {
		return want == got
	}
	parts := strings.Split(want, "…")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$").MatchString(got)
}

// TestReadmeTour runs every command block of the README's tour against scripts/dev.sh (what `make
// dev` runs), in order, and compares each command's output with the one the README shows: the banner,
// the token reads, the errors, the command that mends the demo app, and Ctrl-C. Values that change
// from run to run (times, tokens, lease ids, fingerprints, the version) are masked; "..." in the
// README stands for lines left out. So the tour cannot drift from what a newcomer sees.
func TestReadmeTour(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("jq"); err != nil {
		t.Fatal("the README's tour uses jq (Debian: apt-get install jq)")
	}
	blocks := readmeTour(t)
	if len(blocks) == 0 || blocks[0].commands[0].cmd != "make dev" {
		t.Fatal("the tour does not start with a make dev block")
	}
	vaultAddr, emuAddr := localAddr(t), localAddr(t)
	d := startDev(t, "DEV_VAULT_ADDR="+vaultAddr, "DEV_EMULATOR_ADDR="+emuAddr)
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(d.stdout.String(), "Press Ctrl-C to stop.") {
		select {
		case <-d.done:
			t.Fatalf("dev.sh ended before its banner:\n%s\n%s", d.stdout, d.stderr)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner after 3 minutes:\n%s\n%s", d.stdout, d.stderr)
		}
	}
	banner := d.stdout.String()
	work := regexp.MustCompile(`Logs: (\S+)/vault\.log`).FindStringSubmatch(banner)
	if work == nil {
		t.Fatal("the banner names no work directory")
	}
	// What this run prints, as the README's run printed it.
	encoded := func(addr string) string { return strings.Replace(addr, ":", "%3A", 1) }
	toReadme := strings.NewReplacer(work[1], "/tmp/lark-dev.X", vaultAddr, tourVaultAddr, emuAddr, tourEmuAddr,
		encoded(vaultAddr), encoded(tourVaultAddr), encoded(emuAddr), encoded(tourEmuAddr))
	fromReadme := func(cmd string) string {
		cmd = regexp.MustCompile(`/tmp/lark-dev\.[A-Za-z0-9]+`).ReplaceAllString(cmd, work[1])
		return strings.NewReplacer(tourVaultAddr, vaultAddr, tourEmuAddr, emuAddr).Replace(cmd)
	}
	exports := regexp.MustCompile(`(?m)^\s+(export .*)$`).FindAllStringSubmatch(banner, -1)
	if len(exports) != 2 {
		t.Fatalf("the banner has %d export lines, want 2", len(exports))
	}
	check := func(t *testing.T, where string, c tourCommand, out string) {
		t.Helper()
		want, got := tourLines(c.want), tourLines(strings.Split(toReadme.Replace(out), "\n"))
		if !tourMatch(want, got) {
			t.Errorf("%s: $ %s\nthe README shows (masked):\n%s\nthe real output (masked):\n%s", where, c.cmd, strings.Join(want, "\n"), strings.Join(got, "\n"))
		}
	}

	var ctrlC *tourCommand
	ran := 0
	for _, b := range blocks {
		for i, c := range b.commands {
			where := fmt.Sprintf("README.md:%d", b.line)
			switch c.cmd {
			case "make dev":
				// make's own lines (the builds) are the README's "...".
				check(t, where, c, banner)
			case "^C":
				ctrlC = &b.commands[i]
			default:
				// $EMU is the emulator's address, as the README says.
				cmd := exec.Command("bash", "-c", exports[0][1]+"\n"+exports[1][1]+"\nexport EMU=http://"+emuAddr+"\n"+fromReadme(c.cmd))
				cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
				// Standard output, then standard error on a line of its own: Vault's CLI writes
				// a read's table without a final newline and its warnings to standard error.
				var stdout, stderr strings.Builder
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				_ = cmd.Run()
				out := stdout.String()
				if out != "" && stderr.Len() > 0 && !strings.HasSuffix(out, "\n") {
					out += "\n"
				}
				out += stderr.String()
				check(t, where, c, out)
				ran++
				// The person opens the authorize link in a browser: Lark (the emulator) approves
				// and sends the browser to Vault's callback.
				if m := regexp.MustCompile(`(?m)^authorize_url\s+(\S+)$`).FindStringSubmatch(string(out)); m != nil {
					resp, err := env.httpClient.Get(m[1])
					if err != nil {
						t.Fatal(err)
					}
					page, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `<h1 class="ok">Authorized</h1>`) {
						t.Fatalf("following the authorize_url: HTTP %d\n%s", resp.StatusCode, page)
					}
				}
			}
		}
	}

	t.Logf("ran %d commands of %d blocks of the tour", ran, len(blocks))
	if ran < 20 {
		t.Fatalf("only %d commands of the tour ran: did the README's blocks change shape?", ran)
	}
	if ctrlC == nil {
		t.Fatal("the tour does not show Ctrl-C")
	}
	before := d.stderr.String()
	if err := syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	d.wait(t, time.Minute)
	// The terminal echoes ^C; dev.sh starts a new line after it.
	check(t, "Ctrl-C", *ctrlC, strings.TrimLeft(strings.TrimPrefix(d.stderr.String(), before), "\n"))
}
