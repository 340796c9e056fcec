package larksecrets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

const (
	storeAppID     = "cli_store0a1b2c3d4e5f"
	storeSecret    = "st0reS3cr3tS3cr3tAbCdEf0123456"
	storeVerify    = "v3rificationT0kenOfTheStoreApp"
	storeEncrypt   = "encryptKeyOfTheStoreApp0123456"
	tenantA        = "2ed263bf32cf1651"
	tenantB        = "736588c92lxf175d"
	revokeSubEvent = larkemu.EventUserTokenRevoked
)

// newStoreTestEnv is newTestEnv with an emulator that pushes tickets only when told to (no hourly
// schedule within a test's fake hours) and never retries a failed delivery, plus a stand-in for
// Vault's HTTP listener in front of events/<app_id>, so that the emulator's real event deliveries
// reach the backend.
func newStoreTestEnv(t *testing.T) *testEnv {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	emu, ts := larkemu.NewTestServer(t, larkemu.Options{
		Clock:            clk,
		Apps:             map[string]string{testAppID: testSecret},
		TicketInterval:   1000 * time.Hour,
		EventRetryDelays: []time.Duration{},
		EventTimeout:     10 * time.Second, // the race detector slows the backend down
	})
	env := &testEnv{t: t, storage: &areaCheck{Storage: &logical.InmemStorage{}, t: t}, clock: clk, emu: emu, emuURL: ts.URL}
	env.system = &logical.StaticSystemView{DefaultLeaseTTLVal: 24 * time.Hour, MaxLeaseTTLVal: 768 * time.Hour}
	env.b = env.newBackend(ts.Client())
	front := httptest.NewServer(vaultFront{env: env})
	t.Cleanup(front.Close)
	frontURLs.Store(env, front.URL)
	return env
}

// frontURLs maps an env to its stand-in listener (testEnv is shared with other tests and has no
// field for it).
var frontURLs sync.Map

// eventURL is the URL Lark posts an app's events to: Vault's listener + /v1/lark/events/<app_id>.
func (e *testEnv) eventURL(appID string) string {
	u, _ := frontURLs.Load(e)
	return u.(string) + "/v1/lark/events/" + appID
}

// vaultFront does what Vault's HTTP layer does with a request to an unauthenticated path of the
// mount: parse the JSON body into a map (numbers as json.Number), route it as an update, and turn a
// raw response into exactly that status and body.
type vaultFront struct{ env *testEnv }

func (f vaultFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/lark/")
	if !ok || r.Method != http.MethodPost {
		http.Error(w, "not routed", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var data map[string]interface{}
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&data); err != nil {
			http.Error(w, `{"errors":["failed to parse JSON input"]}`, http.StatusBadRequest)
			return
		}
	}
	resp, err := f.env.b.HandleRequest(r.Context(), &logical.Request{
		Operation: logical.UpdateOperation, Path: path, Data: data, Storage: f.env.storage, MountPoint: "lark/",
	})
	var coded logical.HTTPCodedError
	switch {
	case errors.As(err, &coded):
		http.Error(w, coded.Error(), coded.Code())
	case errors.Is(err, logical.ErrReadOnly):
		http.Error(w, "read only", http.StatusServiceUnavailable)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	case resp == nil:
		w.WriteHeader(http.StatusNoContent)
	case resp.Data[logical.HTTPStatusCode] != nil:
		w.Header().Set("Content-Type", resp.Data[logical.HTTPContentType].(string))
		w.WriteHeader(resp.Data[logical.HTTPStatusCode].(int))
		_, _ = w.Write(resp.Data[logical.HTTPRawBody].([]byte))
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]interface{}{"data": resp.Data})
	}
}

// addStoreApp registers the store app at the emulator (event URL pointing at the backend, both
// event secrets, subscribed to app_open, the given tenants installed silently) and in Vault.
func (e *testEnv) addStoreApp(encryptKey string, tenants ...string) {
	e.t.Helper()
	require.NoError(e.t, e.emu.RegisterApp(larkemu.App{
		ID: storeAppID, Secret: storeSecret, AppType: larkemu.AppTypeStore, EventURL: e.eventURL(storeAppID),
		VerificationToken: storeVerify, EncryptKey: encryptKey, EventTypes: []string{larkemu.EventAppOpen}, Tenants: tenants,
	}))
	e.mustWrite("apps/"+storeAppID, map[string]interface{}{
		"app_secret": storeSecret, "base_url": e.emuURL, "app_type": "store",
		"verification_token": storeVerify, "encrypt_key": encryptKey,
	})
}

// giveTicket has the emulator push a fresh app_ticket now and checks that Vault took it.
func (e *testEnv) giveTicket(appID string) larkemu.EventDelivery {
	e.t.Helper()
	_, d, err := e.emu.PushAppTicket(appID)
	require.NoError(e.t, err)
	require.NotNil(e.t, d)
	require.Equal(e.t, larkemu.DeliveryDelivered, d.State, "ticket delivery: %+v", d.Attempts)
	return *d
}

// storageSnapshot is every key and value in storage, to assert that a refused request changed
// nothing at all.
func (e *testEnv) storageSnapshot() map[string]string {
	e.t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	var walk func(prefix string)
	walk = func(prefix string) {
		keys, err := e.storage.List(ctx, prefix)
		require.NoError(e.t, err)
		for _, k := range keys {
			if strings.HasSuffix(k, "/") {
				walk(prefix + k)
				continue
			}
			v, err := e.storage.Get(ctx, prefix+k)
			require.NoError(e.t, err)
			if v != nil {
				out[prefix+k] = string(v.Value)
			}
		}
	}
	walk("")
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// lastAttempt is a delivery's last attempt.
func lastAttempt(t *testing.T, d larkemu.EventDelivery) larkemu.DeliveryAttempt {
	t.Helper()
	require.NotEmpty(t, d.Attempts)
	return d.Attempts[len(d.Attempts)-1]
}

// codedStatus is the HTTP status a backend error carries.
func codedStatus(t *testing.T, err error) int {
	t.Helper()
	var coded logical.HTTPCodedError
	require.True(t, errors.As(err, &coded), "not a coded error: %v", err)
	return coded.Code()
}
