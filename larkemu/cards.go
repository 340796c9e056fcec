package larkemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Message cards (msg_type "interactive", lark-api.md §8a). The emulator accepts the JSON 1.0 card
// shape the plugin sends — config, header, elements of the kinds below — and refuses anything else
// with 230099, as Lark does for a card it cannot build. It is stricter than Lark on purpose: an
// unknown key is refused rather than ignored, so a typo in a card fails a test instead of showing
// a half-empty card to a user.
//
// Limits: the 30 KB content cap is Lark's; the element, field, button and text caps are the
// emulator's own conservative bounds (Lark documents none we could find for JSON 1.0 cards).
const (
	maxCardElements  = 50
	maxCardFields    = 10
	maxCardActions   = 5
	maxCardTextBytes = 4 << 10
	maxCardTitle     = 200
)

// Card is a recorded card, decoded; Message.Card holds it for msg_type "interactive".
type Card struct {
	Config   map[string]bool `json:"config,omitempty"`
	Header   *CardHeader     `json:"header,omitempty"`
	Elements []CardElement   `json:"elements"`
}

// CardHeader is the coloured title bar.
type CardHeader struct {
	Template string   `json:"template,omitempty"`
	Title    CardText `json:"title"`
}

// CardText is a text object: tag "plain_text" (shown as is) or "lark_md" (Lark's markdown).
type CardText struct {
	Tag     string `json:"tag"`
	Content string `json:"content"`
	Lines   int    `json:"lines,omitempty"`
}

// CardField is one of a div's fields; short ones sit two to a row.
type CardField struct {
	IsShort bool     `json:"is_short"`
	Text    CardText `json:"text"`
}

// CardButton is a button of an action element; this emulator accepts only buttons that open a
// link, which is all a notice needs (a callback button would need a card callback server).
type CardButton struct {
	Tag  string   `json:"tag"`
	Text CardText `json:"text"`
	URL  string   `json:"url"`
	Type string   `json:"type,omitempty"`
}

// CardElement is one element: "div" (Text and/or Fields), "hr", "note" (Texts), "action"
// (Actions) or "markdown" (Content).
type CardElement struct {
	Tag      string       `json:"tag"`
	Text     *CardText    `json:"text,omitempty"`
	Fields   []CardField  `json:"fields,omitempty"`
	Elements []CardText   `json:"elements,omitempty"`
	Actions  []CardButton `json:"actions,omitempty"`
	Content  string       `json:"content,omitempty"`
}

var (
	cardTemplates   = []string{"blue", "wathet", "turquoise", "green", "yellow", "orange", "red", "carmine", "violet", "purple", "indigo", "grey"}
	cardConfigKeys  = []string{"wide_screen_mode", "enable_forward", "update_multi"}
	cardButtonTypes = []string{"", "default", "primary", "danger"}
)

// parseCard checks a card strictly and decodes it; the error says what is wrong (the emulator's log
// and tests see it; Lark's answer carries only the code).
func parseCard(content string) (*Card, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(content)))
	dec.DisallowUnknownFields()
	var c Card
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("card: %v", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("card: trailing data")
	}
	for k := range c.Config {
		if !slices.Contains(cardConfigKeys, k) {
			return nil, fmt.Errorf("card: unknown config key %q", k)
		}
	}
	if h := c.Header; h != nil {
		if h.Template != "" && !slices.Contains(cardTemplates, h.Template) {
			return nil, fmt.Errorf("card: header template %q", h.Template)
		}
		if h.Title.Tag != "plain_text" || strings.TrimSpace(h.Title.Content) == "" || len([]rune(h.Title.Content)) > maxCardTitle {
			return nil, fmt.Errorf("card: the header title must be non-empty plain_text of at most %d characters", maxCardTitle)
		}
	}
	if len(c.Elements) == 0 || len(c.Elements) > maxCardElements {
		return nil, fmt.Errorf("card: %d elements (1 to %d)", len(c.Elements), maxCardElements)
	}
	for i, e := range c.Elements {
		if err := checkCardElement(e); err != nil {
			return nil, fmt.Errorf("card: element %d (%s): %v", i, e.Tag, err)
		}
	}
	return &c, nil
}

