package larksecrets

// OpenBao runs this plugin unmodified (docs/operator-guide.md, "OpenBao"), but its plugin host
// answers fewer of the Vault SDK's gRPC calls than Vault does. Read from OpenBao's source at
// v2.6.2 and at main df6ce2ce (the same in both):
//
//   - sdk/plugin/pb/backend.proto, service SystemView: 13 RPCs (openBaoSystemViewRPCs). The Vault
//     SDK this plugin is built with (v0.25.1, plugin/pb/backend.proto) has 5 more:
//     GenerateIdentityToken, GetRotationInformation, RegisterRotationJob,
//     RegisterRotationJobWithResponse and DeregisterRotationJob. Called from the plugin, each
//     fails with gRPC code Unimplemented.
//   - sdk/plugin/grpc_backend_client.go (Setup) serves only pb.SystemView and pb.Storage on the
//     broker connection: no pb.Events (SendEvent) and no pb.Observations (RecordObservation).
//
// The plugin sends events (events.go), best effort: on OpenBao each send fails and is ignored.
// These tests keep it that way: the plugin calls none of the missing SystemView methods and no
// observation, and a failing events service changes nothing it does.

import (
	"bytes"
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/pluginutil"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin/pb"
	"github.com/hashicorp/vault/sdk/rotation"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// openBaoSystemViewRPCs is service SystemView of OpenBao's sdk/plugin/pb/backend.proto.
var openBaoSystemViewRPCs = []string{
	"DefaultLeaseTTL", "MaxLeaseTTL", "Tainted", "CachingDisabled", "ReplicationState", "ResponseWrapData",
	"MlockEnabled", "LocalMount", "EntityInfo", "PluginEnv", "GroupsForEntity", "GeneratePasswordFromPolicy",
	"ClusterInfo",
}

// openBaoStorageRPCs is service Storage of the same file (a superset of the Vault SDK's).
var openBaoStorageRPCs = []string{
	"List", "ListPage", "Get", "Put", "Delete", "IsTransactional", "BeginReadOnlyTx", "BeginTx", "Commit", "Rollback",
}

// openBaoMissingSystemView are the Vault SDK's SystemView RPCs OpenBao does not serve, by the name
// of the logical.SystemView method that makes each call (the same names).
var openBaoMissingSystemView = []string{
	"GenerateIdentityToken", "GetRotationInformation", "RegisterRotationJob",
	"RegisterRotationJobWithResponse", "DeregisterRotationJob",
}

func methodNames(desc grpc.ServiceDesc) []string {
	var out []string
	for _, m := range desc.Methods {
		out = append(out, m.MethodName)
	}
	return out
}

// The lists above are what the Vault SDK in go.mod asks of its host: an SDK upgrade that adds a
// SystemView or Storage call fails here until it is looked up in OpenBao's source and classified.
func TestOpenBaoServesTheSDKCallsListedHere(t *testing.T) {
	var missing []string
	for _, m := range methodNames(pb.SystemView_ServiceDesc) {
		if !slices.Contains(openBaoSystemViewRPCs, m) {
			missing = append(missing, m)
		}
	}
	require.ElementsMatch(t, openBaoMissingSystemView, missing,
		"SystemView RPCs of the Vault SDK that OpenBao's backend.proto does not have")
	for _, m := range methodNames(pb.Storage_ServiceDesc) {
		require.Contains(t, openBaoStorageRPCs, m, "Storage RPC %s of the Vault SDK", m)
	}
	// The two services OpenBao's broker does not serve at all.
	require.Equal(t, "pb.Events", pb.Events_ServiceDesc.ServiceName)
	require.Equal(t, "pb.Observations", pb.Observations_ServiceDesc.ServiceName)
}

// openBaoSystemView is Vault's SystemView as the plugin sees it on OpenBao: the calls OpenBao
// does not serve fail with Unimplemented, as they do through gRPC, and are recorded.
type openBaoSystemView struct {
	*logical.StaticSystemView
	mu     sync.Mutex
	called []string
}

func (v *openBaoSystemView) unimplemented(method string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.called = append(v.called, method)
	return status.Errorf(codes.Unimplemented, "unknown method %s for service pb.SystemView", method)
}

func (v *openBaoSystemView) calls() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.called)
}

