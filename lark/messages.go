package lark

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// EndpointSendMessage names SendText in errors and Observe calls.
const EndpointSendMessage = "send_message"

const (
	maxTextContent = 150 << 10 // Lark's limit for a text message's content
	maxCardContent = 30 << 10  // Lark's limit for a card's content (lark-api.md §8a)
	maxUUIDLen     = 50
)

// Codes that mean "this tenant token is no good" besides 99991663 (lark-api.md §9), and the
// per-user send limit.
const (
	codeGatewayAppTokenBad   = 99991664
	codeGatewayTenantCodeBad = 99991665
	codeMessageRateLimited   = 230020
	// codeCardFailed: Lark could not build the card ("Failed to create card content", with the
	// card service's own ErrCode in the message). codeMessageTooLong is over the size limit.
	codeCardFailed     = 230099
	codeMessageTooLong = 230025
)

// SendText sends a plain text message from the app's bot to one user (POST
// {open}/open-apis/im/v1/messages?receive_id_type=open_id) and returns the message id (om_…).
//
// uuid makes the call idempotent: Lark delivers at most one message per uuid within an hour, so the
// call is retried like a read. Without a uuid a retry could deliver the message twice, so an empty
// uuid means a single attempt.
func (c *Client) SendText(ctx context.Context, tenantToken, openID, text, uuid string) (string, error) {
	if text == "" {
		return "", invalid(EndpointSendMessage, "text is empty")
	}
	content, err := textContent(text)
	if err != nil {
		return "", invalid(EndpointSendMessage, err.Error())
	}
	return c.send(ctx, tenantToken, openID, "text", content, uuid)
}

// SendCard sends a message card (msg_type "interactive") from the app's bot to one user; card is
// the card's JSON document (lark-api.md §8a). An error of KindCardRefused means Lark would not
// build this card, or this tenant takes no cards: the caller sends the same notice as text. uuid
// works as for SendText; give the text fallback a uuid of its own, since Lark answers a repeated
// uuid with the first message.
func (c *Client) SendCard(ctx context.Context, tenantToken, openID string, card []byte, uuid string) (string, error) {
	switch {
	case len(card) == 0 || !json.Valid(card):
		return "", invalid(EndpointSendMessage, "card is not a JSON document")
	case len(card) > maxCardContent:
		return "", &Error{Endpoint: EndpointSendMessage, Kind: KindCardRefused, detail: "card is longer than Lark's 30 KB limit"}
	}
	return c.send(ctx, tenantToken, openID, "interactive", string(card), uuid)
}

func (c *Client) send(ctx context.Context, tenantToken, openID, msgType, content, uuid string) (string, error) {
	switch {
	case checkToken("tenant access token", tenantToken, true) != nil:
		return "", invalid(EndpointSendMessage, "tenant access token is empty or malformed")
	case strings.TrimSpace(openID) == "":
		return "", invalid(EndpointSendMessage, "receiver open_id is empty")
	case len(uuid) > maxUUIDLen:
		return "", invalid(EndpointSendMessage, "uuid is longer than 50 characters")
	}
	attempts := 0 // the client's default
	if uuid == "" {
		attempts = 1
	}
	classify := classifyMessages
	if msgType == "interactive" {
		classify = classifyCards
	}
	var resp sendMessageResponse
	err := c.do(ctx, request{
		endpoint:    EndpointSendMessage,
		method:      http.MethodPost,
		url:         c.openAPI("/open-apis/im/v1/messages?receive_id_type=open_id"),
		body:        sendMessageRequest{ReceiveID: openID, MsgType: msgType, Content: content, UUID: uuid},
		header:      http.Header{"Authorization": {"Bearer " + tenantToken}},
		secrets:     []string{tenantToken},
		maxAttempts: attempts,
		classify:    classify,
	}, &resp)
	if err != nil {
		return "", err
	}
	return resp.Data.MessageID, nil
}

// textContent is Lark's content field: a JSON document serialised into a string. HTML escaping is
// off so that the stored message reads as written ("<" rather than "\u003c").
func textContent(text string) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(struct { // a struct with one string field always encodes
		Text string `json:"text"`
	}{text})
	content := strings.TrimSuffix(b.String(), "\n")
	if len(content) > maxTextContent {
		return "", errors.New("text is longer than Lark's 150 KB limit")
	}
	return content, nil
}

func classifyMessages(code int, _ string) ErrorKind {
	switch code {
	case codeGatewayAppTokenInvalid, codeGatewayAppTokenBad, codeGatewayTenantCodeBad:
		return KindTenantTokenInvalid
	case codeMessageRateLimited:
		// Lark's per-user limit (5 messages a second); the uuid makes waiting and retrying safe.
		return KindRateLimited
	}
	return ""
}

// classifyCards is classifyMessages for a card: a card Lark cannot build, or one over the size
// limit, is refused as a card only, and the same notice can still go out as text.
func classifyCards(code int, msg string) ErrorKind {
	switch code {
	case codeCardFailed, codeMessageTooLong:
		return KindCardRefused
	}
	return classifyMessages(code, msg)
}

type sendMessageRequest struct {
	ReceiveID string `json:"receive_id"`
	MsgType   string `json:"msg_type"`
	Content   string `json:"content"`
	UUID      string `json:"uuid,omitempty"`
}

type sendMessageResponse struct {
	Data struct {
		MessageID string `json:"message_id"`
	} `json:"data"`
}

func (r *sendMessageResponse) validate() error {
	if r.Data.MessageID == "" {
		return errors.New("missing data.message_id")
	}
	return nil
}
