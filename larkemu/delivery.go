package larkemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"time"
)

// Delivery states of an EventDelivery.
const (
	DeliveryPending   = "pending"   // not attempted yet, being attempted, or waiting for a retry
	DeliveryDelivered = "delivered" // the receiver answered HTTP 200 (and echoed a URL-verification challenge)
	DeliveryFailed    = "failed"    // every attempt failed, or the push asked for no retries
)

// Sources of an EventDelivery.
const (
	SourceLark   = "lark"   // an event the emulated Lark sent on its own (schedule, resend, install, revoke, challenge)
	SourcePush   = "push"   // an arbitrary (possibly forged) body pushed through the control API
	SourceReplay = "replay" // the exact bytes and headers of an earlier delivery, sent again
)

const (
	// maxEventRecords bounds the delivery history; the oldest records are dropped first.
	maxEventRecords = 1000
	// maxRecordedResponse is how much of a receiver's answer a delivery record keeps.
	maxRecordedResponse = 4 << 10
	// schedulerPoll is how often the scheduler looks for due tickets and retries. It polls because
	// the emulator's clock may be moved from outside (clock.Fake.Advance in unit tests).
	schedulerPoll = 20 * time.Millisecond
)

// EventDelivery is one event the emulator POSTed (or is about to POST) to an app's event URL,
// with every attempt. Tests read these through Events and GET /_emulator/apps/{app_id}/events.
type EventDelivery struct {
	Seq       int    `json:"seq"`
	AppID     string `json:"app_id"`
	Source    string `json:"source"`
	URL       string `json:"url"`
	EventType string `json:"event_type,omitempty"`
	EventID   string `json:"event_id,omitempty"` // uuid (schema 1.0) or header.event_id (2.0)
	// Plaintext is the event JSON before encryption (absent for a raw push that is not JSON).
	Plaintext json.RawMessage `json:"plaintext,omitempty"`
	// Body is exactly what was sent: the plaintext, {"encrypt":"…"}, or a raw push; bodies over
	// 64 KiB are cut there (BodyBytes has the full size) and Plaintext is left out.
	Body      string `json:"body"`
	BodyBytes int    `json:"body_bytes"`
	Encrypted bool   `json:"encrypted"`
	State     string `json:"state"`
	// NextAttemptAt is when a pending retry is due, on the emulator's clock.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	// ChallengeAnswered, on url_verification deliveries only, says whether an attempt got HTTP 200
	// with a JSON object whose "challenge" equals the one sent.
	ChallengeAnswered *bool             `json:"challenge_answered,omitempty"`
	Attempts          []DeliveryAttempt `json:"attempts"`
}

// DeliveryAttempt is one POST of an EventDelivery.
type DeliveryAttempt struct {
	Attempt int       `json:"attempt"` // 1 for the first try
	At      time.Time `json:"at"`      // emulator clock
	// Status is the receiver's HTTP status, 0 when there was none (refused, timed out).
	Status int `json:"status"`
	// Response is the start (up to 4 KiB) of the receiver's body.
	Response string `json:"response"`
	Error    string `json:"error,omitempty"`
	// Headers are the X-Lark-* signature headers sent, if any.
	Headers map[string]string `json:"headers,omitempty"`
}

// eventRecord is an EventDelivery plus what it takes to send it again. Guarded by Server.mu.
type eventRecord struct {
	d    EventDelivery
	body []byte
	// signKey signs every attempt afresh (new timestamp and nonce); "" sends no signature.
	signKey string
	// fixedHeaders, for replays, are sent as captured instead of a fresh signature.
	fixedHeaders map[string]string
	// retries are the waits still to use after a failed attempt.
	retries []time.Duration
	due     time.Time
	// inFlight: someone owns the next attempt (its creator, or the scheduler), so nobody else
	// starts it.
	inFlight  bool
	challenge string
}

type eventState struct {
	records []*eventRecord
	seq     int
}

func (st *eventState) init() {
	st.records = nil
}

