package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Marked sections of BENCHMARKS.md that `larkbench report` rewrites; everything outside them is
// kept as written.
const (
	readsSection = "make bench"
	sweepSection = "make bench-sweep"
)

func beginMarker(section string) string {
	return "<!-- " + section + ": begin (written by scripts/bench.sh; edits inside are lost on the next run) -->"
}
func endMarker(section string) string { return "<!-- " + section + ": end -->" }

// replaceSection puts body between the section's markers in doc, or appends a marked section when
// doc has none.
func replaceSection(doc, section, body string) (string, error) {
	begin, end := beginMarker(section), endMarker(section)
	block := begin + "\n" + strings.TrimRight(body, "\n") + "\n" + end
	i := strings.Index(doc, begin)
	if i < 0 {
		if strings.Contains(doc, end) {
			return "", fmt.Errorf("%q has an end marker without a begin marker", section)
		}
		return strings.TrimRight(doc, "\n") + "\n\n" + block + "\n", nil
	}
	j := strings.Index(doc[i:], end)
	if j < 0 {
		return "", fmt.Errorf("%q has a begin marker without an end marker", section)
	}
	return doc[:i] + block + doc[i+j+len(end):], nil
}

type reportConfig struct {
	reads, sweep, micro, benchmarks string
	command, commit                 string
	took                            float64
}

func runReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	var cfg reportConfig
	fs.StringVar(&cfg.reads, "reads", "", "results of `larkbench reads` (JSON)")
	fs.StringVar(&cfg.sweep, "sweep", "", "results of `larkbench sweep` (JSON)")
	fs.StringVar(&cfg.micro, "micro", "", "output of the in-process `go test -bench` run")
	fs.StringVar(&cfg.benchmarks, "benchmarks", "BENCHMARKS.md", "the file whose marked section is rewritten")
	fs.StringVar(&cfg.command, "command", "", "the command that made the figures")
	fs.StringVar(&cfg.commit, "commit", "", "the plugin's commit")
	fs.Float64Var(&cfg.took, "took-seconds", 0, "how long the whole command took (default: the measurement alone)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (cfg.reads == "") == (cfg.sweep == "") {
		return errors.New("give exactly one of -reads and -sweep")
	}
	doc, err := os.ReadFile(cfg.benchmarks)
	if err != nil {
		return err
	}
	var section, body string
	if cfg.reads != "" {
		var r readsResult
		if err := readJSON(cfg.reads, &r); err != nil {
			return err
		}
		var micro []microBench
		if cfg.micro != "" {
			if micro, err = parseMicroFile(cfg.micro); err != nil {
				return err
			}
		}
		section, body = readsSection, renderReads(r, micro, cfg)
	} else {
		var s sweepResult
		if err := readJSON(cfg.sweep, &s); err != nil {
			return err
		}
		section, body = sweepSection, renderSweep(s, cfg)
	}
	out, err := replaceSection(string(doc), section, body)
	if err != nil {
		return err
	}
	fmt.Print(body)
	return os.WriteFile(cfg.benchmarks, []byte(out), 0o644)
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// machine describes where the figures were made.
func machine(cfg reportConfig, vaultVersion string, started time.Time, took float64) string {
	if cfg.took > 0 {
		took = cfg.took
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Command: `%s` · %s, took %s\n\n", cfg.command, started.UTC().Format("2006-01-02 15:04 MST"), (time.Duration(took) * time.Second).String())
	fmt.Fprintf(&b, "Machine: %d CPUs (`nproc`), %s, %s RAM, Linux %s · %s · plugin commit `%s` · %s\n",
		runtime.NumCPU(), cpuModel(), memTotal(), kernel(), vaultVersion, cfg.commit, runtime.Version())
	return b.String()
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if kib, err := strconv.ParseFloat(f[0], 64); err == nil {
					return fmt.Sprintf("%.0f GiB", kib/(1<<20))
				}
			}
		}
	}
	return "?"
}

