package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	larkPlugin  = "vault-plugin-secrets-lark"
	floorPlugin = "bench-floor"
	benchUser   = "bench_user"
	benchSlot   = "bench"
	// The two apps of a mount: one leased, one lease-free (lease_mode is set per app).
	appLeased    = "cli_benchlease"
	appLeaseFree = "cli_benchnone"
)

// target is one read the bench measures.
type target struct {
	Key         string `json:"key"`
	Label       string `json:"label"`
	Path        string `json:"path"`
	Leased      bool   `json:"leased"`
	LeasePrefix string `json:"-"`
	// Floor is the key of the floor plugin's read in the same lease mode; empty for the floor
	// itself and for KV.
	Floor string `json:"floor,omitempty"`
}

// readTargets are the reads of one storage mode, in the order the report lists them.
func readTargets(mount string) []target {
	t := []target{
		{Key: "kv", Label: "KV-v2 read", Path: "kv/data/bench", LeasePrefix: "kv/"},
		{Key: "floor-lease", Label: "floor plugin, leased", Path: "floor/leased", Leased: true, LeasePrefix: "floor/leased/"},
		{Key: "floor-none", Label: "floor plugin, lease-free", Path: "floor/static", LeasePrefix: "floor/static/"},
		// The same lease carrying an answer shaped like the user-token read: what the lease's size
		// costs, apart from the plugin's work.
		{Key: "floor-lease-user", Label: "floor plugin, leased, user-token-shaped answer", Path: "floor/leased-user", Leased: true, LeasePrefix: "floor/leased-user/"},
	}
	for _, kind := range []string{"app", "tenant"} {
		for _, leased := range []bool{true, false} {
			t = append(t, larkTarget(mount, kind, kind+"-token/%s", leased))
		}
	}
	for _, leased := range []bool{true, false} {
		t = append(t, larkTarget(mount, "user", "user-token/%s/"+benchSlot, leased))
	}
	return t
}

// targets are the reads of one storage mode this run measures.
func (cfg readsConfig) targets(mount string) []target {
	all := readTargets(mount)
	if len(cfg.only) == 0 {
		return all
	}
	var out []target
	for _, t := range all {
		if cfg.only[t.Key] {
			out = append(out, t)
		}
	}
	return out
}

func larkTarget(mount, kind, pathFormat string, leased bool) target {
	app, suffix, floor, mode := appLeaseFree, "none", "floor-none", "lease-free"
	if leased {
		app, suffix, floor, mode = appLeased, "lease", "floor-lease", "leased"
	}
	path := mount + "/" + fmt.Sprintf(pathFormat, app)
	return target{Key: kind + "-" + suffix, Label: fmt.Sprintf("`%s-token`, %s", kind, mode), Path: path,
		Leased: leased, LeasePrefix: path + "/", Floor: floor}
}

type readsConfig struct {
	bins           binaries
	pprofPlugin    string
	modes          []string
	concurrency    int
	rounds         int
	roundSeconds   float64
	warmupSeconds  float64
	leaseReads     int
	tokenLifeSecs  float64
	profileSeconds float64
	workDir        string
	profileDir     string
	out            string
	keep           bool
	only           map[string]bool // target keys to measure; empty: all
}

// readsResult is what `larkbench reads` writes as JSON for `larkbench report`.
type readsResult struct {
	Started      time.Time    `json:"started"`
	Took         float64      `json:"took_seconds"`
	Concurrency  int          `json:"concurrency"`
	Rounds       int          `json:"rounds"`
	RoundSeconds float64      `json:"round_seconds"`
	LeaseReads   int          `json:"lease_reads"`
	Modes        []modeResult `json:"modes"`
}

type modeResult struct {
	Mode         string           `json:"mode"`
	VaultVersion string           `json:"vault_version"`
	StorageFS    string           `json:"storage_fs,omitempty"`
	Targets      []targetResult   `json:"targets"`
	TokenLife    *tokenLifeResult `json:"token_life,omitempty"`
	Profiles     []profileResult  `json:"profiles,omitempty"`
}

