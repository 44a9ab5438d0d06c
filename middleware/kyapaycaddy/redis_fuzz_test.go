package kyapaycaddy

import (
	"net/url"
	"strings"
	"testing"
)

// The redis setting's error, or its description of a good URL, shows the
// password only where it shows equally whatever the password is (the
// password then also spells part of the host, the path or the fixed
// text): never because it is the password.
func FuzzParseRedisURL(f *testing.F) {
	f.Add("redis", "", "pw-123456", "10.0.0.1:6379", "/0", "")
	f.Add("rediss", "user", "pw-123456", "[::1]:6380", "/pw-123456", "")
	f.Add("redis", "user", "pw-123456", "h", "/1", "pool_size=pw-123456")
	f.Add("redis", "pw-123456", "pw-123456", "h", "", "pw-123456=1")
	f.Add("redis", "", "p@ss:w/rd?#%", "h:port", "/0", "dial_timeout=x")
	f.Add("http", "", "pw-123456", "h", "", "")
	f.Add("", "", "pw-123456", "h", "", "")
	f.Add("redis", "", "pw-123456", "", "/0", "")
	f.Add("redis", "", "pw-123456", "h", "/x/y", "")
	f.Fuzz(func(t *testing.T, scheme, user, pw, host, path, query string) {
		const marker = "zq-marker-qz"
		if len(pw) < 6 || pw == marker {
			return
		}
		mk := func(p string) string {
			u := url.URL{Scheme: scheme, User: url.UserPassword(user, p), Host: host, Path: path, RawQuery: query}
			return u.String()
		}
		shown := func(raw string) string {
			s, err := parseRedisURL(raw)
			if err != nil {
				return err.Error()
			}
			return s.desc
		}
		got := shown(mk(pw))
		for _, form := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw)} {
			if strings.Contains(got, form) && !strings.Contains(shown(mk(marker)), form) {
				t.Fatalf("%q shows the password %q", got, pw)
			}
		}
	})
}
