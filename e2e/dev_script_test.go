//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is an output buffer a process writes while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// bystander is a server that is not make dev's: it listens on a port and counts the connections
// anything makes to it.
type bystander struct {
	addr  string
	conns atomic.Int32
}

func startBystander(t *testing.T) *bystander {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	b := &bystander{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.conns.Add(1)
			c.Close()
		}
	}()
	return b
}

func (b *bystander) assertUntouched(t *testing.T) {
	t.Helper()
	if n := b.conns.Load(); n != 0 {
		t.Fatalf("make dev contacted the server at %s that it did not start (%d connections)", b.addr, n)
	}
}

// devRun is scripts/dev.sh running as `make dev` runs it, in a process group of its own (the group
// a terminal sends Ctrl-C to).
type devRun struct {
	cmd            *exec.Cmd
	stdout, stderr *lockedBuffer
	done           chan struct{}
	err            error
}

func startDev(t *testing.T, vars ...string) *devRun {
	t.Helper()
	// A test binary started in the background inherits an ignored SIGINT, and so would dev.sh
	// (bash cannot trap a signal ignored at its start). While this process handles SIGINT, its
	// children start with the default disposition, as under a terminal.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)

	d := &devRun{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(filepath.Join(repoRoot(t), "scripts", "dev.sh"))
	d.cmd.Env = append(os.Environ(), "VAULT_BIN="+env.vaultBin, "PLUGIN_BIN="+os.Getenv("PLUGIN_BIN"),
		"EMULATOR_BIN="+os.Getenv("EMULATOR_BIN"), "TMPDIR="+t.TempDir())
	d.cmd.Env = append(d.cmd.Env, vars...)
	d.cmd.Stdout, d.cmd.Stderr = d.stdout, d.stderr
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.done
		}
	})
	return d
}

// wait waits for dev.sh to end and returns its exit code.
func (d *devRun) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(timeout):
		t.Fatalf("dev.sh did not end within %s:\n%s\n%s", timeout, d.stdout, d.stderr)
	}
	if d.err == nil {
		return 0
	}
	if ee, ok := d.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatal(d.err)
	return -1
}

func localAddr(t *testing.T) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// TestDevRefusesBusyPorts: with Vault's or the emulator's port taken, make dev says so, names the
// variable that picks another address, and sends nothing to the server on that port.
func TestDevRefusesBusyPorts(t *testing.T) {
	t.Parallel()
	cases := []struct{ what, variable, other string }{
		{"Vault", "DEV_VAULT_ADDR", "DEV_EMULATOR_ADDR"},
		{"Lark emulator", "DEV_EMULATOR_ADDR", "DEV_VAULT_ADDR"},
	}
	for _, tc := range cases {
		t.Run(tc.what, func(t *testing.T) {
			other := startBystander(t)
			d := startDev(t, tc.variable+"="+other.addr, tc.other+"="+localAddr(t))
			if code := d.wait(t, 2*time.Minute); code == 0 {
				t.Fatalf("dev.sh succeeded with %s's port taken:\n%s", tc.what, d.stdout)
			}
			stderr := d.stderr.String()
			t.Logf("dev.sh with %s's port taken:\n%s", tc.what, stderr)
			port := other.addr[strings.LastIndex(other.addr, ":")+1:]
			for _, want := range []string{other.addr + " is already in use (another " + tc.what, tc.variable + "=127.0.0.1:"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("the message lacks %q", want)
				}
			}
			if strings.Contains(stderr, tc.variable+"=127.0.0.1:"+port+" ") {
				t.Errorf("the message suggests the taken port again")
			}
			for _, secret := range []string{"Unseal Key", "Root Token"} {
				if strings.Contains(d.stdout.String()+stderr, secret) {
					t.Errorf("dev.sh printed its Vault's %s", secret)
				}
			}
			other.assertUntouched(t)
		})
	}
}

