package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	mintBatch = 500              // grants minted at the emulator per control request
	appScale  = "cli_benchscale" // the many grants
	appDue    = "cli_benchdue"   // grants made due for keep-alive at each checkpoint
	// While grants are imported, Vault's once-a-minute sweep gets a short budget so it takes little
	// CPU from the imports; the measured sweeps get the longest budget the plugin allows, so that one
	// run covers every grant when it can.
	importBudget  = 1 * time.Second
	measureBudget = 60 * time.Second
)

type sweepConfig struct {
	bins          binaries
	checkpoints   []int
	workers       int
	keepaliveRate int
	due           int
	passes        int
	// rebuild: after the passes, change warning_days and measure the sweeps that build the grant
	// indexes anew (every grant read once, those whose due time or level changed written).
	rebuild bool
	workDir string
	out     string
	keep    bool
	// With pprofPlugin (the plugin built with -tags benchpprof) and profileImport > 0, CPU profiles
	// of the plugin and Vault are taken during the first imports, into profileDir.
	pprofPlugin   string
	profileImport int
	profileDir    string
	pprofAddr     string
}

// sweepResult is what `larkbench sweep` writes as JSON for `larkbench report`.
type sweepResult struct {
	Started       time.Time         `json:"started"`
	Took          float64           `json:"took_seconds"`
	VaultVersion  string            `json:"vault_version"`
	StorageFS     string            `json:"storage_fs"`
	Workers       int               `json:"import_workers"`
	KeepaliveRate int               `json:"keepalive_rate"`
	Passes        int               `json:"passes_per_checkpoint"`
	Baseline      memStat           `json:"baseline"`
	Checkpoints   []sweepCheckpoint `json:"checkpoints"`
}

type memStat struct {
	PluginRSSKiB int64 `json:"plugin_rss_kib"`
	VaultRSSKiB  int64 `json:"vault_rss_kib"`
	RaftBytes    int64 `json:"raft_bytes"`     // everything in Raft's directory: log, FSM, snapshots
	FSMBytes     int64 `json:"raft_fsm_bytes"` // vault.db, the state machine the grants live in
	// The emulator's resident set: Lark's side of every grant, which the machine must hold too.
	EmulatorRSSKiB int64 `json:"emulator_rss_kib"`
}

type sweepCheckpoint struct {
	Grants int `json:"grants"`
	// Swept is every grant in Vault: Grants plus the due grants of earlier checkpoints.
	Swept         int     `json:"swept"`
	ImportSeconds float64 `json:"import_seconds"` // for the grants added since the last checkpoint
	ImportRate    float64 `json:"import_per_second"`
	// CPU per imported grant, in microseconds, of each process.
	ImportCPU importCPU `json:"import_cpu_us_per_grant"`
	// The first pass after a reload of the plugin: a new process with nothing in memory, as after
	// a restart or a leader change.
	FirstPass passFigures `json:"first_pass"`
	// The passes after it, averaged: the steady state.
	Steady passFigures `json:"steady_pass"`
	// Rebuild: the sweeps after warning_days changed, until the indexes were built again.
	Rebuild   *passFigures `json:"rebuild,omitempty"`
	PassWalls []float64    `json:"pass_wall_seconds"`
	// Status: one `vault read lark/status` (the median of three).
	Status *requestFigures `json:"status_read,omitempty"`
	memStat
	Pacing pacing `json:"keepalive"`
}

// requestFigures is what one request cost: its wall time and the CPU of the plugin and Vault.
type requestFigures struct {
	WallSeconds float64 `json:"wall_seconds"`
	PluginCPU   float64 `json:"plugin_cpu_seconds"`
	VaultCPU    float64 `json:"vault_cpu_seconds"`
}

type importCPU struct {
	Plugin   float64 `json:"plugin"`
	Vault    float64 `json:"vault"`
	Emulator float64 `json:"emulator"`
	Bench    float64 `json:"larkbench"`
}

