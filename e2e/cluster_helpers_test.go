//go:build e2e

package e2e

// A three-node Vault cluster of a test's own, set up the way an operator sets one up: three
// `vault server` processes on loopback with Raft storage on disk, initialised with one key share,
// unsealed, joined with `vault operator raft join`, the same plugin binary (same sha256) in every
// node's plugin_directory, registered once by sha256 and version, and mounted once.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	clusterSize = 3
	// clusterSettle bounds every wait for the cluster to reach a state (a leader, unsealed nodes,
	// healthy voters); on an idle machine each takes a few seconds.
	clusterSettle = 90 * time.Second
)

// clusterNode is one Vault server of a raftCluster. Its embedded ownVault runs the CLI against it.
type clusterNode struct {
	*ownVault
	name      string
	dir       string
	config    string
	pluginDir string
	cmd       *exec.Cmd // nil while the node is down
	logs      []string  // one server log per start
}

// raftCluster is three nodes sharing Raft storage, unsealed with one key.
type raftCluster struct {
	nodes     []*clusterNode
	token     string // the root token of `vault operator init`
	unsealKey string
	auditLog  string
	pluginSHA string
}

// startRaftCluster brings up a healthy three-node cluster with the plugin mounted at lark/ and
// configured for short-lived tokens (as on the shared Vault), and stops it when the test ends,
// checking every node's log and the audit log for secrets.
func startRaftCluster(t *testing.T) *raftCluster {
	t.Helper()
	start := time.Now()
	dir := t.TempDir()
	c := &raftCluster{auditLog: filepath.Join(dir, "audit.log")}
	t.Cleanup(func() { c.stop(t) })

	type ports struct{ api, cluster int }
	var addrs []ports
	for i := 0; i < clusterSize; i++ {
		api, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		cl, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, ports{api, cl})
	}
	for i, p := range addrs {
		n := &clusterNode{name: fmt.Sprintf("n%d", i+1), dir: filepath.Join(dir, fmt.Sprintf("n%d", i+1))}
		n.ownVault = &ownVault{addr: fmt.Sprintf("http://127.0.0.1:%d", p.api)}
		n.pluginDir = filepath.Join(n.dir, "plugins")
		for _, d := range []string{n.pluginDir, filepath.Join(n.dir, "raft")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		// Each node gets its own copy of the binary, as on separate machines.
		sha, err := copyFile(os.Getenv("PLUGIN_BIN"), filepath.Join(n.pluginDir, pluginName))
		if err != nil {
			t.Fatalf("installing the plugin on %s: %v", n.name, err)
		}
		if c.pluginSHA != "" && sha != c.pluginSHA {
			t.Fatalf("plugin copies differ: %s has sha256 %s, %s", n.name, sha, c.pluginSHA)
		}
		c.pluginSHA = sha
		n.config = filepath.Join(n.dir, "vault.hcl")
		// performance_multiplier 1 is Raft's own timing (production's default of 5 makes elections
		// five times slower); the autopilot intervals let joined nodes become voters in seconds.
		hcl := fmt.Sprintf(`storage "raft" {
  path                         = %q
  node_id                      = %q
  performance_multiplier       = 1
  autopilot_update_interval    = "1s"
  autopilot_reconcile_interval = "2s"
}
listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
api_addr         = "http://127.0.0.1:%d"
cluster_addr     = "https://127.0.0.1:%d"
disable_mlock    = true
plugin_directory = %q
`, filepath.Join(n.dir, "raft"), n.name, p.api, p.cluster, p.api, p.cluster, n.pluginDir)
		if err := os.WriteFile(n.config, []byte(hcl), 0o644); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		n.start(t)
	}
	for _, n := range c.nodes {
		c.waitHealth(t, n, "to answer", func(status int) bool { return status == http.StatusNotImplemented })
	}

	// Initialise on n1 with one key share, unseal it and wait until it is active.
	first := c.nodes[0]
	out, err := first.cli("", "json", "operator", "init", "-key-shares=1", "-key-threshold=1")
	if err != nil {
		t.Fatalf("vault operator init: %v\n%s", err, out)
	}
	var initOut struct {
		Keys      []string `json:"unseal_keys_b64"`
		RootToken string   `json:"root_token"`
	}
	if err := json.Unmarshal([]byte(out), &initOut); err != nil || len(initOut.Keys) != 1 || initOut.RootToken == "" {
		t.Fatalf("vault operator init: unexpected output (%v)", err)
	}
	c.unsealKey, c.token = initOut.Keys[0], initOut.RootToken
	remember(c.unsealKey, "unseal key of the Raft cluster")
	remember(c.token, "root token of the Raft cluster")
	c.unseal(t, first)
	c.waitHealth(t, first, "to become active", func(status int) bool { return status == http.StatusOK })
	// Joined nodes become voters once they have been healthy this long (default 10 s).
	first.must(t, c.token, "operator", "raft", "autopilot", "set-config", "-server-stabilization-time=3s")

	// The others join n1's Raft cluster and are unsealed with the same key.
	for _, n := range c.nodes[1:] {
		if out, err := n.cli("", "table", "operator", "raft", "join", first.addr); err != nil {
			t.Fatalf("vault operator raft join on %s: %v\n%s", n.name, err, out)
		}
		c.unseal(t, n)
		c.waitHealth(t, n, "to become a standby", func(status int) bool { return status == http.StatusTooManyRequests })
	}
	c.waitHealthy(t)

	c.must(t, "audit", "enable", "file", "file_path="+c.auditLog)
	// The catalog and the mount table are replicated: one registration and one mount serve all.
	c.must(t, "plugin", "register", "-sha256="+c.pluginSHA, "-command="+pluginName, "-version="+pluginVersion, "secret", pluginName)
	c.must(t, "secrets", "enable", "-path="+mountPath, "-plugin-version="+pluginVersion, pluginName)
	c.must(t, "write", mountPath+"/config", "lease_safety_margin=10s", "token_refresh_window=70s")
	t.Logf("Raft cluster up in %s:\n%s", time.Since(start).Round(time.Second), c.must(t, "operator", "raft", "list-peers"))
	return c
}

