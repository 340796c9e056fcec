// Command go-service is a small HTTP service on Lark's official Go SDK
// (github.com/larksuite/oapi-sdk-go/v3) that holds no app secret. Vault keeps the secret; Vault
// Agent renders the app's tenant access token and a user access token into files; every call
// reads its token from the file (again whenever Agent has replaced it) and hands it to the SDK
// explicitly, with the SDK's own token fetching and cache turned off. See README.md.
//
//	POST /notify  {"text":"…","receive_id":"…"?,"uuid":"…"?}  send a text message as the app
//	GET  /me                                                 the user of the user token (user_info)
//	GET  /healthz
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// config is what the service reads from its environment; the names match examples/node-bot.
type config struct {
	appID           string
	baseURL         string
	tenantTokenFile string
	userTokenFile   string
	receiveIDType   string
	receiveID       string
	listen          string
}

func configFromEnv(getenv func(string) string) (config, error) {
	or := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	c := config{
		// The app id is not a secret; the SDK wants it to name the app.
		appID: getenv("LARK_APP_ID"),
		// Lark's OpenAPI host: https://open.feishu.cn (Feishu) or https://open.larksuite.com (Lark).
		baseURL:         or("LARK_BASE_URL", "https://open.feishu.cn"),
		tenantTokenFile: or("LARK_TENANT_TOKEN_FILE", "/run/lark/tenant-token"),
		userTokenFile:   getenv("LARK_USER_TOKEN_FILE"),
		receiveIDType:   or("LARK_RECEIVE_ID_TYPE", "open_id"),
		receiveID:       getenv("LARK_RECEIVE_ID"),
		listen:          or("SERVICE_LISTEN", "127.0.0.1:8080"),
	}
	if c.appID == "" {
		return c, errors.New("set LARK_APP_ID to the app id")
	}
	return c, nil
}

func main() {
	logger := log.New(os.Stderr, "go-service: ", log.LstdFlags)
	cfg, err := configFromEnv(os.Getenv)
	if err != nil {
		logger.Print(err)
		os.Exit(2)
	}
	svc := newService(cfg, logger)

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		logger.Print(err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: svc.routes(), ReadHeaderTimeout: 10 * time.Second}
	logger.Printf("listening on http://%s (app %s, Lark at %s)", ln.Addr(), cfg.appID, cfg.baseURL)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Print(fmt.Errorf("serving: %w", err))
		os.Exit(1)
	}
}