func (v *openBaoSystemView) GenerateIdentityToken(context.Context, *pluginutil.IdentityTokenRequest) (*pluginutil.IdentityTokenResponse, error) {
	return nil, v.unimplemented("GenerateIdentityToken")
}

func (v *openBaoSystemView) GetRotationInformation(context.Context, *rotation.RotationInfoRequest) (*rotation.RotationInfoResponse, error) {
	return nil, v.unimplemented("GetRotationInformation")
}

func (v *openBaoSystemView) RegisterRotationJob(context.Context, *rotation.RotationJobConfigureRequest) (string, error) {
	return "", v.unimplemented("RegisterRotationJob")
}

func (v *openBaoSystemView) RegisterRotationJobWithResponse(context.Context, *rotation.RotationJobConfigureRequest) (*rotation.RotationInfo, error) {
	return nil, v.unimplemented("RegisterRotationJobWithResponse")
}

func (v *openBaoSystemView) DeregisterRotationJob(context.Context, *rotation.RotationJobDeregisterRequest) error {
	return v.unimplemented("DeregisterRotationJob")
}

// The double overrides every missing call (a method promoted from StaticSystemView would not be
// recorded, and the test below would then see nothing).
func TestOpenBaoSystemViewDoubleCoversEveryMissingCall(t *testing.T) {
	v := &openBaoSystemView{StaticSystemView: &logical.StaticSystemView{}}
	ctx := context.Background()
	_, err1 := v.GenerateIdentityToken(ctx, nil)
	_, err2 := v.GetRotationInformation(ctx, nil)
	_, err3 := v.RegisterRotationJob(ctx, nil)
	_, err4 := v.RegisterRotationJobWithResponse(ctx, nil)
	err5 := v.DeregisterRotationJob(ctx, nil)
	for _, err := range []error{err1, err2, err3, err4, err5} {
		require.Equal(t, codes.Unimplemented, status.Code(err))
	}
	require.ElementsMatch(t, openBaoMissingSystemView, v.calls())
}

// eventsOverGRPC sends events the way the Vault SDK's plugin side does (a pb.Events client on the
// broker connection), to a gRPC server that, like OpenBao's broker, has no pb.Events service.
type eventsOverGRPC struct {
	client pb.EventsClient
	mu     sync.Mutex
	sent   []string
	errs   []error
}

func newOpenBaoEvents(t *testing.T) *eventsOverGRPC {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer() // OpenBao registers pb.SystemView and pb.Storage here; neither is used by SendEvent
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///openbao-broker",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return &eventsOverGRPC{client: pb.NewEventsClient(conn)}
}

func (e *eventsOverGRPC) SendEvent(ctx context.Context, eventType logical.EventType, ev *logical.EventData) error {
	_, err := e.client.SendEvent(ctx, &pb.SendEventRequest{EventType: string(eventType), Event: ev})
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sent = append(e.sent, string(eventType))
	e.errs = append(e.errs, err)
	return err
}

// syncBuffer is a log sink for a backend that logs from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// concretePath turns a path pattern into a request path with test values for its fields.
var patternField = regexp.MustCompile(`\(\?P<([a-z_]+)>[^)]*\)`)

func concretePath(pattern string) string {
	p := patternField.ReplaceAllStringFunc(pattern, func(m string) string {
		switch patternField.FindStringSubmatch(m)[1] {
		case "app_id":
			return testAppID
		case "user":
			return "alice"
		case "tenant_key":
			return tenantA
		}
		return "x"
	})
	return strings.TrimSuffix(strings.TrimSuffix(p, "$"), "/?")
}

