package larkevent

import (
	"bytes"
	"crypto/aes"
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDecryptDocumentedVector decrypts the sample of Lark's "receive events" page: key "test key",
// ciphertext below, plaintext "hello world". It pins key derivation, IV placement and padding to
// Lark's own example rather than to our encrypt function.
func TestDecryptDocumentedVector(t *testing.T) {
	plain, err := decrypt(deriveKey("test key"), "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=")
	require.NoError(t, err)
	assert.Equal(t, "hello world", string(plain))

	_, err = decrypt(deriveKey("test kez"), "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=")
	assert.ErrorIs(t, err, errUndecryptable)
}

func TestEncryptRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 1000} {
		plain := bytes.Repeat([]byte{'x'}, n)
		enc, err := Encrypt("k3y", plain)
		require.NoError(t, err)
		raw, err := base64.StdEncoding.DecodeString(enc)
		require.NoError(t, err)
		assert.Len(t, raw, aes.BlockSize+(n/aes.BlockSize+1)*aes.BlockSize, "IV plus padded ciphertext, a full block of padding when aligned")
		got, err := decrypt(deriveKey("k3y"), enc)
		require.NoError(t, err)
		assert.Equal(t, plain, got)
	}
	a, err := Encrypt("k3y", []byte("same"))
	require.NoError(t, err)
	b, err := Encrypt("k3y", []byte("same"))
	require.NoError(t, err)
	assert.NotEqual(t, a, b, "a fresh IV each time")
	_, err = Encrypt("", []byte("x"))
	assert.Error(t, err)
}

func TestDecryptRefusesBrokenInput(t *testing.T) {
	key := deriveKey("k3y")
	iv := bytes.Repeat([]byte{7}, aes.BlockSize)
	good, err := encryptWithIV("k3y", iv, []byte(`{"a":1}`))
	require.NoError(t, err)
	raw, _ := base64.StdEncoding.DecodeString(good)
	flipLast := append([]byte(nil), raw...)
	flipLast[len(flipLast)-1] ^= 0x01 // corrupts the padding byte's block
	tests := map[string]string{
		"not base64":          "!!!not base64!!!",
		"empty":               "",
		"IV only":             base64.StdEncoding.EncodeToString(iv),
		"not whole blocks":    base64.StdEncoding.EncodeToString(raw[:len(raw)-1]),
		"corrupted last byte": base64.StdEncoding.EncodeToString(flipLast),
		"URL alphabet":        base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 48)),
	}
	for name, enc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := decrypt(key, enc)
			assert.ErrorIs(t, err, errUndecryptable)
		})
	}
}

func TestUnpadIsStrict(t *testing.T) {
	block := func(tail ...byte) []byte {
		b := bytes.Repeat([]byte{'a'}, aes.BlockSize-len(tail))
		return append(b, tail...)
	}
	full := bytes.Repeat([]byte{16}, 16)
	tests := []struct {
		name string
		in   []byte
		n    int
		ok   bool
	}{
		{"one byte", block(1), 15, true},
		{"two bytes", block(2, 2), 14, true},
		{"full block", full, 0, true},
		{"full block after data", append(block(1), full...), 16, true},
		{"zero", block(0), 0, false},
		{"seventeen", block(17), 0, false},
		{"count larger than the run", block(1, 3, 3), 0, false},
		{"one wrong byte inside", block(4, 3, 4, 4), 0, false},
		{"empty", nil, 0, false},
		{"not a block multiple", []byte{1}, 0, false},
		{"0xff", block(0xff), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, ok := unpad(tt.in)
			assert.Equal(t, tt.ok, ok)
			if ok {
				assert.Equal(t, tt.n, n)
			}
		})
	}
}
