package larkevent

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
)

// Encryption as docs/lark-api.md §3 describes it: AES-256-CBC with key = SHA-256(encrypt_key), a
// random 16-byte IV, PKCS#7 padding, and base64(IV || ciphertext) as the "encrypt" value.

// deriveKey turns the console's Encrypt Key into the AES-256 key.
func deriveKey(encryptKey string) []byte {
	k := sha256.Sum256([]byte(encryptKey))
	return k[:]
}

// errUndecryptable is deliberately one value for every way decryption can fail (base64, length,
// padding): which check failed is exactly what a padding oracle would need.
var errUndecryptable = errors.New("cannot decrypt")

// decrypt opens an "encrypt" value. Every failure is errUndecryptable.
func decrypt(key []byte, encoded string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(raw) < 2*aes.BlockSize || len(raw)%aes.BlockSize != 0 {
		return nil, errUndecryptable
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, errUndecryptable
	}
	iv, ct := raw[:aes.BlockSize], raw[aes.BlockSize:]
	plain := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, ct)
	n, ok := unpad(plain)
	if !ok {
		return nil, errUndecryptable
	}
	return plain[:n], nil
}

// unpad checks PKCS#7 padding strictly (1..16 bytes, all equal to the count) and returns the
// unpadded length. It looks at the last 16 bytes whatever the padding says and branches on none of
// them, so its timing tells a sender nothing about the plaintext.
func unpad(b []byte) (int, bool) {
	n := len(b)
	if n == 0 || n%aes.BlockSize != 0 {
		return 0, false
	}
	p := int(b[n-1])
	good := subtle.ConstantTimeLessOrEq(1, p) & subtle.ConstantTimeLessOrEq(p, aes.BlockSize)
	for i := range aes.BlockSize {
		inPadding := subtle.ConstantTimeLessOrEq(i+1, p)
		matches := subtle.ConstantTimeByteEq(b[n-1-i], byte(p))
		good &= subtle.ConstantTimeSelect(inPadding, matches, 1)
	}
	if good != 1 {
		return 0, false
	}
	return n - p, true
}

// Encrypt produces the "encrypt" value Lark would send for plaintext under encryptKey, with a fresh
// random IV. It is for tests of a receiver (see the package comment).
func Encrypt(encryptKey string, plaintext []byte) (string, error) {
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(iv); err != nil {
		return "", errors.New("larkevent: cannot read random IV")
	}
	return encryptWithIV(encryptKey, iv, plaintext)
}

// EncryptBody produces a whole encrypted request body, {"encrypt":"…"}.
func EncryptBody(encryptKey string, plaintext []byte) ([]byte, error) {
	enc, err := Encrypt(encryptKey, plaintext)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Encrypt string `json:"encrypt"`
	}{enc})
}

func encryptWithIV(encryptKey string, iv, plaintext []byte) (string, error) {
	if encryptKey == "" {
		return "", errors.New("larkevent: encrypt key is empty")
	}
	block, err := aes.NewCipher(deriveKey(encryptKey))
	if err != nil {
		return "", errors.New("larkevent: cannot set up AES")
	}
	p := aes.BlockSize - len(plaintext)%aes.BlockSize
	buf := make([]byte, 0, aes.BlockSize+len(plaintext)+p)
	buf = append(buf, iv...)
	buf = append(buf, plaintext...)
	for range p {
		buf = append(buf, byte(p))
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf[aes.BlockSize:], buf[aes.BlockSize:])
	return base64.StdEncoding.EncodeToString(buf), nil
}
