package larkemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"
)

// controlHandler serves one control endpoint; a returned error becomes a 400 unless it is a
// *controlError with its own status.
type controlHandler func(w http.ResponseWriter, r *http.Request) error

type controlError struct {
	status int
	msg    string
}

func (e *controlError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &controlError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

const maxControlBody = 1 << 20

func (s *Server) controlRoutes() map[string]map[string]controlHandler {
	return map[string]map[string]controlHandler{
		"apps":            {http.MethodGet: s.ctlListApps, http.MethodPost: s.ctlAddApp},
		"clock":           {http.MethodGet: s.ctlClock},
		"clock/advance":   {http.MethodPost: s.ctlAdvance},
		"failures":        {http.MethodGet: s.ctlListFailures, http.MethodPost: s.ctlInjectFailure, http.MethodDelete: s.ctlClearFailures},
		"counters":        {http.MethodGet: s.ctlCounters},
		"reset":           {http.MethodPost: s.ctlReset},
		"users":           {http.MethodGet: s.ctlListUsers, http.MethodPost: s.ctlAddUser},
		"authorize-mode":  {http.MethodGet: s.ctlGetAuthorizeMode, http.MethodPost: s.ctlSetAuthorizeMode},
		"grants":          {http.MethodGet: s.ctlListGrants, http.MethodPost: s.ctlMintGrant},
		"grants/batch":    {http.MethodPost: s.ctlMintGrants},
		"grants/revoke":   {http.MethodPost: s.ctlRevokeGrants},
		"grants/expire":   {http.MethodPost: s.ctlExpireGrants},
		"messages":        {http.MethodGet: s.ctlListMessages, http.MethodDelete: s.ctlClearMessages},
		"card-mode":       {http.MethodGet: s.ctlGetCardMode, http.MethodPost: s.ctlSetCardMode},
		"user-info-calls": {http.MethodGet: s.ctlListUserInfoCalls, http.MethodDelete: s.ctlClearUserInfoCalls},
		"revoke-mode":     {http.MethodGet: s.ctlGetRevokeMode, http.MethodPost: s.ctlSetRevokeMode},
		"devices":         {http.MethodGet: s.ctlListDevices},
		"device/approve":  {http.MethodPost: s.ctlApproveDevice},
		"device/deny":     {http.MethodPost: s.ctlDenyDevice},
		"device/verify":   {http.MethodGet: s.ctlDeviceVerify},
	}
}

func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, ControlPrefix)
	var methods map[string]controlHandler
	rest, isApp := strings.CutPrefix(name, "apps/")
	id, sub, _ := strings.Cut(rest, "/")
	switch {
	case isApp && id != "" && rest == id:
		methods = map[string]controlHandler{http.MethodDelete: func(w http.ResponseWriter, r *http.Request) error {
			return s.ctlRemoveApp(w, id)
		}}
	case isApp && id != "" && sub == "counters":
		methods = map[string]controlHandler{
			http.MethodGet:    func(w http.ResponseWriter, r *http.Request) error { return s.ctlAppCounters(w, id) },
			http.MethodDelete: func(w http.ResponseWriter, r *http.Request) error { return s.ctlResetAppCounters(w, id) },
		}
	case isApp && id != "" && sub != "":
		methods = s.appControl(id, sub) // storecontrol.go: tenants, tickets, events, url-verification
	default:
		methods = s.control[name]
	}
	if methods == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown control endpoint " + r.URL.Path})
		return
	}
	h, ok := methods[r.Method]
	if !ok {
		allowed := make([]string, 0, len(methods))
		for m := range methods {
			allowed = append(allowed, m)
		}
		sort.Strings(allowed)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
		return
	}
	if err := h(w, r); err != nil {
		status := http.StatusBadRequest
		var ce *controlError
		if errors.As(err, &ce) {
			status = ce.status
		}
		writeJSON(w, status, map[string]string{"error": err.Error()})
	}
}

