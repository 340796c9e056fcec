package larkemu

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Message is a message the emulator accepted, recorded so tests can check what was sent.
type Message struct {
	MessageID     string `json:"message_id"`
	AppID         string `json:"app_id"`
	SenderType    string `json:"sender_type"` // "app" for a tenant token, "user" for a user token
	TenantKey     string `json:"tenant_key"`  // the sender's tenant: a store app's tenant token names its own
	ReceiveIDType string `json:"receive_id_type"`
	ReceiveID     string `json:"receive_id"`
	UserID        string `json:"user_id,omitempty"` // the emulator user it reached; empty for chats
	ChatID        string `json:"chat_id"`
	MsgType       string `json:"msg_type"`
	Content       string `json:"content"`
	// Card is the decoded card of an interactive message; Text is what its reader sees: the text
	// of a text message, or Card.Readable().
	Card       *Card     `json:"card,omitempty"`
	Text       string    `json:"text"`
	UUID       string    `json:"uuid,omitempty"`
	CreateTime time.Time `json:"create_time"`
	// TokenSHA256 is the hex SHA-256 of the bearer token the message was sent with, so a test can
	// tell which token a client used without the emulator handing tokens out.
	TokenSHA256 string `json:"token_sha256"`
}

// messageState is guarded by Server.mu.
type messageState struct {
	cardMode     CardMode
	appCardModes map[string]CardMode // per app, over cardMode
	sent         []Message
	dedup        map[string]dedupEntry // app_id + uuid → the first answer
}

type dedupEntry struct {
	reply messageReply
	at    time.Time
}

func (st *messageState) init() {
	st.sent = nil
	st.cardMode = CardsAccept
	st.appCardModes = map[string]CardMode{}
	st.dedup = make(map[string]dedupEntry)
}

// Message errors (lark-api.md §8), all on HTTP 400.
const (
	msgCodeInvalidParam    = 230001
	msgCodeTooLong         = 230025
	msgCodeInvalidReceiver = 230034
	msgCodeNoAvailability  = 230013
	msgCodeCardFailed      = 230099
)

var messageErrorText = map[int]string{
	msgCodeInvalidParam:    "invalid parameter",
	msgCodeTooLong:         "message is too long",
	msgCodeInvalidReceiver: "receive_id is invalid",
	msgCodeNoAvailability:  "Bot has NO availability to this user.",
	msgCodeCardFailed:      "Failed to create card content, ext=ErrCode: 200621; ErrMsg: parse card json err",
}

var msgTypes = []string{"text", "post", "image", "file", "audio", "media", "sticker", "interactive", "share_chat", "share_user", "system"}

var receiveIDTypes = []string{"open_id", "union_id", "user_id", "email", "chat_id"}

// Content size caps: text up to 150 KB, cards and rich text up to 30 KB.
const (
	maxTextContent = 150 << 10
	maxCardContent = 30 << 10
	maxUUIDLen     = 50
)

type messageSender struct {
	ID         string `json:"id"`
	IDType     string `json:"id_type"`
	SenderType string `json:"sender_type"`
	TenantKey  string `json:"tenant_key"`
}

type messageBody struct {
	Content string `json:"content"`
}

type messageData struct {
	MessageID  string        `json:"message_id"`
	MsgType    string        `json:"msg_type"`
	CreateTime string        `json:"create_time"`
	UpdateTime string        `json:"update_time"`
	ChatID     string        `json:"chat_id"`
	Deleted    bool          `json:"deleted"`
	Updated    bool          `json:"updated"`
	Sender     messageSender `json:"sender"`
	Body       messageBody   `json:"body"`
}

type messageReply struct {
	Code int         `json:"code"`
	Msg  string      `json:"msg"`
	Data messageData `json:"data"`
}

// sendRequest is the JSON body of a send; pointers tell a missing field from an empty one.
type sendRequest struct {
	ReceiveID *string `json:"receive_id"`
	MsgType   *string `json:"msg_type"`
	Content   *string `json:"content"`
	UUID      string  `json:"uuid"`
}