// start runs the node's server process (again, after a kill); its log is a new file each time.
func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	n.serverLog = filepath.Join(n.dir, fmt.Sprintf("vault.%d.log", len(n.logs)+1))
	cmd, err := startProcess(n.serverLog, env.vaultBin, "server", "-config="+n.config, "-log-level=debug")
	if err != nil {
		t.Fatalf("starting %s: %v", n.name, err)
	}
	n.cmd = cmd
	n.logs = append(n.logs, n.serverLog)
}

// kill ends the node's server with SIGKILL: no shutdown, no step-down, nothing flushed.
func (n *clusterNode) kill(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("killing %s: %v", n.name, err)
	}
	_ = n.cmd.Wait()
	n.cmd = nil
}

// pluginProcesses lists the running plugin processes started from this node's plugin directory.
func (n *clusterNode) pluginProcesses(t *testing.T) []procRef {
	t.Helper()
	return processesOf(t, filepath.Join(n.pluginDir, pluginName))
}

// health is the node's sys/health status: 200 active, 429 standby, 503 sealed, 501 not
// initialised; 0 when it does not answer.
func (n *clusterNode) health() int {
	status, _, err := swDo(http.MethodGet, n.addr+"/v1/sys/health", "", nil)
	if err != nil {
		return 0
	}
	return status
}

// do calls the node's HTTP API with the cluster's root token; it never stops the test.
func (c *raftCluster) do(n *clusterNode, method, path string, body any) (int, map[string]any, error) {
	return swDo(method, n.addr+"/v1/"+path, c.token, body)
}

// must runs the CLI against whichever node is active.
func (c *raftCluster) must(t *testing.T, args ...string) string {
	t.Helper()
	return c.active(t).must(t, c.token, args...)
}

func (c *raftCluster) unseal(t *testing.T, n *clusterNode) {
	t.Helper()
	status, body, err := swDo(http.MethodPut, n.addr+"/v1/sys/unseal", "", map[string]string{"key": c.unsealKey})
	if err != nil || status != http.StatusOK {
		t.Fatalf("unsealing %s: HTTP %d %v %v", n.name, status, body["errors"], err)
	}
}