// decodeControl reads a JSON body strictly: an unknown field is a typo in a test, better caught here.
// An empty body decodes as {}.
func decodeControl(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxControlBody+1))
	if err != nil {
		return badRequest("reading body: %v", err)
	}
	if len(body) > maxControlBody {
		return badRequest("body larger than %d bytes", maxControlBody)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("invalid JSON body: trailing data")
	}
	return nil
}

type okReply struct {
	OK bool `json:"ok"`
}

func writeOK(w http.ResponseWriter) { writeJSON(w, http.StatusOK, okReply{OK: true}) }

// appView is an app as the control API shows it: never with its secret. The lifetimes are shown
// only when the app has its own.
type appView struct {
	ID                     string   `json:"app_id"`
	RefreshDisabled        bool     `json:"refresh_disabled"`
	Scopes                 []string `json:"scopes"`
	RefreshTokenTTLSeconds float64  `json:"refresh_token_ttl_seconds,omitempty"`
	UserTokenTTLSeconds    float64  `json:"user_token_ttl_seconds,omitempty"`
	// Store and event settings, shown only when set; the verification token and encrypt key never.
	AppType       string   `json:"app_type,omitempty"` // only "store"; self-built apps omit it
	EventURL      string   `json:"event_url,omitempty"`
	EventTypes    []string `json:"event_types,omitempty"`
	EncryptKeySet bool     `json:"encrypt_key_set,omitempty"`
}

// appRequest is the body of POST /_emulator/apps: App with its lifetimes in seconds (0 or absent:
// the server's default).
type appRequest struct {
	ID                     string   `json:"app_id"`
	Secret                 string   `json:"app_secret"`
	RefreshDisabled        bool     `json:"refresh_disabled"`
	Scopes                 []string `json:"scopes"`
	RefreshTokenTTLSeconds float64  `json:"refresh_token_ttl_seconds"`
	UserTokenTTLSeconds    float64  `json:"user_token_ttl_seconds"`
	AppType                string   `json:"app_type"`
	EventURL               string   `json:"event_url"`
	VerificationToken      string   `json:"verification_token"`
	EncryptKey             string   `json:"encrypt_key"`
	EventTypes             []string `json:"event_types"`
	Tenants                []string `json:"tenants"`
}

func secondsToDuration(name string, v float64) (time.Duration, error) {
	if math.IsNaN(v) || v < 0 || v > maxAppTokenTTL.Seconds() {
		return 0, badRequest("%s must be between 0 (the server default) and %d", name, int64(maxAppTokenTTL.Seconds()))
	}
	return time.Duration(v * float64(time.Second)), nil
}

func (s *Server) ctlListApps(w http.ResponseWriter, _ *http.Request) error {
	apps := s.Apps()
	out := make([]appView, 0, len(apps))
	for _, a := range apps {
		scopes := a.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		v := appView{ID: a.ID, RefreshDisabled: a.RefreshDisabled, Scopes: scopes,
			RefreshTokenTTLSeconds: a.RefreshTokenTTL.Seconds(), UserTokenTTLSeconds: a.UserTokenTTL.Seconds(),
			EventURL: a.EventURL, EventTypes: a.EventTypes, EncryptKeySet: a.EncryptKey != ""}
		if a.AppType == AppTypeStore {
			v.AppType = AppTypeStore
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string][]appView{"apps": out})
	return nil
}

func (s *Server) ctlAddApp(w http.ResponseWriter, r *http.Request) error {
	var body appRequest
	if err := decodeControl(r, &body); err != nil {
		return err
	}
	a := App{ID: body.ID, Secret: body.Secret, RefreshDisabled: body.RefreshDisabled, Scopes: body.Scopes,
		AppType: body.AppType, EventURL: body.EventURL, VerificationToken: body.VerificationToken,
		EncryptKey: body.EncryptKey, EventTypes: body.EventTypes, Tenants: body.Tenants}
	var err error
	if a.RefreshTokenTTL, err = secondsToDuration("refresh_token_ttl_seconds", body.RefreshTokenTTLSeconds); err != nil {
		return err
	}
	if a.UserTokenTTL, err = secondsToDuration("user_token_ttl_seconds", body.UserTokenTTLSeconds); err != nil {
		return err
	}
	if err := s.RegisterApp(a); err != nil {
		return badRequest("%v", err)
	}
	writeOK(w)
	return nil
}

