package larkemu

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// appControl serves the control endpoints below /_emulator/apps/{app_id}/ that concern store apps
// and events; nil for any other sub-path.
func (s *Server) appControl(appID, sub string) map[string]controlHandler {
	withApp := func(h func(w http.ResponseWriter, r *http.Request) error) controlHandler {
		return func(w http.ResponseWriter, r *http.Request) error {
			if !s.appRegistered(appID) {
				return &controlError{http.StatusNotFound, fmt.Sprintf("app %q is not registered", appID)}
			}
			return h(w, r)
		}
	}
	switch {
	case sub == "tenants":
		return map[string]controlHandler{
			http.MethodGet:  withApp(func(w http.ResponseWriter, _ *http.Request) error { return s.ctlListTenants(w, appID) }),
			http.MethodPost: withApp(func(w http.ResponseWriter, r *http.Request) error { return s.ctlInstallTenant(w, r, appID) }),
		}
	case strings.HasPrefix(sub, "tenants/") && !strings.Contains(strings.TrimPrefix(sub, "tenants/"), "/"):
		tenantKey := strings.TrimPrefix(sub, "tenants/")
		return map[string]controlHandler{
			http.MethodDelete: withApp(func(w http.ResponseWriter, _ *http.Request) error {
				writeJSON(w, http.StatusOK, map[string]bool{"removed": s.UninstallTenant(appID, tenantKey)})
				return nil
			}),
		}
	case sub == "tickets":
		return map[string]controlHandler{
			http.MethodGet: withApp(func(w http.ResponseWriter, _ *http.Request) error {
				writeJSON(w, http.StatusOK, map[string][]TicketInfo{"tickets": s.Tickets(appID)})
				return nil
			}),
			http.MethodPost: withApp(func(w http.ResponseWriter, r *http.Request) error { return s.ctlPushTicket(w, r, appID) }),
		}
	case sub == "events":
		return map[string]controlHandler{
			http.MethodGet: withApp(func(w http.ResponseWriter, r *http.Request) error { return s.ctlListEvents(w, r, appID) }),
			http.MethodDelete: withApp(func(w http.ResponseWriter, _ *http.Request) error {
				s.ClearEvents(appID)
				writeOK(w)
				return nil
			}),
		}
	case sub == "events/push":
		return map[string]controlHandler{
			http.MethodPost: withApp(func(w http.ResponseWriter, r *http.Request) error { return s.ctlPushEvent(w, r, appID) }),
		}
	case sub == "url-verification":
		return map[string]controlHandler{
			http.MethodPost: withApp(func(w http.ResponseWriter, r *http.Request) error { return s.ctlVerifyURL(w, r, appID) }),
		}
	}
	return nil
}

func (s *Server) appRegistered(appID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.apps[appID]
	return ok
}

func (s *Server) ctlListTenants(w http.ResponseWriter, appID string) error {
	writeJSON(w, http.StatusOK, map[string][]TenantInfo{"tenants": s.Tenants(appID)})
	return nil
}

type installReply struct {
	Installed bool           `json:"installed"` // false: the tenant had the app already
	Event     *EventDelivery `json:"event"`     // the app_open delivery, null when none was sent
}

func (s *Server) ctlInstallTenant(w http.ResponseWriter, r *http.Request, appID string) error {
	var body struct {
		TenantKey       string `json:"tenant_key"`
		InstallerUserID string `json:"installer_user_id"`
		Silent          bool   `json:"silent"`
	}
	if err := decodeControl(r, &body); err != nil {
		return err
	}
	isNew, d, err := s.InstallTenant(InstallRequest{
		AppID: appID, TenantKey: body.TenantKey, InstallerUserID: body.InstallerUserID, Silent: body.Silent,
	})
	if err != nil {
		return badRequest("%v", err)
	}
	writeJSON(w, http.StatusOK, installReply{Installed: isNew, Event: d})
	return nil
}

type pushTicketReply struct {
	Ticket TicketInfo     `json:"ticket"`
	Event  *EventDelivery `json:"event"` // null when the app has no event URL
}