// TestDevSession runs make dev's script as a newcomer does: with someone else's Vault named in
// VAULT_ADDR, it must use only the servers it started; the banner's commands work, including the
// one that mends the demo app after the README's wrong-secret and unreachable-Lark steps; Vault
// shows the plugin under the Makefile's version; and Ctrl-C stops everything quietly, printing no
// log and neither the unseal key nor the root token of the dev server.
func TestDevSession(t *testing.T) {
	t.Parallel()
	elsewhere := startBystander(t)
	vaultAddr := localAddr(t)
	d := startDev(t, "DEV_VAULT_ADDR="+vaultAddr, "DEV_EMULATOR_ADDR="+localAddr(t),
		"VAULT_ADDR=http://"+elsewhere.addr, "VAULT_TOKEN=someone-elses-token", "VERSION="+pluginVersion)
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
	t.Logf("banner:\n%s", banner)
	if !strings.Contains(banner, "vault-plugin-secrets-lark "+pluginVersion+" mounted at lark/") {
		t.Fatalf("the banner does not name the plugin's version %s", pluginVersion)
	}

	// The unseal key of this dev server, from its log, must never be printed.
	logs := regexp.MustCompile(`Logs: (\S+)/vault\.log`).FindStringSubmatch(banner)
	if logs == nil {
		t.Fatal("the banner names no log directory")
	}
	work := logs[1]
	unseal := regexp.MustCompile(`Unseal Key: (\S+)`).FindStringSubmatch(readTrimmed(filepath.Join(work, "vault.log")))
	if unseal == nil {
		t.Fatal("Vault's log has no unseal key to look for")
	}

	// The tour's commands, in the banner's environment.
	exports := regexp.MustCompile(`(?m)^\s+(export .*)$`).FindAllStringSubmatch(banner, -1)
	if len(exports) != 2 {
		t.Fatalf("the banner has %d export lines, want 2", len(exports))
	}
	shell := func(t *testing.T, script string) (string, error) {
		t.Helper()
		cmd := exec.Command("bash", "-c", exports[0][1]+"\n"+exports[1][1]+"\n"+script)
		cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := shell(t, "vault read -field=access_token lark/app-token/cli_demo"); err != nil || !strings.HasPrefix(out, "t-") {
		t.Fatalf("vault read lark/app-token/cli_demo: %v\n%s", err, out)
	}
	// What Vault shows for the plugin: the Makefile's version, in the catalog and running.
	if out, err := shell(t, "vault plugin info -version="+pluginVersion+" -field=version secret vault-plugin-secrets-lark"); err != nil || strings.TrimSpace(out) != pluginVersion {
		t.Fatalf("vault plugin info shows version %q (%v), want %s", out, err, pluginVersion)
	}
	if out, err := shell(t, "vault read -field=running_plugin_version sys/mounts/lark"); err != nil || strings.TrimSpace(out) != pluginVersion {
		t.Fatalf("lark/ runs version %q (%v), want %s", out, err, pluginVersion)
	}

	// The README's wrong-secret and unreachable-Lark steps break the demo app...
	if out, err := shell(t, "vault write lark/apps/cli_demo app_secret=wrong && vault read lark/app-token/cli_demo"); err == nil || !strings.Contains(out, "Lark rejected the app secret of cli_demo") {
		t.Fatalf("after app_secret=wrong: %v\n%s", err, out)
	}
	if out, err := shell(t, "vault write lark/apps/cli_demo base_url=http://127.0.0.1:1 && vault read lark/tenant-token/cli_demo"); err == nil || !strings.Contains(out, "Code: 503") {
		t.Fatalf("after base_url=http://127.0.0.1:1: %v\n%s", err, out)
	}
	// ...and the banner's command mends it.
	mend := regexp.MustCompile(`(?m)^\s+(vault write lark/apps/cli_demo app_secret=@\S+ base_url=\S+)$`).FindStringSubmatch(banner)
	if mend == nil {
		t.Fatal("the banner has no command that puts cli_demo right")
	}
	if out, err := shell(t, mend[1]); err != nil {
		t.Fatalf("%s: %v\n%s", mend[1], err, out)
	}
	for _, path := range []string{"lark/app-token/cli_demo", "lark/tenant-token/cli_demo"} {
		if out, err := shell(t, "vault read -field=access_token "+path); err != nil || !strings.HasPrefix(out, "t-") {
			t.Fatalf("after the mend, vault read %s: %v\n%s", path, err, out)
		}
	}
	elsewhere.assertUntouched(t)

	// Ctrl-C: SIGINT to the process group, as a terminal sends it.
	before := d.stderr.String()
	if err := syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t, time.Minute); code != 0 {
		t.Fatalf("dev.sh exited %d after Ctrl-C:\n%s", code, d.stderr)
	}
	said := strings.TrimPrefix(d.stderr.String(), before)
	t.Logf("after Ctrl-C:\n%s", said)
	if !regexp.MustCompile(`^\ndev: stopped Vault \(pid \d+\) and the Lark emulator \(pid \d+\); `).MatchString(said) ||
		strings.Count(strings.TrimSpace(said), "\n") != 0 {
		t.Fatalf("after Ctrl-C dev.sh said %q, want one line naming what it stopped", said)
	}
	all := d.stdout.String() + d.stderr.String()
	for _, secret := range []string{unseal[1], "Unseal Key", "Root Token"} {
		if strings.Contains(all, secret) {
			t.Fatalf("dev.sh printed %q", secret)
		}
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Fatalf("the work directory %s is still there (%v)", work, err)
	}
	if c, err := net.DialTimeout("tcp", vaultAddr, time.Second); err == nil {
		c.Close()
		t.Fatalf("something still listens on %s after Ctrl-C", vaultAddr)
	}
	elsewhere.assertUntouched(t)
}