func kernel() string {
	data, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(data))
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func thousands(n float64) string {
	s := strconv.FormatInt(int64(n+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func modeTitle(m modeResult) string {
	if m.Mode == modeRaft {
		return fmt.Sprintf("Single-node Raft, storage on disk (%s)", m.StorageFS)
	}
	return "Dev mode, in-memory storage"
}

// floorGoal is the bar: every cached read at least this share of the floor plugin's
// req/s in the same lease mode, on Raft.
const floorGoal = 0.9

func renderReads(r readsResult, micro []microBench, cfg reportConfig) string {
	var b strings.Builder
	version := ""
	if len(r.Modes) > 0 {
		version = r.Modes[0].VaultVersion
	}
	fmt.Fprintf(&b, "## Reads through a real Vault (`make bench`)\n\n")
	b.WriteString(machine(cfg, version, r.Started, r.Took))
	fmt.Fprintf(&b, "\nEach read was sent by %d connections in a closed loop over loopback HTTP (`larkbench`, the Go load\n"+
		"generator in `tools/bench`), %d alternating rounds of %gs per read, with a service token whose policy\n"+
		"allows the reads, and no audit device. req/s is over all rounds; p50/p99 over every request; the\n"+
		"median of rounds compares each round's req/s with the floor's in the same round. The\n"+
		"floor is `tools/bench`'s plugin whose read returns a constant: what any external plugin pays. Its\n"+
		"\"leased, user-token-shaped answer\" read returns a constant with the fields and sizes of a user-token\n"+
		"read: Vault keeps a leased answer's data in the lease entry it writes, so that row shows what the\n"+
		"answer's size costs a lease, apart from the plugin's work.\n"+
		"Ratios compare reads measured side by side in the same run, the only figures that hold on a shared\n"+
		"machine. CPU per read is the utime+stime (`/proc/<pid>/stat`) of Vault and of the plugin process\n"+
		"serving the read over the rounds, divided by the reads: less sensitive to other load than req/s.\n", r.Concurrency, r.Rounds, r.RoundSeconds)
	for _, m := range r.Modes {
		byKey := map[string]targetResult{}
		for _, t := range m.Targets {
			byKey[t.Key] = t
		}
		fmt.Fprintf(&b, "\n### %s\n\n", modeTitle(m))
		b.WriteString("| read | req/s | p50 ms | p99 ms | vs floor, same lease mode | vs floor, median of rounds | vs KV-v2 | leases per 1,000 reads | CPU per read: Vault / plugin | req/s by round |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
		var short []string
		for _, t := range m.Targets {
			vsFloor, vsFloorMedian := "–", "–"
			if f, ok := byKey[t.Floor]; ok {
				vsFloor = ratio(t.RPS, f.RPS)
				vsFloorMedian = fmt.Sprintf("%.2f", medianRoundRatio(t.RoundRPS, f.RoundRPS))
				if t.RPS < floorGoal*f.RPS {
					short = append(short, fmt.Sprintf("%s %s (median of rounds %s)", t.Label, vsFloor, vsFloorMedian))
				}
			}
			rounds := make([]string, len(t.RoundRPS))
			for i, x := range t.RoundRPS {
				rounds[i] = thousands(x)
			}
			fmt.Fprintf(&b, "| %s | %s | %.2f | %.2f | %s | %s | %s | %s | %s | %s |\n", t.Label, thousands(t.RPS), t.P50Ms, t.P99Ms,
				vsFloor, vsFloorMedian, ratio(t.RPS, byKey["kv"].RPS), thousands(t.LeasesPer1000), cpuPerRead(t), strings.Join(rounds, " · "))
		}
		if len(short) > 0 {
			fmt.Fprintf(&b, "\nBelow %.1f × the floor: %s.\n", floorGoal, strings.Join(short, "; "))
		} else {
			fmt.Fprintf(&b, "\nEvery Lark read is at least %.1f × the floor in its lease mode.\n", floorGoal)
		}
		if m.TokenLife != nil {
			renderTokenLife(&b, m.TokenLife)
		}
		if len(m.Profiles) > 0 {
			renderProfiles(&b, m.Profiles)
		}
	}
	if len(micro) > 0 {
		b.WriteString("\n### In-process microbenchmarks\n\n")
		b.WriteString("`go test -run '^$' -bench . -benchmem -count 5` (backend on `logical.InmemStorage`, no Vault, no gRPC);\n" +
			"medians of 5. Their CPU profile is `bench-out/micro-cpu.pprof`.\n\n")
		b.WriteString("| benchmark | ns/op | B/op | allocs/op |\n|---|---:|---:|---:|\n")
		for _, m := range micro {
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", m.Name, thousands(m.NsOp), thousands(m.BOp), thousands(m.AllocsOp))
		}
	}
	return b.String()
}

// medianRoundRatio is the median over rounds of a/b in the same round: a burst of load from
// elsewhere on the machine moves one round's ratio, not the median.
func medianRoundRatio(a, b []float64) float64 {
	var r []float64
	for i := 0; i < len(a) && i < len(b); i++ {
		if b[i] > 0 {
			r = append(r, a[i]/b[i])
		}
	}
	return median(r)
}

func renderTokenLife(b *strings.Builder, tl *tokenLifeResult) {
	fmt.Fprintf(b, "\n#### Lark calls per token life (Raft, %s of sustained reads)\n\n", time.Duration(tl.Seconds)*time.Second)
	fmt.Fprintf(b, "A second emulator issues %gs tokens (app and tenant tokens re-issued only in their last %gs) and the\n"+
		"mount refreshes %gs before a token ends with a %gs lease margin (the proportions of the defaults:\n"+
		"2-hour tokens, re-issued in their last 30 minutes, refreshed 25 minutes before the end); %d readers per\n"+
		"read ran throughout, beside Vault's own once-a-minute sweep. Counting began with a token in hand;\n"+
		"Lark calls are the emulator's per-app counters from then on, new tokens the distinct access tokens\n"+
		"the readers were served after the first. The goal is 1 call per new token.\n\n",
		tl.TokenTTL, tl.ReuseWindow, tl.RefreshWindow, tl.LeaseMargin, tl.Readers)
	b.WriteString("| read | reads | failed | new tokens served | Lark calls | calls per new token | shortest `expires_in` served |\n")
	b.WriteString("|---|---:|---:|---:|---|---:|---:|\n")
	for _, t := range tl.Targets {
		fmt.Fprintf(b, "| %s | %s | %d | %d | %d `%s` | %s | %ds |\n", t.Label, thousands(float64(t.Reads)), t.Errors, t.Tokens,
			t.LarkCalls, t.Counter, ratio(float64(t.LarkCalls), float64(t.Tokens)), t.MinExpiresIn)
	}
	if len(tl.OtherCalls) == 0 {
		b.WriteString("\nNo other Lark calls (no `user_info`, no refresh of a used refresh token).\n")
	} else {
		keys := make([]string, 0, len(tl.OtherCalls))
		for k := range tl.OtherCalls {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("`%s` %d", k, tl.OtherCalls[k]))
		}
		fmt.Fprintf(b, "\nOther Lark calls of these apps: %s.\n", strings.Join(parts, ", "))
	}
}

func renderProfiles(b *strings.Builder, ps []profileResult) {
	b.WriteString("\n#### CPU profiles (Raft)\n\n")
	b.WriteString("Taken during 16-connection reads of a second mount served by the same source built with\n" +
		"`-tags benchpprof` (`cmd/vault-plugin-secrets-lark/pprof_bench.go`), Vault's from `sys/pprof`, in\n" +
		"`bench-out/`; open one with `go tool pprof -http=: bench-out/<file>`.\n")
	for _, p := range ps {
		fmt.Fprintf(b, "\n<details><summary>%s: plugin process, top functions (<code>%s</code>, Vault: <code>%s</code>)</summary>\n\n```\n%s\n```\n</details>\n",
			p.Label, baseName(p.PluginFile), baseName(p.VaultFile), p.PluginTop)
	}
}

// cpuPerRead is a read's CPU per request in Vault and in the plugin process serving it (KV has
// none of its own); "–" for results written before it was measured.
func cpuPerRead(t targetResult) string {
	if t.VaultCPUus == 0 {
		return "–"
	}
	if t.PluginCPUus == 0 && t.Key == "kv" {
		return fmt.Sprintf("%.0f µs / –", t.VaultCPUus)
	}
	return fmt.Sprintf("%.0f / %.0f µs", t.VaultCPUus, t.PluginCPUus)
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

func renderSweep(s sweepResult, cfg reportConfig) string {
	var b strings.Builder
	b.WriteString("## The sweep at scale (`make bench-sweep`)\n\n")
	b.WriteString(machine(cfg, s.VaultVersion, s.Started, s.Took))
	indexed := false
	for _, c := range s.Checkpoints {
		indexed = indexed || c.FirstPass.Indexed || c.Steady.Indexed
	}
	fmt.Fprintf(&b, "\nOne mount on single-node Raft on disk (%s). Grants are minted at the emulator (in batches,\n"+
		"through its control API) and imported through Vault's API by %d concurrent workers, as an operator\n"+
		"moving grants would: each import spends the refresh token at Lark, asks whose grant it is and stores\n"+
		"the grant. At each size the sweep (`vault write -f lark/sweep`, `sweep_budget` 60s) makes %d passes:\n"+
		"the first right after a reload of the plugin (a new process with nothing in memory, as after a restart\n"+
		"or a leader change), the later ones (averaged) the steady state.\n", s.StorageFS, s.Workers, s.Passes)
	if indexed {
		b.WriteString("The sweep reads a due index: a pass is one sweep request that finished what was due within its\n" +
			"budget (more if it ran out), and \"grants read\" are the grants it read from storage: those due plus\n" +
			"those its repair walk read.\n")
	} else {
		b.WriteString("A pass is as many sweep requests as it takes to visit every grant once; \"grants read\" are the\n" +
			"grants read from storage, beside those passed by from memory.\n")
	}
	fmt.Fprintf(&b, "CPU is the process's utime+stime from `/proc/<pid>/stat` across the sweep requests, memory its\n"+
		"resident set after them; per grant is the growth since the mount was empty, divided by the grants.\n"+
		"Raft on disk is the disk blocks of the whole `raft/` directory (log, `vault.db`, snapshots). Then %d\n"+
		"grants whose refresh tokens all fall due together are kept alive, with `keepalive_rate` %d, and the\n"+
		"emulator counts the refreshes in any one second (the limiter allows a burst of one on top of the rate).\n\n",
		dueOf(s), s.KeepaliveRate)

	b.WriteString("| grants | import | first pass after a reload: wall | plugin CPU | Vault CPU | grants read | steady pass: wall | plugin CPU | Vault CPU | grants read |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range s.Checkpoints {
		fmt.Fprintf(&b, "| %s | %s/s | %.1f s | %.2f s | %.2f s | %s | %.2f s | %.2f s | %.2f s | %s |\n",
			thousands(float64(sweptOf(c))), thousands(c.ImportRate),
			c.FirstPass.WallSeconds, c.FirstPass.PluginCPU, c.FirstPass.VaultCPU, readNote(c.FirstPass),
			c.Steady.WallSeconds, c.Steady.PluginCPU, c.Steady.VaultCPU, readNote(c.Steady))
	}
	b.WriteString("\n| grants | plugin RSS | per grant | Vault RSS | Raft on disk | per grant | of it `vault.db` | per grant | import CPU per grant: plugin / Vault / emulator / larkbench | keep-alive: refreshed / due, most in 1 s |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	fmt.Fprintf(&b, "| 0 | %s | | %s | %s | | %s | | | |\n", mib(s.Baseline.PluginRSSKiB*1024), mib(s.Baseline.VaultRSSKiB*1024), mib(s.Baseline.RaftBytes), mib(s.Baseline.FSMBytes))
	for _, c := range s.Checkpoints {
		n := float64(sweptOf(c))
		fmt.Fprintf(&b, "| %s | %s | %.0f B | %s | %s | %.0f B | %s | %.0f B | %.0f / %.0f / %.0f / %.0f µs | %d / %d, %d (limit %d) |\n",
			thousands(n), mib(c.PluginRSSKiB*1024), float64(c.PluginRSSKiB-s.Baseline.PluginRSSKiB)*1024/n,
			mib(c.VaultRSSKiB*1024), mib(c.RaftBytes), float64(c.RaftBytes-s.Baseline.RaftBytes)/n,
			mib(c.FSMBytes), float64(c.FSMBytes-s.Baseline.FSMBytes)/n,
			c.ImportCPU.Plugin, c.ImportCPU.Vault, c.ImportCPU.Emulator, c.ImportCPU.Bench,
			c.Pacing.Refreshed, c.Pacing.Due, c.Pacing.MaxRefreshPerSecond, s.KeepaliveRate)
	}
	var status []string
	for _, c := range s.Checkpoints {
		if c.Status != nil {
			status = append(status, fmt.Sprintf("%s grants %.2f s wall, %.2f s plugin CPU, %.2f s Vault CPU",
				thousands(float64(sweptOf(c))), c.Status.WallSeconds, c.Status.PluginCPU, c.Status.VaultCPU))
		}
	}
	if len(status) > 0 {
		fmt.Fprintf(&b, "\n`vault read lark/status` (the median of three reads, after the memory figures above): at %s.\n", strings.Join(status, "; at "))
	}
	if n := len(s.Checkpoints); n >= 2 {
		first, last := s.Checkpoints[0], s.Checkpoints[n-1]
		fmt.Fprintf(&b, "\nFrom %s to %s grants (× %.0f): first pass plugin CPU × %s, Vault CPU × %s, wall × %s; steady pass plugin CPU × %s, wall × %s; plugin RSS × %s, Raft on disk × %s.\n",
			thousands(float64(sweptOf(first))), thousands(float64(sweptOf(last))), float64(sweptOf(last))/float64(sweptOf(first)),
			ratio(last.FirstPass.PluginCPU, first.FirstPass.PluginCPU), ratio(last.FirstPass.VaultCPU, first.FirstPass.VaultCPU),
			ratio(last.FirstPass.WallSeconds, first.FirstPass.WallSeconds), ratio(last.Steady.PluginCPU, first.Steady.PluginCPU),
			ratio(last.Steady.WallSeconds, first.Steady.WallSeconds),
			ratio(float64(last.PluginRSSKiB), float64(first.PluginRSSKiB)), ratio(float64(last.RaftBytes), float64(first.RaftBytes)))
	}
	var overlapped []string
	for _, c := range s.Checkpoints {
		if c.FirstPass.Overlapped {
			overlapped = append(overlapped, "the first pass at "+thousands(float64(sweptOf(c))))
		}
		if c.Steady.Overlapped {
			overlapped = append(overlapped, "a steady pass at "+thousands(float64(sweptOf(c))))
		}
	}
	var rebuilding []string
	for _, c := range s.Checkpoints {
		if c.FirstPass.Rebuilding || c.Steady.Rebuilding {
			rebuilding = append(rebuilding, thousands(float64(sweptOf(c))))
		}
	}
	if len(rebuilding) > 0 {
		fmt.Fprintf(&b, "\nAt %s grants the plugin was still building its index (the repair walk at full speed), so those passes read more than a settled index does.\n", strings.Join(rebuilding, ", "))
	}
	if len(overlapped) > 0 {
		fmt.Fprintf(&b, "\nVault's own once-a-minute sweep ran during %s, so part of that work may not be counted there.\n", strings.Join(overlapped, ", "))
	}
	var problems []string
	for _, c := range s.Checkpoints {
		p := c.Pacing
		if p.Refreshed != p.Due || p.Failed > 0 || p.RefreshReuse > 0 {
			problems = append(problems, fmt.Sprintf("at %s grants %d of %d due grants were refreshed (%d failed, %d reused)",
				thousands(float64(c.Grants)), p.Refreshed, p.Due, p.Failed, p.RefreshReuse))
		}
		if p.MaxRefreshPerSecond > s.KeepaliveRate+1 {
			problems = append(problems, fmt.Sprintf("at %s grants Lark saw %d refreshes in one second, over keepalive_rate %d",
				thousands(float64(c.Grants)), p.MaxRefreshPerSecond, s.KeepaliveRate))
		}
	}
	if len(problems) == 0 {
		b.WriteString("\nKeep-alive: every due grant was refreshed once, none failed, no refresh token was used twice, and Lark never saw more than `keepalive_rate` + 1 refreshes of the app in one second.\n")
	} else {
		fmt.Fprintf(&b, "\nKeep-alive problems: %s.\n", strings.Join(problems, "; "))
	}
	return b.String()
}

// sweptOf is every grant in Vault at a checkpoint; results written before Swept existed had each
// earlier checkpoint add its due grants.
func sweptOf(c sweepCheckpoint) int {
	if c.Swept == 0 {
		return c.Grants
	}
	return c.Swept
}

// readNote is a pass's grants read, with what the due index says when there is one.
func readNote(f passFigures) string {
	if !f.Indexed {
		// Without an index the sweep visits every grant and passes some by from memory.
		return fmt.Sprintf("%s (+ %s from memory)", thousands(f.GrantsRead), thousands(f.GrantsQuiet))
	}
	return fmt.Sprintf("%s (%s due, %s buckets, repair %s)", thousands(f.GrantsRead), thousands(f.GrantsDue),
		thousands(f.IndexBuckets), thousands(f.RepairVisited))
}

func dueOf(s sweepResult) int {
	if len(s.Checkpoints) == 0 {
		return 0
	}
	return s.Checkpoints[0].Pacing.Due
}

func mib(bytes int64) string { return fmt.Sprintf("%.0f MiB", float64(bytes)/(1<<20)) }

// microBench is the median of one in-process benchmark's runs.
type microBench struct {
	Name                 string
	NsOp, BOp, AllocsOp  float64
	runsNs, runsB, runsA []float64
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:\s+([\d.]+) B/op)?(?:\s+([\d.]+) allocs/op)?`)

// parseMicro reads `go test -bench` output and returns each benchmark's medians, in the order the
// benchmarks first appear.
func parseMicro(text string) []microBench {
	var order []string
	byName := map[string]*microBench{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		mb := byName[m[1]]
		if mb == nil {
			mb = &microBench{Name: m[1]}
			byName[m[1]] = mb
			order = append(order, m[1])
		}
		ns, _ := strconv.ParseFloat(m[2], 64)
		bop, _ := strconv.ParseFloat(m[3], 64)
		allocs, _ := strconv.ParseFloat(m[4], 64)
		mb.runsNs, mb.runsB, mb.runsA = append(mb.runsNs, ns), append(mb.runsB, bop), append(mb.runsA, allocs)
	}
	out := make([]microBench, 0, len(order))
	for _, name := range order {
		mb := byName[name]
		out = append(out, microBench{Name: name, NsOp: median(mb.runsNs), BOp: median(mb.runsB), AllocsOp: median(mb.runsA)})
	}
	return out
}

func parseMicroFile(path string) ([]microBench, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseMicro(string(data)), nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