// passFigures is one pass (or the average of several) as measured from outside: sweep requests
// until the sweep acted on everything it had to.
type passFigures struct {
	Runs        float64 `json:"runs"`
	WallSeconds float64 `json:"wall_seconds"`
	TookSeconds float64 `json:"took_seconds"` // the sweep's own report of its time
	PluginCPU   float64 `json:"plugin_cpu_seconds"`
	VaultCPU    float64 `json:"vault_cpu_seconds"`
	// GrantsRead are the grants read from storage: visited and not passed by from memory (GrantsQuiet),
	// plus those the repair walk re-read.
	GrantsRead    float64 `json:"grants_read"`
	GrantsVisited float64 `json:"grants_visited"`
	GrantsQuiet   float64 `json:"grants_quiet"`
	// With a due index (Indexed): the grants due, the index buckets listed, the repair walk's reads.
	Indexed       bool    `json:"indexed"`
	GrantsDue     float64 `json:"grants_due"`
	IndexBuckets  float64 `json:"index_buckets"`
	RepairVisited float64 `json:"repair_visited"`
	// Overlapped: Vault's own once-a-minute sweep ran during the pass, so it may have done part of
	// the pass's work (its time and CPU are not counted).
	Overlapped bool `json:"overlapped_periodic_sweep,omitempty"`
	// Rebuilding: the plugin was building its index, its repair walk reading at full speed.
	Rebuilding bool `json:"rebuilding,omitempty"`
}

// figures turns passes measured one after another into their average.
func figures(ps []passCost) passFigures {
	var f passFigures
	if len(ps) == 0 {
		return f
	}
	for _, p := range ps {
		f.Runs += float64(p.runs)
		f.WallSeconds += p.wall.Seconds()
		f.TookSeconds += p.took.Seconds()
		f.PluginCPU += p.pluginCPU.Seconds()
		f.VaultCPU += p.vaultCPU.Seconds()
		f.GrantsRead += float64(p.read)
		f.GrantsDue += float64(p.due)
		f.IndexBuckets += float64(p.buckets)
		f.RepairVisited += float64(p.repair)
		f.Indexed = f.Indexed || p.indexed
		f.Overlapped = f.Overlapped || p.overlapped
		f.Rebuilding = f.Rebuilding || p.rebuilding
		f.GrantsVisited += float64(p.visited)
		f.GrantsQuiet += float64(p.quiet)
	}
	k := float64(len(ps))
	f.Runs, f.WallSeconds, f.TookSeconds, f.PluginCPU, f.VaultCPU = f.Runs/k, f.WallSeconds/k, f.TookSeconds/k, f.PluginCPU/k, f.VaultCPU/k
	f.GrantsRead, f.GrantsDue, f.IndexBuckets, f.RepairVisited = f.GrantsRead/k, f.GrantsDue/k, f.IndexBuckets/k, f.RepairVisited/k
	f.GrantsVisited, f.GrantsQuiet = f.GrantsVisited/k, f.GrantsQuiet/k
	return f
}

// pacing is the keep-alive of a batch of grants that all fall due together, seen from Lark.
type pacing struct {
	Due                 int     `json:"due"`
	RefreshTokenTTL     float64 `json:"refresh_token_ttl_seconds"`
	Refreshed           int     `json:"refreshed"`
	RefreshReuse        int     `json:"refresh_reuse"`
	Failed              int     `json:"refresh_failed"`
	MaxRefreshPerSecond int     `json:"max_refresh_per_second"`
	// Seconds runs from the first sweep after all were due until all were refreshed (full passes
	// over every grant included).
	Seconds float64 `json:"seconds"`
}

