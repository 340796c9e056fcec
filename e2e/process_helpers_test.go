//go:build e2e

package e2e

// Finding and watching the processes Vault starts (its plugin processes) through /proc, which is
// how an operator would look for a plugin process left behind.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// procRef names one process: the pid and its start time, so that a recycled pid is not taken for
// the same process.
type procRef struct {
	pid       int
	ppid      int
	startTime string // field 22 of /proc/<pid>/stat, in clock ticks since boot
}

// procStat reads state, parent and start time from /proc/<pid>/stat. The command name (field 2)
// may hold spaces and parentheses, so the fields are counted from the last ')'.
func procStat(pid int) (state string, ppid int, startTime string, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, "", err
	}
	s := string(data)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return "", 0, "", fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(s[end+1:]) // fields[0] is field 3 (state)
	if len(fields) < 20 {
		return "", 0, "", fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ppid, err = strconv.Atoi(fields[1])
	if err != nil {
		return "", 0, "", fmt.Errorf("/proc/%d/stat: ppid: %w", pid, err)
	}
	return fields[0], ppid, fields[19], nil
}

// processesOf lists the running processes whose executable is exe (an absolute path).
func processesOf(t *testing.T, exe string) []procRef {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("reading /proc: %v", err)
	}
	var out []procRef
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err != nil || target != exe {
			continue // gone meanwhile, not ours to read, or another program
		}
		state, ppid, start, err := procStat(pid)
		if err != nil || state == "Z" || state == "X" {
			continue
		}
		out = append(out, procRef{pid: pid, ppid: ppid, startTime: start})
	}
	return out
}

// alive reports whether the process still runs: an exited process that nobody has reaped yet (a
// zombie) holds no memory and counts as gone.
func (p procRef) alive() bool {
	state, _, start, err := procStat(p.pid)
	return err == nil && start == p.startTime && state != "Z" && state != "X"
}

// killIfAlive ends the process if it still runs: a test that found a plugin process outliving its
// Vault must not leave it behind.
func (p procRef) killIfAlive(t *testing.T) {
	if p.alive() {
		t.Logf("killing the leftover process %d", p.pid)
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
}

// executable is the path of a process's program.
func executable(pid int) string {
	target, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return target
}
