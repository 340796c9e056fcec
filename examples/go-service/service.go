package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"time"

	lark "github.com/larksuite/oapi-sdk-go/v3"
	larkcore "github.com/larksuite/oapi-sdk-go/v3/core"
	larkim "github.com/larksuite/oapi-sdk-go/v3/service/im/v1"
)

// larkTimeout bounds one call to Lark.
const larkTimeout = 15 * time.Second

// maxBody bounds a request body of /notify.
const maxBody = 64 << 10

type service struct {
	cfg    config
	client *lark.Client
	tenant *tokenFile
	user   *tokenFile // nil: no user token configured, /me is off
	log    *log.Logger
}

// newLarkClient builds the SDK client the way a service without the app secret must:
//
//   - no app secret (""), and WithEnableTokenCache(false): the SDK then fetches no token of its
//     own and keeps none in its process-wide cache; it sends exactly the token each call passes
//     with larkcore.WithTenantAccessToken / WithUserAccessToken, exactly once, and a call without
//     one fails in the SDK ("AppSecret is empty") instead of reaching Lark. With the cache on,
//     SDK versions before the fix of larksuite/oapi-sdk-go#198 replaced a per-request tenant
//     token by one they fetched themselves (with the secret this service does not have), and
//     v3.13.0 still sends a request Lark refused for its token a second time.
//   - WithOpenBaseUrl: Lark's OpenAPI host, or the emulator's address in development.
//   - log level Warn: the SDK logs "client ready" and every request path at Info and Debug.
func newLarkClient(cfg config) *lark.Client {
	return lark.NewClient(cfg.appID, "",
		lark.WithEnableTokenCache(false),
		lark.WithOpenBaseUrl(cfg.baseURL),
		lark.WithReqTimeout(larkTimeout),
		lark.WithLogLevel(larkcore.LogLevelWarn),
	)
}

func newService(cfg config, logger *log.Logger) *service {
	s := &service{cfg: cfg, client: newLarkClient(cfg), tenant: newTokenFile(cfg.tenantTokenFile), log: logger}
	if cfg.userTokenFile != "" {
		s.user = newTokenFile(cfg.userTokenFile)
	}
	return s
}

// larkError is Lark's refusal of a call: its code and message, never the request (which carries
// the token).
type larkError struct {
	code int
	msg  string
}

func (e *larkError) Error() string { return fmt.Sprintf("Lark answered code %d: %s", e.code, e.msg) }

// notify sends text to receiveID as the app, with the tenant token in the file now.
func (s *service) notify(ctx context.Context, text, receiveID, uuid string) (messageID, senderType string, err error) {
	token, err := s.tenant.current()
	if err != nil {
		return "", "", err
	}
	content, err := json.Marshal(map[string]string{"text": text})
	if err != nil {
		return "", "", err
	}
	body := larkim.NewCreateMessageReqBodyBuilder().ReceiveId(receiveID).MsgType("text").Content(string(content))
	if uuid != "" {
		body.Uuid(uuid)
	}
	req := larkim.NewCreateMessageReqBuilder().ReceiveIdType(s.cfg.receiveIDType).Body(body.Build()).Build()
	resp, err := s.client.Im.Message.Create(ctx, req, larkcore.WithTenantAccessToken(token))
	if err != nil {
		return "", "", fmt.Errorf("calling Lark: %w", err)
	}
	if !resp.Success() {
		return "", "", &larkError{code: resp.Code, msg: resp.Msg}
	}
	if resp.Data == nil || resp.Data.MessageId == nil {
		return "", "", errors.New("the answer from Lark carries no message_id")
	}
	if resp.Data.Sender != nil && resp.Data.Sender.SenderType != nil {
		senderType = *resp.Data.Sender.SenderType
	}
	return *resp.Data.MessageId, senderType, nil
}

// profile is what /me answers: the user of the user token, as Lark's user_info reports them.
type profile struct {
	Name      string `json:"name"`
	OpenID    string `json:"open_id"`
	UnionID   string `json:"union_id"`
	TenantKey string `json:"tenant_key"`
}

// me reads the profile of the user whose token is in the user token file now.
func (s *service) me(ctx context.Context) (profile, error) {
	token, err := s.user.current()
	if err != nil {
		return profile{}, err
	}
	resp, err := s.client.Authen.UserInfo.Get(ctx, larkcore.WithUserAccessToken(token))
	if err != nil {
		return profile{}, fmt.Errorf("calling Lark: %w", err)
	}
	if !resp.Success() {
		return profile{}, &larkError{code: resp.Code, msg: resp.Msg}
	}
	if resp.Data == nil {
		return profile{}, errors.New("the answer from Lark carries no data")
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	d := resp.Data
	return profile{Name: str(d.Name), OpenID: str(d.OpenId), UnionID: str(d.UnionId), TenantKey: str(d.TenantKey)}, nil
}

type notifyRequest struct {
	Text      string `json:"text"`
	ReceiveID string `json:"receive_id"`
	UUID      string `json:"uuid"`
}

func (s *service) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	mux.HandleFunc("GET /me", func(w http.ResponseWriter, r *http.Request) {
		if s.user == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no user token: set LARK_USER_TOKEN_FILE"})
			return
		}
		p, err := s.me(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("POST /notify", func(w http.ResponseWriter, r *http.Request) {
		var msg notifyRequest
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil || json.Unmarshal(raw, &msg) != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `the body must be JSON of at most 64 KiB: {"text":"…"}`})
			return
		}
		if msg.ReceiveID == "" {
			msg.ReceiveID = s.cfg.receiveID
		}
		if msg.Text == "" || msg.ReceiveID == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `need "text", and "receive_id" unless LARK_RECEIVE_ID is set`})
			return
		}
		id, sender, err := s.notify(r.Context(), msg.Text, msg.ReceiveID, msg.UUID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.log.Printf("notify: sent %s", id)
		writeJSON(w, http.StatusOK, map[string]string{"message_id": id, "sender_type": sender})
	})
	return mux
}

// fail answers an error: 503 while Agent has not rendered the token file (temporary), 502 for
// everything Lark refused or that went wrong on the way to it.
func (s *service) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadGateway
	if errors.Is(err, errTokenFile) {
		status = http.StatusServiceUnavailable
	}
	s.log.Printf("%s %s: %v", r.Method, r.URL.Path, err)
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