type targetResult struct {
	target
	Requests      int       `json:"requests"`
	Seconds       float64   `json:"seconds"`
	RPS           float64   `json:"rps"`
	RoundRPS      []float64 `json:"round_rps"`
	P50Ms         float64   `json:"p50_ms"`
	P99Ms         float64   `json:"p99_ms"`
	LeasesPer1000 float64   `json:"leases_per_1000_reads"`
	// CPU per read over the rounds, in microseconds: Vault's, and the serving plugin process's
	// (none for KV, which runs inside Vault). On a shared machine these vary less than req/s.
	VaultCPUus  float64 `json:"vault_cpu_us_per_read"`
	PluginCPUus float64 `json:"plugin_cpu_us_per_read"`
}

func runReads(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("reads", flag.ContinueOnError)
	var cfg readsConfig
	var modes string
	fs.StringVar(&cfg.bins.vault, "vault", "", "the Vault binary (scripts/build-vault.sh prints its path)")
	fs.StringVar(&cfg.bins.plugin, "plugin", "", "the plugin binary (make build)")
	fs.StringVar(&cfg.bins.pluginVersion, "plugin-version", "v0.1.0", "the version the plugin binary reports")
	fs.StringVar(&cfg.bins.emulator, "emulator", "", "the Lark emulator binary (make build)")
	fs.StringVar(&cfg.bins.floor, "floor", "", "the floor plugin binary (tools/bench/cmd/bench-floor-plugin)")
	fs.StringVar(&cfg.pprofPlugin, "pprof-plugin", "", "the plugin built with -tags benchpprof, for CPU profiles (optional)")
	fs.StringVar(&modes, "modes", "raft,dev", "storage modes to measure, in order")
	fs.IntVar(&cfg.concurrency, "concurrency", 16, "connections sending reads at once")
	fs.IntVar(&cfg.rounds, "rounds", 10, "alternating rounds over all targets")
	fs.Float64Var(&cfg.roundSeconds, "round-seconds", 1.5, "length of one target's turn in a round")
	fs.Float64Var(&cfg.warmupSeconds, "warmup-seconds", 1, "unmeasured reads of each target before the rounds")
	fs.IntVar(&cfg.leaseReads, "lease-reads", 1000, "reads per target when counting the leases they create")
	fs.Float64Var(&cfg.tokenLifeSecs, "token-life-seconds", 140, "sustained load with short-lived tokens, counting Lark calls per token life (Raft only; 0 skips)")
	fs.Float64Var(&cfg.profileSeconds, "profile-seconds", 10, "CPU profile length per profiled read (Raft only, needs -pprof-plugin; 0 skips)")
	fs.StringVar(&cfg.workDir, "work", "", "directory for Vault's storage and logs (default: a new directory under $TMPDIR)")
	fs.StringVar(&cfg.profileDir, "profile-dir", ".", "where CPU profiles are written")
	fs.StringVar(&cfg.out, "out", "reads.json", "results file (JSON)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the work directory (Vault's storage and logs)")
	var only string
	fs.StringVar(&only, "targets", "", "comma-separated target keys to measure (e.g. floor-lease,app-lease,user-lease); default all. "+
		"With -pprof-plugin, the same keys are profiled")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if only != "" {
		cfg.only = map[string]bool{}
		known := map[string]bool{}
		for _, t := range readTargets("lark") {
			known[t.Key] = true
		}
		for _, k := range strings.Split(only, ",") {
			k = strings.TrimSpace(k)
			if !known[k] {
				return fmt.Errorf("-targets: unknown target %q", k)
			}
			cfg.only[k] = true
		}
	}
	if cfg.bins.vault == "" || cfg.bins.plugin == "" || cfg.bins.emulator == "" || cfg.bins.floor == "" {
		return errors.New("-vault, -plugin, -emulator and -floor are required")
	}
	if cfg.concurrency < 1 || cfg.rounds < 1 || cfg.roundSeconds <= 0 || cfg.leaseReads < 1 {
		return errors.New("-concurrency, -rounds, -round-seconds and -lease-reads must be positive")
	}
	cfg.modes = strings.Split(modes, ",")

	res := readsResult{Started: time.Now().UTC(), Concurrency: cfg.concurrency, Rounds: cfg.rounds,
		RoundSeconds: cfg.roundSeconds, LeaseReads: cfg.leaseReads}
	for _, mode := range cfg.modes {
		m, err := benchReadsMode(ctx, cfg, mode)
		if err != nil {
			return fmt.Errorf("%s: %w", mode, err)
		}
		res.Modes = append(res.Modes, *m)
	}
	res.Took = time.Since(res.Started).Seconds()
	return writeJSON(cfg.out, res)
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// makeWorkDir makes the directory of one Vault run; cleanup removes it unless asked to keep it.
func makeWorkDir(base, name string, keep bool) (string, func(), error) {
	if base != "" {
		if err := os.MkdirAll(base, 0o755); err != nil {
			return "", nil, err
		}
	}
	dir, err := os.MkdirTemp(base, "larkbench-"+name+"-")
	if err != nil {
		return "", nil, err
	}
	// Absolute, because plugin processes are found by the path of their executable.
	if dir, err = filepath.Abs(dir); err != nil {
		return "", nil, err
	}
	return dir, func() {
		if keep {
			logf("kept %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}, nil
}

// larkMount is the plugin mounted at one path with its two apps configured and one user grant
// imported in each.
type larkMount struct {
	path    string
	emu     *emulator
	secrets map[string]string
}

// setupLarkMount enables the plugin at path (registered under plugin) with config, configures the
// leased and the lease-free app (registered at the emulator first, when secrets is nil), and
// imports one user grant into each.
func setupLarkMount(v *vaultServer, emu *emulator, plugin, version, path string, apps [2]string, secrets map[string]string, config map[string]any) (*larkMount, error) {
	if err := v.mount(path, plugin, version, nil); err != nil {
		return nil, err
	}
	if config != nil {
		if err := v.c.call(http.MethodPost, path+"/config", config, nil); err != nil {
			return nil, err
		}
	}
	m := &larkMount{path: path, emu: emu, secrets: secrets}
	if m.secrets == nil {
		m.secrets = map[string]string{}
		for _, app := range apps {
			m.secrets[app] = randomSecret()
			if err := emu.addApp(app, m.secrets[app], nil); err != nil {
				return nil, err
			}
		}
		if err := emu.call(http.MethodPost, "/_emulator/users", map[string]any{"user_id": benchUser, "name": "Bench User", "sign_in": false}, nil); err != nil {
			return nil, err
		}
	}
	for i, app := range apps {
		mode := "lease"
		if i == 1 {
			mode = "none"
		}
		if err := v.c.call(http.MethodPost, path+"/apps/"+app, map[string]any{
			"app_secret": m.secrets[app], "base_url": emu.url, "accounts_base_url": emu.url, "lease_mode": mode,
		}, nil); err != nil {
			return nil, err
		}
		if err := importGrant(emu, v.c, path, app, benchUser, benchSlot); err != nil {
			return nil, fmt.Errorf("importing a grant of %s: %w", app, err)
		}
	}
	return m, nil
}

// benchReadsMode runs every read measurement against one Vault in one storage mode.
func benchReadsMode(ctx context.Context, cfg readsConfig, mode string) (*modeResult, error) {
	work, cleanup, err := makeWorkDir(cfg.workDir, mode, cfg.keep)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	logf("%s: starting the emulator and Vault in %s", mode, work)
	emu, err := startEmulator(cfg.bins.emulator, work, "emulator")
	if err != nil {
		return nil, err
	}
	defer emu.stop()
	v, err := startVault(ctx, cfg.bins, mode, work, "info")
	if err != nil {
		return nil, err
	}
	defer v.stop()
	res := &modeResult{Mode: mode, VaultVersion: v.version}
	if v.dataDir != "" {
		res.StorageFS = fsType(v.dataDir)
	}

	larkExe, err := v.registerPlugin(cfg.bins.plugin, larkPlugin, cfg.bins.pluginVersion)
	if err != nil {
		return nil, err
	}
	floorExe, err := v.registerPlugin(cfg.bins.floor, floorPlugin, "")
	if err != nil {
		return nil, err
	}
	lark, err := setupLarkMount(v, emu, larkPlugin, cfg.bins.pluginVersion, "lark", [2]string{appLeased, appLeaseFree}, nil, nil)
	if err != nil {
		return nil, err
	}
	if err := v.mount("floor", floorPlugin, "", nil); err != nil {
		return nil, err
	}
	if err := setupKV(ctx, v); err != nil {
		return nil, err
	}
	reader, err := readerToken(v, max(cfg.concurrency, 16), "lark/*", "lark-pprof/*", "lark-short/*", "floor/*", "kv/data/*")
	if err != nil {
		return nil, err
	}

	targets := cfg.targets("lark")
	for _, t := range targets {
		if err := checkTarget(reader, t); err != nil {
			return nil, err
		}
	}
	// The plugin process each target's reads are served by (0: inside Vault).
	larkPID, err := v.pidOf(larkExe)
	if err != nil {
		return nil, fmt.Errorf("the plugin's process: %w", err)
	}
	floorPID, err := v.pidOf(floorExe)
	if err != nil {
		return nil, fmt.Errorf("the floor plugin's process: %w", err)
	}
	pluginPID := func(t target) int {
		switch {
		case strings.HasPrefix(t.Path, "lark/"):
			return larkPID
		case strings.HasPrefix(t.Path, "floor/"):
			return floorPID
		}
		return 0
	}
	roundDur := time.Duration(cfg.roundSeconds * float64(time.Second))
	if cfg.warmupSeconds > 0 {
		for _, t := range targets {
			if r := runLoad(ctx, reader, t.Path, cfg.concurrency, time.Duration(cfg.warmupSeconds*float64(time.Second)), 0); r.Errors > 0 {
				return nil, fmt.Errorf("warming up %s: %d errors, first: %s", t.Path, r.Errors, r.FirstError)
			}
		}
	}

	// Alternating rounds: every target gets a turn in every round, and the first turn moves along
	// each round, so drift on the shared machine spreads over all targets alike.
	tallies := make([]tally, len(targets))
	for r := 0; r < cfg.rounds; r++ {
		for i := range targets {
			k := (i + r) % len(targets)
			t := targets[k]
			v0, p0 := cpuOf(v.proc.pid()), cpuOf(pluginPID(t))
			res := runLoad(ctx, reader, t.Path, cfg.concurrency, roundDur, 0)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			tallies[k].vaultCPU += cpuOf(v.proc.pid()) - v0
			tallies[k].pluginCPU += cpuOf(pluginPID(t)) - p0
			if res.Errors > 0 {
				return nil, fmt.Errorf("round %d, %s: %d of %d reads failed, first: %s", r+1, t.Path, res.Errors, res.Requests, res.FirstError)
			}
			tallies[k].add(res)
			logf("%s round %d/%d %-22s %7.0f req/s", mode, r+1, cfg.rounds, t.Key, float64(res.Requests)/res.Elapsed.Seconds())
		}
	}
	for i, t := range targets {
		rps, p50, p99 := tallies[i].summary()
		vcpu, pcpu := tallies[i].cpuPerRead()
		res.Targets = append(res.Targets, targetResult{target: t, Requests: tallies[i].requests, Seconds: tallies[i].elapsed.Seconds(),
			RPS: rps, RoundRPS: tallies[i].roundRPS, P50Ms: ms(p50), P99Ms: ms(p99), VaultCPUus: vcpu, PluginCPUus: pcpu})
		logf("%s %-22s CPU per read: Vault %.0fus, plugin %.0fus", mode, t.Key, vcpu, pcpu)
	}

	// Leases per 1,000 reads, counted in Vault's lease table under each read's path.
	for i, t := range targets {
		before, err := v.c.countLeases(t.LeasePrefix)
		if err != nil {
			return nil, err
		}
		r := runLoad(ctx, reader, t.Path, cfg.concurrency, 0, cfg.leaseReads)
		if r.Errors > 0 {
			return nil, fmt.Errorf("lease count of %s: %d reads failed, first: %s", t.Path, r.Errors, r.FirstError)
		}
		after, err := v.c.countLeases(t.LeasePrefix)
		if err != nil {
			return nil, err
		}
		res.Targets[i].LeasesPer1000 = float64(after-before) * 1000 / float64(r.Requests)
		logf("%s leases %-22s %d new leases for %d reads", mode, t.Key, after-before, r.Requests)
	}

	if mode == modeRaft && cfg.pprofPlugin != "" && cfg.profileSeconds > 0 {
		if res.Profiles, err = profileReads(ctx, cfg, v, lark, reader); err != nil {
			return nil, fmt.Errorf("profiles: %w", err)
		}
	}
	if mode == modeRaft && cfg.tokenLifeSecs > 0 {
		if res.TokenLife, err = tokenLives(ctx, cfg, v, work, reader); err != nil {
			return nil, fmt.Errorf("token lives: %w", err)
		}
	}
	return res, nil
}

// cpuOf is a process's CPU time so far (0 for pid 0 or a process that cannot be read).
func cpuOf(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	st, err := readProcStat(pid)
	if err != nil {
		return 0
	}
	return st.CPU
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// setupKV mounts KV-v2 at kv/ and writes the secret the bench reads. A new KV-v2 mount upgrades
// itself for a moment before it accepts writes.
func setupKV(ctx context.Context, v *vaultServer) error {
	if err := v.mount("kv", "kv", "", map[string]string{"version": "2"}); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := v.c.call(http.MethodPost, "kv/data/bench", map[string]any{"data": map[string]any{
			"access_token": "t-kvkvkvkvkvkvkvkvkvkvkvkvkvkvkvkvkvkvkvkv", "expires_in": 7200}}, nil)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("writing kv/data/bench: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// readerToken creates the token the reads are sent with: a service token whose policy may read
// the given paths, as a service reading its secrets would hold (root tokens skip the policy check).
func readerToken(v *vaultServer, conns int, paths ...string) (*vaultClient, error) {
	var policy strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&policy, "path %q {\n  capabilities = [\"read\"]\n}\n", p)
	}
	if err := v.c.call(http.MethodPut, "sys/policies/acl/bench-reader", map[string]any{"policy": policy.String()}, nil); err != nil {
		return nil, err
	}
	var out struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	if err := v.c.call(http.MethodPost, "auth/token/create", map[string]any{"policies": []string{"bench-reader"}, "ttl": "24h"}, &out); err != nil {
		return nil, err
	}
	return newVaultClient(v.addr, out.Auth.ClientToken, conns), nil
}

// checkTarget reads a target once and checks that the answer is what the bench means to measure:
// data, and a lease exactly when the target is a leased one.
func checkTarget(c *vaultClient, t target) error {
	var out struct {
		LeaseID       string         `json:"lease_id"`
		LeaseDuration int            `json:"lease_duration"`
		Data          map[string]any `json:"data"`
	}
	if err := c.call(http.MethodGet, t.Path, nil, &out); err != nil {
		return err
	}
	switch {
	case len(out.Data) == 0:
		return fmt.Errorf("%s: no data", t.Path)
	case t.Leased && (out.LeaseID == "" || out.LeaseDuration <= 0):
		return fmt.Errorf("%s: answered without a lease", t.Path)
	case !t.Leased && out.LeaseID != "":
		return fmt.Errorf("%s: answered with a lease", t.Path)
	}
	return nil
}

func profilePath(dir, name string) string { return filepath.Join(dir, name+".pprof") }
