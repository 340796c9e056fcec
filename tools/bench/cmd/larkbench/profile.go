package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

const pprofPlugin = "lark-pprof"

type profileResult struct {
	Key        string `json:"key"`
	Label      string `json:"label"`
	PluginFile string `json:"plugin_profile"`
	VaultFile  string `json:"vault_profile"`
	// PluginTop is `go tool pprof -top` of the plugin's profile.
	PluginTop string `json:"plugin_top"`
}

// profileReads takes CPU profiles of the plugin process and of Vault while reads run. The plugin is
// a second build of the same source with -tags benchpprof, registered under its own name so it runs
// in its own process (the measured rounds ran the shipped build); it serves net/http/pprof on the
// address in LARK_PLUGIN_PPROF_ADDR. Vault's own profile comes from sys/pprof.
func profileReads(ctx context.Context, cfg readsConfig, v *vaultServer, lark *larkMount, reader *vaultClient) ([]profileResult, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if _, err := v.registerPlugin(cfg.pprofPlugin, pprofPlugin, cfg.bins.pluginVersion, fmt.Sprintf("LARK_PLUGIN_PPROF_ADDR=127.0.0.1:%d", port)); err != nil {
		return nil, err
	}
	if _, err := setupLarkMount(v, lark.emu, pprofPlugin, cfg.bins.pluginVersion, pprofPlugin, [2]string{appLeased, appLeaseFree}, lark.secrets, nil); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
		return nil, err
	}
	secs := int(cfg.profileSeconds)
	var out []profileResult
	for _, t := range readTargets(pprofPlugin) {
		if len(cfg.only) > 0 && !cfg.only[t.Key] {
			continue
		}
		if len(cfg.only) == 0 && t.Key != "user-none" && t.Key != "app-none" && t.Key != "user-lease" {
			continue
		}
		if !strings.HasPrefix(t.Path, pprofPlugin+"/") {
			continue // a floor or KV read: only the Lark plugin has a profile to take
		}
		logf("raft: profiling %s for %ds", t.Path, secs)
		// Warm the path (the first app-token read fetches from Lark).
		if r := runLoad(ctx, reader, t.Path, cfg.concurrency, time.Second, 0); r.Errors > 0 {
			return nil, fmt.Errorf("%s: %s", t.Path, r.FirstError)
		}
		p := profileResult{Key: t.Key, Label: t.Label,
			PluginFile: profilePath(cfg.profileDir, "plugin-"+t.Key),
			VaultFile:  profilePath(cfg.profileDir, "vault-"+t.Key)}
		loadCtx, stopLoad := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var load loadResult
		wg.Add(1)
		go func() {
			defer wg.Done()
			load = runLoad(loadCtx, reader, t.Path, cfg.concurrency, time.Duration(secs+5)*time.Second, 0)
		}()
		time.Sleep(time.Second)
		var pluginErr, vaultErr error
		var pw sync.WaitGroup
		pw.Add(2)
		go func() {
			defer pw.Done()
			pluginErr = fetchTo(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", port, secs), "", p.PluginFile)
		}()
		go func() {
			defer pw.Done()
			vaultErr = fetchTo(fmt.Sprintf("%s/v1/sys/pprof/profile?seconds=%d", v.addr, secs), v.rootToken, p.VaultFile)
		}()
		pw.Wait()
		stopLoad()
		wg.Wait()
		if pluginErr != nil {
			return nil, fmt.Errorf("plugin profile: %w", pluginErr)
		}
		if vaultErr != nil {
			return nil, fmt.Errorf("vault profile: %w", vaultErr)
		}
		if load.Errors > 0 {
			return nil, fmt.Errorf("reads while profiling %s: %s", t.Path, load.FirstError)
		}
		top, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=30", p.PluginFile).CombinedOutput()
		if err != nil {
			logf("go tool pprof: %v", err)
		}
		p.PluginTop = trimPprofHeader(string(top))
		logf("raft: plugin CPU while reading %s:\n%s", t.Path, p.PluginTop)
		out = append(out, p)
	}
	return out, nil
}

func fetchTo(url, token, file string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: HTTP %d %s", req.URL.Path, resp.StatusCode, body)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// trimPprofHeader drops the lines of `go tool pprof -top` that name the file, build and time.
func trimPprofHeader(top string) string {
	var keep []string
	for _, line := range strings.Split(strings.TrimSpace(top), "\n") {
		if strings.HasPrefix(line, "File: ") || strings.HasPrefix(line, "Build ID: ") ||
			strings.HasPrefix(line, "Type: ") || strings.HasPrefix(line, "Time: ") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}