// handleMessages is POST /open-apis/im/v1/messages: gateway authentication first (tenant or user
// token), then Lark's parameter checks, then uuid de-duplication, then the message is recorded.
func (s *Server) handleMessages(w http.ResponseWriter, req *request) {
	tok, ok := bearerToken(req.Request)
	if !ok {
		s.logf("%s: code=%d", EndpointMessages, gwMissingToken)
		writeGatewayError(w, http.StatusBadRequest, gwMissingToken, msgMissingToken)
		return
	}
	appID, reply, code := s.sendMessage(req, tok)
	switch {
	case code == 0:
		s.logf("%s: app_id=%s code=0", EndpointMessages, appID)
		writeJSON(w, http.StatusOK, reply)
	case gatewayMessages[code] != "":
		s.logf("%s: code=%d", EndpointMessages, code)
		writeGatewayError(w, http.StatusBadRequest, code, gatewayMessages[code])
	default:
		s.logf("%s: app_id=%s code=%d", EndpointMessages, appID, code)
		writeGatewayError(w, http.StatusBadRequest, code, messageErrorText[code])
	}
}

// sendMessage validates and records a send. It returns the sending app and either the reply or
// a Lark error code.
func (s *Server) sendMessage(req *request, tok string) (appID string, reply messageReply, code int) {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()

	sender, code := s.messageSenderLocked(tok, now)
	if code != 0 {
		return "", reply, code
	}
	idType := req.URL.Query().Get("receive_id_type")
	if !slices.Contains(receiveIDTypes, idType) {
		return sender.appID, reply, msgCodeInvalidParam
	}
	if req.bodyErr != nil {
		return sender.appID, reply, msgCodeTooLong
	}
	var body sendRequest
	if err := json.Unmarshal(req.body, &body); err != nil || body.ReceiveID == nil || body.MsgType == nil || body.Content == nil ||
		*body.ReceiveID == "" || !slices.Contains(msgTypes, *body.MsgType) || len(body.UUID) > maxUUIDLen {
		return sender.appID, reply, msgCodeInvalidParam
	}
	if code := checkContent(*body.MsgType, *body.Content); code != 0 {
		return sender.appID, reply, code
	}
	var card *Card
	readable := ""
	switch *body.MsgType {
	case "interactive":
		c, err := parseCard(*body.Content)
		if err != nil {
			s.logf("%s: %v", EndpointMessages, err)
			return sender.appID, reply, msgCodeCardFailed
		}
		if s.cardsRefusedLocked(sender.appID) {
			return sender.appID, reply, msgCodeCardFailed
		}
		card, readable = c, c.Readable()
	case "text":
		var t struct{ Text string }
		_ = json.Unmarshal([]byte(*body.Content), &t) // checkContent made sure it decodes
		readable = t.Text
	}

	var userID, chatID string
	if idType == "chat_id" {
		if !strings.HasPrefix(*body.ReceiveID, "oc_") {
			return sender.appID, reply, msgCodeInvalidReceiver
		}
		chatID = *body.ReceiveID
	} else {
		u, ok := s.userByReceiver(sender.appID, idType, *body.ReceiveID)
		if !ok {
			return sender.appID, reply, msgCodeInvalidReceiver
		}
		// A tenant token reaches only the users of its own tenant (a store app installed in many
		// tenants needs the recipient's tenant's token): Lark answers "no availability".
		if sender.reply.SenderType == "app" && sender.reply.TenantKey != s.tenantOfLocked(u) {
			return sender.appID, reply, msgCodeNoAvailability
		}
		userID, chatID = u.UserID, "oc_"+digest("p2p", sender.appID, u.UserID)
	}

	dedupKey := sender.appID + "\x00" + body.UUID
	if body.UUID != "" {
		if prev, ok := s.messages.dedup[dedupKey]; ok && now.Sub(prev.at) < s.opts.DedupWindow {
			return sender.appID, prev.reply, 0 // same uuid within the window: nothing new is sent
		}
	}
	m := Message{
		MessageID: "om_" + randomHex(16), AppID: sender.appID, SenderType: sender.reply.SenderType, TenantKey: sender.reply.TenantKey,
		ReceiveIDType: idType, ReceiveID: *body.ReceiveID, UserID: userID, ChatID: chatID,
		MsgType: *body.MsgType, Content: *body.Content, Card: card, Text: readable, UUID: body.UUID, CreateTime: now,
		TokenSHA256: tokenSHA256(tok),
	}
	s.messages.sent = append(s.messages.sent, m)
	ms := strconv.FormatInt(now.UnixMilli(), 10)
	reply = messageReply{Msg: "success", Data: messageData{
		MessageID: m.MessageID, MsgType: m.MsgType, CreateTime: ms, UpdateTime: ms, ChatID: chatID,
		Sender: sender.reply, Body: messageBody{Content: m.Content},
	}}
	if body.UUID != "" {
		for k, e := range s.messages.dedup {
			if now.Sub(e.at) >= s.opts.DedupWindow {
				delete(s.messages.dedup, k)
			}
		}
		s.messages.dedup[dedupKey] = dedupEntry{reply: reply, at: now}
	}
	return sender.appID, reply, 0
}

