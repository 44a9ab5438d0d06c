package kyapaycaddy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
)

// Configuration errors name the directive and the field, and a bad config
// leaves the running one in place.
func TestProvisionErrors(t *testing.T) {
	e := newEnv(t)
	e.start(t, `kyapay 0.01
	respond "running" 200`)

	dir := t.TempDir()
	emptyKey := filepath.Join(dir, "empty")
	os.WriteFile(emptyKey, []byte("\n"), 0o600)
	cases := []struct {
		name, site, want string
	}{
		{"seller_id missing", `kyapay {
			seller_id ""
		}`, "kyapay: seller_id: required"},
		{"seller_id and opt-out", `kyapay {
			insecure_any_audience
		}`, "kyapay: insecure_any_audience: set together with seller_id"},
		{"env", `kyapay {
			env staging
		}`, `kyapay: env: "staging" is not`},
		{"price", `kyapay 0.001x`, `kyapay: price: "0.001x" is not a decimal USD amount`},
		{"zero price", `kyapay 0`, `kyapay: price: a price must be greater than zero`},
		{"types", `kyapay {
			types pay bogus
		}`, `kyapay: types: "bogus" is not kya, pay or kya-pay`},
		{"types accepting nothing", `kyapay {
			types kya
			price 0.01
		}`, `kyapay: types:`},
		{"identity", `kyapay {
			identity email shoe_size
		}`, `kyapay: identity:`},
		{"timing", `kyapay {
			timing later
		}`, `kyapay: timing: "later" is not before or after`},
		{"format", `kyapay {
			format xml
		}`, `kyapay: format: "xml"`},
		{"status_policy", `kyapay {
			status_policy strict
		}`, `kyapay: status_policy: "strict"`},
		{"mcp after", `kyapay {
			price 0.01
			timing after
			mcp
		}`, "kyapay: timing: after is not allowed on an mcp route"},
		{"mcp tool price", `kyapay {
			mcp {
				tool search cheap
			}
		}`, `kyapay: mcp: tool "search": "cheap" is not a decimal USD amount`},
		{"redis", `kyapay {
			redis 127.0.0.1:6379
		}`, "kyapay: redis: not a URL"},
		{"api_key placeholder unset", `kyapay 0.01 {
			api_key {env.KYAPAYCADDY_TEST_UNSET}
		}`, "kyapay: api_key: a placeholder is unknown or empty"},
		{"api_key and file", `kyapay 0.01 {
			api_key_file ` + emptyKey + `
		}`, "kyapay: api_key_file: set together with api_key"},
		{"api_key_file empty", `kyapay 0.01 {
			api_key ""
			api_key_file ` + emptyKey + `
		}`, "kyapay: api_key_file: " + emptyKey + " is empty"},
		{"api_key missing", `kyapay 0.01 {
			api_key ""
		}`, "kyapay: api_key: required on a route that charges"},
		{"header in the namespace", `kyapay {
			header Kyapay-Token
		}`, `kyapay: header: "Kyapay-Token" is in the Kyapay- namespace`},
		{"issuer", `kyapay {
			issuer " https://x"
		}`, "kyapay: issuers:"},
		{"api_url", `kyapay 0.01 {
			api_url ftp://x
		}`, "kyapay: api_url:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := load(e.caddyfile(c.site + "\n\trespond 200"))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v; want an error containing %q", err, c.want)
			}
			if !strings.Contains(err.Error(), "http.handlers.kyapay") {
				t.Errorf("error %q does not name the module", err)
			}
			if strings.Contains(err.Error(), "test-api-key") {
				t.Errorf("error %q contains the API key", err)
			}
		})
	}
	if res := e.get(t, "/", ""); res.status != 402 {
		t.Errorf("the running config was replaced: got %d %q", res.status, res.body)
	}
}

// Caddyfile syntax errors name the directive, the subdirective and the line.
func TestCaddyfileErrors(t *testing.T) {
	e := newEnv(t)
	cases := []struct{ name, site, want string }{
		{"unknown subdirective", `kyapay {
			prize 0.01
		}`, `kyapay: unknown subdirective "prize", at Caddyfile:{line prize 0.01}`},
		{"two prices", `kyapay 0.01 0.02`, "wrong argument count"},
		{"missing argument", `kyapay {
			seller_id
		}`, "kyapay: seller_id: want one argument, at Caddyfile:{line seller_id}"},
		{"mcp unknown", `kyapay {
			mcp {
				tools x 1
			}
		}`, `kyapay: mcp: unknown subdirective "tools"`},
		{"mcp tool twice", `kyapay {
			mcp {
				tool x 1
				tool x 2
			}
		}`, `kyapay: mcp: tool "x" is priced twice`},
		{"mcp max_body", `kyapay {
			mcp {
				max_body lots
			}
		}`, `kyapay: mcp: max_body: "lots" is not a size`},
		{"charge_timeout", `kyapay {
			charge_timeout soon
		}`, "kyapay: charge_timeout:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cf := e.caddyfile(c.site)
			want := c.want
			if i := strings.Index(want, "{line "); i >= 0 {
				j := strings.Index(want, "}")
				want = want[:i] + fmt.Sprint(lineOf(cf, want[i+len("{line "):j])) + want[j+1:]
			}
			err := load(cf)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v; want an error containing %q", err, want)
			}
		})
	}
	global := `{
	kyapay {
		price 0.01
	}
}
:0`
	if err := load(global); err == nil || !strings.Contains(err.Error(), `kyapay: unknown global subdirective "price"`) {
		t.Errorf("price in the global option: got %v", err)
	}
}

// The directive's settings override the global option's, and the JSON
// config carries the API key's placeholder, never the key.
func TestGlobalOptionAndOverride(t *testing.T) {
	e := newEnv(t)
	site := `kyapay /other {
		seller_id seller-2
	}
	kyapay /mine 0.01
	respond "ok" 200`
	e.start(t, site)
	if res := e.get(t, "/mine", e.iss.Mint(kyapay.TypePay)); res.status != 200 {
		t.Errorf("token for seller-1 on a seller-1 route: got %d %q", res.status, res.body)
	}
	if res := e.get(t, "/other", e.iss.Mint(kyapay.TypePay)); res.status != 402 {
		t.Errorf("token for seller-1 on a seller-2 route: got %d; want 402", res.status)
	}
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(e.caddyfile(site)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), `"api_key":"{env.`+apiKeyEnv+`}"`) || strings.Contains(string(cfg), kyapaytest.DefaultAPIKey) {
		t.Errorf("adapted config %s", cfg)
	}
}

// lineOf returns the 1-based number of the first line of s that is line,
// give or take surrounding white space.
func lineOf(s, line string) int {
	for i, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == line {
			return i + 1
		}
	}
	return -1
}