// TestDevReportsACrash: when Vault dies by itself (here: SIGKILL), make dev says which process ended,
// shows the end of its log without the unseal key or root token, stops the emulator and keeps the
// logs for a look.
func TestDevReportsACrash(t *testing.T) {
	t.Parallel()
	d := startDev(t, "DEV_VAULT_ADDR="+localAddr(t), "DEV_EMULATOR_ADDR="+localAddr(t))
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
	work := regexp.MustCompile(`Logs: (\S+)/vault\.log`).FindStringSubmatch(d.stdout.String())
	if work == nil {
		t.Fatal("the banner names no log directory")
	}
	unseal := regexp.MustCompile(`Unseal Key: (\S+)`).FindStringSubmatch(readTrimmed(filepath.Join(work[1], "vault.log")))
	if unseal == nil {
		t.Fatal("Vault's log has no unseal key to look for")
	}
	ours := func(exe string) []procRef {
		var out []procRef
		for _, p := range processesOf(t, exe) {
			if p.ppid == d.cmd.Process.Pid {
				out = append(out, p)
			}
		}
		return out
	}
	vaults, emus := ours(env.vaultBin), ours(os.Getenv("EMULATOR_BIN"))
	if len(vaults) != 1 || len(emus) != 1 {
		t.Fatalf("dev.sh runs %d Vault and %d emulator processes, want one each", len(vaults), len(emus))
	}
	if err := syscall.Kill(vaults[0].pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t, time.Minute); code != 1 {
		t.Fatalf("dev.sh exited %d after Vault died, want 1:\n%s", code, d.stderr)
	}
	stderr := d.stderr.String()
	t.Logf("dev.sh after Vault died:\n%s", stderr)
	for _, want := range []string{
		"dev: Vault exited by itself",
		"the end of " + work[1] + "/vault.log:",
		fmt.Sprintf("dev: stopped the Lark emulator (pid %d); the logs stay in %s", emus[0].pid, work[1]),
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("dev.sh did not say %q", want)
		}
	}
	for _, secret := range []string{unseal[1], "Unseal Key", "Root Token"} {
		if strings.Contains(d.stdout.String()+stderr, secret) {
			t.Errorf("dev.sh printed %q", secret)
		}
	}
	if emus[0].alive() {
		t.Error("the emulator still runs")
	}
	if _, err := os.Stat(filepath.Join(work[1], "vault.log")); err != nil {
		t.Errorf("the logs are gone: %v", err)
	}
}