// addRecordLocked files a new delivery, owned by the caller (in flight) until it is attempted.
// Callers hold s.mu.
func (s *Server) addRecordLocked(rec *eventRecord) *eventRecord {
	s.events.seq++
	rec.d.Seq = s.events.seq
	rec.d.State = DeliveryPending
	rec.d.Attempts = []DeliveryAttempt{}
	rec.inFlight = true
	if len(s.events.records) >= maxEventRecords {
		s.events.records = slices.Delete(s.events.records, 0, len(s.events.records)-maxEventRecords+1)
	}
	s.events.records = append(s.events.records, rec)
	return rec
}

// newLarkEventLocked files an event the emulated Lark sends to app a: encrypted and signed when
// the app has an Encrypt Key, retried on failure. Callers hold s.mu and must then deliverNow or
// launch the record.
func (s *Server) newLarkEventLocked(a *App, eventType string, payload any, now time.Time) *eventRecord {
	plaintext, err := json.Marshal(payload)
	if err != nil {
		panic("larkemu: encoding event: " + err.Error()) // built by the emulator itself
	}
	_, eventID := describeEvent(plaintext)
	rec := &eventRecord{
		d: EventDelivery{AppID: a.ID, Source: SourceLark, URL: a.EventURL, EventType: eventType, EventID: eventID,
			Plaintext: plaintext},
		retries: slices.Clone(s.opts.EventRetryDelays),
	}
	if eventType == EventURLVerification {
		rec.retries = nil // the console reports a failed check at once; nothing retries it
	}
	rec.body = plaintext
	if a.EncryptKey != "" {
		rec.body = encryptedBody(a.EncryptKey, plaintext)
		rec.d.Encrypted = true
		rec.signKey = a.EncryptKey
	}
	rec.setBody(rec.body)
	return s.addRecordLocked(rec)
}

// deliverNow makes the first attempt of a record its caller owns and returns the delivery as it
// stands afterwards (retries, if any, follow in the background).
func (s *Server) deliverNow(rec *eventRecord) EventDelivery {
	s.attempt(rec)
	s.mu.Lock()
	defer s.mu.Unlock()
	return rec.d.clone()
}

// launch attempts records in the background. After Close it does nothing.
func (s *Server) launch(recs ...*eventRecord) {
	for _, rec := range recs {
		if !s.goTracked(func() { s.attempt(rec) }) {
			return
		}
	}
}

// goTracked runs fn in a goroutine that Close waits for; it reports false once the server is closed.
func (s *Server) goTracked(fn func()) bool {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed {
		return false
	}
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		fn()
	}()
	return true
}

// ensureScheduler starts the goroutine that pushes scheduled tickets and due retries. It may be
// called with s.mu held.
func (s *Server) ensureScheduler() {
	s.schedulerOnce.Do(func() {
		s.goTracked(s.runScheduler)
	})
}

func (s *Server) runScheduler() {
	tick := time.NewTicker(schedulerPoll)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
		s.launch(s.collectDue()...)
	}
}

// collectDue claims the deliveries whose time has come: scheduled tickets and retries.
func (s *Server) collectDue() []*eventRecord {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := s.scheduledTicketsLocked(now)
	for _, rec := range s.events.records {
		if rec.d.State == DeliveryPending && !rec.inFlight && !now.Before(rec.due) {
			rec.inFlight = true
			rec.d.NextAttemptAt = nil
			recs = append(recs, rec)
		}
	}
	return recs
}

