package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseStatCountsFieldsAfterTheCommandName(t *testing.T) {
	// The command name may hold spaces and parentheses; utime=250, stime=50 ticks.
	stat := "4242 (vault-plugin (x) y) S 17 4242 17 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 12 0 100 1000000 500 18446744073709551615"
	ppid, cpu, err := parseStat(stat)
	if err != nil {
		t.Fatal(err)
	}
	if ppid != 17 || cpu != 3*time.Second {
		t.Errorf("ppid=%d cpu=%s, want 17 and 3s", ppid, cpu)
	}
	if _, _, err := parseStat("4242 (x) S 1"); err == nil {
		t.Error("a short stat line was accepted")
	}
}

func TestParseRSS(t *testing.T) {
	rss, err := parseRSS("Name:\tvault\nVmPeak:\t 9999 kB\nVmRSS:\t   123456 kB\nThreads: 9\n")
	if err != nil || rss != 123456 {
		t.Errorf("rss=%d err=%v, want 123456", rss, err)
	}
	if _, err := parseRSS("Name:\tkthread\n"); err == nil {
		t.Error("status without VmRSS was accepted")
	}
}

func TestDirSizeCountsWrittenBlocksNotTheApparentSize(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	// 64 MiB apparent, as bbolt's ftruncate leaves a file, with 1 MiB written.
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 1<<20), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got := dirSize(dir)
	if got < 1<<20 || got > 4<<20 {
		t.Errorf("dirSize = %d bytes, want about the 1 MiB written (the file's apparent size is 64 MiB)", got)
	}
	if one := dirSize(filepath.Join(dir, "sparse")); one != got {
		t.Errorf("dirSize of the file itself = %d, of its directory %d", one, got)
	}
}
