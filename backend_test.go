package larksecrets

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

const (
	testAppID  = "cli_a1b2c3d4e5f6a7b8"
	testSecret = "s3cr3tS3cr3tS3cr3tAbCdEf012345"
)

// testEnv is a backend on in-memory storage talking to the in-process emulator; both share one
// fake clock, so tests move time for Vault's side and Lark's side at once.
type testEnv struct {
	t       testing.TB
	b       *backend
	storage logical.Storage
	clock   *clock.Fake
	emu     *larkemu.Server
	emuURL  string
	system  *logical.StaticSystemView
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	emu, ts := larkemu.NewTestServer(t, larkemu.Options{
		Clock: clk,
		Apps:  map[string]string{testAppID: testSecret},
	})
	env := &testEnv{t: t, storage: &areaCheck{Storage: &logical.InmemStorage{}, t: t}, clock: clk, emu: emu, emuURL: ts.URL}
	env.system = &logical.StaticSystemView{DefaultLeaseTTLVal: 24 * time.Hour, MaxLeaseTTLVal: 768 * time.Hour}
	env.b = env.newBackend(ts.Client())
	return env
}

// newBackend builds another backend on the same storage, as after a plugin restart.
func (e *testEnv) newBackend(httpClient *http.Client) *backend {
	e.t.Helper()
	b := newBackend(e.clock, httpClient)
	err := b.setup(context.Background(), &logical.BackendConfig{
		Logger:      hclog.NewNullLogger(),
		System:      e.system,
		StorageView: e.storage,
	})
	require.NoError(e.t, err)
	return b
}

func (e *testEnv) do(op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	req := &logical.Request{
		Operation:           op,
		Path:                path,
		Data:                data,
		Storage:             e.storage,
		MountPoint:          "lark/",
		ClientTokenAccessor: "accessor-of-the-test-token",
	}
	return e.b.HandleRequest(context.Background(), req)
}

// write picks create or update the way Vault core does, through the existence check.
func (e *testEnv) write(path string, data map[string]interface{}) (*logical.Response, error) {
	req := &logical.Request{Operation: logical.CreateOperation, Path: path, Data: data, Storage: e.storage, MountPoint: "lark/", ClientTokenAccessor: "accessor-of-the-test-token"}
	checkFound, exists, err := e.b.HandleExistenceCheck(context.Background(), req)
	require.NoError(e.t, err)
	var op logical.Operation = logical.UpdateOperation
	if checkFound && !exists {
		op = logical.CreateOperation
	}
	return e.do(op, path, data)
}

func (e *testEnv) mustWrite(path string, data map[string]interface{}) {
	e.t.Helper()
	resp, err := e.write(path, data)
	require.NoError(e.t, err)
	if resp != nil {
		require.False(e.t, resp.IsError(), "write %s: %v", path, resp.Error())
	}
}

func (e *testEnv) read(path string) (*logical.Response, error) {
	return e.do(logical.ReadOperation, path, nil)
}

// addApp configures the test app in Vault, pointed at the emulator.
func (e *testEnv) addApp() {
	e.t.Helper()
	e.mustWrite("apps/"+testAppID, map[string]interface{}{"app_secret": testSecret, "base_url": e.emuURL})
}

func TestBackendHasHelpForEveryPathAndField(t *testing.T) {
	env := newTestEnv(t)
	require.Equal(t, Version, env.b.RunningVersion)
	for _, p := range env.b.Paths {
		require.NotEmpty(t, p.HelpSynopsis, "path %s has no synopsis", p.Pattern)
		require.NotEmpty(t, p.HelpDescription, "path %s has no description", p.Pattern)
		for name, f := range p.Fields {
			require.NotEmpty(t, f.Description, "field %s of %s has no description", name, p.Pattern)
		}
	}
	resp, err := env.do(logical.HelpOperation, "apps/"+testAppID, nil)
	require.NoError(t, err)
	require.Contains(t, resp.Data["help"], "write-only")
}

func TestSecretPrefixesAreSealWrapped(t *testing.T) {
	env := newTestEnv(t)
	special := env.b.SpecialPaths()
	require.ElementsMatch(t, []string{"apps/", "tokens/", "tickets/", "users/", "oauth-state/", "device/", "notify/"}, special.SealWrapStorage)
	require.Equal(t, []string{"oauth/callback", "events/+"}, special.Unauthenticated)
}

func TestInvalidateDropsMemoryCopies(t *testing.T) {
	env := newTestEnv(t)
	env.addApp()
	_, err := env.read("app-token/" + testAppID)
	require.NoError(t, err)
	require.NotNil(t, env.b.tokens.cached(testAppID, kindApp))

	env.b.invalidate(context.Background(), tokenStorageKey(testAppID, kindApp))
	require.Nil(t, env.b.tokens.cached(testAppID, kindApp))

	_, err = env.read("config")
	require.NoError(t, err)
	require.Equal(t, 1, env.b.config.mem.len())
	env.b.invalidate(context.Background(), "config")
	require.Zero(t, env.b.config.mem.len())
}

func TestPerformanceStandbyServesButDoesNotStore(t *testing.T) {
	env := newTestEnv(t)
	env.addApp()
	env.system.ReplicationStateVal = consts.ReplicationPerformanceStandby
	resp, err := env.read("tenant-token/" + testAppID)
	require.NoError(t, err)
	require.NotEmpty(t, resp.Data["access_token"])
	keys, err := env.storage.List(context.Background(), tokenStoragePrefix+testAppID+"/")
	require.NoError(t, err)
	require.Empty(t, keys, "a node that may not write stored a token")
}

// Every operation of every path refuses an undeclared field before its handler runs (the policy
// lives where the paths are registered, refuseUnknownFields), so a new path cannot forget it. The
// OAuth callback and Lark's events read their raw input themselves.
func TestEveryOperationRefusesUnknownFields(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	group := regexp.MustCompile(`\(\?P<([a-z_]+)>[^)]*\)`)
	sample := map[string]string{"app_id": testAppID, "user": "u1", "tenant_key": "t1"}
	checked := 0
	for _, p := range env.b.Paths {
		if pattern := strings.TrimPrefix(p.Pattern, "^"); pattern == callbackPath+"$" || strings.HasPrefix(pattern, "events/") {
			continue
		}
		path := group.ReplaceAllStringFunc(p.Pattern, func(m string) string {
			if v, ok := sample[group.FindStringSubmatch(m)[1]]; ok {
				return v
			}
			return "x"
		})
		path = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(path, "^"), "$"), "?"), "/")
		require.NotNil(t, env.b.Route(path), "pattern %s gives no route for %s", p.Pattern, path)
		for op := range p.Operations {
			before := env.storageSnapshot()
			resp, err := env.do(op, path, map[string]interface{}{"no_such_field": "x"})
			require.NoError(t, err, "%s %s", op, path)
			require.NotNil(t, resp, "%s %s", op, path)
			require.True(t, resp.IsError(), "%s %s: %v", op, path, resp.Data)
			require.Contains(t, resp.Error().Error(), "unknown field", "%s %s", op, path)
			require.Equal(t, before, env.storageSnapshot(), "%s %s changed storage", op, path)
			checked++
		}
	}
	require.Greater(t, checked, 30)
}
