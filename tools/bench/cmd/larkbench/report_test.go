package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestReplaceSection(t *testing.T) {
	b, e := beginMarker("s"), endMarker("s")
	tests := []struct {
		name, doc, want string
		wantErr         bool
	}{
		{name: "appended when absent", doc: "# Title\n\nold text\n", want: "# Title\n\nold text\n\n" + b + "\nnew\n" + e + "\n"},
		{name: "replaced in place, text around kept", doc: "before\n" + b + "\nold\nlines\n" + e + "\nafter\n", want: "before\n" + b + "\nnew\n" + e + "\nafter\n"},
		{name: "other sections untouched", doc: beginMarker("t") + "\nx\n" + endMarker("t") + "\n" + b + "\nold\n" + e + "\n",
			want: beginMarker("t") + "\nx\n" + endMarker("t") + "\n" + b + "\nnew\n" + e + "\n"},
		{name: "begin without end", doc: b + "\nold\n", wantErr: true},
		{name: "end without begin", doc: "old\n" + e + "\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := replaceSection(tt.doc, "s", "new\n")
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestParseMicroTakesMediansPerBenchmark(t *testing.T) {
	out := `goos: linux
BenchmarkAccessTokenRead/memory-2         	  200000	      7000 ns/op	    2696 B/op	      31 allocs/op
BenchmarkAccessTokenRead/memory-2         	  200000	      5000 ns/op	    2690 B/op	      31 allocs/op
BenchmarkAccessTokenRead/memory-2         	  200000	      6000 ns/op	    2700 B/op	      31 allocs/op
BenchmarkParallelCachedReads-2            	  300000	      5624 ns/op
PASS
`
	got := parseMicro(out)
	if len(got) != 2 {
		t.Fatalf("got %d benchmarks, want 2: %+v", len(got), got)
	}
	if got[0].Name != "BenchmarkAccessTokenRead/memory" || got[0].NsOp != 6000 || got[0].BOp != 2696 || got[0].AllocsOp != 31 {
		t.Errorf("first = %+v, want medians 6000 ns/op, 2696 B/op, 31 allocs/op", got[0])
	}
	if got[1].Name != "BenchmarkParallelCachedReads" || got[1].NsOp != 5624 {
		t.Errorf("second = %+v", got[1])
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}} {
		if got := percentile(d, tt.p); got != tt.want {
			t.Errorf("p%g = %s, want %s", tt.p, got, tt.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %s", got)
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567", 12.6: "13"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%g) = %q, want %q", in, got, want)
		}
	}
}

func TestRenderReadsFlagsReadsBelowTheFloorGoal(t *testing.T) {
	targets := []targetResult{
		{target: target{Key: "kv", Label: "KV-v2 read"}, RPS: 2000},
		{target: target{Key: "floor-none", Label: "floor plugin, lease-free"}, RPS: 1000, RoundRPS: []float64{1000, 2000, 500}},
		{target: target{Key: "app-none", Label: "`app-token`, lease-free", Floor: "floor-none"}, RPS: 950, RoundRPS: []float64{950, 1900, 475}},
		// Per round: 0.5, 0.45, 1.2 -> median 0.5, though the totals say 0.6.
		{target: target{Key: "user-none", Label: "`user-token`, lease-free", Floor: "floor-none"}, RPS: 600, RoundRPS: []float64{500, 900, 600},
			VaultCPUus: 812.4, PluginCPUus: 61.6},
	}
	md := renderReads(readsResult{Modes: []modeResult{{Mode: modeRaft, StorageFS: "ext4", Targets: targets}}}, nil, reportConfig{command: "make bench"})
	if !strings.Contains(md, "Below 0.9 × the floor: `user-token`, lease-free 0.60 (median of rounds 0.50).") {
		t.Errorf("the shortfall of user-token is not named:\n%s", md)
	}
	if strings.Contains(md, "`app-token`, lease-free 0.95") {
		t.Errorf("app-token at 0.95 is named as short:\n%s", md)
	}
	if !strings.Contains(md, "| `user-token`, lease-free | 600 | 0.00 | 0.00 | 0.60 | 0.50 | 0.30 | 0 | 812 / 62 µs | 500 · 900 · 600 |") {
		t.Errorf("ratios to floor and KV missing:\n%s", md)
	}
}

func TestSweepReportReadsTheDueIndexWhenPresent(t *testing.T) {
	var old, indexed sweepReport
	if err := json.Unmarshal([]byte(`{"grants_total":10,"grants_visited":10,"grants_quiet":4,"full_pass":true}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.indexed() || old.read() != 6 || deref(old.GrantsTotal) != 10 {
		t.Errorf("a sweep without the index: indexed %v, read %d, total %d", old.indexed(), old.read(), deref(old.GrantsTotal))
	}
	// As the plugin with the index answers: grants_visited is the due grants and the walk's together.
	if err := json.Unmarshal([]byte(`{"grants_visited":57,"grants_due":7,"index_buckets":3,"repair_visited":50,"rebuilding":false,"budget_exhausted":true}`), &indexed); err != nil {
		t.Fatal(err)
	}
	if !indexed.indexed() || indexed.read() != 57 || indexed.GrantsTotal != nil || !indexed.BudgetExhausted {
		t.Errorf("a sweep with the index: indexed %v, read %d (want 57), total %v", indexed.indexed(), indexed.read(), indexed.GrantsTotal)
	}
}

func TestFiguresAverageThePasses(t *testing.T) {
	f := figures([]passCost{
		{runs: 1, visited: 10, quiet: 0, read: 10, wall: time.Second, pluginCPU: 2 * time.Second},
		{runs: 3, visited: 10, quiet: 10, read: 30, due: 4, buckets: 2, repair: 6, indexed: true, wall: 3 * time.Second, pluginCPU: 4 * time.Second},
	})
	if f.Runs != 2 || f.WallSeconds != 2 || f.PluginCPU != 3 || f.GrantsRead != 20 || f.GrantsDue != 2 || f.IndexBuckets != 1 || f.RepairVisited != 3 || !f.Indexed ||
		f.GrantsVisited != 10 || f.GrantsQuiet != 5 {
		t.Errorf("figures = %+v", f)
	}
	if z := figures(nil); z != (passFigures{}) {
		t.Errorf("figures of no pass = %+v", z)
	}
}

func TestRenderSweepShowsFirstAndSteadyPassAndPerGrantCosts(t *testing.T) {
	s := sweepResult{Workers: 32, Passes: 3, KeepaliveRate: 10, StorageFS: "ext4",
		Baseline: memStat{PluginRSSKiB: 20 * 1024, RaftBytes: 1 << 20, FSMBytes: 1 << 19},
		Checkpoints: []sweepCheckpoint{{
			Grants: 100000, Swept: 100000, ImportRate: 900,
			ImportCPU: importCPU{Plugin: 600, Vault: 700, Emulator: 100, Bench: 50},
			FirstPass: passFigures{Runs: 1, WallSeconds: 0.5, PluginCPU: 0.25, VaultCPU: 0.3, GrantsRead: 120, Indexed: true, GrantsDue: 100, IndexBuckets: 3, RepairVisited: 20},
			Steady:    passFigures{Runs: 1, WallSeconds: 0.1, PluginCPU: 0.05, VaultCPU: 0.04, GrantsRead: 20, Indexed: true, RepairVisited: 20},
			memStat:   memStat{PluginRSSKiB: 30 * 1024, RaftBytes: 1<<20 + 100000*1500, FSMBytes: 1<<19 + 100000*1000},
			Pacing:    pacing{Due: 100, Refreshed: 100, MaxRefreshPerSecond: 11},
		}}}
	md := renderSweep(s, reportConfig{command: "make bench-sweep"})
	for _, want := range []string{
		"| 100,000 | 900/s | 0.5 s | 0.25 s | 0.30 s | 120 (100 due, 3 buckets, repair 20) | 0.10 s | 0.05 s | 0.04 s | 20 (0 due, 0 buckets, repair 20) |",
		"| 100,000 | 30 MiB | 105 B | 0 MiB | 144 MiB | 1500 B | 96 MiB | 1000 B | 600 / 700 / 100 / 50 µs | 100 / 100, 11 (limit 10) |",
		"The sweep reads a due index",
		"never saw more than `keepalive_rate` + 1",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("missing %q in\n%s", want, md)
		}
	}
	if strings.Contains(md, "once-a-minute sweep ran during") {
		t.Errorf("an overlap is reported where none was:\n%s", md)
	}
	s.Checkpoints[0].FirstPass.Overlapped = true
	if md := renderSweep(s, reportConfig{}); !strings.Contains(md, "Vault's own once-a-minute sweep ran during the first pass at 100,000") {
		t.Errorf("the overlap with Vault's own sweep is not named:\n%s", md)
	}
	s.Checkpoints[0].FirstPass.Rebuilding = true
	if md := renderSweep(s, reportConfig{}); !strings.Contains(md, "At 100,000 grants the plugin was still building its index") {
		t.Errorf("a pass while the index was built is not named:\n%s", md)
	}
	s.Checkpoints[0].Pacing.MaxRefreshPerSecond = 12
	if md := renderSweep(s, reportConfig{}); !strings.Contains(md, "Lark saw 12 refreshes in one second, over keepalive_rate 10") {
		t.Errorf("pacing over the limit is not named:\n%s", md)
	}
}

func TestReadNoteWithoutAnIndexCountsWhatCameFromMemory(t *testing.T) {
	if got := readNote(passFigures{GrantsRead: 6000, GrantsVisited: 10000, GrantsQuiet: 4000}); got != "6,000 (+ 4,000 from memory)" {
		t.Errorf("readNote = %q", got)
	}
}