func runSweep(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
	var cfg sweepConfig
	var checkpoints string
	fs.StringVar(&cfg.bins.vault, "vault", "", "the Vault binary")
	fs.StringVar(&cfg.bins.plugin, "plugin", "", "the plugin binary")
	fs.StringVar(&cfg.bins.pluginVersion, "plugin-version", "v0.1.0", "the version the plugin binary reports")
	fs.StringVar(&cfg.bins.emulator, "emulator", "", "the Lark emulator binary")
	fs.StringVar(&checkpoints, "sizes", "10000,100000,200000", "grant counts at which the sweep is measured, ascending")
	fs.StringVar(&checkpoints, "checkpoints", "10000,100000,200000", "the older name of -sizes")
	fs.IntVar(&cfg.workers, "workers", 32, "concurrent imports")
	fs.IntVar(&cfg.keepaliveRate, "keepalive-rate", 10, "the mount's keepalive_rate (refreshes per second per app)")
	fs.IntVar(&cfg.due, "due", 100, "grants made due for keep-alive together at each checkpoint")
	fs.IntVar(&cfg.passes, "passes", 3, "measured full passes per checkpoint (the first is reported on its own)")
	fs.StringVar(&cfg.workDir, "work", "", "directory for Vault's storage and logs (default: a new directory under $TMPDIR)")
	fs.StringVar(&cfg.out, "out", "sweep.json", "results file (JSON)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the work directory")
	fs.BoolVar(&cfg.rebuild, "rebuild", false, "after the passes, change warning_days and measure the index rebuild it causes")
	fs.StringVar(&cfg.pprofPlugin, "pprof-plugin", "", "the plugin built with -tags benchpprof: run it instead of -plugin, for -profile-import")
	fs.IntVar(&cfg.profileImport, "profile-import", 0, "seconds of CPU profiles of the plugin and Vault during the first imports (needs -pprof-plugin; 0: none)")
	fs.StringVar(&cfg.profileDir, "profile-dir", ".", "where -profile-import writes its profiles")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.profileImport > 0 && cfg.pprofPlugin == "" {
		return errors.New("-profile-import needs -pprof-plugin")
	}
	if cfg.bins.vault == "" || cfg.bins.plugin == "" || cfg.bins.emulator == "" {
		return errors.New("-vault, -plugin and -emulator are required")
	}
	last := 0
	for _, s := range strings.Split(checkpoints, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= last {
			return fmt.Errorf("-sizes must be ascending positive numbers, got %q", checkpoints)
		}
		cfg.checkpoints = append(cfg.checkpoints, n)
		last = n
	}
	if cfg.workers < 1 || cfg.keepaliveRate < 1 || cfg.due < 1 || cfg.passes < 2 {
		return errors.New("-workers, -keepalive-rate and -due must be positive, -passes at least 2")
	}
	res, err := benchSweep(ctx, cfg)
	if err != nil {
		return err
	}
	return writeJSON(cfg.out, res)
}

// sweepBench is the running world of `larkbench sweep`.
type sweepBench struct {
	cfg       sweepConfig
	v         *vaultServer
	ic        *vaultClient // for the imports: one connection per worker
	emu       *emulator
	pluginPID int
	secrets   map[string]string
	grants    int // grants in Vault, due ones included
	// overlaps counts the sweep requests that found Vault's own once-a-minute sweep running and
	// waited for it: a pass that overlapped it may have had part of its work done for it.
	overlaps int
}