// TestBackendWorksWithWhatOpenBaoServes drives the backend as on OpenBao, through every path and
// the sweep: the SystemView fails the calls OpenBao lacks, and every event goes to a gRPC
// connection without an events service. The plugin must call none of the missing methods, and
// its events, which it does send, must fail without changing what it answers or stores.
func TestBackendWorksWithWhatOpenBaoServes(t *testing.T) {
	env := newStoreTestEnv(t)
	sys := &openBaoSystemView{StaticSystemView: env.system}
	events := newOpenBaoEvents(t)
	logs := &syncBuffer{}
	b := newBackend(env.clock, env.b.sessions.client)
	require.NoError(t, b.setup(context.Background(), &logical.BackendConfig{
		Logger:       hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}),
		System:       sys,
		StorageView:  env.storage,
		EventsSender: events,
	}))
	env.b = b

	// Settings, an app with OAuth and Lark events, its app and tenant tokens.
	env.mustWrite("config", map[string]interface{}{"lease_mode": "lease"})
	env.addOAuthApp()
	env.addEventsToTestApp()
	for _, p := range []string{"config", "apps/" + testAppID, "app-token/" + testAppID, "tenant-token/" + testAppID} {
		resp, err := env.read(p)
		require.NoError(t, err, p)
		require.False(t, resp.IsError(), "%s: %v", p, resp.Error())
	}

	// A person authorizes through the callback (event lark/user-authorized), and reads.
	env.grantUser("alice")
	resp, err := env.read("user-token/" + testAppID + "/alice")
	require.NoError(t, err)
	require.NotEmpty(t, resp.Data["access_token"])

	// An entity-backed authorization: the identity comes from the entity's alias (EntityInfo).
	const accessor = "auth_oidc_0a1b2c3d"
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"identity_alias_mount": accessor})
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "erin"}))
	env.system.EntityVal = &logical.Entity{ID: "entity-erin", Aliases: []*logical.Alias{{MountAccessor: accessor, Name: env.emu.OpenID(testAppID, "erin")}}}
	resp, err = env.authorizeAs("erin", "entity-erin", nil)
	require.NoError(t, err)
	require.False(t, resp.IsError(), "%v", resp.Error())
	code, page := env.openAt(resp) // erin is signed in at Lark (AddUser)
	require.Equal(t, http.StatusOK, code, page)
	require.Equal(t, grantStateOK, env.onDisk("erin").State)

	// Imported grants: carol's ends at Lark and the sweep finds out when it refreshes (event
	// lark/reauth-required from a failed refresh); dave's is revoked by an administrator, which
	// Lark reports through the event webhook (event lark/reauth-required from the webhook).
	for _, u := range []string{"carol", "dave"} {
		require.NoError(t, env.emu.AddUser(larkemu.User{UserID: u}))
		env.importGrant(u, u, 1)
	}
	_, err = env.emu.ExpireGrants(larkemu.GrantSelector{AppID: testAppID, UserID: "carol"})
	require.NoError(t, err)
	n, err := env.emu.RevokeGrants(larkemu.GrantSelector{AppID: testAppID, UserID: "dave", Reason: larkemu.RevokeReasonAdministrator})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	env.clock.Advance(3 * time.Hour)
	_, err = env.read("user-token/" + testAppID + "/carol")
	require.Error(t, err, "carol's grant ended at Lark")
	env.sweep()
	require.Equal(t, grantStateReauthRequired, env.onDisk("carol").State)
	require.Equal(t, grantStateReauthRequired, env.onDisk("dave").State)
	require.Equal(t, "revoked", env.onDisk("dave").ReauthEnd)
	require.Equal(t, grantStateOK, env.onDisk("alice").State)

	// A store app with a pushed ticket and a tenant token.
	env.addStoreApp(storeEncrypt, tenantA)
	env.giveTicket(storeAppID)
	resp, err = env.read("tenant-token/" + storeAppID + "/" + tenantA)
	require.NoError(t, err)
	require.NotEmpty(t, resp.Data["access_token"])

	// Reads and lists an operator makes, path-help, metrics.
	for _, c := range []struct {
		op   logical.Operation
		path string
	}{
		{logical.ListOperation, "apps/"}, {logical.ListOperation, "user-token/" + testAppID + "/"},
		{logical.ListOperation, "slots/" + testAppID + "/"}, {logical.ReadOperation, "slots/" + testAppID + "/alice"},
		{logical.ReadOperation, "reauth"}, {logical.ListOperation, "tenants/" + storeAppID + "/"},
		{logical.UpdateOperation, "sweep"},
	} {
		resp, err := env.do(c.op, c.path, nil)
		require.NoError(t, err, c.path)
		require.False(t, resp != nil && resp.IsError(), "%s %s: %v", c.op, c.path, resp)
	}
	require.NotEmpty(t, env.scrapeMetrics())

	// Every path with every operation it has, and its help, with plain values and no data:
	// most answers are refusals, which is fine; what matters is which host calls they make.
	for _, p := range b.Paths {
		path := concretePath(p.Pattern)
		ops := []logical.Operation{logical.HelpOperation}
		for op := range p.Operations {
			ops = append(ops, op)
		}
		for _, op := range ops {
			_, _ = env.do(op, path, map[string]interface{}{})
		}
	}
	env.clock.Advance(25 * time.Hour)
	env.sweep()

	require.Empty(t, sys.calls(), "the plugin called SystemView methods OpenBao does not serve")

	events.mu.Lock()
	sent, errs := slices.Clone(events.sent), slices.Clone(events.errs)
	events.mu.Unlock()
	require.Contains(t, sent, "lark/user-authorized")
	require.GreaterOrEqual(t, strings.Count(strings.Join(sent, " "), "lark/reauth-required"), 2, "%v", sent)
	for _, err := range errs {
		require.Equal(t, codes.Unimplemented, status.Code(err), "%v", err)
	}
	require.Contains(t, logs.String(), "event not sent", "the failed send is logged at debug level")
	require.NotContains(t, logs.String(), testSecret)
}

