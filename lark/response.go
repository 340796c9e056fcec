package lark

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// interpret turns a complete response into nil (out filled) or an *Error. Lark's code decides before
// the HTTP status does, because the legacy token endpoints report errors with HTTP 200 (some users
// see 400 for the same errors).
func interpret(r request, resp *http.Response, data []byte, logID string, out any) *Error {
	status := resp.StatusCode
	// An endpoint with nothing to return (revocation) may answer 2xx with an empty body; that is
	// success, not a broken answer.
	if out == nil && status >= 200 && status <= 299 && len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	env, envErr := parseEnvelope(data)
	if logID == "" {
		logID = cleanField(env.logID, 128)
	}
	e := &Error{Endpoint: r.endpoint, HTTPStatus: status, LogID: safeLogID(logID, allSecrets(r, data))}
	if envErr == nil {
		// A rejected response may carry tokens; treat them like the request's secrets.
		e.Code, e.Msg = env.code, cleanMsg(env.message(), allSecrets(r, data))
		e.ChallengeURL = validChallengeURL(env.challengeURL)
	}
	// Only an error in Lark's own shape proves that Lark handled the request and refused it. Anything
	// else (a proxy's page, a cut-off body, a success we cannot use) may follow Lark acting on it.
	e.consumedMaybe = envErr != nil || (env.code == 0 && env.errName == "")
	var kind ErrorKind
	if r.classify != nil && envErr == nil && (env.code != 0 || env.errName != "" && (status < 200 || status > 299)) {
		kind = r.classify(env.code, env.errName)
	}
	switch {
	case status == http.StatusTooManyRequests || e.Code == codeRateLimited:
		e.Kind, e.status, e.retry = KindRateLimited, StatusRateLimited, true
		e.RetryAfter = parseReset(resp.Header.Get("X-Ogw-Ratelimit-Reset"))
	case status >= 500:
		e.Kind, e.status, e.retry = KindUnavailable, StatusHTTP5xx, true
		if e.Code == 0 && e.Msg == "" {
			e.detail = fmt.Sprintf("HTTP %d", status)
		}
	case status >= 300 && status < 400:
		e.Kind, e.status, e.Code, e.Msg, e.consumedMaybe = KindBadResponse, StatusBadResponse, 0, "", true
		e.detail = fmt.Sprintf("unexpected redirect (HTTP %d); check the base URL", status)
	// HTML, even on 200, comes from a proxy, a captive portal or a wrong base URL, not from Lark. It
	// is not retried: repeating the request a few milliseconds later will not change the answer,
	// and the caller's next read tries again anyway.
	case isHTML(resp, data):
		e.Kind, e.status = KindBadResponse, StatusBadResponse
		e.detail = fmt.Sprintf("HTML page instead of JSON (HTTP %d); is a proxy or a wrong base URL in the way?", status)
	case envErr != nil:
		e.Kind, e.status, e.Err = KindBadResponse, StatusBadResponse, scrubErr(envErr, r.secrets)
		if len(bytes.TrimSpace(data)) == 0 {
			e.detail = fmt.Sprintf("empty body (HTTP %d)", status)
		} else {
			e.detail = fmt.Sprintf("invalid JSON (HTTP %d)", status)
		}
	case kind != "" || e.Code != 0:
		if kind == "" {
			kind = classifyCode(e.Code, env.message())
		}
		e.Kind, e.status = kind, StatusLarkError
		e.retry = kind == KindUnavailable || kind == KindRateLimited
		if kind == KindRateLimited {
			// An endpoint's own limit (im's 230020 per user) comes with the same reset header.
			e.status, e.RetryAfter = StatusRateLimited, parseReset(resp.Header.Get("X-Ogw-Ratelimit-Reset"))
		}
	case status < 200 || status > 299:
		e.Kind, e.status = KindLarkError, StatusLarkError
		if status == http.StatusBadRequest {
			e.Kind = KindInvalidRequest
		}
		if e.Msg == "" {
			e.detail = fmt.Sprintf("HTTP %d", status)
		}
	default:
		e.Kind, e.status, e.Code, e.Msg = KindBadResponse, StatusBadResponse, 0, ""
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			e.detail, e.Err = "unexpected JSON shape", scrubErr(err, allSecrets(r, data))
			return e
		}
		if v, ok := out.(validator); ok {
			if err := v.validate(); err != nil {
				e.detail = redact(err.Error(), allSecrets(r, data))
				return e
			}
		}
		return nil
	}
	return e
}