type resolvedSender struct {
	appID string
	reply messageSender
}

// messageSenderLocked authenticates the bearer token of a send. Callers hold s.mu.
func (s *Server) messageSenderLocked(tok string, now time.Time) (resolvedSender, int) {
	if t, ok := s.tenantTokens[tok]; ok {
		if _, appOK := s.apps[t.appID]; appOK && now.Before(t.expiresAt) {
			tenant := t.tenantKey
			if tenant == "" {
				tenant = s.opts.TenantKey
			}
			return resolvedSender{t.appID, messageSender{ID: t.appID, IDType: "app_id", SenderType: "app", TenantKey: tenant}}, 0
		}
		return resolvedSender{}, gwInvalidAppToken
	}
	ut, status := s.lookupUserToken(tok, now)
	switch {
	case ut == nil && status == userTokenUnknown:
		// Neither a live tenant token nor a user token: the gateway answers as for a bad tenant token.
		return resolvedSender{}, gwInvalidAppToken
	case status == userTokenExpired:
		return resolvedSender{}, gwUserTokenExpired
	case status != userTokenOK:
		return resolvedSender{}, gwInvalidUserToken
	}
	u := s.identity.users[ut.g.userID]
	return resolvedSender{ut.g.appID, messageSender{ID: openIDOf(ut.g.appID, u), IDType: "open_id", SenderType: "user", TenantKey: s.tenantOfLocked(u)}}, 0
}

// checkContent applies Lark's rule that content is a JSON document serialised into a string.
func checkContent(msgType, content string) int {
	limit := maxTextContent
	if msgType == "interactive" || msgType == "post" {
		limit = maxCardContent
	}
	if len(content) > limit {
		return msgCodeTooLong
	}
	if !json.Valid([]byte(content)) {
		if msgType == "interactive" {
			return msgCodeCardFailed
		}
		return msgCodeInvalidParam
	}
	if msgType == "text" {
		var text struct {
			Text *string `json:"text"`
		}
		if json.Unmarshal([]byte(content), &text) != nil || text.Text == nil {
			return msgCodeInvalidParam
		}
	}
	return 0
}

func tokenSHA256(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// Messages returns every recorded message, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages.sent)
}

// ClearMessages forgets recorded messages and uuid history (the card mode stays).
func (s *Server) ClearMessages() {
	s.mu.Lock()
	mode, apps := s.messages.cardMode, s.messages.appCardModes
	s.messages.init()
	s.messages.cardMode, s.messages.appCardModes = mode, apps
	s.mu.Unlock()
}

func (s *Server) ctlListMessages(w http.ResponseWriter, _ *http.Request) error {
	msgs := s.Messages()
	if msgs == nil {
		msgs = []Message{}
	}
	writeJSON(w, http.StatusOK, map[string][]Message{"messages": msgs})
	return nil
}

func (s *Server) ctlClearMessages(w http.ResponseWriter, _ *http.Request) error {
	s.ClearMessages()
	writeOK(w)
	return nil
}