// sdkCallsOpenBaoLacks are names of Vault SDK calls (SystemView methods, the observation recorder,
// the rotation manager's callback) that do nothing but fail on OpenBao.
var sdkCallsOpenBaoLacks = append(slices.Clone(openBaoMissingSystemView), "RecordObservation", "RotateCredential")

// The driving test above can only see the calls its paths reach; this one reads the plugin's
// source (everything but the tests and the emulator) for any use of the calls OpenBao lacks, and
// for events sent anywhere but events.go's best-effort sendEvent.
func TestSourceUsesNoCallOpenBaoLacks(t *testing.T) {
	var files []string
	for _, dir := range []string{".", "lark", "clock", "cmd/vault-plugin-secrets-lark"} {
		matches, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		for _, f := range matches {
			if !strings.HasSuffix(f, "_test.go") {
				files = append(files, f)
			}
		}
	}
	require.Greater(t, len(files), 20)
	fset := token.NewFileSet()
	sendEventFiles := map[string]int{}
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		require.NoError(t, err)
		ast.Inspect(file, func(n ast.Node) bool {
			var name string
			switch n := n.(type) {
			case *ast.SelectorExpr:
				name = n.Sel.Name
			case *ast.KeyValueExpr: // a field set in a composite literal, e.g. RotateCredential: …
				if id, ok := n.Key.(*ast.Ident); ok {
					name = id.Name
				}
			default:
				return true
			}
			if slices.Contains(sdkCallsOpenBaoLacks, name) {
				t.Errorf("%s: uses %s, which OpenBao does not serve (openbao_test.go)", fset.Position(n.Pos()), name)
			}
			if name == "SendEvent" {
				sendEventFiles[f]++
			}
			return true
		})
	}
	require.Equal(t, map[string]int{"events.go": 1}, sendEventFiles,
		"events are sent only through sendEvent in events.go, which ignores a failure (OpenBao has no events service)")
}