func benchSweep(ctx context.Context, cfg sweepConfig) (*sweepResult, error) {
	work, cleanup, err := makeWorkDir(cfg.workDir, "sweep", cfg.keep)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	logf("sweep: starting the emulator and Vault (Raft) in %s", work)
	emu, err := startEmulator(cfg.bins.emulator, work, "emulator")
	if err != nil {
		return nil, err
	}
	defer emu.stop()
	v, err := startVault(ctx, cfg.bins, modeRaft, work, "warn")
	if err != nil {
		return nil, err
	}
	defer v.stop()
	res := &sweepResult{Started: time.Now().UTC(), VaultVersion: v.version, StorageFS: fsType(v.dataDir),
		Workers: cfg.workers, KeepaliveRate: cfg.keepaliveRate, Passes: cfg.passes}

	pluginBin, env := cfg.bins.plugin, []string(nil)
	if cfg.pprofPlugin != "" {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		cfg.pprofAddr = fmt.Sprintf("127.0.0.1:%d", port)
		pluginBin, env = cfg.pprofPlugin, []string{"LARK_PLUGIN_PPROF_ADDR=" + cfg.pprofAddr}
	}
	exe, err := v.registerPlugin(pluginBin, larkPlugin, cfg.bins.pluginVersion, env...)
	if err != nil {
		return nil, err
	}
	if err := v.mount("lark", larkPlugin, cfg.bins.pluginVersion, nil); err != nil {
		return nil, err
	}
	b := &sweepBench{cfg: cfg, v: v, emu: emu, secrets: map[string]string{}, ic: newVaultClient(v.addr, v.rootToken, cfg.workers)}
	if err := b.setBudget(importBudget); err != nil {
		return nil, err
	}
	if err := emu.call(http.MethodPost, "/_emulator/users", map[string]any{"user_id": benchUser, "name": "Bench User", "sign_in": false}, nil); err != nil {
		return nil, err
	}
	for _, app := range []string{appScale, appDue} {
		b.secrets[app] = randomSecret()
		if err := emu.addApp(app, b.secrets[app], nil); err != nil {
			return nil, err
		}
		if err := v.c.call(http.MethodPost, "lark/apps/"+app, map[string]any{
			"app_secret": b.secrets[app], "base_url": emu.url, "accounts_base_url": emu.url}, nil); err != nil {
			return nil, err
		}
	}
	if b.pluginPID, err = v.pidOf(exe); err != nil {
		return nil, err
	}
	if _, err := b.sweepOnce(); err != nil { // the first sweep sets the plugin's caches up
		return nil, err
	}
	if res.Baseline, err = b.mem(); err != nil {
		return nil, err
	}

	scale := 0
	for _, n := range cfg.checkpoints {
		cp := sweepCheckpoint{Grants: n}
		logf("sweep: importing grants %d..%d", scale, n)
		start := time.Now()
		if scale == 0 && cfg.profileImport > 0 {
			go b.profileImport()
		}
		if cp.ImportCPU, err = b.importMany(ctx, appScale, "s", scale, n); err != nil {
			return nil, err
		}
		cp.ImportSeconds = time.Since(start).Seconds()
		cp.ImportRate = float64(n-scale) / cp.ImportSeconds
		scale = n
		logf("sweep: %d grants imported in %.0fs (%.0f/s); measuring %d full passes", n, cp.ImportSeconds, cp.ImportRate, cfg.passes)

		if err := b.setBudget(measureBudget); err != nil {
			return nil, err
		}
		// The first pass starts from a plugin process with nothing in memory, as after a restart or
		// a leader change: every grant is read from storage.
		if err := b.reloadPlugin(exe); err != nil {
			return nil, err
		}
		var passes []passCost
		for p := 0; p < cfg.passes; p++ {
			pass, err := b.fullPass(ctx)
			if err != nil {
				return nil, err
			}
			cp.PassWalls = append(cp.PassWalls, pass.wall.Seconds())
			logf("sweep: %d grants, pass %d: %d run(s), %.1fs wall, plugin CPU %.2fs, Vault CPU %.2fs; %d grants read from storage, %d of %d visited passed by from memory%s%s",
				b.grants, p+1, pass.runs, pass.wall.Seconds(), pass.pluginCPU.Seconds(), pass.vaultCPU.Seconds(), pass.read, pass.quiet, pass.visited, pass.indexNote(), pass.overlapNote())
			passes = append(passes, pass)
		}
		cp.FirstPass, cp.Steady = figures(passes[:1]), figures(passes[1:])
		if cfg.rebuild && passes[0].indexed {
			warning := 8 + len(res.Checkpoints)%2 // a value other than the last
			if err := b.v.c.call(http.MethodPost, "lark/config", map[string]any{"warning_days": warning}, nil); err != nil {
				return nil, err
			}
			var total passCost
			for {
				pass, err := b.fullPass(ctx)
				if err != nil {
					return nil, err
				}
				total.runs += pass.runs
				total.wall += pass.wall
				total.took += pass.took
				total.pluginCPU += pass.pluginCPU
				total.vaultCPU += pass.vaultCPU
				total.read += pass.read
				total.repair += pass.repair
				total.due += pass.due
				total.buckets += pass.buckets
				total.indexed = true
				if !pass.rebuilding {
					break
				}
				total.rebuilding = true
			}
			f := figures([]passCost{total})
			cp.Rebuild = &f
			logf("sweep: %d grants, rebuild after warning_days=%d: %d run(s), %.1fs wall, plugin CPU %.2fs, Vault CPU %.2fs; %d grants read (%d by the walk)",
				b.grants, warning, total.runs, total.wall.Seconds(), total.pluginCPU.Seconds(), total.vaultCPU.Seconds(), total.read, total.repair)
		}
		cp.Swept = b.grants
		if cp.memStat, err = b.mem(); err != nil {
			return nil, err
		}
		// After the memory figures: a read that allocates and drops would show in the resident set.
		if cp.Status, err = b.statusRead(); err != nil {
			return nil, err
		}
		// The due grants must fit a pass as slow as the first.
		if cp.Pacing, err = b.keepalivePacing(ctx, n, time.Duration(max(cp.Steady.WallSeconds, cp.FirstPass.WallSeconds)*float64(time.Second))); err != nil {
			return nil, err
		}
		if err := b.setBudget(importBudget); err != nil {
			return nil, err
		}
		res.Checkpoints = append(res.Checkpoints, cp)
	}
	res.Took = time.Since(res.Started).Seconds()
	return res, nil
}