func (c *raftCluster) waitHealth(t *testing.T, n *clusterNode, what string, ok func(status int) bool) {
	t.Helper()
	var last int
	waitFor(t, clusterSettle, n.name+" "+what, func() bool {
		last = n.health()
		return ok(last)
	})
}

// active waits until exactly one node is active and returns it.
func (c *raftCluster) active(t *testing.T) *clusterNode {
	t.Helper()
	var active *clusterNode
	waitFor(t, clusterSettle, "one active node", func() bool {
		active = nil
		n := 0
		for _, node := range c.nodes {
			if node.cmd != nil && node.health() == http.StatusOK {
				active = node
				n++
			}
		}
		return n == 1
	})
	return active
}

// activeOtherThan waits until a node other than old is active and returns it.
func (c *raftCluster) activeOtherThan(t *testing.T, old *clusterNode) *clusterNode {
	t.Helper()
	var active *clusterNode
	waitFor(t, clusterSettle, "a node other than "+old.name+" to become active", func() bool {
		for _, node := range c.nodes {
			if node != old && node.cmd != nil && node.health() == http.StatusOK {
				active = node
				return true
			}
		}
		return false
	})
	return active
}

// waitHealthy waits until every node is unsealed (one active, the others standbys) and autopilot
// reports a healthy cluster of three voters.
func (c *raftCluster) waitHealthy(t *testing.T) {
	t.Helper()
	var last string
	deadline := time.Now().Add(clusterSettle)
	for {
		last = c.healthProblem()
		if last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster is not healthy after %s: %s", clusterSettle, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// healthProblem says what keeps the cluster from being healthy, or "" when it is.
func (c *raftCluster) healthProblem() string {
	active := 0
	var states []string
	for _, n := range c.nodes {
		h := n.health()
		states = append(states, fmt.Sprintf("%s=%d", n.name, h))
		switch h {
		case http.StatusOK:
			active++
		case http.StatusTooManyRequests:
		default:
			return "sys/health: " + strings.Join(states, " ")
		}
	}
	if active != 1 {
		return fmt.Sprintf("%d active nodes (%s)", active, strings.Join(states, " "))
	}
	// Any node answers for the active one (a standby forwards the request).
	status, body, err := c.do(c.nodes[0], http.MethodGet, "sys/storage/raft/autopilot/state", nil)
	if err != nil || status != http.StatusOK {
		return fmt.Sprintf("autopilot state: HTTP %d %v", status, err)
	}
	data, _ := body["data"].(map[string]any)
	servers, _ := data["servers"].(map[string]any)
	var voters []string
	for id, s := range servers {
		srv, _ := s.(map[string]any)
		if st := srv["status"]; (st == "voter" || st == "leader") && srv["healthy"] == true {
			voters = append(voters, id)
		}
	}
	sort.Strings(voters)
	if data["healthy"] != true || len(voters) != clusterSize {
		return fmt.Sprintf("autopilot: healthy=%v, healthy voters %v", data["healthy"], voters)
	}
	return ""
}

// restartAndRejoin starts a killed node again, unseals it, and waits until it is a healthy voter.
func (c *raftCluster) restartAndRejoin(t *testing.T, n *clusterNode) {
	t.Helper()
	start := time.Now()
	n.start(t)
	c.waitHealth(t, n, "to come back sealed", func(status int) bool { return status == http.StatusServiceUnavailable })
	c.unseal(t, n)
	c.waitHealthy(t)
	t.Logf("%s restarted, unsealed and a healthy voter again after %s", n.name, time.Since(start).Round(time.Millisecond))
}

// stop shuts every running node down and checks all the logs the cluster wrote for secrets.
func (c *raftCluster) stop(t *testing.T) {
	t.Helper()
	files := []string{}
	for _, n := range c.nodes {
		if n.cmd != nil {
			stopProcess(n.cmd)
			n.cmd = nil
		}
		files = append(files, n.logs...)
	}
	if _, err := os.Stat(c.auditLog); err == nil {
		files = append(files, c.auditLog)
	}
	assertNoSecretsIn(t, files...)
	for _, f := range files {
		tailOnFailure(t, f)
	}
}