func (s *Server) ctlPushTicket(w http.ResponseWriter, r *http.Request, appID string) error {
	if err := decodeControl(r, &struct{}{}); err != nil {
		return err
	}
	t, d, err := s.PushAppTicket(appID)
	if err != nil {
		return badRequest("%v", err)
	}
	writeJSON(w, http.StatusOK, pushTicketReply{Ticket: t, Event: d})
	return nil
}

func (s *Server) ctlListEvents(w http.ResponseWriter, r *http.Request, appID string) error {
	q := r.URL.Query()
	after := 0
	if v := q.Get("after"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return badRequest("after must be a sequence number")
		}
		after = n
	}
	events := s.Events(appID, after)
	if et := q.Get("type"); et != "" {
		kept := events[:0]
		for _, d := range events {
			if d.EventType == et {
				kept = append(kept, d)
			}
		}
		events = kept
	}
	writeJSON(w, http.StatusOK, map[string][]EventDelivery{"events": events})
	return nil
}

// PushRequest sends something to an app's event URL that Lark did not send: a forged or
// hand-made event, a raw body, or a replay. Exactly one of Event, RawBody and ReplayOf is set.
type PushRequest struct {
	// Event is a plaintext event (any JSON). It is encrypted and signed like Lark's own events when
	// the app has an Encrypt Key, unless Encrypt says otherwise.
	Event json.RawMessage `json:"event,omitempty"`
	// RawBody is sent byte for byte, unencrypted and unsigned (malformed or oversized bodies).
	RawBody *string `json:"raw_body,omitempty"`
	// ReplayOf is the seq of an earlier delivery to the same app: its body and the signature
	// headers of its first attempt are sent again exactly, as a captured request would be.
	ReplayOf int `json:"replay_of,omitempty"`
	// Encrypt overrides whether Event is encrypted (default: the app has an Encrypt Key).
	Encrypt *bool `json:"encrypt,omitempty"`
	// EncryptKey encrypts and signs Event with this key instead of the app's (a forger's key).
	EncryptKey string `json:"encrypt_key,omitempty"`
	// Retry makes failed attempts retry on Lark's schedule; a forger does not retry, so the
	// default is a single attempt.
	Retry bool `json:"retry,omitempty"`
	// PadBytes makes an oversized but otherwise valid push: Event (a JSON object) gets a
	// "padding" field of that many bytes before encryption; RawBody gets that many trailing spaces.
	PadBytes int `json:"pad_bytes,omitempty"`
}

// maxPadBytes bounds PadBytes: far above any sane receiver limit, far below hurting the emulator.
const maxPadBytes = 64 << 20