func (s *Server) ctlRemoveApp(w http.ResponseWriter, appID string) error {
	writeJSON(w, http.StatusOK, map[string]bool{"removed": s.RemoveApp(appID)})
	return nil
}

type clockReply struct {
	Now           string  `json:"now"`
	OffsetSeconds float64 `json:"offset_seconds"`
}

func (s *Server) clockReply() clockReply {
	now := s.clk.Now()
	// The offset is measured against the wall clock, rounded to hide the nanoseconds between the two reads.
	offset := time.Until(now).Round(time.Millisecond)
	return clockReply{Now: now.UTC().Format(time.RFC3339Nano), OffsetSeconds: offset.Seconds()}
}

func (s *Server) ctlClock(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, s.clockReply())
	return nil
}

func (s *Server) ctlAdvance(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Seconds *float64 `json:"seconds"`
	}
	if err := decodeControl(r, &body); err != nil {
		return err
	}
	if body.Seconds == nil || !(*body.Seconds > 0) || math.IsInf(*body.Seconds, 0) || *body.Seconds > 1e9 {
		return badRequest("seconds must be a positive number")
	}
	d := time.Duration(*body.Seconds * float64(time.Second))
	if err := s.Advance(d); err != nil {
		if errors.Is(err, ErrClockFixed) {
			return &controlError{http.StatusConflict, err.Error()}
		}
		return badRequest("%v", err)
	}
	writeJSON(w, http.StatusOK, s.clockReply())
	return nil
}

// failureJSON is Failure on the wire; the delay travels in milliseconds.
type failureJSON struct {
	Endpoint     string      `json:"endpoint"`
	Mode         FailureMode `json:"mode"`
	Count        int         `json:"count"`
	DelayMS      int64       `json:"delay_ms"`
	Status       int         `json:"status,omitempty"`
	ResetSeconds int         `json:"reset_seconds,omitempty"`
	Code         int         `json:"code,omitempty"`
	Msg          string      `json:"msg,omitempty"`
	AppID        string      `json:"app_id,omitempty"`
}

func (s *Server) ctlInjectFailure(w http.ResponseWriter, r *http.Request) error {
	var fj failureJSON
	if err := decodeControl(r, &fj); err != nil {
		return err
	}
	if fj.DelayMS < 0 {
		return badRequest("delay_ms must not be negative")
	}
	f := Failure{
		Endpoint: fj.Endpoint, Mode: fj.Mode, Count: fj.Count, Delay: time.Duration(fj.DelayMS) * time.Millisecond,
		Status: fj.Status, ResetSeconds: fj.ResetSeconds, Code: fj.Code, Msg: fj.Msg, AppID: fj.AppID,
	}
	if err := s.InjectFailure(f); err != nil {
		return badRequest("%v", err)
	}
	writeOK(w)
	return nil
}

func (s *Server) ctlListFailures(w http.ResponseWriter, _ *http.Request) error {
	pending := s.PendingFailures()
	out := make([]failureJSON, 0, len(pending))
	for _, f := range pending {
		out = append(out, failureJSON{
			Endpoint: f.Endpoint, Mode: f.Mode, Count: f.Count, DelayMS: f.Delay.Milliseconds(),
			Status: f.Status, ResetSeconds: f.ResetSeconds, Code: f.Code, Msg: f.Msg, AppID: f.AppID,
		})
	}
	writeJSON(w, http.StatusOK, map[string][]failureJSON{"failures": out})
	return nil
}

func (s *Server) ctlClearFailures(w http.ResponseWriter, r *http.Request) error {
	if appID := r.URL.Query().Get("app_id"); appID != "" {
		return s.ctlClearAppFailures(w, appID)
	}
	s.ClearFailures()
	writeOK(w)
	return nil
}

func (s *Server) ctlCounters(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, s.Counters())
	return nil
}

func (s *Server) ctlReset(w http.ResponseWriter, r *http.Request) error {
	if err := decodeControl(r, &struct{}{}); err != nil {
		return err
	}
	s.Reset()
	writeOK(w)
	return nil
}