// envelope holds the fields every Lark answer may carry, across the three shapes in use:
// {code,msg[,data]} (legacy and business APIs), {code,error,error_description} (OAuth) and
// {code,msg,error:{log_id}} (gateway errors).
type envelope struct {
	code    int
	msg     string
	logID   string
	errName string
	errDesc string
	// challengeURL comes with a security-policy block (21000/21001): top level on the OAuth
	// endpoints, under data on OpenAPI answers.
	challengeURL string
}

func (e envelope) message() string {
	switch {
	case e.msg != "":
		return e.msg
	case e.errDesc != "":
		return e.errDesc
	}
	return e.errName
}

func parseEnvelope(data []byte) (envelope, error) {
	var raw struct {
		Code             *int64          `json:"code"`
		Msg              string          `json:"msg"`
		Error            json.RawMessage `json:"error"`
		ErrorDescription string          `json:"error_description"`
		ChallengeURL     string          `json:"challenge_url"`
		Data             json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return envelope{}, err
	}
	var env envelope
	if raw.Code != nil {
		if *raw.Code < math.MinInt32 || *raw.Code > math.MaxInt32 {
			return envelope{}, errors.New("code out of range")
		}
		env.code = int(*raw.Code)
	}
	env.msg, env.errDesc, env.challengeURL = raw.Msg, raw.ErrorDescription, raw.ChallengeURL
	if env.challengeURL == "" && len(raw.Data) > 0 && raw.Data[0] == '{' {
		var data struct {
			ChallengeURL string `json:"challenge_url"`
		}
		if json.Unmarshal(raw.Data, &data) == nil {
			env.challengeURL = data.ChallengeURL
		}
	}
	if len(raw.Error) > 0 {
		// "error" is a string in OAuth answers and an object in gateway answers; neither shape is
		// worth failing the whole response over.
		var name string
		var obj struct {
			LogID string `json:"log_id"`
		}
		if json.Unmarshal(raw.Error, &name) == nil {
			env.errName = name
		} else if json.Unmarshal(raw.Error, &obj) == nil {
			env.logID = obj.LogID
		}
	}
	return env, nil
}

func allSecrets(r request, data []byte) []string {
	return append(append([]string(nil), r.secrets...), bodySecrets(data)...)
}

// bodySecrets collects string values under keys that look like tokens or secrets, at any depth, so
// an error built from this body can redact them.
func bodySecrets(data []byte) []string {
	var v any
	if json.Unmarshal(data, &v) != nil {
		return nil
	}
	var out []string
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if depth > 4 {
			return
		}
		switch t := v.(type) {
		case map[string]any:
			for k, val := range t {
				k = strings.ToLower(k)
				if s, ok := val.(string); ok && s != "" && (strings.Contains(k, "token") || strings.Contains(k, "secret")) {
					out = append(out, s)
				}
				walk(val, depth+1)
			}
		case []any:
			for _, val := range t {
				walk(val, depth+1)
			}
		}
	}
	walk(v, 0)
	return out
}

func isHTML(resp *http.Response, data []byte) bool {
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil && (mt == "text/html" || mt == "application/xhtml+xml") {
		return true
	}
	return bytes.HasPrefix(bytes.TrimSpace(data), []byte("<"))
}

var errBodyTooLarge = errors.New("response body too large")

func readLimited(resp *http.Response, limit int64) ([]byte, error) {
	if resp.ContentLength > limit {
		return nil, errBodyTooLarge
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errBodyTooLarge
	}
	return data, nil
}

// parseReset reads x-ogw-ratelimit-reset (seconds until the window resets). Garbage reads as
// "unknown" rather than failing the call.
func parseReset(h string) time.Duration {
	f, err := strconv.ParseFloat(strings.TrimSpace(h), 64)
	if err != nil || math.IsNaN(f) || f <= 0 {
		return 0
	}
	const maxReset = 24 * time.Hour
	if f >= maxReset.Seconds() {
		return maxReset
	}
	return time.Duration(f * float64(time.Second))
}

// safeLogID drops a log id that contains a secret. A real log id never does; one that does comes
// from something echoing the request, and it is printed in every error, so it goes entirely.
func safeLogID(id string, secrets []string) string {
	if redact(id, secrets) != id {
		return ""
	}
	return id
}

// cleanField bounds a header-sourced value (log id) before it lands in an error message.
func cleanField(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x21 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > max {
		s = s[:max]
	}
	return s
}