// PushEvent sends req to the app's event URL and returns the delivery after its first attempt.
func (s *Server) PushEvent(appID string, req PushRequest) (EventDelivery, error) {
	set := 0
	for _, given := range []bool{len(req.Event) > 0, req.RawBody != nil, req.ReplayOf != 0} {
		if given {
			set++
		}
	}
	if set != 1 {
		return EventDelivery{}, fmt.Errorf("give exactly one of event, raw_body and replay_of")
	}
	if len(req.Event) > 0 && !json.Valid(req.Event) {
		return EventDelivery{}, fmt.Errorf("event is not valid JSON")
	}
	if (req.Encrypt != nil || req.EncryptKey != "") && len(req.Event) == 0 {
		return EventDelivery{}, fmt.Errorf("encrypt and encrypt_key go with event")
	}
	if req.PadBytes < 0 || req.PadBytes > maxPadBytes || (req.PadBytes > 0 && req.ReplayOf != 0) {
		return EventDelivery{}, fmt.Errorf("pad_bytes goes with event or raw_body and is at most %d", maxPadBytes)
	}
	if req.PadBytes > 0 && len(req.Event) > 0 {
		var obj map[string]json.RawMessage
		if json.Unmarshal(req.Event, &obj) != nil || obj == nil {
			return EventDelivery{}, fmt.Errorf("pad_bytes needs event to be a JSON object")
		}
		obj["padding"], _ = json.Marshal(strings.Repeat("x", req.PadBytes))
		req.Event, _ = json.Marshal(obj)
	}
	if req.PadBytes > 0 && req.RawBody != nil {
		padded := *req.RawBody + strings.Repeat(" ", req.PadBytes)
		req.RawBody = &padded
	}
	s.mu.Lock()
	a, ok := s.apps[appID]
	if !ok || a.EventURL == "" {
		s.mu.Unlock()
		return EventDelivery{}, fmt.Errorf("app %q has no event_url", appID)
	}
	rec := &eventRecord{d: EventDelivery{AppID: appID, Source: SourcePush, URL: a.EventURL}}
	switch {
	case req.ReplayOf != 0:
		orig := s.findRecordLocked(appID, req.ReplayOf)
		if orig == nil {
			s.mu.Unlock()
			return EventDelivery{}, fmt.Errorf("no delivery %d to app %s", req.ReplayOf, appID)
		}
		rec.d.Source = SourceReplay
		rec.d.EventType, rec.d.EventID = orig.d.EventType, orig.d.EventID
		rec.d.Plaintext, rec.d.Encrypted = orig.d.Plaintext, orig.d.Encrypted
		rec.body = orig.body
		rec.fixedHeaders = map[string]string{}
		if len(orig.d.Attempts) > 0 {
			rec.fixedHeaders = orig.d.Attempts[0].Headers
		}
		rec.challenge = orig.challenge
	case req.RawBody != nil:
		rec.body = []byte(*req.RawBody)
		if json.Valid(rec.body) {
			rec.d.Plaintext = json.RawMessage(rec.body)
			rec.d.EventType, rec.d.EventID = describeEvent(rec.body)
		}
	default:
		rec.d.Plaintext = req.Event
		rec.d.EventType, rec.d.EventID = describeEvent(req.Event)
		key := a.EncryptKey
		if req.EncryptKey != "" {
			key = req.EncryptKey
		}
		encrypt := key != ""
		if req.Encrypt != nil {
			encrypt = *req.Encrypt
		}
		if encrypt && key == "" {
			s.mu.Unlock()
			return EventDelivery{}, fmt.Errorf("app %s has no encrypt key; give encrypt_key", appID)
		}
		rec.body = req.Event
		if encrypt {
			rec.body = encryptedBody(key, req.Event)
			rec.d.Encrypted = true
			rec.signKey = key
		}
	}
	if req.Retry {
		rec.retries = append(rec.retries, s.opts.EventRetryDelays...)
	}
	rec.setBody(rec.body)
	s.addRecordLocked(rec)
	s.mu.Unlock()
	return s.deliverNow(rec), nil
}

// findRecordLocked finds a delivery by app and seq. Callers hold s.mu.
func (s *Server) findRecordLocked(appID string, seq int) *eventRecord {
	for _, rec := range s.events.records {
		if rec.d.Seq == seq && rec.d.AppID == appID {
			return rec
		}
	}
	return nil
}

func (s *Server) ctlPushEvent(w http.ResponseWriter, r *http.Request, appID string) error {
	var req PushRequest
	if err := decodeControl(r, &req); err != nil {
		return err
	}
	d, err := s.PushEvent(appID, req)
	if err != nil {
		return badRequest("%v", err)
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// VerifyURL sends Lark's URL-verification challenge to the app's event URL, as saving the URL in
// the developer console does (encrypted when the app has an Encrypt Key, one attempt, no retry),
// and returns the delivery; its ChallengeAnswered says whether the receiver echoed the challenge.
func (s *Server) VerifyURL(appID string) (EventDelivery, error) {
	now := s.clk.Now()
	s.mu.Lock()
	a, ok := s.apps[appID]
	if !ok || a.EventURL == "" {
		s.mu.Unlock()
		return EventDelivery{}, fmt.Errorf("app %q has no event_url", appID)
	}
	payload := urlVerificationPayload(&a.App)
	rec := s.newLarkEventLocked(&a.App, EventURLVerification, payload, now)
	rec.challenge = payload.Challenge
	s.mu.Unlock()
	return s.deliverNow(rec), nil
}

func (s *Server) ctlVerifyURL(w http.ResponseWriter, r *http.Request, appID string) error {
	if err := decodeControl(r, &struct{}{}); err != nil {
		return err
	}
	d, err := s.VerifyURL(appID)
	if err != nil {
		return badRequest("%v", err)
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}