// attempt POSTs a record once and files the outcome. Only HTTP 200 counts as delivered, as Lark
// requires; anything else is retried after the next wait in the record's schedule.
func (s *Server) attempt(rec *eventRecord) {
	now := s.clk.Now()
	s.mu.Lock()
	target, body, appID := rec.d.URL, rec.body, rec.d.AppID
	headers := maps.Clone(rec.fixedHeaders)
	if headers == nil && rec.signKey != "" {
		headers = signatureHeaders(rec.signKey, body, now)
	}
	s.counters[EndpointEventDelivery]++
	s.countAppLocked(EndpointEventDelivery, appID, time.Now())
	s.mu.Unlock()

	status, response, errText := s.postEvent(target, body, headers)

	s.mu.Lock()
	defer s.mu.Unlock()
	rec.d.Attempts = append(rec.d.Attempts, DeliveryAttempt{
		Attempt: len(rec.d.Attempts) + 1, At: now, Status: status, Response: response, Error: errText, Headers: headers,
	})
	rec.inFlight = false
	rec.d.NextAttemptAt = nil
	ok := status == http.StatusOK
	if rec.challenge != "" {
		// The console accepts the URL only if the challenge comes back.
		ok = ok && challengeMatches(response, rec.challenge)
		rec.d.ChallengeAnswered = &ok
	}
	switch {
	case ok:
		rec.d.State = DeliveryDelivered
	case len(rec.retries) > 0:
		rec.due = s.clk.Now().Add(rec.retries[0])
		rec.retries = rec.retries[1:]
		due := rec.due
		rec.d.NextAttemptAt = &due
		rec.d.State = DeliveryPending
		s.ensureScheduler()
	default:
		rec.d.State = DeliveryFailed
	}
	s.logf("%s: app_id=%s type=%s seq=%d attempt=%d status=%d state=%s", EndpointEventDelivery, appID,
		logEventType(rec.d.EventType), rec.d.Seq, len(rec.d.Attempts), status, rec.d.State)
}

// logEventType keeps whatever a forged push claims as its type out of the log unless it is one the
// emulator knows.
func logEventType(t string) string {
	if _, ok := subscribable[t]; ok || t == EventURLVerification {
		return t
	}
	return "<other>"
}

// postEvent sends one request and returns the status, the start of the answer and, when there was
// no answer, why.
func (s *Server) postEvent(target string, body []byte, headers map[string]string) (int, string, string) {
	ctx, cancel := context.WithTimeout(s.baseCtx, s.opts.EventTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, "", "building request: " + err.Error()
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "larkemu-event-dispatcher")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := s.eventClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, "", "no answer within " + s.opts.EventTimeout.String()
		}
		return 0, "", err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRecordedResponse))
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, string(b), "reading answer: " + err.Error()
	}
	// Drain a little more so the connection can be reused; give up on huge answers.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), ""
}

// newEventClient posts events without proxies (a proxy from the environment would be wrong for a
// local receiver) and without following redirects: a 3xx is a failed delivery.
func newEventClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// maxRecordedBody is how much of a sent body a delivery record shows.
const maxRecordedBody = 64 << 10

// setBody files what will be sent; huge (padded) bodies are shown cut, so listings stay small.
func (rec *eventRecord) setBody(body []byte) {
	rec.body = body
	rec.d.BodyBytes = len(body)
	rec.d.Body = string(body)
	if len(body) > maxRecordedBody {
		rec.d.Body = string(body[:maxRecordedBody])
		rec.d.Plaintext = nil
	}
}

func challengeMatches(response, challenge string) bool {
	var m map[string]any
	if json.Unmarshal([]byte(response), &m) != nil {
		return false
	}
	got, ok := m["challenge"].(string)
	return ok && got == challenge
}

func (d EventDelivery) clone() EventDelivery {
	c := d
	c.Plaintext = bytes.Clone(d.Plaintext)
	c.Attempts = make([]DeliveryAttempt, len(d.Attempts))
	for i, a := range d.Attempts {
		a.Headers = maps.Clone(a.Headers)
		c.Attempts[i] = a
	}
	if d.NextAttemptAt != nil {
		t := *d.NextAttemptAt
		c.NextAttemptAt = &t
	}
	if d.ChallengeAnswered != nil {
		b := *d.ChallengeAnswered
		c.ChallengeAnswered = &b
	}
	return c
}

// Events lists the deliveries to appID ("" for every app) with a sequence number above after,
// oldest first.
func (s *Server) Events(appID string, after int) []EventDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []EventDelivery{}
	for _, rec := range s.events.records {
		if rec.d.Seq > after && (appID == "" || rec.d.AppID == appID) {
			out = append(out, rec.d.clone())
		}
	}
	return out
}

// ClearEvents forgets the deliveries to appID ("" for every app) and cancels their pending retries.
func (s *Server) ClearEvents(appID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events.records = slices.DeleteFunc(s.events.records, func(rec *eventRecord) bool {
		if appID != "" && rec.d.AppID != appID {
			return false
		}
		rec.retries = nil // an attempt in flight finishes, but nothing follows it
		return true
	})
}
