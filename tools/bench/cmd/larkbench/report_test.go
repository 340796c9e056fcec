package main

import (
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
		{target: target{Key: "user-none", Label: "`user-token`, lease-free", Floor: "floor-none"}, RPS: 600, RoundRPS: []float64{500, 900, 600}},
	}
	md := renderReads(readsResult{Modes: []modeResult{{Mode: modeRaft, StorageFS: "ext4", Targets: targets}}}, nil, reportConfig{command: "make bench"})
	if !strings.Contains(md, "Below 0.9 × the floor: `user-token`, lease-free 0.60 (median of rounds 0.50).") {
		t.Errorf("the shortfall of user-token is not named:\n%s", md)
	}
	if strings.Contains(md, "`app-token`, lease-free 0.95") {
		t.Errorf("app-token at 0.95 is named as short:\n%s", md)
	}
	if !strings.Contains(md, "| `user-token`, lease-free | 600 | 0.00 | 0.00 | 0.60 | 0.50 | 0.30 |") {
		t.Errorf("ratios to floor and KV missing:\n%s", md)
	}
}
