package lark

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseBrand(t *testing.T) {
	tests := []struct {
		in      string
		want    Brand
		wantErr string
	}{
		{in: "feishu", want: BrandFeishu},
		{in: "lark", want: BrandLark},
		{in: "", wantErr: "brand is required"},
		{in: "Feishu", wantErr: `unknown brand "Feishu"`},
		{in: "LARK", wantErr: `unknown brand "LARK"`},
		{in: " lark", wantErr: "unknown brand"},
		{in: "larksuite", wantErr: "unknown brand"},
		{in: strings.Repeat("x", 500), wantErr: "..."},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBrand(tt.in)
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, tt.want, got)
				return
			}
			require.Error(t, err)
			assert.Empty(t, got)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Contains(t, err.Error(), `"feishu", "lark"`, "error must list the allowed values")
			assert.Less(t, len(err.Error()), 200, "long input must not flood the message")
		})
	}
}

func TestBrandURLs(t *testing.T) {
	assert.Equal(t, "https://open.feishu.cn", BrandFeishu.OpenBaseURL())
	assert.Equal(t, "https://open.larksuite.com", BrandLark.OpenBaseURL())
	assert.Equal(t, "https://accounts.feishu.cn", BrandFeishu.AccountsBaseURL())
	assert.Equal(t, "https://accounts.larksuite.com", BrandLark.AccountsBaseURL())
	assert.Empty(t, Brand("other").OpenBaseURL())
	assert.Empty(t, Brand("other").AccountsBaseURL())
}

func TestValidateBaseURL(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // "" = valid
	}{
		{"emulator", "http://127.0.0.1:8787", ""},
		{"https host", "https://open.feishu.cn", ""},
		{"trailing slash", "https://open.larksuite.com/", ""},
		{"ipv6", "http://[::1]:8080", ""},
		{"upper-case scheme", "HTTP://example.com", ""},
		{"empty", "", "empty"},
		{"ftp", "ftp://x", `scheme "ftp" is not allowed`},
		{"no host", "http://", "must include a host"},
		{"port only", "http://:8080", "must include a host"},
		{"userinfo", "http://u:p@h", "user name or password"},
		{"user only", "https://admin@h", "user name or password"},
		{"query", "http://h/?q", "query"},
		{"empty query", "http://h?", "query"},
		{"fragment", "http://h#f", "fragment"},
		{"empty fragment", "http://h#", "fragment"},
		{"not a url", "not a url", "must be absolute"},
		{"relative", "/open-apis", "must be absolute"},
		{"opaque", "http:example.com", "scheme://host"},
		{"with open-apis", "https://open.feishu.cn/open-apis", "drop /open-apis"},
		{"with path", "https://proxy.example/lark", "must not have a path"},
		{"bad port", "http://h:99999", "port"},
		{"non-numeric port", "http://h:abc", "not a valid URL"},
		{"space in host", "http://a b", "not a valid URL"},
		{"control char", "http://h\n", "not a valid URL"},
		{"too long", "https://h/" + strings.Repeat("a", 3000), "limit is 2048"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateBaseURL(tt.in)
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.NotContains(t, err.Error(), "u:p", "the URL's credentials must not be echoed")
		})
	}
}

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"missing brand", Config{}, "brand is required"},
		{"unknown brand", Config{Brand: "Lark"}, "unknown brand"},
		{"bad base URL", Config{Brand: BrandLark, BaseURL: "ftp://x"}, "scheme"},
		{"base URL with credentials", Config{Brand: BrandLark, BaseURL: "http://u:p@h"}, "user name or password"},
		{"multi-line user agent", Config{Brand: BrandLark, UserAgent: "a\r\nX-Evil: 1"}, "single line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			require.Error(t, err)
			assert.Nil(t, c)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestNewDefaults(t *testing.T) {
	c, err := New(Config{Brand: BrandLark})
	require.NoError(t, err)
	assert.Equal(t, BrandLark, c.Brand())
	assert.Equal(t, "https://open.larksuite.com", c.openBase)
	assert.Equal(t, 10*time.Second, c.timeout)
	assert.Equal(t, 3, c.maxAttempts)
	assert.Equal(t, 200*time.Millisecond, c.backoffBase)
	assert.Equal(t, int64(1<<20), c.maxBody)
	assert.Equal(t, "vault-plugin-secrets-lark/"+Version, c.userAgent)
	require.NotNil(t, c.hc)
	assert.NotNil(t, c.hc.Transport, "must not fall back to http.DefaultTransport")
	assert.NotNil(t, c.hc.CheckRedirect, "redirects must not be followed by default")

	c, err = New(Config{Brand: BrandFeishu, BaseURL: "http://127.0.0.1:8787/"})
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:8787/open-apis/x", c.openAPI("/open-apis/x"), "trailing slash must not double")
}

func TestDefaultUserAgentFollowsVersion(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "1.2.3"
	assert.Equal(t, "vault-plugin-secrets-lark/1.2.3", DefaultUserAgent())
}
