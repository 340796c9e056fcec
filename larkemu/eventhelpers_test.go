package larkemu

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
)

const (
	storeApp     = "cli_storeapp"
	storeSecret  = "st0reS3cret"
	verifyToken  = "vt-41a9425ea7df4536"
	encryptKey   = "ek-s3cr3t-encrypt-key"
	tenantA      = "2ca1d211f64f6438"
	tenantB      = "73658811060f175d"
	receiverPath = "/v1/lark/events/" + storeApp
)

// received is one request the test receiver got.
type received struct {
	header http.Header
	body   []byte
}

// receiver plays the app's event endpoint: it records every request and answers with answer
// (default HTTP 200 and an empty JSON object).
type receiver struct {
	ts     *httptest.Server
	mu     sync.Mutex
	got    []received
	answer func(n int, r received) (int, string) // n counts from 1
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rcv := received{header: r.Header.Clone(), body: body}
		rc.mu.Lock()
		rc.got = append(rc.got, rcv)
		n, answer := len(rc.got), rc.answer
		rc.mu.Unlock()
		status, reply := http.StatusOK, "{}"
		if answer != nil {
			status, reply = answer(n, rcv)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, reply)
	}))
	t.Cleanup(rc.ts.Close)
	return rc
}

func (rc *receiver) url() string { return rc.ts.URL + receiverPath }

func (rc *receiver) setAnswer(f func(n int, r received) (int, string)) {
	rc.mu.Lock()
	rc.answer = f
	rc.mu.Unlock()
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// waitRequests waits until the receiver has at least n requests and returns them.
func (rc *receiver) waitRequests(t *testing.T, n int) []received {
	t.Helper()
	waitFor(t, func() bool { return len(rc.requests()) >= n })
	return rc.requests()
}

// decryptLark is the test's own reading of Lark's event encryption, written from the description
// in lark-api.md §3 and anchored to the vector in Lark's documentation (TestTestDecryptMatchesLark).
func decryptLark(key, encrypted string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(encrypted)
	if err != nil {
		return nil, fmt.Errorf("encrypt field is not standard base64: %w", err)
	}
	if len(raw) < 2*aes.BlockSize || len(raw)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("encrypted data has %d bytes: want IV plus whole blocks", len(raw))
	}
	sum := sha256.Sum256([]byte(key))
	block, err := aes.NewCipher(sum[:])
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(raw)-aes.BlockSize)
	cipher.NewCBCDecrypter(block, raw[:aes.BlockSize]).CryptBlocks(plain, raw[aes.BlockSize:])
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > aes.BlockSize || !bytes.Equal(plain[len(plain)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, fmt.Errorf("bad PKCS#7 padding (wrong key?)")
	}
	return plain[:len(plain)-pad], nil
}

func testDecrypt(t *testing.T, key, encrypted string) []byte {
	t.Helper()
	plain, err := decryptLark(key, encrypted)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

// openEvent returns the plaintext event of a received request, decrypting it when the app has a
// key, and checks the signature headers Lark sends with a key.
func openEvent(t *testing.T, r received, key string) map[string]any {
	t.Helper()
	body := r.body
	if key != "" {
		var env map[string]string
		if err := json.Unmarshal(r.body, &env); err != nil || len(env) != 1 || env["encrypt"] == "" {
			t.Fatalf("encrypted body should be exactly {\"encrypt\":…}, got %s", r.body)
		}
		ts, nonce := r.header.Get("X-Lark-Request-Timestamp"), r.header.Get("X-Lark-Request-Nonce")
		if ts == "" || nonce == "" {
			t.Fatalf("missing timestamp or nonce header: %v", r.header)
		}
		sum := sha256.Sum256([]byte(ts + nonce + key + string(r.body)))
		if got := r.header.Get("X-Lark-Signature"); got != hex.EncodeToString(sum[:]) {
			t.Fatalf("X-Lark-Signature %q does not match sha256(timestamp+nonce+key+body)", got)
		}
		body = testDecrypt(t, key, env["encrypt"])
	} else if r.header.Get("X-Lark-Signature") != "" {
		t.Fatal("a signature was sent without an encrypt key")
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("event is not a JSON object: %v: %s", err, body)
	}
	return m
}

// storeAppConfig is a store app posting to rc, encrypted when key is set.
func storeAppConfig(rc *receiver, key string, events ...string) App {
	a := App{ID: storeApp, Secret: storeSecret, AppType: AppTypeStore, VerificationToken: verifyToken,
		EncryptKey: key, EventTypes: events}
	if rc != nil {
		a.EventURL = rc.url()
	}
	return a
}

// newStoreEmu starts an emulator on a fake clock with the self-built test app and the given store
// app, with retries every second so tests can drive them with the clock.
func newStoreEmu(t *testing.T, a App, opts Options) (*Server, string, *clock.Fake) {
	t.Helper()
	if opts.EventRetryDelays == nil {
		opts.EventRetryDelays = []time.Duration{time.Second, time.Second}
	}
	opts.RegisterApps = append(opts.RegisterApps, a)
	s, ts, fc := newFakeEmu(t, opts)
	return s, ts.URL, fc
}

// ticketFrom extracts the app_ticket of an app_ticket event.
func ticketFrom(t *testing.T, ev map[string]any) string {
	t.Helper()
	inner, _ := ev["event"].(map[string]any)
	tk, _ := inner["app_ticket"].(string)
	if tk == "" || inner["type"] != "app_ticket" {
		t.Fatalf("not an app_ticket event: %v", ev)
	}
	return tk
}

func storeAppToken(t *testing.T, base, ticket string) response {
	t.Helper()
	return postJSON(t, base+PathStoreAppAccessToken, mustJSON(t, map[string]string{
		"app_id": storeApp, "app_secret": storeSecret, "app_ticket": ticket}))
}

func storeTenantToken(t *testing.T, base, appToken, tenantKey string) response {
	t.Helper()
	return postJSON(t, base+PathStoreTenantAccessToken, mustJSON(t, map[string]string{
		"app_access_token": appToken, "tenant_key": tenantKey}))
}

// mustToken insists on a successful store token answer and returns the token and expire.
func mustToken(t *testing.T, r response, field string) (string, int64) {
	t.Helper()
	m := decode(t, r.body)
	if r.status != http.StatusOK || m["code"] != any(json.Number("0")) || m["msg"] != "success" {
		t.Fatalf("want success, got %d %s", r.status, r.body)
	}
	tok, _ := m[field].(string)
	exp, err := m["expire"].(json.Number).Int64()
	if tok == "" || err != nil {
		t.Fatalf("no %s/expire in %s", field, r.body)
	}
	return tok, exp
}
