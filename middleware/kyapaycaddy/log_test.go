package kyapaycaddy_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/kyapay/kyapay-go/kyapay"
)

// With the log filter the package documentation gives, the token is in no
// log: not in the access log, not with Caddy's error log of a 502, and not
// in the module's own debug lines.
func TestTokenNotLogged(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	errLog, accLog := filepath.Join(dir, "caddy.log"), filepath.Join(dir, "access.log")
	filter := `format filter {
			request>headers>Skyfire-Pay-Id delete
		}`
	e.logs = `log {
		output file ` + errLog + `
		level DEBUG
		` + filter + `
	}`
	down := freeAddr(t)
	e.start(t, `log {
		output file `+accLog+`
		`+filter+`
	}
	kyapay /down 0.01
	kyapay /refused {
		identity email
	}
	kyapay /ok 0.01
	handle /down {
		reverse_proxy `+down+`
	}
	handle {
		reverse_proxy {up}
	}`)

	tok := e.iss.Mint(kyapay.TypePay)
	if res := e.get(t, "/ok", tok); res.status != http.StatusOK {
		t.Fatalf("/ok: got %d", res.status)
	}
	if res := e.get(t, "/down", tok); res.status != http.StatusBadGateway {
		t.Fatalf("/down: got %d", res.status)
	}
	if res := e.get(t, "/refused", tok); res.status != http.StatusPaymentRequired {
		t.Fatalf("/refused: got %d", res.status)
	}
	_ = caddy.Stop() // flush and close the log files

	sig := tok[strings.LastIndexByte(tok, '.')+1:]
	for _, f := range []struct{ path, mustHave string }{
		{accLog, `"uri":"/down"`},
		{errLog, `"status":502`},
		{errLog, `kyapay`},
	} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		log := string(b)
		if !strings.Contains(log, f.mustHave) {
			t.Errorf("%s lacks %s:\n%s", filepath.Base(f.path), f.mustHave, log)
		}
		if strings.Contains(log, sig) || strings.Contains(log, kyapay.HeaderName+`":[`) {
			t.Errorf("%s contains the token:\n%s", filepath.Base(f.path), log)
		}
	}
}
