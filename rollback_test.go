package larksecrets

// A storage rollback (issue 17, item 2): Vault's storage restored from a snapshot older than the
// grants' last rotation. Each grant is named as ended by the rollback, and the admins get one alert
// listing them.

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// snapshotStorage copies every entry, as `vault operator raft snapshot save` would.
func snapshotStorage(t *testing.T, s logical.Storage) map[string]*logical.StorageEntry {
	t.Helper()
	ctx := context.Background()
	keys, err := logical.CollectKeys(ctx, s)
	require.NoError(t, err)
	snap := map[string]*logical.StorageEntry{}
	for _, k := range keys {
		e, err := s.Get(ctx, k)
		require.NoError(t, err)
		snap[k] = &logical.StorageEntry{Key: e.Key, Value: append([]byte(nil), e.Value...)}
	}
	return snap
}

// restoreStorage puts a snapshot back, dropping everything written since.
func restoreStorage(t *testing.T, s logical.Storage, snap map[string]*logical.StorageEntry) {
	t.Helper()
	ctx := context.Background()
	keys, err := logical.CollectKeys(ctx, s)
	require.NoError(t, err)
	for _, k := range keys {
		require.NoError(t, s.Delete(ctx, k))
	}
	for _, e := range snap {
		require.NoError(t, s.Put(ctx, e))
	}
}

func TestSnapshotRestoreIsNamedOnEachGrantAndAlertedOnce(t *testing.T) {
	env := newTestEnv(t)
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "admin"}))
	admin := env.emu.OpenID(testAppID, "admin")
	env.addOAuthApp()
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"notify_locale": "en_us", "notify_open_ids": admin})
	env.mustWrite("config", map[string]interface{}{"notify_schedule": "* * * * *"})
	for _, slot := range []string{"a", "b", "c"} {
		env.grantUser(slot)
	}
	snap := snapshotStorage(t, env.storage)

	// Reads rotate grants a and b after the snapshot; c is untouched.
	env.clock.Advance(2 * time.Hour)
	for _, slot := range []string{"a", "b"} {
		_, err := env.read("user-token/" + testAppID + "/" + slot)
		require.NoError(t, err)
	}

	restoreStorage(t, env.storage, snap)
	env.b = env.newBackend(nil) // a restore reloads the mount

	// Each rotated grant ends at its next refresh, and says why.
	for _, slot := range []string{"a", "b"} {
		_, err := env.read("user-token/" + testAppID + "/" + slot)
		require.Error(t, err)
		require.Equal(t, http.StatusConflict, codedStatus(t, err))
		require.ErrorContains(t, err, "restored from an older snapshot or backup")
		g := env.onDisk(slot)
		require.Equal(t, string(endRolledBack), g.ReauthEnd)
	}
	// The grant the snapshot had right is fine.
	_, err := env.read("user-token/" + testAppID + "/c")
	require.NoError(t, err)

	// The sweep raises one alert listing both, on the notification schedule, once.
	env.sweep()
	env.clock.Advance(time.Minute)
	env.sweep()
	env.clock.Advance(time.Minute)
	env.sweep()
	var alerts, ended []larkemu.Message
	for _, m := range env.emu.Messages() {
		switch {
		case strings.Contains(m.Text, "Storage rollback suspected"):
			alerts = append(alerts, m)
		case strings.Contains(m.Text, "has ended"):
			ended = append(ended, m)
		}
	}
	require.Len(t, alerts, 1, "one alert for the app")
	require.Equal(t, admin, alerts[0].ReceiveID)
	require.Contains(t, alerts[0].Text, "2 grants")
	require.Contains(t, alerts[0].Text, "slots a, b")
	require.Contains(t, alerts[0].Text, "Backup and restore")
	require.Len(t, ended, 2, "each grant's own notice")
	for _, m := range ended {
		require.Contains(t, m.Text, "restored from an older snapshot or backup")
	}
	require.Zero(t, env.emu.Calls(larkemu.EndpointRefreshReuse)-2, "Lark saw exactly the two spent tokens presented, once each")
}
