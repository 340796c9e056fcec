package larksecrets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

func TestAppLifecycle(t *testing.T) {
	env := newTestEnv(t)
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"app_secret": testSecret, "brand": "lark"})

	resp, err := env.read("apps/" + testAppID)
	require.NoError(t, err)
	sum := sha256.Sum256([]byte(testSecret))
	require.Equal(t, "sha256:"+hex.EncodeToString(sum[:])[:8], resp.Data["app_secret_fingerprint"])
	require.Equal(t, true, resp.Data["app_secret_set"])
	require.Equal(t, "lark", resp.Data["brand"])
	require.Equal(t, "https://open.larksuite.com", resp.Data["effective_base_url"])
	require.NotContains(t, resp.Data, "app_secret")
	for k, v := range resp.Data {
		require.NotContains(t, fmt.Sprint(v), testSecret, "field %s shows the secret", k)
	}

	// An update without app_secret keeps the secret.
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"brand": "feishu", "base_url": "http://127.0.0.1:9"})
	resp, err = env.read("apps/" + testAppID)
	require.NoError(t, err)
	require.Equal(t, "feishu", resp.Data["brand"])
	require.Equal(t, "http://127.0.0.1:9", resp.Data["effective_base_url"])
	require.Equal(t, "sha256:"+hex.EncodeToString(sum[:])[:8], resp.Data["app_secret_fingerprint"])

	// Empty base_url restores the brand's host.
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"base_url": ""})
	resp, err = env.read("apps/" + testAppID)
	require.NoError(t, err)
	require.Equal(t, "https://open.feishu.cn", resp.Data["effective_base_url"])

	resp, err = env.do(logical.ListOperation, "apps/", nil)
	require.NoError(t, err)
	require.Equal(t, []string{testAppID}, resp.Data["keys"])

	_, err = env.do(logical.DeleteOperation, "apps/"+testAppID, nil)
	require.NoError(t, err)
	resp, err = env.read("apps/" + testAppID)
	require.NoError(t, err)
	require.Nil(t, resp)
}

func TestAppBadInputChangesNothing(t *testing.T) {
	cases := []struct {
		name string
		path string
		data map[string]interface{}
		want string
	}{
		{"no cli_ prefix", "apps/app_x", map[string]interface{}{"app_secret": "x1"}, "not a Lark app id"},
		{"slash", "apps/cli_a/b", map[string]interface{}{"app_secret": "x1"}, "not a Lark app id"},
		{"dot dot", "apps/cli_..", map[string]interface{}{"app_secret": "x1"}, "not a Lark app id"},
		{"space", "apps/cli_a b", map[string]interface{}{"app_secret": "x1"}, "not a Lark app id"},
		{"500 characters", "apps/cli_" + strings.Repeat("a", 500), map[string]interface{}{"app_secret": "x1"}, "too long"},
		{"missing secret", "apps/" + testAppID, map[string]interface{}{}, "app_secret is required"},
		{"empty secret", "apps/" + testAppID, map[string]interface{}{"app_secret": ""}, "must not be empty"},
		{"secret with newline", "apps/" + testAppID, map[string]interface{}{"app_secret": "abc\n"}, "whitespace"},
		{"secret with unicode", "apps/" + testAppID, map[string]interface{}{"app_secret": "pässword"}, "non-printable"},
		{"huge secret", "apps/" + testAppID, map[string]interface{}{"app_secret": strings.Repeat("x", 257)}, "too long"},
		{"unknown brand", "apps/" + testAppID, map[string]interface{}{"app_secret": "x1", "brand": "slack"}, "brand"},
		{"brand wrong case", "apps/" + testAppID, map[string]interface{}{"app_secret": "x1", "brand": "Feishu"}, "brand"},
		{"ftp url", "apps/" + testAppID, map[string]interface{}{"app_secret": "x1", "base_url": "ftp://x"}, "base_url"},
		{"url without host", "apps/" + testAppID, map[string]interface{}{"app_secret": "x1", "base_url": "http://"}, "base_url"},
		{"url with query", "apps/" + testAppID, map[string]interface{}{"app_secret": "x1", "base_url": "http://h/?q=1"}, "base_url"},
		{"huge url", "apps/" + testAppID, map[string]interface{}{"app_secret": "x1", "base_url": "http://h/" + strings.Repeat("a", 5000)}, "base_url"},
		{"unknown field", "apps/" + testAppID, map[string]interface{}{"app_secret": "x1", "app_scret": "x"}, "unknown field(s) app_scret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			resp, err := env.write(tc.path, tc.data)
			require.NoError(t, err)
			require.NotNil(t, resp)
			require.True(t, resp.IsError(), "want an error response")
			require.Contains(t, resp.Error().Error(), tc.want)
			require.NotContains(t, resp.Error().Error(), "x1", "the error echoes the secret")
			keys, err := env.storage.List(context.Background(), "")
			require.NoError(t, err)
			require.Empty(t, keys, "a refused write stored something")
		})
	}
}

func TestFailedUpdateKeepsStoredApp(t *testing.T) {
	env := newTestEnv(t)
	env.addApp()
	before, err := env.storage.Get(context.Background(), "apps/"+testAppID)
	require.NoError(t, err)
	for _, data := range []map[string]interface{}{
		{"app_secret": "bad secret"},
		{"brand": "nope"},
		{"base_url": "mailto:x@y"},
		{"app_secret": "fine", "oops": 1},
	} {
		resp, err := env.write("apps/"+testAppID, data)
		require.NoError(t, err)
		require.True(t, resp.IsError())
	}
	after, err := env.storage.Get(context.Background(), "apps/"+testAppID)
	require.NoError(t, err)
	require.Equal(t, before.Value, after.Value)
}

func TestSecretChangeDropsCachedTokens(t *testing.T) {
	env := newTestEnv(t)
	env.addApp()
	_, err := env.read("app-token/" + testAppID)
	require.NoError(t, err)
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointAppAccessToken))

	// Rewriting the same settings keeps the cache.
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"app_secret": testSecret})
	_, err = env.read("app-token/" + testAppID)
	require.NoError(t, err)
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointAppAccessToken))

	// A new secret drops it, in memory and in storage.
	require.NoError(t, env.emu.AddApp(testAppID, testSecret+"New"))
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"app_secret": testSecret + "New"})
	stored, err := env.storage.Get(context.Background(), tokenStorageKey(testAppID, kindApp))
	require.NoError(t, err)
	require.Nil(t, stored)
	_, err = env.read("app-token/" + testAppID)
	require.NoError(t, err)
	require.Equal(t, 2, env.emu.Calls(larkemu.EndpointAppAccessToken))
}

func TestDeleteAppForgetsTokens(t *testing.T) {
	env := newTestEnv(t)
	env.addApp()
	_, err := env.read("tenant-token/" + testAppID)
	require.NoError(t, err)
	_, err = env.do(logical.DeleteOperation, "apps/"+testAppID, nil)
	require.NoError(t, err)
	keys, err := env.storage.List(context.Background(), tokenStoragePrefix+testAppID+"/")
	require.NoError(t, err)
	require.Empty(t, keys)
	_, err = env.read("tenant-token/" + testAppID)
	require.Error(t, err)
	require.Contains(t, err.Error(), "not configured")
}
