package main

import (
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