// statusRead reads lark/status three times and returns the median read (by wall time).
func (b *sweepBench) statusRead() (*requestFigures, error) {
	var reads []requestFigures
	for i := 0; i < 3; i++ {
		before, err := b.cpuNow()
		if err != nil {
			return nil, err
		}
		start := time.Now()
		var out struct {
			Data struct {
				GrantsTotal int `json:"grants_total"`
			} `json:"data"`
		}
		if err := b.v.c.call(http.MethodGet, "lark/status", nil, &out); err != nil {
			return nil, fmt.Errorf("reading lark/status: %w", err)
		}
		wall := time.Since(start)
		after, err := b.cpuNow()
		if err != nil {
			return nil, err
		}
		if out.Data.GrantsTotal != b.grants {
			return nil, fmt.Errorf("lark/status counts %d grants, the bench imported %d", out.Data.GrantsTotal, b.grants)
		}
		c := after.minus(before)
		reads = append(reads, requestFigures{WallSeconds: wall.Seconds(), PluginCPU: c.Plugin.Seconds(), VaultCPU: c.Vault.Seconds()})
	}
	slices.SortFunc(reads, func(x, y requestFigures) int { return cmp.Compare(x.WallSeconds, y.WallSeconds) })
	logf("sweep: %d grants: lark/status read in %.2fs wall, plugin CPU %.2fs, Vault CPU %.2fs (median of 3)",
		b.grants, reads[1].WallSeconds, reads[1].PluginCPU, reads[1].VaultCPU)
	return &reads[1], nil
}

