// Command lark-emulator runs the in-memory Lark of package larkemu as a process, for `make dev` and
// the end-to-end tests, which need a Lark beside a real Vault and cannot reach the real one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

const usageText = `Usage: lark-emulator [flags]

Serves the Lark endpoints the Vault plugin and Lark's SDKs use (both the "open" and the "accounts" host):
  POST /open-apis/auth/v3/app_access_token/internal
  POST /open-apis/auth/v3/tenant_access_token/internal
  GET  /open-apis/authen/v1/authorize
  POST /open-apis/authen/v2/oauth/token   and   POST /oauth/v3/token   (also device_code polls)
  POST /oauth/v1/revoke
  POST /oauth/v1/device_authorization               (device login, RFC 8628)
  GET  /open-apis/authen/v1/user_info
  POST /open-apis/im/v1/messages?receive_id_type=open_id
  POST /open-apis/auth/v3/app_ticket/resend          (store apps)
  POST /open-apis/auth/v3/app_access_token           (store apps, with the app_ticket)
  POST /open-apis/auth/v3/tenant_access_token        (store apps, per tenant_key)
  POST /open-apis/authen/v1/oidc/access_token, /oidc/refresh_access_token,
       /access_token, /refresh_access_token   (deprecated v1, app token as bearer)

Control API (JSON in and out; see the larkemu package documentation for every field):
  POST   /_emulator/apps              {"app_id","app_secret","refresh_disabled","scopes",
                                       "refresh_token_ttl_seconds","user_token_ttl_seconds",
                                       "app_type":"self_built"|"store","event_url","verification_token",
                                       "encrypt_key","event_types":["app_open","auth.user_access_token.revoked_v4"],
                                       "tenants":[tenant_key…]}
  GET    /_emulator/apps
  DELETE /_emulator/apps/{app_id}
  GET    /_emulator/apps/{app_id}/counters   -> that app's counters and "max_refresh_per_second"
  DELETE /_emulator/apps/{app_id}/counters
  GET    /_emulator/apps/{app_id}/tenants     -> {"tenants":[{"tenant_key","installed_at","tenant_access_token_calls","tokens_issued"}]}
  POST   /_emulator/apps/{app_id}/tenants     {"tenant_key","installer_user_id","silent"}  (sends app_open)
  DELETE /_emulator/apps/{app_id}/tenants/{tenant_key}
  GET    /_emulator/apps/{app_id}/tickets
  POST   /_emulator/apps/{app_id}/tickets     push a new app_ticket now
  GET    /_emulator/apps/{app_id}/events      ?type=…&after=seq  -> every delivery with its attempts
  DELETE /_emulator/apps/{app_id}/events
  POST   /_emulator/apps/{app_id}/events/push {"event"|"raw_body"|"replay_of","encrypt","encrypt_key","retry","pad_bytes"}
  POST   /_emulator/apps/{app_id}/url-verification
  GET    /_emulator/clock             -> {"now","offset_seconds"}
  POST   /_emulator/clock/advance     {"seconds":N}   (N > 0, may be fractional)
  POST   /_emulator/failures          {"endpoint","mode","count","delay_ms","status","reset_seconds","code","msg"}
  GET    /_emulator/failures
  DELETE /_emulator/failures
  GET    /_emulator/counters
  POST   /_emulator/reset             (counters, failures, tokens, grants, messages, user-info-calls; keeps apps and users)
  POST   /_emulator/users             {"user_id","name","en_name","email","open_id","union_id","tenant_key","sign_in"}
  GET    /_emulator/users
  GET    /_emulator/authorize-mode
  POST   /_emulator/authorize-mode    {"mode":"approve"|"deny"}
  GET    /_emulator/grants
  POST   /_emulator/grants            {"app_id","user_id","scopes","authorized_days_ago"}
  POST   /_emulator/grants/revoke     {"grant_id"} or {"app_id","user_id"}, "reason" (sends the revocation event)
  POST   /_emulator/grants/expire     {"grant_id"} or {"app_id","user_id"}
  GET    /_emulator/messages           (each with the sha256 of the token it was sent with)
  DELETE /_emulator/messages
  GET    /_emulator/user-info-calls    (each user_info call: app, sha256 of its token, code answered)
  DELETE /_emulator/user-info-calls
  GET    /_emulator/revoke-mode
  POST   /_emulator/revoke-mode       {"mode":"json"|"empty"}   (empty: a successful revoke is HTTP 200, no body)
  GET    /_emulator/devices            device logins (user codes, status, polls, slow_downs; never device codes)
  POST   /_emulator/device/approve    {"user_code","user_id"}   (user_id: default the signed-in user)
  POST   /_emulator/device/deny       {"user_code","user_id"}

Endpoint names for counters and failures: app_access_token, tenant_access_token, authorize,
oauth_token, code_exchange, refresh, refresh_reuse (counter only), revoke, user_info, messages,
client_credentials, app_ticket_resend, store_app_access_token, store_tenant_access_token,
event_delivery (counter only), authen_v1, device_authorization, device_token, "*".
Failure modes: 5xx, timeout, slow, 429, garbage, truncated, huge, lost_response, late_answer,
gateway_timeout, text, empty, wrong_shape, wrong_types, error.

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

// appFlags collects repeated -app id:secret flags.
type appFlags map[string]string

func (a appFlags) String() string {
	ids := make([]string, 0, len(a))
	for id := range a {
		ids = append(ids, id) // never print the secrets
	}
	return strings.Join(ids, ",")
}

func (a appFlags) Set(v string) error {
	id, secret, ok := strings.Cut(v, ":")
	if !ok || id == "" || secret == "" {
		return errors.New("want app_id:app_secret")
	}
	a[id] = secret
	return nil
}

// durationList is a comma-separated list of durations; "none" is the empty list.
type durationList []time.Duration

func (d *durationList) String() string {
	if d == nil || len(*d) == 0 {
		return "none"
	}
	parts := make([]string, len(*d))
	for i, v := range *d {
		parts[i] = v.String()
	}
	return strings.Join(parts, ",")
}

func (d *durationList) Set(v string) error {
	out := []time.Duration{}
	if v != "none" {
		for _, part := range strings.Split(v, ",") {
			dur, err := time.ParseDuration(strings.TrimSpace(part))
			if err != nil || dur <= 0 {
				return fmt.Errorf("want positive durations separated by commas, or none: %q", part)
			}
			out = append(out, dur)
		}
	}
	*d = out
	return nil
}

// run is main without the process exit, so tests can start and stop the emulator in-process.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("lark-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	apps := appFlags{}
	var opts larkemu.Options
	listen := fs.String("listen", "127.0.0.1:8787", "address to listen on; port 0 picks a free port")
	addrFile := fs.String("addr-file", "", "write the base URL (http://host:port) to this file once listening")
	verbose := fs.Bool("verbose", false, "log one line per Lark request to stderr (never secrets or tokens)")
	fs.Var(apps, "app", "register an app as app_id:app_secret (repeatable)")
	fs.DurationVar(&opts.AppTokenTTL, "app-token-ttl", larkemu.DefaultAppTokenTTL, "lifetime of app/tenant access tokens")
	fs.DurationVar(&opts.ReuseWindow, "reuse-window", larkemu.DefaultReuseWindow, "an app/tenant token with at least this much life left is handed out again")
	fs.DurationVar(&opts.UserTokenTTL, "user-token-ttl", larkemu.DefaultUserTokenTTL, "lifetime of user access tokens")
	fs.DurationVar(&opts.RefreshTokenTTL, "refresh-token-ttl", larkemu.DefaultRefreshTokenTTL, "lifetime of user refresh tokens")
	fs.DurationVar(&opts.GrantMaxAge, "grant-max-age", larkemu.DefaultGrantMaxAge, "how long after authorization a grant can be refreshed")
	fs.DurationVar(&opts.CodeTTL, "code-ttl", larkemu.DefaultCodeTTL, "lifetime of authorization codes")
	fs.DurationVar(&opts.DeviceCodeTTL, "device-code-ttl", larkemu.DefaultDeviceCodeTTL, "lifetime of device-login device and user codes")
	fs.DurationVar(&opts.DeviceInterval, "device-interval", larkemu.DefaultDeviceInterval, "polling interval a device login starts with (slow_down adds 5s)")
	fs.DurationVar(&opts.TicketInterval, "ticket-interval", larkemu.DefaultTicketInterval, "how often store apps with an event URL get a new app_ticket")
	fs.DurationVar(&opts.TicketTTL, "ticket-ttl", larkemu.DefaultTicketTTL, "how long an app_ticket is accepted after it was pushed")
	fs.DurationVar(&opts.EventTimeout, "event-timeout", larkemu.DefaultEventTimeout, "how long an event delivery waits for the receiver's answer")
	retries := durationList(larkemu.DefaultEventRetryDelays)
	fs.Var(&retries, "event-retry-delays", `waits before the retries of a failed event delivery, comma-separated, or "none"`)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		_, _ = fmt.Fprintf(stderr, "lark-emulator: unexpected arguments %q\n", fs.Args())
		return 2
	}
	opts.EventRetryDelays = []time.Duration(retries)
	if *verbose {
		opts.Logger = log.New(stderr, "lark-emulator: ", log.LstdFlags|log.Lmicroseconds)
	}
	emu := larkemu.New(opts)
	for id, secret := range apps {
		if err := emu.AddApp(id, secret); err != nil {
			_, _ = fmt.Fprintf(stderr, "lark-emulator: -app: %v\n", err)
			return 2
		}
	}
	if err := serve(ctx, emu, *listen, *addrFile, stderr); err != nil {
		_, _ = fmt.Fprintf(stderr, "lark-emulator: %v\n", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, emu *larkemu.Server, listen, addrFile string, stderr io.Writer) error {
	if addrFile != "" {
		// A file left over from an earlier run would send waiting scripts to a dead port.
		if err := os.Remove(addrFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	baseURL := "http://" + displayAddr(ln.Addr().(*net.TCPAddr))
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	if addrFile != "" {
		if err := writeFileAtomic(addrFile, baseURL); err != nil {
			_ = srv.Close()
			return err
		}
		defer func() { _ = os.Remove(addrFile) }()
	}
	_, _ = fmt.Fprintf(stderr, "lark-emulator listening on %s\n", baseURL)

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	emu.Close() // let go of requests held by injected timeouts, or Shutdown would wait for them
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// displayAddr turns a wildcard listen address into one a client can dial.
func displayAddr(a *net.TCPAddr) string {
	host := a.IP.String()
	if a.IP == nil || a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, fmt.Sprint(a.Port))
}

// writeFileAtomic renames a complete temporary file into place, so a script polling for the file
// never reads half a URL.
func writeFileAtomic(path, content string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".lark-emulator-addr-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(f.Name()) }() // no-op after a successful rename
	if _, err := f.WriteString(content); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