func checkCardElement(e CardElement) error {
	// only refuses keys that do not belong to this kind of element.
	only := func(allowed ...string) error {
		present := map[string]bool{"text": e.Text != nil, "fields": len(e.Fields) > 0, "elements": len(e.Elements) > 0,
			"actions": len(e.Actions) > 0, "content": e.Content != ""}
		for k, p := range present {
			if p && !slices.Contains(allowed, k) {
				return fmt.Errorf("%q does not belong to this element", k)
			}
		}
		return nil
	}
	switch e.Tag {
	case "div":
		if e.Text == nil && len(e.Fields) == 0 {
			return fmt.Errorf("a div needs text or fields")
		}
		if err := only("text", "fields"); err != nil {
			return err
		}
		if e.Text != nil {
			if err := checkCardText(*e.Text); err != nil {
				return err
			}
		}
		if len(e.Fields) > maxCardFields {
			return fmt.Errorf("%d fields (at most %d)", len(e.Fields), maxCardFields)
		}
		for _, f := range e.Fields {
			if err := checkCardText(f.Text); err != nil {
				return fmt.Errorf("field: %v", err)
			}
		}
	case "hr":
		return only()
	case "note":
		if err := only("elements"); err != nil {
			return err
		}
		if len(e.Elements) == 0 {
			return fmt.Errorf("a note needs elements")
		}
		for _, t := range e.Elements {
			if err := checkCardText(t); err != nil {
				return err
			}
		}
	case "markdown":
		if err := only("content"); err != nil {
			return err
		}
		if strings.TrimSpace(e.Content) == "" {
			return fmt.Errorf("empty content")
		}
		if len(e.Content) > maxCardTextBytes {
			return fmt.Errorf("content over %d bytes", maxCardTextBytes)
		}
	case "action":
		if err := only("actions"); err != nil {
			return err
		}
		if len(e.Actions) == 0 {
			return fmt.Errorf("an action needs buttons")
		}
		if len(e.Actions) > maxCardActions {
			return fmt.Errorf("%d buttons (at most %d)", len(e.Actions), maxCardActions)
		}
		for _, b := range e.Actions {
			if b.Tag != "button" || !slices.Contains(cardButtonTypes, b.Type) {
				return fmt.Errorf("only link buttons of type default, primary or danger")
			}
			if err := checkCardText(b.Text); err != nil {
				return fmt.Errorf("button: %v", err)
			}
			if u, err := url.Parse(b.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return fmt.Errorf("button url must be an http(s) URL")
			}
		}
	default:
		return fmt.Errorf("unknown element")
	}
	return nil
}

func checkCardText(t CardText) error {
	if t.Tag != "plain_text" && t.Tag != "lark_md" {
		return fmt.Errorf("text tag %q (plain_text or lark_md)", t.Tag)
	}
	if strings.TrimSpace(t.Content) == "" || len(t.Content) > maxCardTextBytes {
		return fmt.Errorf("text content empty or over %d bytes", maxCardTextBytes)
	}
	if t.Lines < 0 {
		return fmt.Errorf("negative lines")
	}
	return nil
}

// Readable is what a reader sees of the card, one text per line in order (header title, texts,
// fields, notes, then each button as "label: url"), for tests that look for words in a notice.
func (c *Card) Readable() string {
	var lines []string
	if c.Header != nil {
		lines = append(lines, c.Header.Title.Content)
	}
	for _, e := range c.Elements {
		if e.Text != nil {
			lines = append(lines, e.Text.Content)
		}
		for _, f := range e.Fields {
			lines = append(lines, f.Text.Content)
		}
		for _, t := range e.Elements {
			lines = append(lines, t.Content)
		}
		for _, b := range e.Actions {
			lines = append(lines, b.Text.Content+": "+b.URL)
		}
		if e.Content != "" {
			lines = append(lines, e.Content)
		}
	}
	return strings.Join(lines, "\n")
}

// CardMode says whether the emulator takes cards at all. "refuse" imitates a tenant that takes no
// cards (or a card service that cannot build them): every interactive message is answered with
// 230099, and text messages still go through.
type CardMode string

// Card modes.
const (
	CardsAccept CardMode = "accept"
	CardsRefuse CardMode = "refuse"
)

// SetCardMode switches card handling for every app; Reset restores CardsAccept.
func (s *Server) SetCardMode(m CardMode) error {
	return s.SetAppCardMode("", m)
}

// SetAppCardMode switches card handling for one app only (appID ""; every app), so that tests
// sharing one emulator can refuse one app's cards and leave the others alone. An app's own mode
// wins over the mode for every app.
func (s *Server) SetAppCardMode(appID string, m CardMode) error {
	if m != CardsAccept && m != CardsRefuse {
		return fmt.Errorf("larkemu: unknown card mode %q", m)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if appID == "" {
		s.messages.cardMode = m
		return nil
	}
	s.messages.appCardModes[appID] = m
	return nil
}

// cardsRefusedLocked says whether appID's cards are refused. Callers hold s.mu.
func (s *Server) cardsRefusedLocked(appID string) bool {
	if m, ok := s.messages.appCardModes[appID]; ok {
		return m == CardsRefuse
	}
	return s.messages.cardMode == CardsRefuse
}

func (s *Server) ctlGetCardMode(w http.ResponseWriter, _ *http.Request) error {
	s.mu.Lock()
	reply := map[string]any{"mode": s.messages.cardMode, "apps": maps.Clone(s.messages.appCardModes)}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, reply)
	return nil
}

func (s *Server) ctlSetCardMode(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Mode  CardMode `json:"mode"`
		AppID string   `json:"app_id"`
	}
	if err := decodeControl(r, &body); err != nil {
		return err
	}
	if err := s.SetAppCardMode(body.AppID, body.Mode); err != nil {
		return badRequest("%v", err)
	}
	writeOK(w)
	return nil
}

// CheckCard applies the emulator's card rules to a card's JSON, for tests of code that builds cards.
func CheckCard(content string) error {
	if len(content) > maxCardContent {
		return fmt.Errorf("card: %d bytes, over Lark's %d", len(content), maxCardContent)
	}
	_, err := parseCard(content)
	return err
}