// reloadPlugin restarts the mount's plugin process and waits for the new one.
func (b *sweepBench) reloadPlugin(exe string) error {
	old := b.pluginPID
	if err := b.v.c.call(http.MethodPut, "sys/plugins/reload/backend", map[string]any{"mounts": []string{"lark/"}}, nil); err != nil {
		return fmt.Errorf("reloading the plugin: %w", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if pid, err := b.v.pidOf(exe); err == nil && pid != old {
			b.pluginPID = pid
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("no new plugin process after the reload")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (b *sweepBench) setBudget(d time.Duration) error {
	return b.v.c.call(http.MethodPost, "lark/config", map[string]any{
		"sweep_budget": int(d.Seconds()), "keepalive_rate": b.cfg.keepaliveRate}, nil)
}

func (b *sweepBench) mem() (memStat, error) {
	p, err := readProcStat(b.pluginPID)
	if err != nil {
		return memStat{}, fmt.Errorf("the plugin process: %w", err)
	}
	v, err := readProcStat(b.v.proc.pid())
	if err != nil {
		return memStat{}, err
	}
	m := memStat{PluginRSSKiB: p.RSSKiB, VaultRSSKiB: v.RSSKiB, RaftBytes: dirSize(b.v.dataDir),
		FSMBytes: dirSize(filepath.Join(b.v.dataDir, "vault.db"))}
	if e, err := readProcStat(b.emu.proc.pid()); err == nil {
		m.EmulatorRSSKiB = e.RSSKiB
	}
	logf("sweep: memory: plugin %d MiB, Vault %d MiB, emulator %d MiB; Raft on disk %d MiB (vault.db %d MiB)",
		m.PluginRSSKiB>>10, m.VaultRSSKiB>>10, m.EmulatorRSSKiB>>10, m.RaftBytes>>20, m.FSMBytes>>20)
	return m, nil
}

// importCost is the CPU each process spent on a batch of imports.
type importCost struct {
	Plugin   time.Duration
	Vault    time.Duration
	Emulator time.Duration
	Bench    time.Duration // larkbench itself
}

// cpuNow reads the CPU time of the plugin, Vault, the emulator and larkbench.
func (b *sweepBench) cpuNow() (importCost, error) {
	var c importCost
	for _, x := range []struct {
		pid int
		to  *time.Duration
	}{{b.pluginPID, &c.Plugin}, {b.v.proc.pid(), &c.Vault}, {b.emu.proc.pid(), &c.Emulator}, {os.Getpid(), &c.Bench}} {
		st, err := readProcStat(x.pid)
		if err != nil {
			return c, err
		}
		*x.to = st.CPU
	}
	return c, nil
}

func (c importCost) minus(o importCost) importCost {
	return importCost{c.Plugin - o.Plugin, c.Vault - o.Vault, c.Emulator - o.Emulator, c.Bench - o.Bench}
}

// importMany imports grants [from, to) of app, minted at the emulator, with the configured number
// of concurrent workers.
func (b *sweepBench) importMany(ctx context.Context, app, prefix string, from, to int) (importCPU, error) {
	c0, err := b.cpuNow()
	if err != nil {
		return importCPU{}, err
	}
	t0 := time.Now()
	if err := b.importAll(ctx, app, prefix, from, to); err != nil {
		return importCPU{}, err
	}
	c1, err := b.cpuNow()
	if err != nil {
		return importCPU{}, err
	}
	d, n := c1.minus(c0), float64(to-from)
	us := func(x time.Duration) float64 { return float64(x.Microseconds()) / n }
	per := importCPU{Plugin: us(d.Plugin), Vault: us(d.Vault), Emulator: us(d.Emulator), Bench: us(d.Bench)}
	logf("sweep: %d imports in %.1fs (%.0f/s); CPU per import: plugin %.0fus, Vault %.0fus, emulator %.0fus, larkbench %.0fus",
		to-from, time.Since(t0).Seconds(), n/time.Since(t0).Seconds(), per.Plugin, per.Vault, per.Emulator, per.Bench)
	return per, nil
}

func (b *sweepBench) importAll(ctx context.Context, app, prefix string, from, to int) error {
	// One goroutine mints the grants at the emulator in batches; the workers import them. Minting
	// in batches keeps the emulator's control API and larkbench from taking CPU the imports need:
	// every grant still enters through the plugin's import path (a refresh and a user_info call
	// at Lark, a grant written to storage).
	type job struct {
		slot string
		g    mintedGrant
	}
	jobs := make(chan job, 2*mintBatch)
	var failed atomic.Int64
	var firstErr error
	var once sync.Once
	fail := func(err error) {
		failed.Add(1)
		once.Do(func() { firstErr = err })
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		for i := from; i < to && ctx.Err() == nil && failed.Load() == 0; {
			n := min(mintBatch, to-i)
			minted, err := b.emu.mintMany(app, benchUser, 1, n)
			if err != nil {
				fail(err)
				return
			}
			for _, g := range minted {
				jobs <- job{fmt.Sprintf("%s%06d", prefix, i), g}
				i++
			}
		}
	}()
	for w := 0; w < b.cfg.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if ctx.Err() != nil || failed.Load() > 0 {
					continue // drain, so the minting goroutine ends
				}
				if err := importMinted(b.ic, "lark", app, j.slot, j.g); err != nil {
					fail(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if firstErr != nil {
		return fmt.Errorf("importing grants: %w", firstErr)
	}
	b.grants += to - from
	return nil
}

// sweepReport is the part of the sweep's answer the bench reads. The fields of the due index
// (grants_due, index_buckets, repair_visited, rebuilding) are pointers: a plugin without the index
// leaves them out, and the bench then counts a full pass as every grant visited once.
type sweepReport struct {
	GrantsTotal *int `json:"grants_total"`
	// Without the index: every grant the run looked at, GrantsQuiet of them passed by from memory.
	// With it: every grant the run read, the due ones and the repair walk's together.
	GrantsVisited   int      `json:"grants_visited"`
	GrantsQuiet     int      `json:"grants_quiet"`
	GrantsDue       *int     `json:"grants_due"`
	IndexBuckets    *int     `json:"index_buckets"`
	RepairVisited   *int     `json:"repair_visited"`
	Rebuilding      *bool    `json:"rebuilding"` // the repair walk runs at full speed to build the index
	FullPass        bool     `json:"full_pass"`  // with the index: every grant that was due was looked at
	BudgetExhausted bool     `json:"budget_exhausted"`
	TookMS          int64    `json:"took_ms"`
	Refreshed       []string `json:"refreshed"`
	RefreshFailed   []string `json:"refresh_failed"`
}

// indexed says the plugin sweeps from a due index: a run reads only the grants that are due (and a
// slice of the repair walk), so one run that finished what was due is a whole pass.
func (r *sweepReport) indexed() bool { return r.GrantsDue != nil }

// read is how many grants the run read from storage: with the index every grant it visited (the
// due ones and the repair walk's), without it those it visited less those passed by from memory.
func (r *sweepReport) read() int {
	if r.indexed() {
		return r.GrantsVisited
	}
	return r.GrantsVisited - r.GrantsQuiet
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// sweepOnce runs `vault write -f lark/sweep`, waiting while Vault's own periodic run holds the
// sweep.
func (b *sweepBench) sweepOnce() (*sweepReport, error) {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var out struct {
			Data sweepReport `json:"data"`
		}
		err := b.v.c.call(http.MethodPut, "lark/sweep", map[string]any{}, &out)
		if err == nil {
			return &out.Data, nil
		}
		var ve *vaultError
		if !errors.As(err, &ve) || !strings.Contains(strings.Join(ve.Errors, " "), "already running") || time.Now().After(deadline) {
			return nil, err
		}
		b.overlaps++
		time.Sleep(250 * time.Millisecond)
	}
}

type passCost struct {
	runs, visited, quiet int
	read, due, buckets   int // grants read (visited + repair walk), due, index buckets listed
	repair               int
	indexed              bool
	overlapped           bool // a request waited for Vault's own sweep
	rebuilding           bool // the index was being built: the repair walk ran at full speed
	wall, took           time.Duration
	pluginCPU, vaultCPU  time.Duration
}

func (c passCost) indexNote() string {
	if !c.indexed {
		return ""
	}
	rebuilding := ""
	if c.rebuilding {
		rebuilding = ", building the index"
	}
	return fmt.Sprintf(" (due index: %d due, %d buckets listed, %d read by the repair walk%s)", c.due, c.buckets, c.repair, rebuilding)
}

func (c passCost) overlapNote() string {
	if !c.overlapped {
		return ""
	}
	return "; overlapped Vault's own sweep"
}

// fullPass runs sweeps until the sweep has acted on every grant it must, measuring each run's wall
// time and the CPU the plugin and Vault spent during it (from /proc/<pid>/stat). Without a due index
// that is until every grant was visited once; with one, until a run finishes what is due without
// running out of budget.
func (b *sweepBench) fullPass(ctx context.Context) (passCost, error) {
	var c passCost
	visited := 0
	for {
		if err := ctx.Err(); err != nil {
			return c, err
		}
		p0, err := readProcStat(b.pluginPID)
		if err != nil {
			return c, err
		}
		v0, err := readProcStat(b.v.proc.pid())
		if err != nil {
			return c, err
		}
		t0, o0 := time.Now(), b.overlaps
		r, err := b.sweepOnce()
		if err != nil {
			return c, err
		}
		wall := time.Since(t0)
		if b.overlaps > o0 {
			c.overlapped = true
		}
		p1, err := readProcStat(b.pluginPID)
		if err != nil {
			return c, err
		}
		v1, err := readProcStat(b.v.proc.pid())
		if err != nil {
			return c, err
		}
		if r.GrantsTotal != nil && !r.indexed() && *r.GrantsTotal != b.grants {
			return c, fmt.Errorf("the sweep counts %d grants, %d were imported", *r.GrantsTotal, b.grants)
		}
		c.runs++
		c.wall += wall
		c.took += time.Duration(r.TookMS) * time.Millisecond
		c.pluginCPU += p1.CPU - p0.CPU
		c.vaultCPU += v1.CPU - v0.CPU
		visited += r.GrantsVisited
		c.visited += r.GrantsVisited
		c.quiet += r.GrantsQuiet
		c.read += r.read()
		c.due += deref(r.GrantsDue)
		c.buckets += deref(r.IndexBuckets)
		c.repair += deref(r.RepairVisited)
		if r.indexed() {
			c.indexed = true
			if r.Rebuilding != nil && *r.Rebuilding {
				c.rebuilding = true
			}
			if r.GrantsTotal != nil && *r.GrantsTotal != b.grants {
				logf("sweep: the sweep counts %d grants, %d were imported", *r.GrantsTotal, b.grants)
			}
			if r.FullPass || !r.BudgetExhausted {
				return c, nil
			}
			if c.runs > 1000 {
				return c, errors.New("the sweep still runs out of budget after 1,000 runs")
			}
			continue
		}
		if r.GrantsVisited == 0 {
			return c, errors.New("a sweep visited no grant")
		}
		if visited >= b.grants {
			return c, nil
		}
	}
}

// keepalivePacing imports a batch of grants whose refresh tokens are short-lived, so that they all
// fall due for keep-alive together, and sweeps until every one was refreshed. Lark's side (the
// emulator's per-app counters) shows how fast the refreshes came: never faster than keepalive_rate
// (plus the limiter's burst of one). The refresh tokens live long enough for a full pass over every
// grant plus the paced refreshes to fit between the moment they are all due (55% of their life, at
// most) and their end.
func (b *sweepBench) keepalivePacing(ctx context.Context, checkpoint int, passWall time.Duration) (pacing, error) {
	paced := time.Duration(float64(b.cfg.due)/float64(b.cfg.keepaliveRate)*float64(time.Second)) + time.Second
	ttl := time.Duration(math.Ceil((passWall+paced+20*time.Second).Seconds()/0.44)) * time.Second
	ttl = max(ttl, 90*time.Second)
	p := pacing{Due: b.cfg.due, RefreshTokenTTL: ttl.Seconds()}

	if err := b.emu.addApp(appDue, b.secrets[appDue], map[string]any{"refresh_token_ttl_seconds": ttl.Seconds()}); err != nil {
		return p, err
	}
	importStart := time.Now()
	if _, err := b.importMany(ctx, appDue, fmt.Sprintf("d%d-", checkpoint), 0, b.cfg.due); err != nil {
		return p, err
	}
	// Refreshes made by the sweep get Lark's normal 7-day refresh tokens again.
	if err := b.emu.addApp(appDue, b.secrets[appDue], nil); err != nil {
		return p, err
	}
	// The imports' own refreshes came at full speed; only the keep-alive is measured.
	if err := b.emu.resetAppCounters(appDue); err != nil {
		return p, err
	}
	allDue := importStart.Add(time.Duration(0.56 * float64(ttl)))
	logf("sweep: %d grants due for keep-alive by %s (refresh tokens of %s); waiting", b.cfg.due, allDue.Format("15:04:05"), ttl)
	select {
	case <-time.After(time.Until(allDue)):
	case <-ctx.Done():
		return p, ctx.Err()
	}
	start := time.Now()
	dead := importStart.Add(ttl)
	for {
		r, err := b.sweepOnce()
		if err != nil {
			return p, err
		}
		p.Failed += len(r.RefreshFailed)
		c, err := b.emu.appCounters(appDue)
		if err != nil {
			return p, err
		}
		p.Refreshed, p.RefreshReuse, p.MaxRefreshPerSecond = c["refresh"], c["refresh_reuse"], c["max_refresh_per_second"]
		if p.Refreshed >= b.cfg.due || time.Now().After(dead) || p.Failed > 0 {
			break
		}
	}
	p.Seconds = time.Since(start).Seconds()
	logf("sweep: keep-alive of %d due grants: %d refreshed in %.1fs, %d failed, %d reused; at most %d refreshes in one second (keepalive_rate %d)",
		p.Due, p.Refreshed, p.Seconds, p.Failed, p.RefreshReuse, p.MaxRefreshPerSecond, b.cfg.keepaliveRate)
	return p, nil
}

// profileImport takes CPU profiles of the plugin and Vault while grants are imported.
func (b *sweepBench) profileImport() {
	time.Sleep(2 * time.Second)
	secs := b.cfg.profileImport
	if err := os.MkdirAll(b.cfg.profileDir, 0o755); err != nil {
		logf("sweep: %v", err)
		return
	}
	var wg sync.WaitGroup
	for _, p := range []struct{ url, token, file string }{
		{fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", b.cfg.pprofAddr, secs), "", profilePath(b.cfg.profileDir, "plugin-import")},
		{fmt.Sprintf("%s/v1/sys/pprof/profile?seconds=%d", b.v.addr, secs), b.v.rootToken, profilePath(b.cfg.profileDir, "vault-import")},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fetchTo(p.url, p.token, p.file); err != nil {
				logf("sweep: profile %s: %v", p.file, err)
				return
			}
			logf("sweep: import profile in %s", p.file)
		}()
	}
	wg.Wait()
}
